"""IGOR end to end on synthetic data: the recipe (LAM -> foundation -> control, and the world model) trains
with falling losses through the one trainer; the control checkpoint carries its frozen LAM and foundation,
evaluates in Meta-World and serves through the generic paths; `robo4d label` and `robo4d imagine` work from
the command line."""

from __future__ import annotations

import json
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


@pytest.fixture(autouse=True)
def fake_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every IGOR policy built in these tests (also by load_policy) encodes text with the fake encoder."""
    monkeypatch.setattr(IGORPolicy, "embed_texts", _fake_embed)


def _fake_embed(self: IGORPolicy, texts):  # type: ignore[no-untyped-def]
    if self._text is None:
        self.use_text_encoder(FakeTextEncoder(TEXT_DIM))
    assert self._text is not None
    return self._text.encode(list(texts)).to(next(self.parameters()).device)


def losses(stage_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (stage_dir / "metrics.jsonl").read_text().splitlines()]


def run_tiny_recipe(tmp: Path, steps: int, episodes: int) -> tuple[Path, tuple[str, ...], tuple[str, ...]]:
    human = (str(write_dataset(tmp / "human", "human", episodes=episodes)),)
    robot = (str(write_dataset(tmp / "robot", "robot", episodes=episodes)),)
    run = tmp / "run"
    stages = igor_stages(tiny_config(), human=human, robot=robot, batch_size=8, num_workers=0,
                         steps=dict.fromkeys(("lam", "foundation", "control", "world"), steps))  # fmt: skip
    run_stages(stages, run, progress=False)
    return run, human, robot


def check_losses_fall(run: Path, drop: float) -> None:
    for stage in ("lam", "foundation", "control", "world"):
        curve = losses(run / stage)
        assert np.isfinite(curve).all() and curve[-1] < drop * curve[0], (stage, curve)


def test_recipe_is_registered() -> None:
    entry = recipe("igor")
    names = [s.name for s in entry.stages(RecipeInputs(robot=("r",), human=("h",)), name="igor")]
    assert entry.method == "igor" and entry.policy_stage == "control" and names == ["lam", "foundation", "control",
                                                                                    "world"]  # fmt: skip


def test_tiny_recipe_losses_fall_and_control_checkpoint_is_complete(tmp_path: Path) -> None:
    run, human, robot = run_tiny_recipe(tmp_path, steps=30, episodes=4)
    check_losses_fall(run, drop=0.95)
    # The control checkpoint holds the frozen LAM and foundation it was trained on, not re-initialised ones.
    control, foundation, lam = (load_policy(run / name) for name in ("control", "foundation", "lam"))
    for module, source in ((control.foundation, foundation.foundation), (control.lam, lam.lam),
                           (foundation.lam, lam.lam)):  # fmt: skip
        for name, tensor in source.state_dict().items():
            torch.testing.assert_close(module.state_dict()[name], tensor)
    run_cli_commands(run, human, robot, tmp_path)
    eval_and_serve(resolve_checkpoint(run / "control"), tmp_path)


@pytest.mark.slow
def test_longer_tiny_recipe(tmp_path: Path) -> None:
    run, _, _ = run_tiny_recipe(tmp_path, steps=300, episodes=8)
    check_losses_fall(run, drop=0.6)


def run_cli_commands(run: Path, human: tuple[str, ...], robot: tuple[str, ...], tmp: Path) -> None:
    out = tmp / "imagine" / "transfer"
    cli.main(["imagine", "--lam", str(run / "lam"), "--world", str(run / "world"), "--source", robot[0],
              "--target", human[0], "--out", str(out), "--steps", "3"])  # fmt: skip
    assert out.with_suffix(".mp4").stat().st_size > 0 and out.with_suffix(".png").stat().st_size > 0
    copy = tmp / "robot-labelled"
    cli.main(["label", "latent-actions", "--dataset", robot[0], "--checkpoint", str(run / "lam"), "--out", str(copy)])
    assert types.LATENT_ACTION_CODES in Dataset(copy).features and types.LATENT_ACTION not in Dataset(robot[0]).features
    cli.main(["label", "predictiveness", "--dataset", str(copy), "--k", "1", "4"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["label", "latent-actions", "--dataset", robot[0], "--checkpoint", str(run / "control")])
    assert exit_info.value.code == 2


def eval_and_serve(ckpt: Path, tmp: Path) -> None:
    """The generic eval and serve paths, unchanged, drive the chained IGOR policy."""
    import copy

    from robo4d.eval.commands import EvalCommand
    from robo4d.eval.policy_source import checkpoint_io_spec
    from robo4d.serve.client import PolicyClient
    from robo4d.serve.server import PolicyServer, ServerConfig

    EvalCommand(checkpoint=ckpt, tasks=("reach-v3",), episodes=1, max_steps=6, workers=1, videos_per_task=0,
                out=tmp / "eval").run()  # fmt: skip
    info = json.loads((tmp / "eval" / "eval_info.json").read_text())
    assert [task["task"] for task in info["per_task"]] == ["reach-v3"]
    spec = checkpoint_io_spec(ckpt)
    assert spec.action_kind == types.ACTION_EEF_POSE and spec.cameras == (types.CAM_FRONT,)
    template = load_policy(ckpt)
    side = spec.image_size[0]
    obs = types.Observation(images={"front": np.zeros((side, side, 3), np.uint8)}, task="push the block left",
                            state=np.array([0, 0.6, 0.2, 1, 0, 0, 0, 1], np.float32))  # fmt: skip
    with PolicyServer(lambda: copy.deepcopy(template), spec, ServerConfig(port=0)).start_in_thread() as server:
        with PolicyClient(server.url) as client:
            chunk = client.predict_action_chunk(obs)
    assert chunk.kind == types.ACTION_EEF_POSE and chunk.actions.shape == (3, 8) and np.isfinite(chunk.actions).all()
