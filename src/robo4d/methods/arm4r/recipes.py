"""ARM4R's recipes, registered with robo4d.train.recipes when robo4d.methods is imported.

`arm4r-3stage` is the release's schedule: (1) points on human video, (2) points on robot video, both from
3D tracks, (3) robot control; 1 -> 2 keeps everything, 2 -> 3 re-initialises only the proprio encoder,
action encoder and action decoder (the modules whose shapes depend on the objective). `scratch` is stage 3
alone from random weights: the baseline that measures what pre-training buys. `arm4r-3stage-aug` and
`scratch-aug` are the same with the release's training augmentations in the control stage (random resized crop
on the non-wrist cameras, brightness and contrast per window, proprio noise; nn.augment).
"""

from __future__ import annotations

from dataclasses import replace

from robo4d.methods.arm4r.config import ARM4RConfig, preset
from robo4d.methods.arm4r.policy import DATA_MODULES, OBJECTIVE_MODULES, SHARED_MODULES
from robo4d.train.optim import OptimConfig
from robo4d.train.recipes import Recipe, RecipeInputs, register_recipe
from robo4d.train.stage import StageConfig
from robo4d.train.weight_map import WeightMap, keep_except, load_all

METHOD = "arm4r"
DEFAULT_PRESET = "arm4r-tiny"
AUGMENT_COPIES = 8  # augmented copies of each robot frame windows draw from (the `-aug` recipes)
PROPRIO_NOISE = 0.005  # release: std of the proprio noise in robot stages


def transfer_map(config: ARM4RConfig) -> WeightMap:
    """Stage 2 -> 3 as the release: all but the objective-specific modules (and a joint-space stage's data
    normaliser, which only the control stage has)."""
    shared = SHARED_MODULES
    if config.image_dim != config.pool_dim:  # the projection exists only when widths differ
        shared = (*shared, "model.image_proj")
    return keep_except(shared, OBJECTIVE_MODULES, optional_init=DATA_MODULES)


def _preset(inputs: RecipeInputs, stage: int) -> ARM4RConfig:
    assert inputs.preset is not None  # Recipe.resolve fills it
    config = preset(inputs.preset, stage)
    return replace(config, points_prefix=inputs.tracks_prefix) if config.objective == "points" else config


def _control_stage(inputs: RecipeInputs, **kw: object) -> StageConfig:
    return StageConfig(
        method=METHOD,
        policy=_preset(inputs, 3),
        datasets=inputs.robot,
        steps=3000,
        batch_size=32,
        optim=OptimConfig(lr=5e-4, warmup_fraction=0.01),  # release: 1.25 of 125 epochs
        eval_every=250,
        save_every=1000,
        **kw,
    )


def _arm4r_3stage(inputs: RecipeInputs) -> tuple[StageConfig, ...]:
    common = {"method": METHOD, "batch_size": 32, "eval_every": 250, "save_every": 1000}
    stage1 = StageConfig(
        name="stage1",
        policy=_preset(inputs, 1),
        datasets=inputs.human,
        steps=3000,
        optim=OptimConfig(lr=5e-4, warmup_fraction=0.125),  # release: 1.25 of 10 epochs
        **common,
    )
    stage2 = StageConfig(
        name="stage2",
        policy=_preset(inputs, 2),
        datasets=inputs.robot,
        steps=1000,
        init_from="stage1",
        weight_map=load_all(),
        optim=OptimConfig(lr=5e-4, warmup_fraction=0.125),
        **common,
    )
    stage3 = _control_stage(inputs, name="stage3", init_from="stage2", weight_map=transfer_map(_preset(inputs, 3)))
    return stage1, stage2, stage3


def _scratch(inputs: RecipeInputs) -> tuple[StageConfig, ...]:
    return (_control_stage(inputs, name="control"),)


def _augmented(stages: tuple[StageConfig, ...]) -> tuple[StageConfig, ...]:
    """The same stages with the release's augmentations in the last (robot control) one (nn.augment)."""
    *before, control = stages
    policy = replace(control.policy, image_augment=AUGMENT_COPIES, proprio_noise=PROPRIO_NOISE)
    return (*before, replace(control, policy=policy))


register_recipe(
    "arm4r-3stage",
    Recipe(
        method=METHOD,
        description="ARM4R: human-video points -> robot-video points -> robot control",
        needs=("human", "robot"),
        default_preset=DEFAULT_PRESET,
        policy_stage="stage3",
        build=_arm4r_3stage,
    ),
)
register_recipe(
    "scratch",
    Recipe(
        method=METHOD,
        description="ARM4R control stage from random weights (the no-pre-training baseline)",
        needs=("robot",),
        default_preset=DEFAULT_PRESET,
        policy_stage="control",
        baseline=True,
        build=_scratch,
    ),
)
register_recipe(
    "arm4r-3stage-aug",
    Recipe(
        method=METHOD,
        description="arm4r-3stage with the release's augmentations in the control stage (crop, brightness and "
        "contrast per window, proprio noise)",
        needs=("human", "robot"),
        default_preset=DEFAULT_PRESET,
        policy_stage="stage3",
        in_demo=False,  # a lever of the bench; the demo keeps to the release's schedule and its baseline
        build=lambda inputs: _augmented(_arm4r_3stage(inputs)),
    ),
)
register_recipe(
    "scratch-aug",
    Recipe(
        method=METHOD,
        description="scratch with the release's augmentations (crop, brightness and contrast per window, proprio "
        "noise)",
        needs=("robot",),
        default_preset=DEFAULT_PRESET,
        policy_stage="control",
        in_demo=False,
        build=lambda inputs: _augmented(_scratch(inputs)),
    ),
)
