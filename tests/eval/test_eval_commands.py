"""`robo4d eval` / `robo4d serve` argument handling: bad checkpoints, bad task names, chain files, remote."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest
from eval_fakes import GoalPolicy

from robo4d import cli
from robo4d.eval import commands
from robo4d.eval.commands import EvalCommand, read_chain_file
from robo4d.serve.commands import ServeCommand
from robo4d.serve.protocol import IOSpec
from robo4d.serve.server import PolicyServer, ServerConfig
from robo4d.types import ACTION_EEF_POSE, STATE_EEF_POSE, STATE_NONE, PolicyIO

TASKS = ("reach-v3", "push-v3", "drawer-open-v3")


@pytest.fixture(autouse=True)
def fake_world_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commands, "valid_tasks", lambda: TASKS)
    monkeypatch.setattr(commands, "valid_robot_tasks", lambda: TASKS[:2])


def control_io(**overrides: object) -> PolicyIO:
    io = PolicyIO(
        cameras=("front", "wrist"), image_size=(64, 64), state_kind=STATE_EEF_POSE, state_dim=8,
        action_kind=ACTION_EEF_POSE, action_dim=8, chunk=4,
    )  # fmt: skip
    return replace(io, **overrides)


def points_io() -> PolicyIO:
    return control_io(state_kind=STATE_NONE, state_dim=0, action_kind="points", action_dim=3, chunk=1)


def write_checkpoint(root: Path, io: PolicyIO) -> Path:
    """A checkpoint config.json with the trainer's recorded PolicyIO (no weights: plan() never loads them)."""
    root.mkdir(parents=True)
    config = {"format_version": 1, "method": "arm4r", "policy_config": {}, "stage": {}, "step": 1, "io": asdict(io)}
    (root / "config.json").write_text(json.dumps(config))
    return root


def test_missing_checkpoint_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nope.*no such file or directory"):
        EvalCommand(checkpoint=tmp_path / "nope").plan()
    with pytest.raises(ValueError, match="not a checkpoint"):
        EvalCommand(checkpoint=tmp_path).plan()


def test_points_checkpoint_is_refused_for_eval_and_serve(tmp_path: Path) -> None:
    ckpt = write_checkpoint(tmp_path / "stage1", points_io())
    with pytest.raises(ValueError, match="'points' pre-training policy.*eef_pose.*control"):
        EvalCommand(checkpoint=ckpt).plan()
    with pytest.raises(ValueError, match="'points' pre-training policy"):
        ServeCommand(checkpoint=ckpt).plan()


def test_unknown_task_names_suggest_the_closest(tmp_path: Path) -> None:
    ckpt = write_checkpoint(tmp_path / "ctl", control_io())
    with pytest.raises(ValueError, match="unknown task 'reach-v2'; did you mean 'reach-v3'.*push-v3"):
        EvalCommand(checkpoint=ckpt, tasks=("reach-v2",)).plan()
    with pytest.raises(ValueError, match="unknown task 'pushh-v3'"):
        EvalCommand(checkpoint=ckpt, chain=("reach-v3,pushh-v3",)).plan()


def test_plan_defaults_to_robot_tasks_and_reads_chain_files(tmp_path: Path) -> None:
    ckpt = write_checkpoint(tmp_path / "ctl", control_io())
    config, _, make_env = EvalCommand(checkpoint=ckpt, workers=1).plan()
    assert config.tasks == TASKS[:2] and make_env.keywords == {"image_size": (64, 64), "cameras": ("front", "wrist")}
    chain_file = tmp_path / "chains.txt"
    chain_file.write_text("# two chains\nreach-v3, push-v3\n\ndrawer-open-v3,reach-v3  # comment\n")
    config, _, _ = EvalCommand(checkpoint=ckpt, chain=("push-v3",), chain_file=chain_file).plan()
    assert config.chains == (("push-v3",), ("reach-v3", "push-v3"), ("drawer-open-v3", "reach-v3"))
    chain_file.write_text("reach-v3,,push-v3\n")
    with pytest.raises(ValueError, match="chains.txt:1: empty task name"):
        read_chain_file(chain_file)


def test_checkpoint_and_remote_are_exclusive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one of --checkpoint"):
        EvalCommand().plan()


def test_remote_plan_reads_the_servers_metadata() -> None:
    spec = IOSpec(io=control_io(cameras=("wrist",), image_size=(32, 48)), camera_map={"front": "wrist"}, method="m")
    with PolicyServer(GoalPolicy, spec, ServerConfig(port=0)).start_in_thread() as server:
        _, make_policy, make_env = EvalCommand(remote=server.url, workers=1).plan()
        assert make_env.keywords == {"image_size": (32, 48), "cameras": ("front",)}  # the server's robot names
        assert make_policy.args == (server.url, None, {})


def test_image_size_comes_from_the_policy_io_unless_overridden(tmp_path: Path) -> None:
    ckpt = write_checkpoint(tmp_path / "ctl", control_io(image_size=(48, 64)))
    assert EvalCommand(checkpoint=ckpt).plan()[2].keywords["image_size"] == (48, 64)
    assert EvalCommand(checkpoint=ckpt, image_size=(8, 8)).plan()[2].keywords["image_size"] == (8, 8)


def test_cli_dispatches_to_the_eval_command(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no such file"):  # a user error: one stderr line, exit 2
        cli.main(["eval", "--checkpoint", str(tmp_path / "missing"), "--tasks", "reach-v3", "--episodes", "3"])
