"""IGOR end to end on synthetic data: the recipe (LAM -> foundation -> control, and the world model) trains
with falling losses through the one trainer; the control checkpoint carries its frozen LAM and foundation,
evaluates in Meta-World and serves through the generic paths; `robo4d label` and `robo4d imagine` work from
the command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from igor_fixtures import TEXT_DIM, tiny_config, write_dataset

from conftest import FakeTextEncoder
from robo4d import cli, types
from robo4d.data.reader import Dataset
from robo4d.methods.igor.policy import IGORPolicy
from robo4d.methods.igor.recipes import igor_stages
from robo4d.train.checkpoint import load_policy, resolve_checkpoint
from robo4d.train.recipes import RecipeInputs, recipe
from robo4d.train.trainer import run_stages


@pytest.fixture(autouse=True, scope="module")
def fake_text() -> Iterator[None]:
    """Every IGOR policy built in these tests (also by load_policy) encodes text with the fake encoder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(IGORPolicy, "embed_texts", _fake_embed)
        yield


def _fake_embed(self: IGORPolicy, texts):  # type: ignore[no-untyped-def]
    return FakeTextEncoder(TEXT_DIM).encode(list(texts)).to(next(self.parameters()).device)


@dataclass(frozen=True)
class TinyRun:
    run: Path
    human: tuple[str, ...]
    robot: tuple[str, ...]


def train_tiny_recipe(tmp: Path, steps: int, episodes: int) -> TinyRun:
    human = (str(write_dataset(tmp / "human", "human", episodes=episodes)),)
    robot = (str(write_dataset(tmp / "robot", "robot", episodes=episodes)),)
    run = tmp / "run"
    stages = igor_stages(tiny_config(), human=human, robot=robot, batch_size=8, num_workers=0,
                         steps=dict.fromkeys(("lam", "foundation", "control", "world"), steps))  # fmt: skip
    run_stages(stages, run, progress=False)
    return TinyRun(run, human, robot)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, fake_text: None) -> TinyRun:
    """The whole recipe, 30 steps per stage on 4 + 4 synthetic episodes (trained once for this module)."""
    return train_tiny_recipe(tmp_path_factory.mktemp("igor"), steps=30, episodes=4)


def check_losses_fall(run: Path, drop: float, world_drop: float) -> None:
    """The last logged loss of each stage is below `drop` times its first. The rectified-flow loss has a high
    floor (given x_n, the velocity x_1 - x_0 is still uncertain), so the world model gets its own bound."""
    for stage in ("lam", "foundation", "control", "world"):
        curve = [json.loads(line)["loss"] for line in (run / stage / "metrics.jsonl").read_text().splitlines()]
        bound = world_drop if stage == "world" else drop
        assert np.isfinite(curve).all() and curve[-1] < bound * curve[0], (stage, curve)


def test_recipe_is_registered() -> None:
    entry = recipe("igor")
    names = [s.name for s in entry.stages(RecipeInputs(robot=("r",), human=("h",)), name="igor")]
    assert entry.method == "igor" and entry.policy_stage == "control"
    assert entry.needs == ("human", "robot")  # the bench feeds human video only to recipes that need it
    with pytest.raises(ValueError, match="recipe 'igor' needs --human"):
        entry.stages(RecipeInputs(robot=("r",)), name="igor")
    assert names == ["lam", "foundation", "control", "world"]


def test_tiny_recipe_losses_fall(tiny: TinyRun) -> None:
    check_losses_fall(tiny.run, drop=0.95, world_drop=0.95)


@pytest.mark.slow
def test_longer_tiny_recipe(tmp_path: Path) -> None:
    check_losses_fall(train_tiny_recipe(tmp_path, steps=300, episodes=8).run, drop=0.6, world_drop=0.8)


