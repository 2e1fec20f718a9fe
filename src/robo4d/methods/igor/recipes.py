"""IGOR's recipe: LAM on human + robot video -> label -> foundation policy -> low-level policy on robot demos.

    lam         objective "lam" on every dataset (human and robot video; robot actions are not read)
    (label)     before `foundation`: each dataset is labelled with the lam stage's latent actions into a copy
                under <run>/labelled/ (the inputs are never modified; unchanged files are hard-linked)
    foundation  objective "foundation" on the labelled copies, from scratch
    control     objective "control" on the robot demos: the foundation is loaded and frozen, the low-level head
                is initialised fresh (weight map: load foundation.*, init low_level.*)

The labelling step is not a training stage, so it is this method's stage-preparation hook (`prepare_stage`),
run by `run_recipe` right before the stage that needs it; it is idempotent (a labelled copy that exists is
kept), so a re-run resumes where the last one stopped. The world model (`world` objective, for
`robo4d imagine`) trains on the same labelled copies with `world_stage`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from robo4d.methods.igor.config import IGORConfig, for_objective
from robo4d.train.optim import OptimConfig
from robo4d.train.stage import StageConfig
from robo4d.train.weight_map import keep_except

LABELLED_DIR = "labelled"  # under the run directory
LAM_STAGE, FOUNDATION_STAGE, CONTROL_STAGE, WORLD_STAGE = "lam", "foundation", "control", "world"


def labelled_root(run_dir: str | Path, index: int, root: str | Path) -> Path:
    """Where the labelled copy of input dataset number `index` lives inside a run."""
    return Path(run_dir) / LABELLED_DIR / f"{index:02d}-{Path(root).name}"


def igor_stages(
    *,
    config: IGORConfig,
    human: tuple[str, ...],
    robot: tuple[str, ...],
    run_dir: str | Path,
    steps: dict[str, int] | None = None,
    batch_size: int = 32,
    num_workers: int = 0,
) -> tuple[StageConfig, ...]:
    """The recipe's training stages from one config (e.g. `preset("igor-tiny")`); labelling happens in
    `prepare_stage`. `steps` overrides the steps of stages by name."""
    if not robot:
        raise ValueError("recipe 'igor' needs robot demos (--robot) for its control stage")
    steps = {LAM_STAGE: 3000, FOUNDATION_STAGE: 2000, CONTROL_STAGE: 2000} | (steps or {})
    videos = (*human, *robot)
    labelled = tuple(str(labelled_root(run_dir, i, r)) for i, r in enumerate(videos))
    common = {"method": "igor", "batch_size": batch_size, "num_workers": num_workers, "eval_every": 250}
    lam = StageConfig(name=LAM_STAGE, policy=for_objective(config, "lam"), datasets=videos, steps=steps[LAM_STAGE],
                      optim=OptimConfig(lr=3e-4, warmup_fraction=0.05), **common)  # fmt: skip
    foundation = StageConfig(
        name=FOUNDATION_STAGE, policy=for_objective(config, "foundation"), datasets=labelled,
        steps=steps[FOUNDATION_STAGE], optim=OptimConfig(lr=3e-4, warmup_fraction=0.05), **common,
    )  # fmt: skip
    control = StageConfig(
        name=CONTROL_STAGE, policy=for_objective(config, "control"), datasets=robot, steps=steps[CONTROL_STAGE],
        init_from=FOUNDATION_STAGE, weight_map=keep_except(("foundation",), ("low_level",)),
        optim=OptimConfig(lr=3e-4, warmup_fraction=0.05), **common,
    )  # fmt: skip
    return lam, foundation, control


def world_stage(foundation: StageConfig, *, steps: int = 2000) -> StageConfig:
    """The world model on the foundation stage's labelled datasets (same batch and workers)."""
    policy = replace(foundation.policy, objective="world")
    return replace(foundation, name=WORLD_STAGE, policy=policy, steps=steps, init_from=None, weight_map=None)


def prepare_stage(stage: StageConfig, run_dir: str | Path, sources: tuple[str, ...]) -> None:
    """Before a stage that reads latent-action labels: label every input dataset (`sources`, in recipe order)
    into its copy under the run, with the run's trained lam stage. Other stages need nothing."""
    if stage.policy.objective not in ("foundation", "world"):
        return
    from robo4d.methods.igor.label import label_dataset
    from robo4d.train.checkpoint import resolve_checkpoint

    lam = resolve_checkpoint(Path(run_dir) / LAM_STAGE)
    for i, root in enumerate(sources):
        target = labelled_root(run_dir, i, root)
        if str(target) in stage.datasets and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            label_dataset(root, lam, out=target)


def run_recipe(
    stages: tuple[StageConfig, ...], run_dir: str | Path, *, sources: tuple[str, ...], resume: bool = False, **kw
) -> list:
    """Run the stages in order with the labelling hook before each; complete stages are skipped (keyword
    arguments go to `train.trainer.run_stage`)."""
    from robo4d.train.trainer import run_stage, stage_complete

    results = []
    for stage in stages:
        prepare_stage(stage, run_dir, sources)
        again = resume or stage_complete(Path(run_dir), stage)
        results.append(run_stage(stage, run_dir, resume=again, **kw))
    return results
