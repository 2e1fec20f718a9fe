"""Absolute end-effector target -> Meta-World's 4-D action (dx, dy, dz, gripper effort), all in [-1, 1].

How Meta-World moves the arm (metaworld 3.1.1, `SawyerXYZEnv.set_xyz_action` and `step`): each step it clips
the action to [-1, 1], adds `action[:3] * action_scale` (action_scale = 1/100, i.e. at most 1 cm per axis per
step) to the mocap body's position, clips that to the task's `mocap_low/high`, and the hand follows the mocap
through a weld constraint during `frame_skip` physics substeps; `action[3]` drives the two finger actuators
with opposite signs: +1 closes the gripper, -1 opens it.

So the controller is proportional on position: a = clip(gain * (target_xyz - eef_xyz) / action_scale, -1, 1).
The mocap integrates the actions while the hand trails it by a few millimetres to centimetres, so an error
measured from the observed hand keeps being commanded after the mocap has already covered it: gain 1
overshoots. Measured on metaworld reach-v3 (tests/eval/test_controller_metaworld.py), following a reference
moving 5.4 mm/step for 20 steps then stopping: gain 1.0 tracks with 6.4 mm mean lag but overshoots to 22 mm
after the stop; gain 0.5 tracks equally well (6.4 mm) and settles within 3.3 mm; gain 0.2 lags 26 mm.
Default 0.5. Policy targets are one step ahead (row 0 of a chunk), i.e. such a moving reference.

Orientation is ignored: Meta-World's Sawyer has no rotation action — every step resets the mocap quaternion
to the same fixed value — so the target quaternion cannot be commanded (it stays in the target for robots
that can, and for logging).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robo4d.types import METAWORLD_ACTION_DIM, STATE_DIM

METAWORLD_ACTION_SCALE = 1.0 / 100  # metaworld.sawyer_xyz_env.SawyerXYZEnv default action_scale


@dataclass(frozen=True, kw_only=True)
class ControllerConfig:
    """Gains of the target -> Meta-World action mapping."""

    action_scale: float = METAWORLD_ACTION_SCALE  # metres of mocap motion per unit action per step
    gain: float = 0.5  # fraction of the position error commanded per step (0.5: no windup, see above)
    gripper_effort: float = 1.0  # |gripper action| sent: +effort closes, -effort opens

    def __post_init__(self) -> None:
        if not self.action_scale > 0:
            raise ValueError(f"ControllerConfig.action_scale: expected > 0 metres, got {self.action_scale}")
        if not 0 < self.gain <= 10:
            raise ValueError(f"ControllerConfig.gain: expected in (0, 10], got {self.gain}")
        if not 0 < self.gripper_effort <= 1:
            raise ValueError(f"ControllerConfig.gripper_effort: expected in (0, 1], got {self.gripper_effort}")


def metaworld_action(target: np.ndarray, state: np.ndarray, config: ControllerConfig) -> np.ndarray:
    """(8,) target (xyz, quat, gripper in {0 closed, 1 open}) + (8,) observed state -> (4,) float32 action."""
    if target.shape != (STATE_DIM,) or state.shape[0] < 3:
        raise ValueError(f"expected target ({STATE_DIM},) and state with xyz first, got {target.shape}, {state.shape}")
    if target[7] not in (0.0, 1.0):
        raise ValueError(f"target gripper: expected binarised 0.0 (closed) or 1.0 (open), got {target[7]}")
    action = np.empty(METAWORLD_ACTION_DIM, dtype=np.float32)
    action[:3] = np.clip(config.gain * (target[:3] - state[:3]) / config.action_scale, -1.0, 1.0)
    action[3] = -config.gripper_effort if target[7] == 1.0 else config.gripper_effort
    return action
