"""Real-format LeRobot data (issue 8): a joint-space robot with its own camera names trains through a camera
map; what does not fit is refused in one line before anything is encoded; the number of points comes from
the dataset, and a checkpoint trained on another number of points is refused in one line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from lerobot_data import make_joint_robot_dataset, make_tracks_dataset

from robo4d import cli, types
from robo4d.data.reader import Dataset
from robo4d.nn.feature_cache import FeatureCache
from robo4d.serve.client import PolicyClient
from robo4d.serve.commands import ServeCommand
from robo4d.serve.server import PolicyServer
from robo4d.train.checkpoint import CONFIG_FILE, load_policy, resolve_checkpoint
from robo4d.train.recipes import RecipeInputs, recipe
from robo4d.train.trainer import run_stage, run_stages

TINY = ["--steps", "2", "--batch-size", "2", "--num-workers", "0", "--no-progress"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBO4D_CACHE_DIR", str(tmp_path / "feature-cache"))


@pytest.fixture
def no_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any frozen feature would be computed."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("frozen features were encoded before the data was checked")

    monkeypatch.setattr(FeatureCache, "_build", refuse)


def test_lerobot_joint_dataset_trains_with_a_camera_map_and_serves_joint_chunks(tmp_path: Path) -> None:
    robot = make_joint_robot_dataset(tmp_path / "robot", episodes=3, length=20)
    cli.main(["train", "--recipe", "scratch", "--robot", str(robot), "--camera-map", "image=front",
              "--out", str(tmp_path / "run"), *TINY])  # fmt: skip
    ckpt = resolve_checkpoint(tmp_path / "run" / "control")
    config = json.loads((ckpt / CONFIG_FILE).read_text())
    assert config["camera_map"] == {"image": "front"}
    assert config["io"] == {
        "cameras": ["front"], "image_size": [128, 128], "state_kind": types.STATE_JOINT, "state_dim": 34,
        "action_kind": types.ACTION_JOINT, "action_dim": 34, "chunk": 16,
    }  # fmt: skip
    fitted = config["policy_config"]
    assert (fitted["control_space"], fitted["joint_state_dim"], fitted["joint_action_dim"]) == ("joint", 34, 34)
    assert fitted["cameras"] == ["front", "front"]  # one camera fills both pool slots
    policy = load_policy(ckpt)
    np.testing.assert_allclose(
        policy.normalizer.action_mean.numpy(), Dataset(robot).stats[types.ACTION]["mean"], rtol=1e-6
    )

    # Served as its io declares: a robot naming its camera as the dataset did gets joint-space chunks.
    frames = Dataset(robot).read_episode(0, [types.image_key("image"), types.STATE])
    # The frozen encoder resizes, so the robot may send its cameras' own 32x32 frames.
    serve = ServeCommand(checkpoint=ckpt, port=0, camera_map=("image=front",), image_size=(32, 32))
    spec, make_policy, server_config = serve.plan()
    with PolicyServer(make_policy, spec, server_config).start_in_thread() as server, PolicyClient(server.url) as client:
        for t in range(2):
            obs = types.Observation(
                images={"image": frames[types.image_key("image")][t]}, state=frames[types.STATE][t], task="fold"
            )
            chunk = client.predict_action_chunk(obs)
            assert chunk.kind == types.ACTION_JOINT and chunk.actions.shape == (16, 34)
            assert np.isfinite(chunk.actions).all()
            local = policy.predict_action_chunk(replace(obs, images={"front": obs.images["image"]}))
            np.testing.assert_allclose(chunk.actions, local.actions, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("datasets", "camera_map", "match"),
    [
        (
            [{}],
            {},
            r"robot0: does not fit this stage's policy: lacks feature observation.images.front; lacks feature "
            r"observation.images.wrist; its cameras are \['image'\]: map one to camera 'front' with --camera-map "
            r"SRC=DST, e.g. --camera-map image=front",
        ),
        (
            [{}, {"state_dim": 30}],
            {"image": "front"},
            r"robot1: does not fit this stage's policy: feature observation.state has shape \(30,\), expected \(34,\); "
            r"feature action has shape \(30,\), expected \(34,\)",
        ),
        (
            [{"with_action": False}],
            {"image": "front"},
            r"robot0: feature action: no such feature; ARM4R's joint-space control stage reads a \(P,\) state and an "
            r"\(A,\) action per frame",
        ),
        ([{}], {"imgae": "front"}, r"--camera-map: no dataset of this stage has camera\(s\) \['imgae'\]; their came"),
        ([{}, {"camera": "cam_high"}], {"image": "front", "cam_high": "front"}, None),
    ],
)
def test_what_does_not_fit_is_refused_in_one_line_before_encoding(
    tmp_path: Path, no_encoding: None, datasets: list[dict], camera_map: dict[str, str], match: str | None
) -> None:
    roots = tuple(str(make_joint_robot_dataset(tmp_path / f"robot{i}", episodes=2, length=20, **kw))
                  for i, kw in enumerate(datasets))  # fmt: skip
    (stage,) = recipe("scratch").stages(RecipeInputs(robot=roots, camera_map=camera_map), name="scratch")
    if match is None:  # two datasets with different camera names map onto the one policy camera
        with pytest.raises(AssertionError, match="frozen features were encoded"):
            run_stage(stage, tmp_path / "run", progress=False)
        return
    with pytest.raises(ValueError, match=match) as e:
        run_stage(stage, tmp_path / "run", progress=False)
    assert "\n" not in str(e.value)


def test_points_come_from_the_dataset_and_a_checkpoint_with_other_points_is_refused(tmp_path: Path) -> None:
    # The README's sequence: tracks extracted on the default 36x36 grid while the preset says 256 points used to
    # die inside stage 1 on a matmul shape error. The grid of the dataset decides (here 5x5 = 25 points).
    human = make_tracks_dataset(tmp_path / "human", camera="ego", grid=5)
    robot = make_tracks_dataset(tmp_path / "robot", camera="front", grid=3)
    stages = recipe("arm4r-3stage").stages(RecipeInputs(human=(str(human),), robot=(str(robot),)), name="x")
    tiny = {"steps": 2, "batch_size": 2, "num_workers": 0}
    (result,) = run_stages([replace(stages[0], **tiny)], tmp_path / "run", progress=False)
    config = json.loads((result.checkpoint / CONFIG_FILE).read_text())
    assert config["policy_config"]["num_points"] == 25 and config["io"]["action_dim"] == 75
    with pytest.raises(ValueError) as e:
        run_stage(replace(stages[1], **tiny), tmp_path / "run", progress=False)
    message = str(e.value)
    assert "\n" not in message and f"stage 'stage2' on {robot}: init_from" in message
    assert "trained on 25 points per frame, but this stage's observation.points.front has shape (9, 3)" in message
    assert "--grid 5" in message
