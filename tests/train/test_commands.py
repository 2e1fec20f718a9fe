"""`robo4d train` argument handling (named lookups) and `robo4d plot-metrics`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from train_toy import TOY_BACKEND, toy_stage

from robo4d import cli
from robo4d.train.recipes import (
    Recipe,
    RecipeInputs,
    all_recipes,
    baseline_recipe,
    recipe,
    recipes_of,
    register_recipe,
)
from robo4d.train.stage import StageConfig
from robo4d.train.trainer import run_stage


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--recipe", "arm4r-3stag"], "unknown recipe 'arm4r-3stag'; did you mean 'arm4r-3stage'"),
        (["--preset", "arm4r-tny", "--stage", "stage1", "--dataset", "D"], "did you mean 'arm4r-tiny'"),
        (["--stage", "stage4", "--dataset", "D"], "unknown stage of recipe 'arm4r-3stage' 'stage4'; did you mean"),
        (["--human", "H"], "recipe 'arm4r-3stage' needs --robot"),
        (["--stage", "stage1"], "needs --dataset"),
        (["--robot", "R", "--tracks", "gt"], "unknown tracks source 'gt'"),
        (["--recipe", "scratch", "--stage", "control", "--dataset", "D", "--init-from", "x"], "from scratch"),
        (
            ["--robot", "R", "--preset", "toy-small"],
            "preset 'toy-small' belongs to method 'toy'; recipe",
        ),
        (["--recipe", "scratch", "--robot", "R", "--camera-map", "image"], "--camera-map 'image': expected SRC=DST"),
        (
            ["--recipe", "scratch", "--robot", "R", "--camera-map", "a=b", "--camera-map", "a=c"],
            "dataset camera 'a' is mapped twice",
        ),
    ],
)
def test_train_command_errors(args: list[str], match: str, tmp_path: Path) -> None:
    if "--recipe" not in args:
        args = ["--recipe", "arm4r-3stage", *args]
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
    (control,) = recipe("scratch").stages(RecipeInputs(robot=("r",), camera_map={"image": "front"}), name="scratch")
    assert control.init_from is None and control.policy == stages[2].policy
    assert control.camera_map == {"image": "front"} and stages[2].camera_map == {}


@pytest.mark.parametrize("base", ["arm4r-3stage", "scratch"])
def test_an_aug_recipe_is_its_base_with_augmentation_in_the_control_stage_only(base: str) -> None:
    inputs = RecipeInputs(human=("h",), robot=("r",))
    plain, aug = recipe(base).stages(inputs, name=base), recipe(f"{base}-aug").stages(inputs, name=f"{base}-aug")
    assert plain[:-1] == aug[:-1] and all(s.policy.image_augment == 0 for s in plain)
    assert aug[-1].policy == replace(plain[-1].policy, image_augment=8, proprio_noise=0.005)
    assert replace(aug[-1], policy=plain[-1].policy) == plain[-1]


def test_recipe_registry_lists_methods_recipes_and_baselines() -> None:
    assert set(recipes_of("arm4r")) >= {"arm4r-3stage", "scratch"}
    assert baseline_recipe("arm4r") == "scratch"
    assert recipe("arm4r-3stage").policy_stage == "stage3" and recipe("scratch").policy_stage == "control"
    assert all(r.method == "arm4r" for r in recipes_of("arm4r").values())
    with pytest.raises(ValueError, match="registered twice"):
        register_recipe("scratch", recipe("scratch"))
    with pytest.raises(KeyError, match="method 'nope' registers 0 baseline recipes"):
        baseline_recipe("nope")


def test_a_recipe_registered_from_outside_trains_its_own_method(toy_root: Path) -> None:
    def build(inputs: RecipeInputs) -> tuple[StageConfig, ...]:
        assert inputs.preset == "toy-small"  # the recipe's default preset fills an unset one
        return (toy_stage(toy_root, name="only", datasets=inputs.robot),)

    register_recipe(
        "toy-only",
        Recipe(method="toy", description="toy", needs=("robot",), default_preset="toy-small", policy_stage="only",
               baseline=True, build=build),
    )  # fmt: skip
    assert "toy-only" in all_recipes() and baseline_recipe("toy") == "toy-only"
    (stage,) = recipe("toy-only").stages(RecipeInputs(robot=(str(toy_root),)), name="toy-only")
    assert stage.method == "toy" and stage.datasets == (str(toy_root),)
    with pytest.raises(ValueError, match="preset 'arm4r-tiny' belongs to method 'arm4r'"):
        recipe("toy-only").stages(RecipeInputs(preset="arm4r-tiny", robot=("r",)), name="toy-only")


def test_plot_metrics_writes_a_png(toy_root: Path, tmp_path: Path) -> None:
    run_stage(toy_stage(toy_root, steps=4, eval_every=2), tmp_path / "run", backend=TOY_BACKEND, progress=False)
    run_stage(toy_stage(toy_root, name="s2", steps=3), tmp_path / "run", backend=TOY_BACKEND, progress=False)
    cli.main(["plot-metrics", str(tmp_path / "run"), "--out", str(tmp_path / "curves.png")])
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit, match="no <stage>/metrics.jsonl"):
        cli.main(["plot-metrics", str(tmp_path / "empty")])


def test_model_info_dispatches_through_the_preset_registry(capsys: pytest.CaptureFixture[str]) -> None:
    cli.main(["model", "info", "--preset", "toy-wide"])
    assert capsys.readouterr().out.splitlines() == [f"blocks: {2 * (40 * 40 + 40)}", "encoder: 48"]
    with pytest.raises(SystemExit, match="unknown preset 'toy-wid'; did you mean 'toy-wide'"):
        cli.main(["model", "info", "--preset", "toy-wid"])
    with pytest.raises(SystemExit, match="unknown variant 'control' of 'toy' presets"):
        cli.main(["model", "info", "--preset", "toy-small", "--variant", "control"])
