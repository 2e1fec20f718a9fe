"""Temporal ensembling, chunk execution, quaternion averaging, gripper binarisation and the controller."""

from __future__ import annotations

import numpy as np
import pytest

from robo4d.eval.controller import ControllerConfig, metaworld_action
from robo4d.eval.runtime import RuntimeConfig, TargetRuntime, quaternion_mean
from robo4d.types import ACTION_EEF_POSE, ACTION_JOINT, ActionChunk, Observation

QUAT = np.array([1.0, 0.0, 0.0, 0.0])


class ScriptedPolicy:
    """Returns the queued chunks in order; counts calls."""

    def __init__(self, chunks: list[np.ndarray], kind: str = "eef_pose") -> None:
        self.chunks = list(chunks)
        self.kind = kind

    def predict_action_chunk(self, obs: Observation) -> ActionChunk:
        return ActionChunk(actions=self.chunks.pop(0).astype(np.float32), kind=self.kind)

    def reset(self) -> None:
        pass


def chunk(xs: list[float], gripper: float = 1.0) -> np.ndarray:
    return np.array([[x, 0, 0, *QUAT, gripper] for x in xs])


OBS = Observation(images={}, state=np.zeros(8, np.float32), task="t")


def test_ensemble_weights_oldest_most_for_positive_decay() -> None:
    m = 1.0
    runtime = TargetRuntime(RuntimeConfig(mode="ensemble", ensemble_decay=m))
    policy = ScriptedPolicy([chunk([0.0, 1.0, 2.0]), chunk([10.0, 20.0, 30.0]), chunk([100.0, 200.0, 300.0])])
    assert runtime.next_target(OBS, policy)[0] == 0.0  # only one prediction for step 0
    w = np.exp(-m * np.arange(2))  # oldest (chunk 0 row 1) first
    assert runtime.next_target(OBS, policy)[0] == pytest.approx(w @ [1.0, 10.0] / w.sum())
    w = np.exp(-m * np.arange(3))
    assert runtime.next_target(OBS, policy)[0] == pytest.approx(w @ [2.0, 20.0, 100.0] / w.sum())
    assert runtime.queries == 3


def test_negative_decay_favours_the_newest() -> None:
    runtime = TargetRuntime(RuntimeConfig(ensemble_decay=-5.0))
    policy = ScriptedPolicy([chunk([0.0, 0.0]), chunk([1.0, 1.0])])
    runtime.next_target(OBS, policy)
    assert runtime.next_target(OBS, policy)[0] > 0.99


def test_chunk_mode_executes_then_requeries_and_reset_forgets() -> None:
    runtime = TargetRuntime(RuntimeConfig(mode="chunk", execute_steps=2))
    policy = ScriptedPolicy([chunk([0.0, 1.0, 2.0]), chunk([5.0, 6.0, 7.0]), chunk([9.0])])
    assert [runtime.next_target(OBS, policy)[0] for _ in range(4)] == [0.0, 1.0, 5.0, 6.0]
    assert runtime.queries == 2
    runtime.reset()
    assert runtime.next_target(OBS, policy)[0] == 9.0 and runtime.queries == 1


def test_gripper_is_binarised_at_the_threshold_after_blending() -> None:
    runtime = TargetRuntime(RuntimeConfig(mode="chunk", gripper_threshold=0.4))
    policy = ScriptedPolicy([np.array([[0, 0, 0, *QUAT, g] for g in (0.39, 0.4, 0.9, 0.0)])])
    assert [runtime.next_target(OBS, policy)[7] for _ in range(4)] == [0.0, 1.0, 1.0, 0.0]


def test_quaternion_mean_ignores_sign_and_weights_rotations() -> None:
    half = np.deg2rad(90) / 2  # 90 degrees about z
    qz = np.array([np.cos(half), 0, 0, np.sin(half)])
    mean = quaternion_mean(np.stack([QUAT, -QUAT, QUAT]), np.ones(3))  # q and -q are the same rotation
    np.testing.assert_allclose(mean, QUAT, atol=1e-12)
    mid = quaternion_mean(np.stack([QUAT, -qz]), np.ones(2))  # 45 degrees about z, whatever the signs
    np.testing.assert_allclose(mid, [np.cos(half / 2), 0, 0, np.sin(half / 2)], atol=1e-12)
    assert quaternion_mean(np.stack([QUAT, qz]), np.array([3.0, 1.0]))[3] < np.sin(half / 2)


