"""Extraction over a dataset: episodes -> shard files -> dataset columns, with workers, shards and resume.

Every run writes per-episode track files into a shard folder under the dataset,
    <dataset>/extract/<camera>/shard-<i>-of-<n>/episode_000123.npz   points (T, N, 3) float32, visible (T, N) bool
    <dataset>/extract/<camera>/shard-<i>-of-<n>/shard.json           settings + episodes, written last (= complete)
and `merge` turns a complete set of shards into the columns `observation.points.<cam>` and
`observation.points_visible.<cam>` (data.edit.add_features, atomic), records the settings in meta/robo4d.json,
then deletes the shard folders. A plain run is shard 0 of 1 followed by the merge. Episode files already present
with the same settings are reused, so a killed array job resumes where it stopped.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from robo4d import types
from robo4d.extract.depth import DepthSource, SensorDepth
from robo4d.extract.depth_model import DepthAnythingDepth, DepthModelConfig, check_model_dir
from robo4d.extract.errors import ExtractError
from robo4d.extract.learned import LearnedConfig, check_weights, weights_record
from robo4d.extract.pipeline import EpisodeInput, LiftConfig, Tracks, extract_episode
from robo4d.extract.trackers import LKConfig, PointTracker
from robo4d.extract.visibility import VisibilityThresholds, check_visibility, count_visible, record_visibility

EXTRACT_VERSION = 1  # bump when the same settings would produce different tracks
EXTRACT_DIR = "extract"
META_FIELD = "extract"  # meta/robo4d.json: {"extract": {<camera>: <settings>}}
SHARD_MANIFEST = "shard.json"
_SHARD_RE = re.compile(r"shard-(\d+)-of-(\d+)")


@dataclass(frozen=True, kw_only=True)
class ExtractSettings:
    """Everything that decides what the tracks are; two runs with equal settings make identical columns."""

    tracker: Literal["lk", "learned"] = "lk"
    lk: LKConfig = field(default_factory=LKConfig)
    learned: LearnedConfig = field(default_factory=LearnedConfig)
    lift: LiftConfig = field(default_factory=LiftConfig)
    depth: Literal["sensor", "model"] = "sensor"
    depth_model: DepthModelConfig = field(default_factory=DepthModelConfig)

    def __post_init__(self) -> None:
        if self.tracker not in ("lk", "learned"):
            raise ValueError(f"unknown tracker {self.tracker!r}; known: lk, learned")
        if self.tracker == "learned":
            check_weights(self.learned.weights_dir)
        if self.depth not in ("sensor", "model"):
            raise ValueError(f"unknown depth source {self.depth!r}; known: sensor, model")
        if self.depth == "model":
            check_model_dir(self.depth_model.model_dir)

    def record(self) -> dict[str, Any]:
        """JSON form stored in meta/robo4d.json and shard manifests."""
        out: dict[str, Any] = {"version": EXTRACT_VERSION, "tracker": self.tracker, "lk": asdict(self.lk)}
        if self.tracker == "learned":
            out["learned"] = weights_record(self.learned)
        out["lift"] = asdict(self.lift)
        out["depth"] = self.depth
        if self.depth == "model":
            model = asdict(self.depth_model)
            model["model_dir"] = str(Path(model["model_dir"]).resolve())
            out["depth_model"] = model
        return out

    def build_tracker(self) -> PointTracker:
        return self.learned.build() if self.tracker == "learned" else self.lk.build()

    def build_depth(self) -> DepthSource:
        return DepthAnythingDepth(self.depth_model) if self.depth == "model" else SensorDepth()


def shard_dir(root: Path, camera: str, index: int, count: int) -> Path:
    return root / EXTRACT_DIR / camera / f"shard-{index}-of-{count}"


def shard_episodes(num_episodes: int, index: int, count: int) -> list[int]:
    """Round-robin split, so shards get a similar mix of short and long episodes."""
    if not (count >= 1 and 0 <= index < count):
        raise ExtractError(f"--shard must be i/n with 0 <= i < n, got {index}/{count}")
    return list(range(index, num_episodes, count))


def recorded_settings(dataset: Any, camera: str) -> dict[str, Any] | None:
    """The settings the dataset's current track columns for `camera` were made with (None if it has none)."""
    if types.points_key(camera) not in dataset.features:
        return None
    meta = dataset.robo4d_meta or {}
    return meta.get(META_FIELD, {}).get(camera)


def load_episode(dataset: Any, episode: int, camera: str, *, need_extrinsics: bool) -> EpisodeInput:
    """Read one episode of one camera from a `data.reader.Dataset`, with errors that say what is missing."""
    check_camera(dataset, camera)
    keys = [types.image_key(camera), types.intrinsics_key(camera)]
    optional = [k for k in (types.depth_key(camera), types.extrinsics_key(camera)) if k in dataset.features]
    data = dataset.read_episode(episode, keys + optional)
    return EpisodeInput(
        source=f"{dataset.root} episode {episode} camera {camera!r}",
        frames=data[types.image_key(camera)],
        intrinsics=np.asarray(data[types.intrinsics_key(camera)], np.float64),
        depth=data.get(types.depth_key(camera)),
        extrinsics=np.asarray(data[types.extrinsics_key(camera)], np.float64)
        if need_extrinsics and types.extrinsics_key(camera) in data
        else None,
    )


