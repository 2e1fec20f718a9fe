"""IGOR's recipe, registered with robo4d.train.recipes: LAM -> (labels) -> foundation -> control, + world model.

lam         objective "lam" on human and robot video (robot actions are not read)
foundation  objective "foundation" on the same video; the trained LAM is loaded and frozen inside the policy
            and labels every window's latent action as it trains (see policy.py), so no separate labelling
            step runs between the stages; `robo4d label latent-actions` writes the same labels into a
            dataset for inspection and the predictiveness metric
control     objective "control" on the robot demos: LAM and foundation loaded and frozen, the low-level head
            initialised fresh and trained (what eval and serve load)
world       objective "world" on all video: the frozen LAM + a rectified-flow world model (robo4d imagine)
"""

from __future__ import annotations

from robo4d.methods.igor.config import IGORConfig, for_objective, preset
from robo4d.train.optim import OptimConfig
from robo4d.train.recipes import Recipe, RecipeInputs, register_recipe
from robo4d.train.stage import StageConfig
from robo4d.train.weight_map import keep_except

METHOD = "igor"
DEFAULT_PRESET = "igor-tiny"
STEPS = {"lam": 3000, "foundation": 2000, "control": 2000, "world": 2000}


def igor_stages(
    config: IGORConfig,
    *,
    human: tuple[str, ...],
    robot: tuple[str, ...],
    steps: dict[str, int] | None = None,
    batch_size: int = 32,
    num_workers: int = 2,
) -> tuple[StageConfig, ...]:
    """The recipe's stages from one config (e.g. `preset("igor-tiny")`); `steps` overrides stages by name."""
    steps = STEPS | (steps or {})
    videos = (*human, *robot)
    optim = OptimConfig(lr=3e-4, warmup_fraction=0.05)
    common = {"method": METHOD, "batch_size": batch_size, "num_workers": num_workers, "eval_every": 250,
              "optim": optim}  # fmt: skip

    def stage(name: str, datasets: tuple[str, ...], **kw: object) -> StageConfig:
        return StageConfig(name=name, policy=for_objective(config, name), datasets=datasets, steps=steps[name],
                           **common, **kw)  # type: ignore[arg-type]  # fmt: skip

    return (
        stage("lam", videos),
        stage("foundation", videos, init_from="lam", weight_map=keep_except(("lam",), ("foundation",))),
        stage("control", robot, init_from="foundation", weight_map=keep_except(("lam", "foundation"), ("low_level",))),
        stage("world", videos, init_from="lam", weight_map=keep_except(("lam",), ("world",))),
    )


def _igor(inputs: RecipeInputs) -> tuple[StageConfig, ...]:
    assert inputs.preset is not None  # Recipe.resolve fills it
    return igor_stages(preset(inputs.preset), human=inputs.human, robot=inputs.robot)


register_recipe(
    "igor",
    Recipe(
        method=METHOD,
        description="IGOR: latent action model on human + robot video -> foundation policy -> low-level policy; "
        "world model",
        needs=("human", "robot"),  # human video is what IGOR pre-trains on; an experiment must feed it
        default_preset=DEFAULT_PRESET,
        policy_stage="control",
        build=_igor,
    ),
)