def test_chunks_of_the_wrong_kind_or_shape_are_refused() -> None:
    with pytest.raises(ValueError, match="kind='points'.*'eef_pose'.*pre-training"):
        TargetRuntime(RuntimeConfig()).next_target(OBS, ScriptedPolicy([chunk([0.0])], kind="points"))
    with pytest.raises(ValueError, match=r"expected \(K, 8\)"):
        TargetRuntime(RuntimeConfig()).next_target(OBS, ScriptedPolicy([np.zeros((3, 10))]))


def test_joint_chunks_pass_through_as_a_per_dimension_weighted_mean() -> None:
    m = 0.5
    runtime = TargetRuntime(RuntimeConfig(ensemble_decay=m), action_kind=ACTION_JOINT, action_dim=3)
    first = np.array([[0.0, 0.5, -1.0], [1.0, 0.2, -2.0]])  # no quaternion, no gripper: raw joint commands
    second = np.array([[3.0, 0.9, 4.0], [5.0, 0.1, 6.0]])
    policy = ScriptedPolicy([first, second], kind=ACTION_JOINT)
    np.testing.assert_allclose(runtime.next_target(OBS, policy), first[0])
    w = np.exp(-m * np.arange(2))
    np.testing.assert_allclose(runtime.next_target(OBS, policy), (w[0] * first[1] + w[1] * second[0]) / w.sum())


def test_joint_chunk_mode_executes_rows_unchanged() -> None:
    runtime = TargetRuntime(RuntimeConfig(mode="chunk"), action_kind=ACTION_JOINT, action_dim=2)
    rows = np.array([[0.25, -7.0], [0.375, 2.0]])  # exact in float32; 0.375 < 0.4 would binarise an eef gripper
    policy = ScriptedPolicy([rows], kind=ACTION_JOINT)
    assert [runtime.next_target(OBS, policy).tolist() for _ in range(2)] == rows.tolist()


def test_runtime_refuses_mismatched_kinds_and_widths() -> None:
    joint = TargetRuntime(RuntimeConfig(), action_kind=ACTION_JOINT, action_dim=3)
    with pytest.raises(ValueError, match="kind='eef_pose'.*executes 'joint'"):
        joint.next_target(OBS, ScriptedPolicy([chunk([0.0])]))
    with pytest.raises(ValueError, match=r"expected \(K, 3\)"):
        joint.next_target(OBS, ScriptedPolicy([np.zeros((2, 4))], kind=ACTION_JOINT))
    with pytest.raises(ValueError, match="'points' is not a robot command"):
        TargetRuntime(RuntimeConfig(), action_kind="points", action_dim=3)
    with pytest.raises(ValueError, match="'eef_pose' actions cannot be 7 wide"):
        TargetRuntime(RuntimeConfig(), action_kind=ACTION_EEF_POSE, action_dim=7)


def test_controller_scales_clips_and_maps_the_gripper() -> None:
    cfg = ControllerConfig(gain=1.0)
    state = np.array([0.1, 0.6, 0.2, *QUAT, 1.0])
    target = np.array([0.105, 0.55, 0.2, *QUAT, 0.0])  # +5 mm x, -5 cm y, closed
    np.testing.assert_allclose(metaworld_action(target, state, cfg), [0.5, -1.0, 0.0, 1.0], atol=1e-6)
    target[7] = 1.0
    assert metaworld_action(target, state, ControllerConfig(gain=0.5))[[0, 3]].tolist() == [0.25, -1.0]
    with pytest.raises(ValueError, match="binarised"):
        metaworld_action(np.array([0, 0, 0, *QUAT, 0.5]), state, cfg)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "average"}, "RuntimeConfig.mode"),
        ({"gripper_threshold": 1.5}, "RuntimeConfig.gripper_threshold"),
        ({"execute_steps": 0}, "RuntimeConfig.execute_steps"),
        ({"ensemble_decay": float("nan")}, "RuntimeConfig.ensemble_decay"),
    ],
)
def test_runtime_config_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RuntimeConfig(**kwargs)


def test_controller_config_validation() -> None:
    with pytest.raises(ValueError, match="ControllerConfig.gain"):
        ControllerConfig(gain=0)