def check_camera(dataset: Any, camera: str) -> None:
    cameras = sorted(types.camera_of(k) for k in dataset.features if k.startswith(types.IMAGES_PREFIX))
    if types.image_key(camera) not in dataset.features:
        raise ExtractError(f"{dataset.root}: no camera {camera!r}; available cameras: {', '.join(cameras) or 'none'}")
    if types.intrinsics_key(camera) not in dataset.features:
        raise ExtractError(
            f"{dataset.root}: camera {camera!r} has no intrinsics ({types.intrinsics_key(camera)}); "
            "lifting to 3D needs the 3x3 pixel intrinsics of every frame"
        )
    if camera == "" or "/" in camera:
        raise ExtractError(f"camera name {camera!r} cannot be used in a path")


# ------------------------------------------------------------------------------------------------
# Extraction (one shard), optionally over worker processes.

_WORKER: dict[str, Any] = {}  # per-process state: the open dataset, tracker and depth source


def _init_worker(root: str, settings: ExtractSettings, camera: str, threads: int) -> None:
    import cv2
    import torch

    from robo4d.data.reader import Dataset

    cv2.setNumThreads(threads)
    torch.set_num_threads(threads)
    _WORKER.update(
        dataset=Dataset(Path(root)), camera=camera, settings=settings,
        tracker=settings.build_tracker(), depth=settings.build_depth(),
    )  # fmt: skip


def _run_one(job: tuple[int, str]) -> tuple[int, dict[str, int]]:
    episode, path = job
    settings: ExtractSettings = _WORKER["settings"]
    ep = load_episode(_WORKER["dataset"], episode, _WORKER["camera"], need_extrinsics=settings.lift.world_frame)
    tracks = extract_episode(ep, tracker=_WORKER["tracker"], depth_source=_WORKER["depth"], config=settings.lift)
    _save_tracks(Path(path), tracks)
    counts = {"lost_by_tracker": tracks.lost_by_tracker, "invalid_depth": tracks.invalid_depth,
              "on_depth_edge": tracks.on_depth_edge, "point_frames": tracks.visible.size,
              "visible": int(tracks.visible.sum())}  # fmt: skip
    return len(ep.frames), counts


def extract_shard(
    root: Path, camera: str, settings: ExtractSettings, *, index: int = 0, count: int = 1, workers: int = 1
) -> dict[str, int]:
    """Track every episode of shard index/count into its shard folder; returns summed drop counts."""
    from tqdm import tqdm

    from robo4d.data.reader import Dataset

    dataset = Dataset(root)
    check_camera(dataset, camera)
    episodes = shard_episodes(dataset.num_episodes, index, count)
    folder = shard_dir(root, camera, index, count)
    record = settings.record()
    manifest = folder / SHARD_MANIFEST
    if folder.exists() and _read_settings(folder) not in (None, record):
        shutil.rmtree(folder)  # left by a run with other settings: its files are not ours to reuse
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "settings.json").write_text(json.dumps(record, indent=2))
    manifest.unlink(missing_ok=True)
    todo = [(e, str(folder / f"episode_{e:06d}.npz")) for e in episodes]
    todo = [job for job in todo if not Path(job[1]).is_file()]  # resume: finished episodes are kept
    total = sum(dataset.episode_length(e) for e, _ in todo)
    totals: dict[str, int] = {}
    bar = tqdm(total=total, unit="frame", desc=f"tracks {camera} shard {index}/{count}", smoothing=0.1)
    for frames, counts in _map(_run_one, todo, root, settings, camera, workers):
        bar.update(frames)
        for k, v in counts.items():
            totals[k] = totals.get(k, 0) + v
    bar.close()
    _write_json_atomic(manifest, {"settings": record, "index": index, "count": count, "episodes": episodes})
    return totals


def _map(fn: Any, jobs: list, root: Path, settings: ExtractSettings, camera: str, workers: int) -> Iterator:
    if workers <= 1 or len(jobs) <= 1:
        _init_worker(str(root), settings, camera, threads=max(1, os.cpu_count() or 1))
        yield from map(fn, jobs)
        return
    # spawn: torch and OpenCV thread pools do not survive fork; one thread per worker avoids oversubscription.
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(str(root), settings, camera, 1)) as pool:
        yield from pool.imap_unordered(fn, jobs)


# ------------------------------------------------------------------------------------------------
# Merge.


@dataclass(frozen=True, kw_only=True)
class ShardSet:
    settings: dict[str, Any]
    files: dict[int, Path]  # episode -> npz
    folders: list[Path]


