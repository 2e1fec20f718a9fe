"""`robo4d bench`: the pre-training experiment as a resumable grid of cells.

A cell is one training run and its evaluation: method x robot demos per task x training seed x human
(pre-training) data x track source x generalisation setting. Axes a method ignores collapse for it (scratch
reads no human video; a recipe whose stages do not change with the track source has one track cell), found
by building its stages, never by its name. Every cell lives under `<out>/cells/<key>/`, the key hashing its
full configuration: the cell, the preset's training and evaluation settings, the data each dataset is made
from and the code version (a hash of robo4d's sources). `result.json` is written last, so a cell with one is
done and skipped; an interrupted cell resumes from its last checkpoint. Training lives under
`<out>/runs/<training key>/`, keyed by the configuration less the evaluation world, so settings that change
only what a policy is evaluated in (camera, distractors) reuse the default setting's trained policies.
`--shard i/n` runs every n-th cell (in key order) so machines can split a grid; `robo4d bench --merge DIR...`
gathers their results.

Evaluation is fixed by the preset before anything trains: the same held-out initial states (`eval_seed`s the
demos never use) for every cell, so cells pair episode by episode.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from robo4d import types
from robo4d.methods.base import unknown_name_message
from robo4d.world import tasks as world_tasks
from robo4d.world.env import WorldOptions

RESULT_FILE = "result.json"
NO_HUMAN, ANY_TRACKS = "none", "any"  # the collapsed value of an axis a method ignores


@dataclass(frozen=True, kw_only=True)
class HumanData:
    """Human videos for pre-training: which tasks are filmed, and how many episodes of each."""

    tasks: tuple[str, ...]
    episodes: int


HUMAN_DATA: dict[str, HumanData] = {
    # The demo's 8 tasks, none of them a robot task ("other tasks only").
    "other": HumanData(tasks=world_tasks.PRESETS["default"].human_tasks, episodes=8),
    "other-x4": HumanData(tasks=world_tasks.PRESETS["default"].human_tasks, episodes=32),  # more of the same
    "all": HumanData(tasks=world_tasks.HUMAN_TASKS, episodes=8),  # all 40 human tasks: more and more varied
    "in-domain": HumanData(tasks=world_tasks.ROBOT_TASKS, episodes=8),  # people doing the robot tasks
    "tiny": HumanData(tasks=("door-close-v3",), episodes=1),
}
HUMAN_SEED = 1  # human videos never replay a robot demo's initial state (those use seed 0)


@dataclass(frozen=True, kw_only=True)
class Setting:
    """A generalisation setting: the world demos are recorded in, and the one policies are evaluated in."""

    train: WorldOptions
    eval: WorldOptions


SETTINGS: dict[str, Setting] = {
    "default": Setting(train=WorldOptions(), eval=WorldOptions()),
    "wide": Setting(train=WorldOptions(init_range=2.0), eval=WorldOptions(init_range=2.0)),  # 2x the state box
    "camera": Setting(train=WorldOptions(), eval=WorldOptions(camera_shift=10.0)),  # front camera moved at test
    "distractors": Setting(train=WorldOptions(), eval=WorldOptions(distractors=3)),  # clutter at test only
}


@dataclass(frozen=True, kw_only=True)
class Variant:
    """A method the grid derives from a registered recipe: some pre-training stages dropped (the next stage then
    starts from what the dropped one started from) or trained for longer (their steps multiplied)."""

    recipe: str
    drop: tuple[str, ...] = ()
    longer: tuple[tuple[str, float], ...] = ()  # (stage, steps multiplier)


# Any registered recipe name is a method as it is; these are the levers built from one.
VARIANTS: dict[str, Variant] = {
    "arm4r-no-stage2": Variant(recipe="arm4r-3stage", drop=("stage2",)),
    "arm4r-pretrain-x2": Variant(recipe="arm4r-3stage", longer=(("stage1", 2.0),)),  # twice the pre-training
}


AXES = {"methods", "demos", "seeds", "human", "tracks", "settings"}  # BenchPreset's fields that make the grid


@dataclass(frozen=True, kw_only=True)
class BenchPreset:
    """The grid's axes and the fixed training/evaluation budget of every cell."""

    methods: tuple[str, ...] | None  # recipe names (train.recipes) or VARIANTS; None: every one registered
    demos: tuple[int, ...]  # robot demos per task
    seeds: tuple[int, ...]  # training seeds
    human: tuple[str, ...]  # HUMAN_DATA names (for methods that pre-train on human video)
    tracks: tuple[str, ...]  # track sources: "extracted", "ground-truth" (for methods whose stages read them)
    settings: tuple[str, ...]  # SETTINGS names
    tasks: tuple[str, ...]  # robot tasks trained and evaluated
    baseline: str = "scratch"  # the recipe every cell is compared with (paired), at its demo count and setting
    track_grid: int = 16  # GxG 3D tracks per frame, extracted and ground truth (ARM4R's tiny preset reads 256)
    steps_scale: float = 1.0  # every stage's optimiser steps = the recipe's x this
    batch_size: int = 32
    image_size: int = 128
    max_steps: int = 120  # recorded steps per demo at most
    eval_episodes: int = 25  # per task per evaluation seed
    eval_seeds: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        for name in ("demos", "seeds", "human", "tracks", "settings", "tasks", "eval_seeds"):
            if not getattr(self, name):
                raise ValueError(f"BenchPreset.{name} must not be empty")
        from robo4d.train.recipes import TRACKS

        for name, allowed in (("human", HUMAN_DATA), ("tracks", TRACKS), ("settings", SETTINGS)):
            for value in getattr(self, name):
                if value not in allowed:
                    raise ValueError(f"BenchPreset.{name}: {unknown_name_message(name, value, allowed)}")
        world_tasks.check_tasks(self.tasks, world_tasks.ROBOT_TASKS, kind="robot task")
        if (
            min(self.demos) < 1
            or self.steps_scale <= 0
            or min(self.batch_size, self.eval_episodes, self.track_grid) < 1
        ):
            raise ValueError("BenchPreset: demos, steps_scale, batch_size, eval_episodes, track_grid must be positive")

    def budget(self) -> dict[str, Any]:
        """Everything but the axes: what every cell of this preset shares (part of each cell's key)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in AXES}


# Under 45 minutes on 2 CPU cores from a fresh clone: the headline comparison at the lowest demo count.
QUICK = BenchPreset(
    methods=("scratch", "arm4r-3stage"),
    demos=(2,),
    seeds=(0, 1, 2),
    human=("other",),
    tracks=("extracted",),
    settings=("default",),
    tasks=("reach-v3", "drawer-open-v3", "door-open-v3", "faucet-open-v3"),
    steps_scale=0.1,
    batch_size=16,
    eval_episodes=10,
)

PRESETS: dict[str, BenchPreset] = {
    # Seconds per cell: the tests' grid.
    "tiny": BenchPreset(
        methods=("scratch",),
        demos=(1,),
        seeds=(0, 1),
        human=("tiny",),
        tracks=("extracted",),
        settings=("default",),
        tasks=("reach-v3",),
        steps_scale=0.001,
        batch_size=2,
        max_steps=30,
        eval_episodes=2,
    ),  # fmt: skip
    "quick": QUICK,
    # Quick's grid with 4x the training (batch 32) and twice the evaluation states, so that scratch leaves the
    # floor that quick's budget holds every policy at: about 70 minutes on 2 cores.
    "medium": dataclasses.replace(QUICK, steps_scale=0.4, batch_size=32, eval_episodes=20),
    # The levers at the lowest demo count, on quick's budget (so quick's cells are shared): human video
    # of the robot tasks vs of other tasks, oracle vs extracted tracks, stage 2 on/off.
    "levers": dataclasses.replace(
        QUICK,
        methods=("scratch", "arm4r-3stage", "arm4r-no-stage2"),
        human=("other", "in-domain"),
        tracks=("extracted", "ground-truth"),
    ),
    # The full grid (GPU-days on CPU; run it in shards): 250 evaluation episodes per cell.
    "paper": BenchPreset(
        methods=None,
        demos=(2, 5, 10),
        seeds=(0, 1, 2),
        human=("other", "other-x4", "all", "in-domain"),
        tracks=("extracted", "ground-truth"),
        settings=tuple(SETTINGS),
        tasks=world_tasks.ROBOT_TASKS,
        eval_episodes=25,
    ),  # fmt: skip
}


def bench_preset(name: str, **axes: tuple) -> BenchPreset:
    """A preset by name, with any of its axes (methods, demos, seeds, human, tracks, settings) replaced: the
    budget stays the preset's, so the new cells pair with (and share data with) the preset's own."""
    if name not in PRESETS:
        raise KeyError(unknown_name_message("bench preset", name, PRESETS))
    unknown = set(axes) - AXES
    if unknown:
        raise ValueError(f"bench: {sorted(unknown)} are not axes; the axes are {sorted(AXES)}")
    return replace(PRESETS[name], **{k: tuple(v) for k, v in axes.items() if v})


@dataclass(frozen=True, kw_only=True)
class Cell:
    method: str
    demos: int
    seed: int
    human: str  # HUMAN_DATA name, or NO_HUMAN
    tracks: str  # track source, or ANY_TRACKS
    setting: str

    @property
    def group(self) -> tuple[str, str, str, str, int]:
        """Cells that differ only by training seed."""
        return (self.method, self.human, self.tracks, self.setting, self.demos)


# --- recipes -------------------------------------------------------------------------------------------------


def _variant(method: str) -> Variant:
    return VARIANTS.get(method, Variant(recipe=method))


def _recipe(method: str) -> Any:
    from robo4d.train.recipes import recipe

    return recipe(_variant(method).recipe)


def _recipe_stages(method: str, inputs: Any) -> tuple[Any, ...]:
    variant = _variant(method)
    stages = _recipe(method).stages(inputs, name=variant.recipe)
    names = [s.name for s in stages]
    for stage in (*variant.drop, *dict(variant.longer)):
        if stage not in names:
            raise ValueError(f"bench variant {method!r}: recipe {variant.recipe!r} has no stage {stage!r} ({names})")
    for drop in variant.drop:
        gone = next(s for s in stages if s.name == drop)
        stages = tuple(
            replace(s, init_from=gone.init_from, weight_map=s.weight_map if gone.init_from else None)
            if s.init_from == drop
            else s
            for s in stages
            if s.name != drop
        )
    longer = dict(variant.longer)
    return tuple(replace(s, steps=max(1, round(s.steps * longer[s.name]))) if s.name in longer else s for s in stages)


def _reads_tracks(method: str) -> bool:
    from robo4d.train.recipes import RecipeInputs

    built = [_recipe_stages(method, RecipeInputs(human=("h",), robot=("r",), tracks=t))
             for t in ("extracted", "ground-truth")]  # fmt: skip
    return built[0] != built[1]


def known_methods() -> tuple[str, ...]:
    from robo4d.train.recipes import all_recipes

    return (*all_recipes(), *VARIANTS)


def methods(preset: BenchPreset) -> tuple[str, ...]:
    """The preset's methods, its baseline first; checked against the registry."""
    chosen = known_methods() if preset.methods is None else preset.methods
    for method in (preset.baseline, *chosen):
        if method not in known_methods():
            raise ValueError(f"bench: {unknown_name_message('method', method, known_methods())}")
    return tuple(dict.fromkeys((preset.baseline, *chosen)))


