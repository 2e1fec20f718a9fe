"""From dataset roots to seeded, resumable, rank-sharded window batches for one stage.

Determinism: the episode split and every epoch's shuffle derive from the stage seed alone, and the batch
stream is a pure function of (seed, step), so resuming at step s yields exactly the batches an uninterrupted
run sees from step s on. Window transforms that draw random numbers in workers are seeded per
(seed, resume step, worker), so they repeat across identical runs but not across a resume boundary.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler

from robo4d.methods.base import DataSpec, Policy
from robo4d.train.camera_map import dataset_cameras
from robo4d.types import INFO_JSON, camera_of


@dataclass(frozen=True, kw_only=True)
class DataBackend:
    """How the trainer opens datasets and cuts windows; swappable so the trainer depends on no storage format.
    open_dataset(root) must give an object with `.features` (key -> declared feature), `.stats`,
    `.num_episodes` and `.num_frames`; make_windows(dataset, *, keys, seq_len, horizon, episodes,
    frame_sources) a torch Dataset of windows (key -> (T+K, ...) arrays plus PAD_MASK)."""

    open_dataset: Callable[[Path], Any]
    make_windows: Callable[..., Dataset]


def lerobot_backend() -> DataBackend:
    """The project's LeRobot v3 reader and window dataset (imported only when a stage runs)."""
    from robo4d.data.reader import Dataset as LeRobotDataset
    from robo4d.data.windows import WindowDataset

    return DataBackend(open_dataset=LeRobotDataset, make_windows=WindowDataset)


class MissingFeaturesError(ValueError):
    """A dataset lacks features the stage's policy reads, or has them in another shape; one line naming the
    dataset, the feature, its shape and what was expected (and which command produces a missing one)."""


def check_features(root: Path, dataset: Any, spec: DataSpec, provided: set[str] | None = None) -> None:
    """Every key the spec reads exists (frame-source keys: the dataset key they are computed from) with the
    declared per-frame shape. Cheap: the trainer runs it before any frame source encodes anything
    (`provided=None`), and again with the keys the built frame sources provide: a key missing from the dataset
    that the policy did not declare in `derived_from` can only be judged then."""
    features = dataset.features
    problems, cameras = [], []
    for key in spec.keys:
        needed = spec.derived_from.get(key, key)  # a frame source's key: the dataset key it is computed from
        undeclared = key not in spec.derived_from
        if needed in features or (undeclared and (provided is None or key in provided)):
            continue
        hint = f" (produced by `{spec.produced_by[key]}`)" if key in spec.produced_by and needed == key else ""
        problems.append(f"lacks feature {needed}{hint}")
        try:
            cameras.append(camera_of(needed))
        except KeyError:
            continue  # not a per-camera key
    problems += [
        f"feature {key} has shape {tuple(features[key].shape)}, expected {tuple(expected)}"
        for key, expected in spec.shapes.items()
        if key in features and tuple(features[key].shape) != tuple(expected)
    ]
    if cameras:
        have = sorted(dataset_cameras(features))
        example = f", e.g. --camera-map {have[0]}={cameras[0]}" if have else ""
        problems.append(f"its cameras are {have}: map one to camera {cameras[0]!r} with --camera-map SRC=DST{example}")
    if problems:
        raise MissingFeaturesError(f"{root}: does not fit this stage's policy: " + "; ".join(problems))


def merge_stats(parts: list[tuple[dict[str, dict[str, np.ndarray]], int]]) -> dict[str, dict[str, np.ndarray]]:
    """Per-feature stats of several datasets as one, weighting by frame count: exact for mean, std, min, max
    and count; quantiles are count-weighted means (LeRobot's approximation). Features not shared by all
    datasets are left out: no single set of stats describes them."""
    if len(parts) == 1:
        return parts[0][0]
    merged: dict[str, dict[str, np.ndarray]] = {}
    shared = set.intersection(*(set(s) for s, _ in parts))
    for key in sorted(shared):
        names = set.intersection(*(set(s[key]) for s, _ in parts))
        weights = np.array([n for _, n in parts], dtype=np.float64)
        weights /= weights.sum()
        out: dict[str, np.ndarray] = {}
        if {"mean", "std"} <= names:
            means = [np.asarray(s[key]["mean"], np.float64) for s, _ in parts]
            mean = sum(w * m for w, m in zip(weights, means, strict=True))
            second = sum(
                w * (np.asarray(s[key]["std"], np.float64) ** 2 + m**2)
                for w, m, (s, _) in zip(weights, means, parts, strict=True)
            )
            out["mean"] = mean.astype(np.float32)
            out["std"] = np.sqrt(np.maximum(second - mean**2, 0.0)).astype(np.float32)
        if "min" in names:
            out["min"] = np.min([s[key]["min"] for s, _ in parts], axis=0)
        if "max" in names:
            out["max"] = np.max([s[key]["max"] for s, _ in parts], axis=0)
        if "count" in names:
            out["count"] = np.sum([s[key]["count"] for s, _ in parts], axis=0)
        for name in sorted(names - {"mean", "std", "min", "max", "count"}):  # quantiles: as LeRobot pools them
            out[name] = sum(w * np.asarray(s[key][name], np.float64) for w, (s, _) in zip(weights, parts, strict=True))
            out[name] = out[name].astype(np.float32)
        merged[key] = out
    return merged


