"""One training stage: its data, its policy config, where its weights come from, and how it is optimised.

A run is an ordered list of stages (see recipes.py); stage k usually starts from stage k-1's last
checkpoint through an explicit weight map.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from robo4d.train.optim import OptimConfig
from robo4d.train.weight_map import WeightMap

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True, kw_only=True)
class StageConfig:
    """Everything one stage of training needs besides the run directory."""

    name: str  # directory under the run; what later stages' `init_from` refers to
    method: str  # registered method name (robo4d.methods.base.method_entry), e.g. "arm4r"
    policy: Any  # the method's frozen config dataclass (objective, sizes, cameras)
    datasets: tuple[str, ...]  # dataset roots; windows of all of them are concatenated
    steps: int  # optimiser updates in this stage (the lr schedule spans exactly these)
    # None: start from scratch; a stage name of the same run (its last checkpoint, which must be complete);
    # or a path to a checkpoint / stage / run directory.
    init_from: str | None = None
    weight_map: WeightMap | None = None  # what is taken from `init_from`; required exactly when init_from is set
    optim: OptimConfig = field(default_factory=OptimConfig)
    batch_size: int = 64  # global batch: split evenly over the ranks, so results do not depend on the GPU count
    val_fraction: float = 0.1  # share of each dataset's episodes held out for validation (0 = no validation)
    eval_every: int = 500  # steps between validation losses (also run at the end of the stage)
    val_batches: int = 8  # at most this many global batches per validation pass
    log_every: int = 10  # steps between metrics.jsonl records
    save_every: int = 1000  # steps between checkpoints (one is always written at the end of the stage)
    keep_last: int = 2  # checkpoints kept per stage (older ones are deleted)
    num_workers: int = 2  # DataLoader worker processes per rank
    seed: int = 0  # model init, episode split, shuffling and RNG streams all derive from it
    # Dataset camera -> policy camera (`--camera-map SRC=DST`): per-camera features of every dataset are read
    # under the policy's names; one map serves several datasets whose camera names differ.
    camera_map: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"StageConfig {self.name!r}"
        if not _NAME.match(self.name):
            raise ValueError(f"{where}: name must be a plain directory name (letters, digits, _ . -)")
        if not self.datasets or any(not d for d in self.datasets):
            raise ValueError(f"{where}: datasets must name at least one dataset root, got {self.datasets!r}")
        if (self.init_from is None) != (self.weight_map is None):
            raise ValueError(f"{where}: init_from and weight_map go together (init_from={self.init_from!r})")
        if self.init_from == self.name:
            raise ValueError(f"{where}: init_from must name another stage or a checkpoint path")
        for attr in ("steps", "batch_size", "eval_every", "val_batches", "log_every", "save_every", "keep_last"):
            if getattr(self, attr) < 1:
                raise ValueError(f"{where}: {attr} must be >= 1, got {getattr(self, attr)}")
        if self.num_workers < 0:
            raise ValueError(f"{where}: num_workers must be >= 0, got {self.num_workers}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"{where}: val_fraction must be in [0, 1), got {self.val_fraction}")
        for src, dst in self.camera_map.items():
            if not (_NAME.match(src) and _NAME.match(dst)):
                raise ValueError(f"{where}: camera_map {src!r}={dst!r}: expected plain camera names")
