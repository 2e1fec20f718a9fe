"""`robo4d tracker data | train | eval`: the learned point tracker's recipe (argument dataclasses; work in run).

robo4d tracker data --out CLIPS --clips 320                 # domain-randomised world clips, rendered once
robo4d tracker train --data CLIPS [CLIPS ...] --out RUN [--resume]   # the one trainer; exports RUN/weights
robo4d tracker eval --dataset HUMAN [--weights RUN/weights] # TAP-Vid metrics on held-out world videos
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path


def _fail(message: str) -> None:
    """A user's mistake: one line on stderr, exit code 2."""
    print(f"robo4d tracker: {message}", file=sys.stderr)
    raise SystemExit(2)


@dataclass(frozen=True, kw_only=True)
class Data:
    """Render domain-randomised clips of the world's human tasks with exact 2D tracks (resumable)."""

    out: Path  # folder of clip_*.npz files (created; existing clips are kept)
    clips: int = 320  # number of clips
    first: int = 0  # index of the first clip (split a large job: --first 0, --first 160, ...)
    per_env: int = 4  # clips rendered per env build (a multiple of it must divide --first)
    steps: int = 32  # frames per clip
    image_size: int = 128  # square image side, pixels
    grid: int = 36  # GxG tracked grid anchored on frame 0
    plain: bool = False  # render the plain world (no randomisation), e.g. for a clean held-out set

    def run(self) -> None:
        if self.clips < 1 or self.per_env < 1 or self.first % self.per_env or self.steps < 2 or self.grid < 1:
            sys.exit(
                f"robo4d tracker data: need --clips >= 1, --steps >= 2, --grid >= 1 and --first a multiple of "
                f"--per-env; got {self.clips}, {self.steps}, {self.grid}, {self.first}, {self.per_env}"
            )
        from robo4d.recipes.tracker import write_data_card
        from robo4d.world.randomize import RandomizeConfig, generate_clips

        config = RandomizeConfig(enabled=not self.plain)
        paths = generate_clips(self.out, count=self.clips, first=self.first, per_env=self.per_env,
                               image_size=self.image_size, steps=self.steps, grid=self.grid, config=config)  # fmt: skip
        write_data_card(self.out, clips=len(sorted(self.out.glob("clip_*.npz"))), per_env=self.per_env,
                        steps=self.steps, image_size=self.image_size, grid=self.grid, randomize=config)  # fmt: skip
        print(f"{self.out}: {len(paths)} clips")


@dataclass(frozen=True, kw_only=True)
class Train:
    """Train the learned tracker on rendered clips with the one trainer; writes OUT/weights at the end."""

    data: tuple[Path, ...]  # folders from `robo4d tracker data`, mixed by clip count (e.g. randomised + --plain)
    out: Path  # run directory (checkpoints, metrics.jsonl, weights/)
    steps: int = 6000  # optimiser updates
    batch_size: int = 4  # windows per update
    points: int = 256  # tracks per window
    lr: float = 5e-4  # peak learning rate
    num_workers: int = 1  # DataLoader worker processes
    seed: int = 0
    pan_prob: float = 0.5  # share of training windows warped by a random camera pan (real video pans)
    # Each track's anchors (the estimates a window inherits) share one random offset of std up to this (pixels at
    # the clips' size): the network learns to recover a drifted track instead of continuing from where it was.
    anchor_drift_px: float = 0.0
    short_side: int = 128  # the network's input scale: clips (and, at inference, videos) are resized to it
    init_from: Path | None = None  # fine-tune from this tracker checkpoint (a step_* folder or a run's stage dir)
    resume: bool = False  # continue an interrupted run from its last checkpoint
    progress: bool = True

    def run(self) -> None:
        if not self.data:
            _fail("train: --data needs at least one folder of clips (run `robo4d tracker data`)")
        for folder in self.data:
            if not folder.is_dir() or not any(folder.glob("clip_*.npz")):
                _fail(f"train: --data {folder} holds no clip_*.npz (run `robo4d tracker data`)")
        if len(set(f.resolve() for f in self.data)) < len(self.data):
            _fail(f"train: --data names a folder twice: {' '.join(map(str, self.data))}")
        if min(self.steps, self.batch_size, self.points) < 1 or self.lr <= 0 or not 0 <= self.pan_prob <= 1:
            _fail("train: --steps, --batch-size, --points must be >= 1, --lr > 0 and --pan-prob in [0, 1]")
        if self.anchor_drift_px < 0:
            _fail(f"train: --anchor-drift-px must be >= 0 pixels, got {self.anchor_drift_px}")
        if self.short_side < 32:
            _fail(f"train: --short-side must be >= 32 pixels, got {self.short_side}")
        if self.init_from is not None and not self.init_from.exists():
            _fail(f"train: --init-from {self.init_from} does not exist (give a tracker checkpoint's step_* folder)")
        from robo4d.recipes.tracker import TrainSettings, train

        settings = TrainSettings(
            data=self.data,
            out=self.out,
            steps=self.steps,
            batch_size=self.batch_size,
            lr=self.lr,
            points=self.points,
            num_workers=self.num_workers,
            seed=self.seed,
            init_from=self.init_from,
            pan_prob=self.pan_prob,
            anchor_drift_px=self.anchor_drift_px,
            short_side=self.short_side,
        )
        print(train(settings, resume=self.resume, progress=self.progress))


@dataclass(frozen=True, kw_only=True)
class Eval:
    """TAP-Vid metrics (delta_avg, occlusion accuracy, AJ) of a tracker on a world human dataset's ground truth."""

    dataset: Path  # LeRobot human dataset with ground_truth.points.<camera> (e.g. `robo4d world human`)
    camera: str = "ego"
    tracker: str = "learned"  # learned or lk
    weights: Path | None = None  # learned: weights folder (default: the weights shipped with robo4d)
    episodes: int | None = None  # score only the first N episodes
    iters: int | None = None  # learned: refinement iterations per window (default: as trained; fewer is faster)
    refine: bool = False  # learned: per frame, the estimate, LK or a geometric carry that fits the query best
    out: Path | None = None  # also write the JSON here
    plot: Path | None = None  # also draw delta_avg per frame (how tracks drift) into this PNG

    def run(self) -> None:
        from robo4d.recipes.tracker import evaluate_dataset

        if not self.dataset.is_dir():
            _fail(f"eval: --dataset {self.dataset} is not a directory")
        if self.tracker not in ("learned", "lk"):
            _fail(f"eval: --tracker must be learned or lk, got {self.tracker!r}")
        if self.tracker != "learned" and (self.weights is not None or self.iters is not None or self.refine):
            _fail(f"eval: --weights, --iters and --refine need --tracker learned, got --tracker {self.tracker}")
        if self.plot is not None and self.plot.suffix.lower() != ".png":
            _fail(f"eval: --plot {self.plot} must name a .png file")
        try:
            result = evaluate_dataset(self.dataset, self.camera, tracker=self.tracker, weights=self.weights,
                                      episodes=self.episodes, iters=self.iters,
                                      refine=self.refine)  # fmt: skip
        except ValueError as e:  # bad dataset, camera or weights (ExtractError, DatasetError)
            _fail(f"eval: {e}")
        text = json.dumps(result, indent=2)
        if self.out is not None:
            self.out.write_text(text + "\n")
        if self.plot is not None:
            from robo4d.recipes.tracker import plot_delta_by_frame

            plot_delta_by_frame(result, self.plot)
        print(text)


COMMANDS: dict[str, type] = {"data": Data, "train": Train, "eval": Eval}