def collect_shards(root: Path, camera: str, num_episodes: int) -> ShardSet:
    """All shard folders of `camera`, checked: same n, all n present and complete, same settings, every episode
    exactly once."""
    base = root / EXTRACT_DIR / camera
    folders = sorted(p for p in base.glob("shard-*-of-*") if _SHARD_RE.fullmatch(p.name)) if base.is_dir() else []
    if not folders:
        raise ExtractError(f"{base}: no shard folders; run `robo4d extract tracks --shard i/n` first")
    counts = {int(_SHARD_RE.fullmatch(p.name).group(2)) for p in folders}
    if len(counts) != 1:
        raise ExtractError(f"{base}: shards of different splits {sorted(counts)} are mixed; delete the stale ones")
    (count,) = counts
    have = {int(_SHARD_RE.fullmatch(p.name).group(1)) for p in folders}
    missing = sorted(set(range(count)) - have)
    incomplete = [p.name for p in folders if not (p / SHARD_MANIFEST).is_file()]
    if missing or incomplete:
        raise ExtractError(f"{base}: shards missing {missing} of {count}, unfinished {incomplete}")
    manifests = [json.loads((p / SHARD_MANIFEST).read_text()) for p in folders]
    if any(m["settings"] != manifests[0]["settings"] for m in manifests):
        raise ExtractError(f"{base}: shards were made with different settings; re-run the odd ones")
    files: dict[int, Path] = {}
    for folder, m in zip(folders, manifests, strict=True):
        for e in m["episodes"]:
            if e in files:
                raise ExtractError(f"{base}: episode {e} is in two shards ({files[e].parent.name}, {folder.name})")
            files[e] = folder / f"episode_{e:06d}.npz"
    absent = sorted(set(range(num_episodes)) - set(files))
    if absent:
        raise ExtractError(f"{base}: no shard covers episodes {absent[:10]}{'...' if len(absent) > 10 else ''}")
    return ShardSet(settings=manifests[0]["settings"], files=files, folders=folders)


def merge(
    root: Path,
    camera: str,
    *,
    out: Path | None = None,
    overwrite: bool = False,
    visibility: VisibilityThresholds | None = None,
) -> Path:
    """Write the shards' tracks as dataset columns (in place, or into a new dataset at `out`); too few visible
    point-frames warn or refuse first (extract.visibility; default thresholds when `visibility` is None)."""
    from robo4d.data.edit import add_features
    from robo4d.data.features import Feature
    from robo4d.data.reader import Dataset

    dataset = Dataset(root)
    shards = collect_shards(root, camera, dataset.num_episodes)
    report = check_visibility(count_visible(shards.files), camera, visibility or VisibilityThresholds(), where=root)
    grid = shards.settings["lift"]["grid"]
    n = grid * grid
    features = {
        types.points_key(camera): Feature(dtype="float32", shape=(n, 3), names=("points", "xyz")),
        types.points_visible_key(camera): Feature(dtype="bool", shape=(n,), names=("points",)),
    }

    def compute(episode: int) -> dict[str, np.ndarray]:
        points, visible = load_tracks(shards.files[episode])
        length = dataset.episode_length(episode)
        if points.shape != (length, n, 3) or visible.shape != (length, n):
            raise ExtractError(f"{shards.files[episode]}: tracks are {points.shape}, expected ({length}, {n}, 3)")
        return {types.points_key(camera): points, types.points_visible_key(camera): visible}

    def finish(work: Path) -> None:
        # The records land with the columns, and the shards (hard-linked into the copy) leave with them:
        # a kill at any point leaves either the old dataset with its shards or the merged one.
        _record_settings(work, camera, shards.settings)
        record_visibility(work, camera, report)
        _remove_shards(work, camera)

    target = Path(add_features(root, features, compute, out=out, overwrite=overwrite, finish=finish))
    _remove_shards(root, camera)  # merged into `out`: the source's shards are done with
    return target


def _remove_shards(base: Path, camera: str) -> None:
    shutil.rmtree(base / EXTRACT_DIR / camera, ignore_errors=True)
    if (base / EXTRACT_DIR).is_dir() and not any((base / EXTRACT_DIR).iterdir()):
        (base / EXTRACT_DIR).rmdir()


# ------------------------------------------------------------------------------------------------
# Files.


def _save_tracks(path: Path, tracks: Tracks) -> None:
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, points=tracks.points, visible=tracks.visible)
    os.replace(tmp, path)


def load_tracks(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """points (T, N, 3) float32, visible (T, N) bool from one episode file."""
    if not path.is_file():
        raise ExtractError(f"{path}: episode track file is missing (the shard's manifest lists it)")
    with np.load(path) as f:
        return f["points"], f["visible"]


def _read_settings(folder: Path) -> dict[str, Any] | None:
    path = folder / "settings.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _record_settings(root: Path, camera: str, settings: dict[str, Any]) -> None:
    path = root / types.ROBO4D_JSON
    meta = json.loads(path.read_text()) if path.is_file() else {}
    meta.setdefault(META_FIELD, {})[camera] = settings
    _write_json_atomic(path, meta)


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=4) + "\n")
    os.replace(tmp, path)