def expand(preset: BenchPreset) -> list[Cell]:
    """Every cell of the grid, in the order they are run: lowest demo count and the baseline first."""
    chosen = methods(preset)
    cells = []
    for method in chosen:
        human = preset.human if "human" in _recipe(method).needs else (NO_HUMAN,)
        track = preset.tracks if _reads_tracks(method) else (ANY_TRACKS,)
        for demos, setting, h, t, seed in itertools.product(preset.demos, preset.settings, human, track, preset.seeds):
            cells.append(Cell(method=method, demos=demos, seed=seed, human=h, tracks=t, setting=setting))
    order = {m: i for i, m in enumerate(chosen)}
    return sorted(cells, key=lambda c: (c.demos, c.setting, c.seed, order[c.method], c.human, c.tracks))


# --- keys and shards -----------------------------------------------------------------------------------------


@functools.cache
def code_version() -> str:
    """Hash of robo4d's Python sources: a code change gives every cell a new key."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def robot_data_config(preset: BenchPreset, demos: int, setting: str) -> dict[str, Any]:
    options = dataclasses.asdict(SETTINGS[setting].train)
    return {"kind": "robot", "tasks": preset.tasks, "episodes": demos, "seed": 0, "image_size": preset.image_size,
            "max_steps": preset.max_steps, "grid": preset.track_grid, "options": options}  # fmt: skip


def human_data_config(preset: BenchPreset, human: str) -> dict[str, Any]:
    data = HUMAN_DATA[human]
    return {"kind": "human", "tasks": data.tasks, "episodes": data.episodes, "seed": HUMAN_SEED,
            "image_size": preset.image_size, "max_steps": preset.max_steps, "grid": preset.track_grid}  # fmt: skip


def cell_config(preset: BenchPreset, cell: Cell) -> dict[str, Any]:
    """The full configuration a cell's result depends on (its key is this config's hash)."""
    return {
        "cell": dataclasses.asdict(cell),
        "budget": preset.budget(),
        "robot_data": robot_data_config(preset, cell.demos, cell.setting),
        "human_data": human_data_config(preset, cell.human) if cell.human != NO_HUMAN else None,
        "eval_options": dataclasses.asdict(SETTINGS[cell.setting].eval),
        "code": code_version(),
    }


def cell_key(preset: BenchPreset, cell: Cell) -> str:
    return _hash(cell_config(preset, cell))


def training_key(config: dict[str, Any]) -> str:
    """What a cell's training depends on: its configuration less the evaluation world. Settings that change only
    the evaluation (a shifted camera, distractors) train in the default world, so their cells share one run."""
    cell = {k: v for k, v in config["cell"].items() if k != "setting"}  # the setting's train world is robot_data's
    return _hash({**{k: v for k, v in config.items() if k != "eval_options"}, "cell": cell})


def parse_shard(shard: str | None) -> tuple[int, int]:
    """ "i/n" -> (i, n) with 0 <= i < n; None -> (0, 1)."""
    if shard is None:
        return 0, 1
    try:
        i, n = (int(x) for x in shard.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/n (e.g. 0/4), got {shard!r}") from None
    if not 0 <= i < n:
        raise ValueError(f"--shard {shard!r}: need 0 <= i < n")
    return i, n


def shard_cells(preset: BenchPreset, cells: list[Cell], shard: tuple[int, int]) -> list[Cell]:
    """Shard i of n: every n-th cell in key order (stable whatever the run order), kept in run order."""
    i, n = shard
    mine = {c for c in sorted(cells, key=lambda c: cell_key(preset, c))[i::n]}
    return [c for c in cells if c in mine]


# --- running -------------------------------------------------------------------------------------------------


def _dataset(out: Path, config: dict[str, Any], *, workers: int) -> Path:
    """Generate (and extract tracks for) a dataset once per configuration; returns its root."""
    from robo4d.data.reader import Dataset
    from robo4d.extract.commands import Tracks
    from robo4d.world.generate import generate

    kind = config["kind"]
    root = out / "data" / f"{kind}-{_hash({**config, 'code': code_version()})}"
    if not (root / types.INFO_JSON).is_file():
        options = WorldOptions(**config.get("options", {}))
        print(f"[bench] generating {root.name}: {len(config['tasks'])} tasks x {config['episodes']} episodes")
        generate(kind, root, task_names=tuple(config["tasks"]), episodes=config["episodes"], seed=config["seed"],
                 image_size=config["image_size"], max_steps=config["max_steps"], grid=config["grid"],
                 workers=workers, keep_failures=kind == "human", preset="bench", options=options)  # fmt: skip
    cam = types.CAM_EGO if kind == "human" else types.CAM_FRONT
    if types.points_key(cam) not in Dataset(root).features:
        Tracks(dataset=root, camera=cam, grid=config["grid"], workers=workers).run()
    return root


def build_stages(preset: BenchPreset, cell: Cell, robot: Path, human: Path | None) -> tuple[Any, ...]:
    from robo4d.train.recipes import RecipeInputs

    inputs = RecipeInputs(robot=(str(robot),), human=(str(human),) if human else (),
                          tracks=cell.tracks if cell.tracks != ANY_TRACKS else "extracted")  # fmt: skip
    stages = []
    for s in _recipe_stages(cell.method, inputs):
        steps = max(1, round(s.steps * preset.steps_scale))
        # Every demo trains (a few demos cannot spare a validation split); one checkpoint, at the end.
        stages.append(replace(s, steps=steps, batch_size=preset.batch_size, seed=cell.seed, val_fraction=0.0,
                              eval_every=steps, save_every=steps, keep_last=1))  # fmt: skip
    return tuple(stages)


def bench_env(task: str, seed: int, *, image_size: tuple[int, int], cameras: tuple[str, ...], options: WorldOptions):
    """Evaluation's env factory (module level: pool workers unpickle it)."""
    from robo4d.world.env import WorldEnv

    return WorldEnv(task, seed=seed, image_size=image_size, cameras=cameras, depth=False, options=options)


