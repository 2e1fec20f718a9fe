"""`robo4d label ...` and `robo4d imagine`: IGOR's latent-action labels, their predictiveness, and transfer videos.

    robo4d label latent-actions --dataset D --checkpoint RUN/lam [--overwrite] [--out COPY]
    robo4d label predictiveness --dataset D [--k 1 4 16 64] [--gap 3]          (prints JSON)
    robo4d imagine --lam RUN/lam --world RUN/world --source D1 --target D2 --out transfer.mp4

Torch and the models are imported only when a command runs. Bad input is one line on stderr, exit code 2.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn


def _fail(prog: str, message: str) -> NoReturn:
    print(f"{prog}: {message}", file=sys.stderr)
    raise SystemExit(2)


def _guarded(prog: str, work: Callable[[], Any]) -> Any:
    """Run `work`, turning a user's mistake (bad path, wrong checkpoint, unlabelled data) into one line."""
    from robo4d.data.errors import DatasetError
    from robo4d.train.checkpoint import CheckpointError

    try:
        return work()
    except (ValueError, KeyError, FileNotFoundError, DatasetError, CheckpointError) as e:
        _fail(prog, str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e))


def _require(prog: str, path: Path, what: str) -> None:
    if not path.exists():
        _fail(prog, f"{what} {str(path)!r}: no such file or directory")


@dataclass(frozen=True, kw_only=True)
class LatentActions:
    """Label every frame of a dataset with a trained IGOR LAM: code indices and code vectors as new columns."""

    dataset: Path  # LeRobot dataset root (human video or robot demos)
    checkpoint: Path  # IGOR lam checkpoint (or its stage / run directory)
    overwrite: bool = False  # replace existing labels (default: a labelled dataset is left as it is)
    out: Path | None = None  # write a labelled copy here instead of editing the dataset in place

    def run(self) -> None:
        from robo4d.methods.igor.label import label_dataset

        prog = "robo4d label latent-actions"
        _require(prog, self.dataset, "--dataset")
        _require(prog, self.checkpoint, "--checkpoint")
        result = _guarded(prog, lambda: label_dataset(self.dataset, self.checkpoint, overwrite=self.overwrite,
                                                      out=self.out))  # fmt: skip
        state = "labelled" if result.labelled else "already labelled (pass --overwrite to relabel)"
        print(f"{result.path}: {state}; camera {result.camera!r}, frame gap {result.frame_gap}")


@dataclass(frozen=True, kw_only=True)
class Predictiveness:
    """Normalised std of robot actions among the k nearest latent actions (< 1: latents predict actions); JSON."""

    dataset: tuple[Path, ...]  # labelled robot-demo dataset root(s)
    k: tuple[int, ...] = (2, 4, 16, 64, 256)  # neighbour counts, >= 2 (the paper plots log k)
    gap: int = 3  # frame gap k the labels were made with (actions are averaged over it)
    samples: int = 2000  # query frames drawn
    seed: int = 0

    def run(self) -> None:
        from robo4d.methods.igor.metrics import dataset_predictiveness

        prog = "robo4d label predictiveness"
        for root in self.dataset:
            _require(prog, root, "--dataset")
        if not self.dataset or min(self.k, default=0) < 2 or self.gap < 1 or self.samples < 1:
            _fail(prog, f"need --dataset, --k >= 2, --gap >= 1 and --samples >= 1; got {self.k}, {self.gap}, "
                        f"{self.samples}")  # fmt: skip
        report = _guarded(prog, lambda: dataset_predictiveness(self.dataset, tuple(sorted(set(self.k))), gap=self.gap,
                                                               samples=self.samples, seed=self.seed))  # fmt: skip
        print(json.dumps(report))


@dataclass(frozen=True, kw_only=True)
class Imagine:
    """Apply the latent actions of one video to the first frame of another with the IGOR world model."""

    lam: Path  # IGOR lam checkpoint: extracts the source's latent actions
    world: Path  # IGOR world checkpoint: generates the frames
    source: Path  # dataset whose episode's motion is transferred
    target: Path  # dataset whose episode's first frame starts the imagined video
    out: Path  # output stem: writes <out>.mp4 and <out>.png
    source_episode: int = 0
    target_episode: int = 0
    steps: int = 8  # latent actions applied (each advances the source by its frame gap)
    seed: int = 0  # noise of the flow sampler

    def run(self) -> None:
        from robo4d.methods.igor.imagine import imagine

        prog = "robo4d imagine"
        for what, path in (("--lam", self.lam), ("--world", self.world), ("--source", self.source),
                           ("--target", self.target)):  # fmt: skip
            _require(prog, path, what)
        if self.steps < 1:
            _fail(prog, f"--steps must be >= 1, got {self.steps}")
        result = _guarded(prog, lambda: imagine(
            lam=self.lam, world=self.world, source=self.source, source_episode=self.source_episode,
            target=self.target, target_episode=self.target_episode, out=self.out, steps=self.steps, seed=self.seed,
        ))  # fmt: skip
        print(f"{result.video}, {result.grid}: {result.steps} latent actions transferred")


COMMANDS: dict[str, type] = {"latent-actions": LatentActions, "predictiveness": Predictiveness}