def dataset_identity(root: Path, dataset: Any) -> dict[str, Any]:
    """What a checkpoint records about its training data: enough to tell whether two runs saw the same set."""
    info = root / INFO_JSON
    digest = hashlib.sha256(info.read_bytes()).hexdigest()[:16] if info.is_file() else None
    return {
        "root": str(root.resolve()),
        "num_episodes": int(dataset.num_episodes),
        "num_frames": int(dataset.num_frames),
        "info_sha256": digest,
    }


@dataclass(frozen=True, kw_only=True)
class StageData:
    """A stage's opened data: concatenated train/val windows, the stats to normalise with, and identities."""

    train: Dataset
    val: Dataset | None
    stats: dict[str, dict[str, np.ndarray]]
    identities: list[dict[str, Any]]


def open_stage_data(
    datasets: list[tuple[Path, Any]],
    policy: Policy,
    spec: DataSpec,
    *,
    val_fraction: float,
    seed: int,
    backend: DataBackend,
) -> StageData:
    """Windows of already opened (and checked, see check_features) datasets; frame sources are built here."""
    from robo4d.data.windows import split_episodes  # the one episode split (windows of an episode stay together)

    trains, vals, stats, identities = [], [], [], []
    for i, (root, dataset) in enumerate(datasets):
        sources = policy.frame_sources(dataset)
        check_features(root, dataset, spec, set(sources))
        unprovided = sorted(set(spec.derived_from) & set(spec.keys) - set(sources))
        if unprovided:
            raise ValueError(f"{type(policy).__name__}.frame_sources does not provide {unprovided}")
        train_eps, val_eps = split_episodes(dataset.num_episodes, val_fraction=val_fraction, seed=seed + i)
        keys = tuple(k for k in spec.keys if k not in sources)  # the rest come from the frame sources
        make = partial(
            backend.make_windows, dataset, keys=keys, seq_len=spec.seq_len, horizon=spec.horizon, frame_sources=sources
        )
        trains.append(make(episodes=train_eps))
        if val_eps:
            vals.append(make(episodes=val_eps))
        stats.append((dataset.stats, int(dataset.num_frames)))
        identities.append(dataset_identity(root, dataset))
    return StageData(
        train=trains[0] if len(trains) == 1 else ConcatDataset(trains),
        val=None if not vals else vals[0] if len(vals) == 1 else ConcatDataset(vals),
        stats=merge_stats(stats),
        identities=identities,
    )


def _mix(*ints: int) -> int:
    """A 63-bit seed from several integers (stable across processes, unlike hash())."""
    digest = hashlib.sha256(",".join(map(str, ints)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class StepBatches(Sampler[list[int]]):
    """An endless stream of this rank's index batches starting at global step `start`: epoch e is a seeded
    permutation cut into `num_windows // global_batch` global batches (the remainder is dropped so every
    step sees a full batch); rank r takes the r-th slice of each."""

    def __init__(self, num_windows: int, global_batch: int, *, seed: int, start: int, rank: int, world: int) -> None:
        if num_windows < global_batch:
            raise ValueError(f"only {num_windows} training windows for a global batch of {global_batch}")
        self.num_windows, self.global_batch, self.seed = num_windows, global_batch, seed
        self.start, self.per_rank, self.rank = start, global_batch // world, rank
        self.batches_per_epoch = num_windows // global_batch

    def position(self, step: int) -> tuple[int, int]:
        """(epoch, batch within the epoch) of the batch that update `step` (0-based) consumes."""
        return divmod(step, self.batches_per_epoch)

    def __iter__(self) -> Iterator[list[int]]:
        epoch, index = self.position(self.start)
        while True:
            perm = torch.randperm(self.num_windows, generator=torch.Generator().manual_seed(_mix(self.seed, epoch)))
            for b in range(index, self.batches_per_epoch):
                lo = b * self.global_batch + self.rank * self.per_rank
                yield perm[lo : lo + self.per_rank].tolist()
            epoch, index = epoch + 1, 0


def _seed_worker(worker_id: int) -> None:
    # torch seeds each worker from the loader's generator; numpy and random follow it so transforms using
    # either are reproducible too.
    import random

    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def train_loader(
    windows: Dataset, global_batch: int, *, seed: int, start: int, rank: int, world: int, num_workers: int
) -> tuple[DataLoader, StepBatches]:
    sampler = StepBatches(len(windows), global_batch, seed=seed, start=start, rank=rank, world=world)
    loader = DataLoader(
        windows,
        batch_sampler=sampler,
        num_workers=num_workers,
        worker_init_fn=_seed_worker,
        generator=torch.Generator().manual_seed(_mix(seed, start, rank)),
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
    )
    return loader, sampler


def val_loader(windows: Dataset, global_batch: int, *, max_batches: int, rank: int, world: int) -> DataLoader:
    """Up to `max_batches` global batches of validation windows spread evenly over the whole set (the same
    ones at every evaluation), sharded by rank. Loaded in the main process: a handful of batches does not
    pay for keeping workers alive."""
    per_rank = global_batch // world
    count = min(max_batches * global_batch, len(windows) - len(windows) % world)
    order = np.linspace(0, len(windows) - 1, count).round().astype(int) if count else np.zeros(0, int)
    mine = order[rank::world].tolist()
    batches = [mine[i : i + per_rank] for i in range(0, len(mine), per_rank)]
    return DataLoader(windows, batch_sampler=batches, num_workers=0)
