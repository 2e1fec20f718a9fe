"""IGOR end to end on synthetic data: the recipe (LAM -> label -> foundation -> control, and the world model)
trains with falling losses; the control checkpoint carries its frozen foundation, evaluates in Meta-World and
serves through the generic paths; `robo4d imagine` and `robo4d label` work from the command line."""

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
from robo4d.methods.igor import recipes
from robo4d.methods.igor.policy import IGORPolicy
from robo4d.train.checkpoint import load_policy, resolve_checkpoint


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
    stages = recipes.igor_stages(config=tiny_config(), human=human, robot=robot, run_dir=run, batch_size=8,
                                 steps=dict.fromkeys(("lam", "foundation", "control"), steps))  # fmt: skip
    stages = (*stages, recipes.world_stage(stages[1], steps=steps))
    torch.manual_seed(0)
    recipes.run_recipe(stages, run, sources=human + robot, progress=False)
    return run, human, robot


def check_recipe(run: Path, robot: tuple[str, ...], drop: float) -> None:
    for stage in ("lam", "foundation", "control", "world"):
        curve = losses(run / stage)
        assert np.isfinite(curve).all() and curve[-1] < drop * curve[0], (stage, curve)
    labelled = Dataset(recipes.labelled_root(run, 1, robot[0]))
    assert types.LATENT_ACTION in labelled.features and types.LATENT_ACTION not in Dataset(robot[0]).features


def test_tiny_recipe_losses_fall_and_control_checkpoint_is_complete(tmp_path: Path) -> None:
    run, human, robot = run_tiny_recipe(tmp_path, steps=30, episodes=4)
    check_recipe(run, robot, drop=0.95)
    # The control checkpoint holds the frozen foundation it was trained on, not a re-initialised one.
    control, foundation = load_policy(run / "control"), load_policy(run / "foundation")
    for name, tensor in foundation.foundation.state_dict().items():
        torch.testing.assert_close(control.foundation.state_dict()[name], tensor)
    # A re-run skips every complete stage and the labelling.
    stamp = (recipes.labelled_root(run, 0, human[0]) / types.INFO_JSON).stat().st_mtime_ns
    stages = recipes.igor_stages(config=tiny_config(), human=human, robot=robot, run_dir=run, batch_size=8,
                                 steps=dict.fromkeys(("lam", "foundation", "control"), 30))  # fmt: skip
    recipes.run_recipe(stages, run, sources=human + robot, progress=False)
    assert (recipes.labelled_root(run, 0, human[0]) / types.INFO_JSON).stat().st_mtime_ns == stamp
    run_cli_commands(run, human, robot, tmp_path)
    eval_and_serve(resolve_checkpoint(run / "control"), tmp_path)


@pytest.mark.slow
def test_longer_tiny_recipe(tmp_path: Path) -> None:
    run, _, robot = run_tiny_recipe(tmp_path, steps=300, episodes=8)
    check_recipe(run, robot, drop=0.6)


def run_cli_commands(run: Path, human: tuple[str, ...], robot: tuple[str, ...], tmp: Path) -> None:
    out = tmp / "imagine" / "transfer"
    cli.main(["imagine", "--lam", str(run / "lam"), "--world", str(run / "world"), "--source", robot[0],
              "--target", human[0], "--out", str(out), "--steps", "3"])  # fmt: skip
    assert out.with_suffix(".mp4").stat().st_size > 0 and out.with_suffix(".png").stat().st_size > 0
    copy = tmp / "robot-labelled"
    cli.main(["label", "latent-actions", "--dataset", robot[0], "--checkpoint", str(run / "lam"), "--out", str(copy)])
    assert types.LATENT_ACTION_CODES in Dataset(copy).features
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
