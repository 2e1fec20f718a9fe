"""Eval and serve read a policy's PolicyIO and nothing else: a joint-space checkpoint is served (with a camera map)
and refused by the embedded world's eval in one line; checkpoints with and without a recorded `io`."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from joint_policy import CAMERA, JointConfig, write_joint_checkpoint

from robo4d.eval import commands, policy_source
from robo4d.eval.camera_map import RenamedCameras, parse_camera_map
from robo4d.eval.commands import EvalCommand
from robo4d.eval.policy_source import checkpoint_io
from robo4d.serve.client import PolicyClient
from robo4d.serve.commands import ServeCommand
from robo4d.serve.server import PolicyServer
from robo4d.train.checkpoint import load_policy
from robo4d.types import ACTION_EEF_POSE, ACTION_JOINT, STATE_EEF_POSE, STATE_JOINT, Observation, PolicyIO

TASKS = ("reach-v3",)


@pytest.fixture(autouse=True)
def fake_world_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commands, "valid_tasks", lambda: TASKS)
    monkeypatch.setattr(commands, "valid_robot_tasks", lambda: TASKS)


def joint_obs(cfg: JointConfig, camera: str, seed: int = 0) -> Observation:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (*cfg.image_size, 3), dtype=np.uint8)
    return Observation(images={camera: image}, state=rng.normal(size=cfg.state_dim).astype(np.float32), task="t")


def test_recorded_io_is_read_without_building_the_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stage = tmp_path / "run" / "control"
    write_joint_checkpoint(stage, camera_map={"top": CAMERA})
    monkeypatch.setattr("robo4d.train.checkpoint.load_policy", lambda path: pytest.fail("policy was built"))
    found = checkpoint_io(tmp_path / "run")  # run dir -> stage -> checkpoint through the `last` pointers
    assert found.method == "test-joint" and found.camera_map == {"top": CAMERA}
    assert found.io == PolicyIO(cameras=(CAMERA,), image_size=(6, 8), state_kind=STATE_JOINT, state_dim=5,
                                action_kind=ACTION_JOINT, action_dim=7, chunk=3)  # fmt: skip


def test_checkpoint_without_io_asks_the_policy(tmp_path: Path) -> None:
    ckpt = write_joint_checkpoint(tmp_path / "old", record_io=False)
    assert "io" not in json.loads((ckpt / "config.json").read_text())
    assert checkpoint_io(ckpt).io == load_policy(ckpt).io()


def test_malformed_recorded_io_is_one_line_naming_the_file(tmp_path: Path) -> None:
    ckpt = write_joint_checkpoint(tmp_path / "bad")
    config = json.loads((ckpt / "config.json").read_text())
    for io, match in [
        ({k: v for k, v in config["io"].items() if k != "chunk"}, "expected a PolicyIO map with fields"),
        ({**config["io"], "state_dim": 0}, "PolicyIO.state_dim: 0 does not fit state_kind 'joint'"),
        ({**config["io"], "cameras": "image"}, "cameras: expected a list"),
    ]:
        (ckpt / "config.json").write_text(json.dumps({**config, "io": io}))
        with pytest.raises(ValueError, match=f"config.json: io: .*{match}") as e:
            checkpoint_io(ckpt)
        assert "\n" not in str(e.value)


def test_eval_refuses_a_joint_space_policy_before_anything_starts(tmp_path: Path) -> None:
    ckpt = write_joint_checkpoint(tmp_path / "joint")
    with pytest.raises(ValueError, match="'test-joint' 'joint'-space policy.*end-effector poses.*robo4d serve") as e:
        EvalCommand(checkpoint=ckpt, camera_map=("front=image",)).plan()
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("state_dim", [5, 0])
def test_serve_answers_a_joint_observation_with_a_joint_chunk(tmp_path: Path, state_dim: int) -> None:
    cfg = JointConfig(state_dim=state_dim)
    ckpt = write_joint_checkpoint(tmp_path / "joint", cfg)
    spec, make_policy, config = ServeCommand(checkpoint=ckpt, port=0, camera_map=("top=image",)).plan()
    assert spec.robot_cameras == ("top",) and spec.io.action_kind == ACTION_JOINT
    local = load_policy(ckpt).predict_action_chunk(joint_obs(cfg, CAMERA))
    with PolicyServer(make_policy, spec, config).start_in_thread() as server, PolicyClient(server.url) as client:
        assert client.spec == spec  # the metadata frame carries the PolicyIO and the camera map
        chunk = client.predict_action_chunk(joint_obs(cfg, "top"))  # the robot's names; no state key when P = 0
        assert chunk.kind == ACTION_JOINT and chunk.actions.shape == (cfg.chunk, cfg.action_dim)
        np.testing.assert_allclose(chunk.actions, local.actions, atol=1e-6)
        with pytest.raises(RuntimeError, match="missing camera image 'observation.images.top'"):
            client.predict_action_chunk(joint_obs(cfg, CAMERA))


@pytest.mark.parametrize(
    ("items", "match"),
    [
        (("front",), "--camera-map 'front': expected ROBOT_CAMERA=POLICY_CAMERA"),
        (("front=",), "expected ROBOT_CAMERA=POLICY_CAMERA"),
        (("cam=fornt",), "--camera-map cam=fornt: the policy has no camera 'fornt'; it reads \\['front', 'wrist'\\]"),
        (("a=front", "a=wrist"), "robot camera 'a' is mapped twice"),
        (("a=front", "b=front"), "policy camera 'front' is fed by both 'a' and 'b'"),
        (("wrist=front",), "robot camera 'wrist' would feed both policy cameras 'front' and 'wrist'"),
    ],
)
def test_camera_map_errors_are_one_line(items: tuple[str, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match) as e:
        parse_camera_map(items, ("front", "wrist"))
    assert "\n" not in str(e.value)


def eef_checkpoint(root: Path, cameras: tuple[str, ...]) -> Path:
    io = PolicyIO(cameras=cameras, image_size=(16, 16), state_kind=STATE_EEF_POSE, state_dim=8,
                  action_kind=ACTION_EEF_POSE, action_dim=8, chunk=4)  # fmt: skip
    root.mkdir(parents=True)
    config = {"format_version": 1, "method": "m", "policy_config": {}, "stage": {}, "step": 1, "io": asdict(io)}
    (root / "config.json").write_text(json.dumps(config))
    return root


def test_eval_camera_map_renders_world_cameras_and_renames_them(tmp_path: Path) -> None:
    ckpt = eef_checkpoint(tmp_path / "ctl", ("image", "wrist"))
    with pytest.raises(ValueError, match="camera 'image': the embedded world renders only.*--camera-map WORLD_CAMERA="):
        EvalCommand(checkpoint=ckpt).plan()
    with pytest.raises(ValueError, match="the policy has no camera 'front'"):
        EvalCommand(checkpoint=ckpt, camera_map=("front=front",)).plan()
    _, make_policy, make_env = EvalCommand(checkpoint=ckpt, camera_map=("front=image",)).plan()
    assert make_env.keywords["cameras"] == ("front", "wrist")  # the video camera `front` is rendered once
    assert make_policy.func is policy_source.load_local_policy and make_policy.args[1] == {"front": "image"}


def test_renamed_cameras_feed_the_policy_its_own_names() -> None:
    seen = []

    class Spy:
        def predict_action_chunk(self, obs: Observation) -> None:
            seen.append(sorted(obs.images))

        def reset(self) -> None:
            seen.append("reset")

    policy = RenamedCameras(Spy(), {"front": "image"})
    policy.reset()
    policy.predict_action_chunk(Observation(images={"front": 0, "wrist": 1}, state=np.zeros(8), task="t"))
    assert seen == ["reset", ["image", "wrist"]]


def test_serve_checks_the_camera_map_before_loading_the_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt = write_joint_checkpoint(tmp_path / "joint")
    monkeypatch.setattr("robo4d.train.checkpoint.load_policy", lambda path: pytest.fail("policy was loaded"))
    with pytest.raises(ValueError, match="--camera-map top=imgae: the policy has no camera 'imgae'"):
        ServeCommand(checkpoint=ckpt, camera_map=("top=imgae",)).plan()