def test_checkpoints_carry_their_frozen_learned_modules(tiny: TinyRun) -> None:
    """Each stage's checkpoint holds the frozen LAM / foundation it trained with, not re-initialised ones."""
    control, foundation, lam = (load_policy(tiny.run / name) for name in ("control", "foundation", "lam"))
    for module, source in ((control.foundation, foundation.foundation), (control.lam, lam.lam),
                           (foundation.lam, lam.lam)):  # fmt: skip
        for name, tensor in source.state_dict().items():
            torch.testing.assert_close(module.state_dict()[name], tensor)
    assert not any(p.requires_grad for p in control.foundation.parameters())


def test_label_predictiveness_and_imagine_commands(tiny: TinyRun, tmp_path: Path, capsys) -> None:
    run, robot = tiny.run, tiny.robot
    copy = tmp_path / "robot-labelled"
    cli.main(["label", "latent-actions", "--dataset", robot[0], "--checkpoint", str(run / "lam"), "--out", str(copy)])
    assert types.LATENT_ACTION_CODES in Dataset(copy).features and types.LATENT_ACTION not in Dataset(robot[0]).features
    capsys.readouterr()
    cli.main(["label", "predictiveness", "--dataset", str(copy), "--k", "2", "4"])
    report = json.loads(capsys.readouterr().out)
    assert set(report["k"]) == {"2", "4"} and len(report["k"]["2"]["per_dim"]) == types.METAWORLD_ACTION_DIM
    assert 0 < report["k"]["4"]["shuffled_mean"] < 1.2
    out = tmp_path / "imagine" / "transfer"
    cli.main(["imagine", "--lam", str(run / "lam"), "--world", str(run / "world"), "--source", robot[0],
              "--target", tiny.human[0], "--out", str(out), "--steps", "3"])  # fmt: skip
    assert out.with_suffix(".mp4").stat().st_size > 0 and out.with_suffix(".png").stat().st_size > 0
    for argv in (["label", "latent-actions", "--dataset", robot[0], "--checkpoint", str(run / "control")],
                 ["imagine", "--lam", str(run / "world"), "--world", str(run / "world"), "--source", robot[0],
                  "--target", robot[0], "--out", str(out)]):  # fmt: skip
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        assert exit_info.value.code == 2
    assert "expected an IGOR checkpoint predicting 'latent_action'" in capsys.readouterr().err


def test_eval_in_meta_world(tiny: TinyRun, tmp_path: Path) -> None:
    """The generic eval path, unchanged, drives the chained IGOR policy (foundation -> low-level)."""
    from robo4d.eval.commands import EvalCommand

    ckpt = resolve_checkpoint(tiny.run / "control")
    EvalCommand(checkpoint=ckpt, tasks=("reach-v3",), episodes=1, max_steps=6, workers=1, videos_per_task=0,
                out=tmp_path / "eval").run()  # fmt: skip
    info = json.loads((tmp_path / "eval" / "eval_info.json").read_text())
    assert [task["task"] for task in info["per_task"]] == ["reach-v3"]


def test_serve(tiny: TinyRun) -> None:
    from robo4d.serve.client import PolicyClient
    from robo4d.serve.commands import ServeCommand
    from robo4d.serve.server import PolicyServer

    spec, make_policy, config = ServeCommand(checkpoint=resolve_checkpoint(tiny.run / "control"), port=0).plan()
    assert spec.io.action_kind == types.ACTION_EEF_POSE and spec.io.cameras == (types.CAM_FRONT,)
    h, w = spec.io.image_size
    obs = types.Observation(images={"front": np.zeros((h, w, 3), np.uint8)}, task="push the block left",
                            state=np.array([0, 0.6, 0.2, 1, 0, 0, 0, 1], np.float32))  # fmt: skip
    with PolicyServer(make_policy, spec, config).start_in_thread() as server:
        with PolicyClient(server.url) as client:
            chunk = client.predict_action_chunk(obs)
    assert chunk.kind == types.ACTION_EEF_POSE and chunk.actions.shape == (3, 8) and np.isfinite(chunk.actions).all()
