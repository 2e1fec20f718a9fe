"""Named multi-stage recipes: the concrete experiments, as Python objects picked by name.

`arm4r-3stage` is the release's schedule: (1) points on human video, (2) points on robot video, both from
3D tracks, (3) robot control; 1 -> 2 keeps everything, 2 -> 3 re-initialises only the proprio encoder,
action encoder and action decoder (the modules whose shapes depend on the objective). `scratch` is stage 3
alone from random weights: the baseline that measures what pre-training buys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from robo4d import types
from robo4d.methods.base import unknown_name_message
from robo4d.train.optim import OptimConfig
from robo4d.train.stage import StageConfig
from robo4d.train.weight_map import WeightMap, keep_except, load_all

if TYPE_CHECKING:
    from robo4d.methods.arm4r.config import ARM4RConfig

TRACKS = {"extracted": types.POINTS_PREFIX, "ground-truth": types.GT_POINTS_PREFIX}


@dataclass(frozen=True, kw_only=True)
class RecipeInputs:
    """What a recipe is instantiated with."""

    preset: str = "arm4r-tiny"  # model preset name (sizes, encoders)
    human: tuple[str, ...] = ()  # human-video dataset roots (points stages on human video)
    robot: tuple[str, ...] = ()  # robot-demo dataset roots (robot points and control stages)
    tracks: str = "extracted"  # points stages read "extracted" tracks (robo4d extract) or the world's "ground-truth"

    def __post_init__(self) -> None:
        if self.tracks not in TRACKS:
            raise ValueError(unknown_name_message("tracks source", self.tracks, TRACKS))


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """A named, ordered list of stages built from inputs."""

    description: str  # one line for --help listings
    needs: tuple[str, ...]  # RecipeInputs fields that must be non-empty ("human", "robot")
    build: Callable[[RecipeInputs], tuple[StageConfig, ...]]

    def stages(self, inputs: RecipeInputs, *, name: str) -> tuple[StageConfig, ...]:
        missing = [f"--{n}" for n in self.needs if not getattr(inputs, n)]
        if missing:
            raise ValueError(f"recipe {name!r} needs {' and '.join(missing)} (dataset roots)")
        return self.build(inputs)


def _arm4r_transfer_map(preset_config: ARM4RConfig) -> WeightMap:
    """Stage 2 -> 3 as the release: all but the objective-specific modules."""
    from robo4d.methods.arm4r.policy import OBJECTIVE_MODULES, SHARED_MODULES

    shared = SHARED_MODULES
    if preset_config.image_dim != preset_config.pool_dim:  # the projection exists only when widths differ
        shared = (*shared, "model.image_proj")
    return keep_except(shared, OBJECTIVE_MODULES)


def _points(config: ARM4RConfig, tracks: str) -> ARM4RConfig:
    return replace(config, points_prefix=TRACKS[tracks])


def _control_stage(inputs: RecipeInputs, **kw: object) -> StageConfig:
    from robo4d.methods.arm4r.config import preset

    return StageConfig(
        method="arm4r",
        policy=preset(inputs.preset, 3),
        datasets=inputs.robot,
        steps=3000,
        batch_size=32,
        optim=OptimConfig(lr=5e-4, warmup_fraction=0.01),  # release: 1.25 of 125 epochs
        eval_every=250,
        save_every=1000,
        **kw,
    )


def _arm4r_3stage(inputs: RecipeInputs) -> tuple[StageConfig, ...]:
    from robo4d.methods.arm4r.config import preset

    common = {"method": "arm4r", "batch_size": 32, "eval_every": 250, "save_every": 1000}
    stage1 = StageConfig(
        name="stage1",
        policy=_points(preset(inputs.preset, 1), inputs.tracks),
        datasets=inputs.human,
        steps=3000,
        optim=OptimConfig(lr=5e-4, warmup_fraction=0.125),  # release: 1.25 of 10 epochs
        **common,
    )
    stage2 = StageConfig(
        name="stage2",
        policy=_points(preset(inputs.preset, 2), inputs.tracks),
        datasets=inputs.robot,
        steps=1000,
        init_from="stage1",
        weight_map=load_all(),
        optim=OptimConfig(lr=5e-4, warmup_fraction=0.125),
        **common,
    )
    weight_map = _arm4r_transfer_map(preset(inputs.preset, 3))
    stage3 = _control_stage(inputs, name="stage3", init_from="stage2", weight_map=weight_map)
    return stage1, stage2, stage3


def _scratch(inputs: RecipeInputs) -> tuple[StageConfig, ...]:
    return (_control_stage(inputs, name="control"),)


RECIPES: dict[str, Recipe] = {
    "arm4r-3stage": Recipe(
        description="ARM4R: human-video points -> robot-video points -> robot control",
        needs=("human", "robot"),
        build=_arm4r_3stage,
    ),
    "scratch": Recipe(
        description="ARM4R control stage from random weights (the no-pre-training baseline)",
        needs=("robot",),
        build=_scratch,
    ),
}


def recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise KeyError(unknown_name_message("recipe", name, RECIPES))
    return RECIPES[name]


def pick_stage(stages: tuple[StageConfig, ...], name: str, *, recipe_name: str) -> StageConfig:
    by_name = {s.name: s for s in stages}
    if name not in by_name:
        raise KeyError(unknown_name_message(f"stage of recipe {recipe_name!r}", name, by_name))
    return by_name[name]
