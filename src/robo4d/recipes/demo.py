"""The end-to-end experiment on the embedded world, as one cached pipeline (ARM4R's by default).

    human videos ─▶ 3D tracks ─▶ stage 1 (points) ─▶ stage 2 (robot points) ─▶ stage 3 (control) ─┐
    robot demos  ─▶ 3D tracks ────────────────────────────────┘                                   ├─▶ eval ─▶ report.md
    robot demos  ─────────────────────────────────────────────▶ from-scratch control baseline ───┘

`--method NAME` trains every recipe that method registers for the demo (train.recipes.recipes_of, `in_demo`;
the bench's levers stay out) and its no-pre-training baseline (the default baseline where a method registers
none); each recipe's policy stage is evaluated on the same held-out initial states, and the report gives each
policy's bootstrap interval and its paired difference to the baseline, headed by the best-resolved one (robo4d
bench's statistics).
Every step checks whether its output already exists and is complete, so a re-run skips done work and an
interrupted run continues where it stopped. Steps call the same library entry points as the CLI commands.
"""

from __future__ import annotations

import json
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
    stage1_steps: int  # optimiser steps of a recipe's first pre-training stage (ARM4R: points on human video)
    stage2_steps: int  # of each later pre-training stage (ARM4R: points on robot video)
    control_steps: int  # of the policy stage, for the pre-trained and the from-scratch policy alike
    batch_size: int  # global batch for every stage
    eval_episodes: int  # episodes per task per evaluation seed
    eval_seeds: tuple[int, ...]  # evaluation seeds: each draws its own held-out initial states
    videos_per_task: int = 1  # rollout mp4s kept per task and policy
    track_grid: int = 16  # GxG 3D tracks extracted per frame (ARM4R's tiny preset reads 16x16 = 256 points)

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
        stage1_steps=1200,
        stage2_steps=300,
        control_steps=1000,
        batch_size=32,
        eval_episodes=4,
        eval_seeds=(0, 1, 2),
    ),
    # A stronger experiment (hours on CPU, minutes on a GPU): 10x the training, the paper's 25 episodes x 5
    # seeds, with each recipe's default (tiny) model, whose encoders ship as wheels.
    "full": DemoPreset(
        world="default",
        robot_episodes=10,
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


DEFAULT_METHOD = "arm4r"


def demo_recipes(method: str) -> tuple[tuple[str, ...], str]:
    """(the recipes the demo trains, baseline first; the baseline's name) for a registered method."""
    from robo4d.recipes.bench_report import DEFAULT_BASELINE
    from robo4d.train.recipes import all_recipes, recipes_of

    mine = recipes_of(method)
    if not mine:
        methods = sorted({r.method for r in all_recipes().values()})
        raise KeyError(unknown_name_message("method with recipes", method, methods))
    baselines = [n for n, r in mine.items() if r.baseline] or [DEFAULT_BASELINE]
    return tuple(dict.fromkeys((baselines[0], *(n for n, r in mine.items() if r.in_demo)))), baselines[0]


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


def run_demo(preset: DemoPreset, out: Path, *, workers: int = 2, method: str = DEFAULT_METHOD) -> Path:
    """Run (or finish) the whole experiment under `out`; returns the report path."""
    from robo4d.data.reader import Dataset
    from robo4d.eval.commands import EvalCommand
    from robo4d.eval.report import EVAL_INFO_FILE
    from robo4d.extract.commands import Tracks, Viz
    from robo4d.recipes.report import write_report
    from robo4d.train.recipes import RecipeInputs, recipe
    from robo4d.train.trainer import run_stages, stage_complete
    from robo4d.world.commands import COMMANDS as WORLD

    policies, baseline = demo_recipes(method)
    paths = DemoPaths(out)
    clock = _Clock(paths.timings)
    grid = preset.track_grid
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
    inputs = RecipeInputs(human=(str(paths.human),), robot=(str(paths.robot),))  # each recipe's default preset
    for name in policies:
        chosen = recipe(name)
        stages = chosen.stages(inputs, name=name)
        pretraining = [s.name for s in stages if s.name != chosen.policy_stage]
        steps = {n: preset.stage1_steps if i == 0 else preset.stage2_steps for i, n in enumerate(pretraining)}
        stages = tuple(
            replace(s, steps=steps.get(s.name, preset.control_steps), batch_size=preset.batch_size) for s in stages
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
            lambda r=run_dir, p=chosen.policy_stage, e=eval_dir: EvalCommand(
                checkpoint=r / p,
                tasks=robot_tasks,
                episodes=preset.eval_episodes,
                seeds=preset.eval_seeds,
                out=e,
                workers=workers,
                videos_per_task=preset.videos_per_task,
            ).run(),
        )
    report = write_report(paths, preset, clock.times, policies=policies, baseline=baseline)
    print(f"[demo] report: {report}")
    return report
