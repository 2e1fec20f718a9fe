"""`robo4d train`: one stage of a recipe, or all of its stages in order.

    robo4d train --recipe arm4r-3stage --stage stage1 --dataset D --out RUN [--steps N] [--batch-size B] [--resume]
    robo4d train --recipe arm4r-3stage --human D1 --robot D2 --out RUN
    robo4d train --recipe scratch --robot LEROBOT_DATASET --camera-map image=front --out RUN
    torchrun --nproc_per_node 8 -m robo4d.cli train ... --parallel ddp

Heavy imports (torch, the methods) happen in `run`, so `robo4d train --help` stays fast.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import tyro

from robo4d.config import parse_pairs

if TYPE_CHECKING:
    from robo4d.train.stage import StageConfig


@dataclass(frozen=True, kw_only=True)
class TrainCommand:
    """Train a policy: one stage of a recipe (--stage) or every stage in order (completed ones are skipped)."""

    out: Path  # run directory: one sub-directory per stage, with checkpoints and metrics.jsonl
    recipe: str  # named recipe registered by a method (e.g. arm4r-3stage, scratch, gr1-2stage)
    preset: str | None = None  # model preset of the recipe's method (default: the recipe's own default)
    stage: str | None = None  # train only this stage of the recipe (e.g. stage1); default: all stages
    dataset: tuple[str, ...] = ()  # with --stage: dataset root(s) for that stage (replace --human/--robot)
    human: tuple[str, ...] = ()  # human-video dataset root(s) for the recipe's human stages
    robot: tuple[str, ...] = ()  # robot-demo dataset root(s) for the recipe's robot stages
    tracks: str = "extracted"  # points stages read "extracted" (robo4d extract) or "ground-truth" tracks
    # SRC=DST: read the datasets' camera SRC (video key observation.images.SRC) as the policy's camera DST,
    # e.g. `--camera-map image=front` for a LeRobot dataset; repeat for several cameras or datasets.
    camera_map: Annotated[tuple[str, ...], tyro.conf.UseAppendAction] = ()
    init_from: str | None = None  # with --stage: checkpoint (or stage/run dir) to start from, keeping the weight map
    steps: int | None = None  # override every selected stage's number of optimiser steps
    batch_size: int | None = None  # override the global batch size
    lr: float | None = None  # override the peak learning rate
    num_workers: int | None = None  # override DataLoader workers per process
    seed: int | None = None  # override the seed
    resume: bool = False  # continue an interrupted stage from its last checkpoint
    parallel: str = "ddp"  # under torchrun: "ddp" or "fsdp" ("none" to forbid wrapping); ignored in one process
    progress: bool = True  # show a tqdm progress bar

    def run(self) -> None:
        from robo4d.train.parallelize import PARALLEL_MODES

        if self.parallel not in PARALLEL_MODES:
            sys.exit(f"robo4d train: --parallel must be one of {PARALLEL_MODES}, got {self.parallel!r}")
        try:
            stages = self._stages()
        except (KeyError, ValueError) as e:
            sys.exit(f"robo4d train: {e.args[0] if isinstance(e, KeyError) else e}")
        from robo4d.train.trainer import TrainingDiverged, run_stages

        try:
            results = run_stages(stages, self.out, resume=self.resume, parallel=self.parallel, progress=self.progress)
        except TrainingDiverged as e:
            sys.exit(f"robo4d train: {e}")
        for result in results:
            print(f"{result.checkpoint}")

    def _stages(self) -> tuple[StageConfig, ...]:
        from robo4d.train.recipes import RecipeInputs, pick_stage, recipe

        chosen = recipe(self.recipe)
        camera_map = parse_camera_map(self.camera_map)
        if self.stage is None:
            if self.dataset or self.init_from:
                raise ValueError("--dataset and --init-from apply to one stage: add --stage NAME")
            inputs = RecipeInputs(
                preset=self.preset, human=self.human, robot=self.robot, tracks=self.tracks, camera_map=camera_map
            )
            stages = chosen.stages(inputs, name=self.recipe)
        else:
            # Single stage: every role the user left empty is filled with --dataset, only to instantiate the
            # recipe; the chosen stage's data is then exactly --dataset (or its own role's roots).
            fill = self.dataset or self.human or self.robot
            if not fill:
                raise ValueError(f"--stage {self.stage} needs --dataset (or --human/--robot)")
            inputs = RecipeInputs(
                preset=self.preset,
                human=self.human or fill,
                robot=self.robot or fill,
                tracks=self.tracks,
                camera_map=camera_map,
            )
            stage = pick_stage(chosen.instantiate(inputs, name=self.recipe), self.stage, recipe_name=self.recipe)
            if self.dataset:
                stage = replace(stage, datasets=self.dataset)
            if self.init_from is not None:
                if stage.weight_map is None:
                    raise ValueError(f"stage {stage.name!r} starts from scratch; it has no weight map for --init-from")
                stage = replace(stage, init_from=str(Path(self.init_from).resolve()))
            stages = (stage,)
        return tuple(self._override(s) for s in stages)

    def _override(self, stage: StageConfig) -> StageConfig:
        changes = {
            k: v
            for k, v in (
                ("steps", self.steps),
                ("batch_size", self.batch_size),
                ("num_workers", self.num_workers),
                ("seed", self.seed),
            )  # fmt: skip
            if v is not None
        }
        if self.lr is not None:
            changes["optim"] = replace(stage.optim, lr=self.lr)
        return replace(stage, **changes)


def parse_camera_map(pairs: tuple[str, ...]) -> dict[str, str]:
    """("image=front", ...) -> {"image": "front"}; each dataset camera is mapped once."""
    syntax = "SRC=DST (dataset camera = policy camera)"
    return parse_pairs(pairs, flag="--camera-map", source="dataset camera", syntax=syntax)


COMMAND = TrainCommand