def _evaluate(preset: BenchPreset, checkpoint: Path, options: WorldOptions, out: Path, workers: int) -> dict:
    """`robo4d eval`'s plan (checks, cameras, runtime), in the world of the cell's evaluation options."""
    from robo4d.eval.commands import EvalCommand, held_out_seed
    from robo4d.eval.evaluate import evaluate

    command = EvalCommand(checkpoint=checkpoint, tasks=preset.tasks, episodes=preset.eval_episodes,
                          seeds=preset.eval_seeds, workers=workers, videos_per_task=0, out=out)  # fmt: skip
    config, make_policy, world_env = command.plan()
    make_env = functools.partial(bench_env, **world_env.keywords, options=options)
    return evaluate(config, make_policy, make_env, held_out_seed, out, progress=False)


def run_cell(preset: BenchPreset, cell: Cell, out: Path, *, workers: int = 2) -> dict[str, Any]:
    """Train and evaluate one cell (or load its result); returns the result dict written to result.json."""
    from robo4d.data.reader import Dataset
    from robo4d.train.trainer import run_stages

    config = cell_config(preset, cell)
    key, train_key = _hash(config), training_key(config)
    cell_dir, run_dir = out / "cells" / key, out / "runs" / train_key
    if (cell_dir / RESULT_FILE).is_file():
        return json.loads((cell_dir / RESULT_FILE).read_text())
    print(f"[bench] cell {key}: {cell}", flush=True)
    robot = _dataset(out, config["robot_data"], workers=workers)
    human = _dataset(out, config["human_data"], workers=workers) if config["human_data"] else None
    stages = build_stages(preset, cell, robot, human)
    start = time.perf_counter()
    run_stages(stages, run_dir, resume=True, progress=False)  # a run another setting's cell finished is reused
    train_s = time.perf_counter() - start
    policy = run_dir / _recipe(cell.method).policy_stage
    info = _evaluate(preset, policy, SETTINGS[cell.setting].eval, cell_dir / "eval", workers)
    result = {
        "key": key,
        "training_key": train_key,  # cells with the same one share a trained policy (under runs/)
        "config": config,
        "cell": dataclasses.asdict(cell),
        "family": _recipe(cell.method).method,  # the registered method the recipe trains
        "robot_demos_kept": Dataset(robot).num_episodes,
        "episodes": [
            {"task": e["task"], "seed": e["seed"], "success": bool(e["success"])} for e in info["per_episode"]
        ],  # fmt: skip
        "pc_success": info["aggregated"]["pc_success"],
        "train_s": round(train_s, 1),
        "eval_s": round(info["aggregated"]["eval_s"], 1),
    }
    cell_dir.mkdir(parents=True, exist_ok=True)  # training lives under runs/; the cell holds eval and result
    tmp = cell_dir / (RESULT_FILE + ".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(cell_dir / RESULT_FILE)  # atomic: a result file is always complete
    print(f"[bench] cell {key}: {result['pc_success']:.1f}% ({train_s:.0f} s train, {result['eval_s']:.0f} s eval)")
    return result


def load_results(out: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((out / "cells").glob(f"*/{RESULT_FILE}"))]


def run_bench(preset: BenchPreset, out: Path, *, shard: tuple[int, int] = (0, 1), workers: int = 2) -> list[dict]:
    """Run this shard's cells that are not done yet; returns the results of all of them."""
    cells = shard_cells(preset, expand(preset), shard)
    results = []
    for n, cell in enumerate(cells, start=1):
        print(f"[bench] {n}/{len(cells)}", flush=True)
        results.append(run_cell(preset, cell, out, workers=workers))
    return results


def merge(sources: tuple[Path, ...], out: Path) -> int:
    """Copy every finished cell of `sources` into `out/cells/`; returns how many were new. Cells with the same
    key are the same configuration, so either copy will do."""
    added = 0
    for source in sources:
        if not (source / "cells").is_dir():
            raise ValueError(f"--merge {str(source)!r}: no cells/ directory (not a bench output)")
        for result in sorted((source / "cells").glob(f"*/{RESULT_FILE}")):
            target = out / "cells" / result.parent.name / RESULT_FILE
            if not target.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(result.read_bytes())
                added += 1
    return added
