"""The controller against Meta-World's real mocap arm: it follows a moving end-effector reference and settles."""

from __future__ import annotations

import numpy as np
import pytest

from robo4d.eval.controller import ControllerConfig, metaworld_action

QUAT = [1.0, 0.0, 0.0, 0.0]


@pytest.fixture(scope="module")
def env():
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE

    return ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE["reach-v3-goal-observable"](seed=0)


def track(env, gain: float) -> np.ndarray:
    """Hand-to-reference distance per step; the reference moves 5.4 mm/step for 20 steps, then stops."""
    obs, _ = env.reset()
    start, velocity, errors = obs[:3].copy(), np.array([0.004, -0.002, 0.003]), []
    for i in range(30):
        ref = start + velocity * min(i + 1, 20)
        state = np.array([*obs[:3], *QUAT, obs[3]])
        obs, *_ = env.step(metaworld_action(np.array([*ref, *QUAT, 1.0]), state, ControllerConfig(gain=gain)))
        errors.append(np.linalg.norm(obs[:3] - ref))
    return np.array(errors)


def test_default_gain_tracks_and_settles(env) -> None:
    errors = track(env, ControllerConfig().gain)
    assert errors[5:20].mean() < 0.01 and errors[-1] < 0.005


def test_unit_gain_winds_up(env) -> None:
    assert track(env, 1.0)[-1] > 0.01  # why the default is not 1: the mocap runs ahead of the hand
