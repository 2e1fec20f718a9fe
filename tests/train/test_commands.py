"""`robo4d train` argument handling (named lookups) and `robo4d plot-metrics`."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_toy import TOY_BACKEND, toy_stage

from robo4d import cli
from robo4d.train.recipes import RECIPES, RecipeInputs, recipe
from robo4d.train.trainer import run_stage


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--recipe", "arm4r-3stag"], "unknown recipe 'arm4r-3stag'; did you mean 'arm4r-3stage'"),
        (["--preset", "arm4r-tny", "--stage", "stage1", "--dataset", "D"], "did you mean 'arm4r-tiny'"),
        (["--stage", "stage4", "--dataset", "D"], "unknown stage of recipe 'arm4r-3stage' 'stage4'; did you mean"),
        (["--human", "H"], "recipe 'arm4r-3stage' needs --robot"),
        (["--stage", "stage1"], "needs --dataset"),
        (["--recipe", "scratch", "--stage", "control", "--dataset", "D", "--init-from", "x"], "from scratch"),
        (["--robot", "R", "--tracks", "gt"], "unknown tracks source 'gt'"),
    ],
)
def test_train_command_errors(args: list[str], match: str, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=match):
        cli.main(["train", "--out", str(tmp_path / "run"), *args])


def test_recipes_build_valid_stage_chains() -> None:
    stages = recipe("arm4r-3stage").stages(RecipeInputs(human=("h",), robot=("r",)), name="arm4r-3stage")
    assert [s.name for s in stages] == ["stage1", "stage2", "stage3"]
    assert [s.init_from for s in stages] == [None, "stage1", "stage2"]
    assert stages[0].datasets == ("h",) and stages[2].datasets == ("r",)
    assert stages[0].policy.objective == "points" and stages[2].policy.objective == "control"
    actions = {r.pattern: r.action for r in stages[2].weight_map.rules}
    assert actions["model.action_decoder.*"] == "init" and actions["model.trunk.*"] == "load"
    (control,) = RECIPES["scratch"].stages(RecipeInputs(robot=("r",)), name="scratch")
    assert control.init_from is None and control.policy == stages[2].policy


def test_plot_metrics_writes_a_png(toy_root: Path, tmp_path: Path) -> None:
    run_stage(toy_stage(toy_root, steps=4, eval_every=2), tmp_path / "run", backend=TOY_BACKEND, progress=False)
    run_stage(toy_stage(toy_root, name="s2", steps=3), tmp_path / "run", backend=TOY_BACKEND, progress=False)
    cli.main(["plot-metrics", str(tmp_path / "run"), "--out", str(tmp_path / "curves.png")])
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit, match="no <stage>/metrics.jsonl"):
        cli.main(["plot-metrics", str(tmp_path / "empty")])
