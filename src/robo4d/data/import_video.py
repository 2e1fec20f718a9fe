"""Bring your own human videos: video files or folders of frames -> a LeRobot v3.0 human-video dataset.

The dataset has one camera, `ego`: RGB frames (`observation.images.ego`) and per-frame 3x3 pixel intrinsics
(`observation.intrinsics.ego`), no depth, no state, no actions, so `robo4d extract tracks --depth model` and the
video pre-training stages read it as they read the embedded world's human videos.

Intrinsics: `--intrinsics fx,fy,cx,cy` in the pixels of the source videos (scaled with `--size`), or, when
unknown, a pinhole guess of DEFAULT_FOV_DEG horizontal field of view, square pixels and the principal point at
the image centre. meta/robo4d.json records which (`import_video.intrinsics_assumed`), so tools downstream know
the metric scale of lifted tracks rests on a guess.

Frame rate: the container's rate (rounded to an integer: LeRobot's fps is an int), or `--fps`, which resamples
videos in time (each output frame is the latest source frame at or before its timestamp) and declares the rate
of a folder of frames.

Everything cheap is checked before any decoding (paths, tasks, intrinsics, the first frame of every source, one
resolution or `--size`, one frame rate). Decoding runs in worker processes, frame by frame; each finished episode
is staged as raw uint8 frames in `<out>.import-work/` (disk: T*H*W*3 bytes per episode), so an interrupted run
continues where it stopped when the same command is run again, and episodes are written to the dataset in order
while later ones decode. The work folder is removed once the dataset is published. Sources are only read.
"""

from __future__ import annotations

import csv
import json
import math
import multiprocessing
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from robo4d import types
from robo4d.data.errors import DatasetError

CAMERA = types.CAM_EGO
DEFAULT_FOV_DEG = 60.0  # horizontal field of view assumed without --intrinsics: a typical phone or webcam lens
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
WORK_SUFFIX = ".import-work"
META_FIELD = "import_video"  # meta/robo4d.json: {"import_video": {...}}
_PLAN_FILE = "plan.json"


@dataclass(frozen=True, kw_only=True)
class Source:
    """One input that becomes one episode."""

    path: Path  # a video file, or a folder of frames
    kind: Literal["video", "frames"]
    frames: tuple[Path, ...]  # the frame files in order (kind "frames"); empty for a video
    height: int  # source resolution (from the first frame)
    width: int
    rate: float | None  # the container's frame rate (None for frames)
    task: str

    def record(self) -> dict[str, Any]:
        """What identifies the input: a changed file (size or mtime) is decoded again on resume."""
        files = self.frames or (self.path,)
        return {"path": str(self.path.resolve()), "kind": self.kind, "task": self.task,
                "files": [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]}  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class ImportPlan:
    """Validated inputs and settings; building one decodes nothing but each source's first frame."""

    out: Path
    sources: tuple[Source, ...]
    fps: int  # the dataset's frame rate
    resample: bool  # videos are resampled in time to `fps` (True when --fps was given)
    size: tuple[int, int]  # (H, W) of the stored frames
    intrinsics: tuple[tuple[float, float, float, float], ...]  # per source, at `size`: fx, fy, cx, cy
    intrinsics_assumed: bool
    fov_deg: float | None  # the assumed horizontal field of view (None when intrinsics were given)
    workers: int
    overwrite: bool

    @property
    def work_dir(self) -> Path:
        return self.out.parent / (self.out.name + WORK_SUFFIX)

    def record(self) -> dict[str, Any]:
        """The settings and inputs that decide the staged frames (resume reuses them only when equal)."""
        return {"fps": self.fps, "resample": self.resample, "size": list(self.size),
                "sources": [s.record() for s in self.sources]}  # fmt: skip


def parse_intrinsics(text: str) -> tuple[float, float, float, float]:
    """'fx,fy,cx,cy' in pixels -> four positive finite floats (a one-line error otherwise)."""
    parts = text.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or not all(math.isfinite(v) and v > 0 for v in values):
        raise DatasetError(f"--intrinsics must be four positive numbers fx,fy,cx,cy in pixels, got {text!r}")
    return values  # type: ignore[return-value]


def load_task_map(path: Path) -> dict[str, str]:
    """A CSV (header `file,task`) or JSON object ({file: task}) naming each input's task."""
    if not path.is_file():
        raise DatasetError(f"--tasks {path}: file not found")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise DatasetError(f"--tasks {path}: not valid JSON ({e})") from e
        if not isinstance(data, dict) or not all(isinstance(v, str) and v for v in data.values()):
            raise DatasetError(f"--tasks {path}: expected a JSON object mapping file -> non-empty task text")
        return {str(k): v for k, v in data.items()}
    if path.suffix.lower() != ".csv":
        raise DatasetError(f"--tasks {path}: expected a .csv (columns file,task) or a .json file")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"file", "task"} <= set(rows[0]):
        raise DatasetError(f"--tasks {path}: expected a header row with columns 'file' and 'task'")
    mapping = {}
    for line, row in enumerate(rows, start=2):
        if not (row["file"] or "").strip() or not (row["task"] or "").strip():
            raise DatasetError(f"--tasks {path}: line {line} needs both a file and a task")
        mapping[row["file"].strip()] = row["task"].strip()
    return mapping


def plan_import(
    inputs: list[Path],
    *,
    out: Path,
    task: str | None = None,
    tasks: Path | None = None,
    fps: int | None = None,
    size: tuple[int, int] | None = None,
    intrinsics: str | None = None,
    fov_deg: float = DEFAULT_FOV_DEG,
    workers: int = 0,
    overwrite: bool = False,
) -> ImportPlan:
    """Check everything that can be checked without decoding; see the module docstring."""
    from robo4d.data.writer import sweep_stale

    sweep_stale(out)
    sweep_finished_work(out)
    if out.exists() and not overwrite:
        raise DatasetError(f"--out {out}: already exists; pass --overwrite to replace it")
    given = parse_intrinsics(intrinsics) if intrinsics is not None else None
    if not 0 < fov_deg < 180:
        raise DatasetError(f"--fov must be a horizontal field of view in degrees in (0, 180), got {fov_deg}")
    if fps is not None and fps <= 0:
        raise DatasetError(f"--fps must be a positive integer, got {fps}")
    if size is not None and (len(size) != 2 or min(size) <= 0 or size[0] % 2 or size[1] % 2):
        raise DatasetError(f"--size must be two positive even numbers H W (h264 yuv420p), got {size}")
    if workers < 0:
        raise DatasetError(f"--workers must be >= 0 (0: one per CPU core), got {workers}")
    if task is not None and not task.strip():
        raise DatasetError("--task must be non-empty text")
    paths = _expand(inputs)
    mapping = load_task_map(tasks) if tasks is not None else {}
    task_of = _assign_tasks(paths, mapping, tasks, task)
    sources = tuple(_probe(p, task_of[p]) for p in paths)

    if fps is None:
        folders = [s.path for s in sources if s.kind == "frames"]
        if folders:
            raise DatasetError(f"{folders[0]}: a folder of frames has no frame rate; pass --fps")
        rates = {s.path: round(s.rate) for s in sources}  # type: ignore[arg-type]
        if len(set(rates.values())) > 1:
            raise DatasetError(f"the videos have different frame rates {_few(rates)}; pass --fps to resample them all")
        fps = next(iter(rates.values()))
        if fps <= 0:
            raise DatasetError(f"{sources[0].path}: the container declares no frame rate; pass --fps")
        resample = False
    else:
        resample = True
    shapes = {s.path: (s.height, s.width) for s in sources}
    if size is None:
        if len(set(shapes.values())) > 1:
            raise DatasetError(f"the inputs have different resolutions {_few(shapes)} (HxW); pass --size H W")
        size = next(iter(shapes.values()))
        if size[0] % 2 or size[1] % 2:
            raise DatasetError(f"{sources[0].path}: {size[0]}x{size[1]} is odd; h264 needs even sides: pass --size H W")
    if given is not None and len(set(shapes.values())) > 1:
        raise DatasetError(f"--intrinsics describe one resolution, but the inputs have several {_few(shapes)}")
    per_source = tuple(_intrinsics(given, fov_deg, (s.height, s.width), size) for s in sources)
    return ImportPlan(out=out, sources=sources, fps=int(fps), resample=resample, size=(int(size[0]), int(size[1])),
                      intrinsics=per_source, intrinsics_assumed=given is None,
                      fov_deg=None if given is not None else fov_deg,
                      workers=workers or min(8, os.cpu_count() or 1), overwrite=overwrite)  # fmt: skip


def _few(values: dict[Path, Any]) -> str:
    shown = [f"{p.name}: {'x'.join(map(str, v)) if isinstance(v, tuple) else v}" for p, v in list(values.items())[:4]]
    return "(" + ", ".join(shown) + (", ..." if len(values) > 4 else "") + ")"


def _natural_key(path: Path) -> list[Any]:
    """frame_2 before frame_10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _expand(inputs: list[Path]) -> list[Path]:
    """Each input as one or more episode sources: a video file; a folder of videos (each one episode); a folder
    of frames (one episode)."""
    if not inputs:
        raise DatasetError("no input: give video files or folders (VIDEO_OR_DIR...)")
    paths: list[Path] = []
    for path in inputs:
        if not path.exists():
            raise DatasetError(f"{path}: no such file or folder")
        if path.is_file():
            if path.suffix.lower() not in VIDEO_SUFFIXES:
                raise DatasetError(f"{path}: not a video file (expected one of {', '.join(VIDEO_SUFFIXES)})")
            paths.append(path)
            continue
        files = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]
        videos = [p for p in files if p.suffix.lower() in VIDEO_SUFFIXES]
        images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        if videos and images:
            raise DatasetError(f"{path}: holds both videos and image frames; give a folder of one kind")
        if not videos and not images:
            kinds = ", ".join(VIDEO_SUFFIXES + IMAGE_SUFFIXES)
            raise DatasetError(f"{path}: holds no videos or image frames ({kinds})")
        paths += sorted(videos, key=_natural_key) if videos else [path]
    seen: set[Path] = set()
    for path in paths:
        if path.resolve() in seen:
            raise DatasetError(f"{path}: given twice")
        seen.add(path.resolve())
    return paths


def _assign_tasks(paths: list[Path], mapping: dict[str, str], tasks: Path | None, default: str | None) -> dict:
    """A mapping key names an input by its file (or folder) name, or by its path relative to the mapping file."""
    task_of: dict[Path, str] = {}
    unknown = []
    for key, text in mapping.items():
        by_path = [p for p in paths if tasks is not None and (tasks.parent / key).resolve() == p.resolve()]
        matches = by_path or [p for p in paths if p.name == key]
        if not matches:
            unknown.append(key)
        elif len(matches) > 1:
            raise DatasetError(f"--tasks {tasks}: {key!r} names several inputs ({', '.join(map(str, matches))})")
        else:
            task_of[matches[0]] = text
    if unknown:
        raise DatasetError(f"--tasks {tasks}: names files that are not among the inputs: {unknown[:5]}")
    missing = [p for p in paths if p not in task_of]
    if missing and default is None:
        what = f"are not in --tasks {tasks}" if tasks is not None else "have no task"
        raise DatasetError(f"{len(missing)} input(s) {what} (e.g. {missing[0]}); give --task TEXT as the default")
    return {p: task_of.get(p, default) for p in paths}


def _probe(path: Path, task: str) -> Source:
    """Open the source and decode its first frame: a broken file fails here, before any real decoding."""
    import av

    if path.is_dir():
        frames = tuple(sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key))
        first = _read_image(frames[0])
        return Source(path=path, kind="frames", frames=frames, height=first.shape[0], width=first.shape[1],
                      rate=None, task=task)  # fmt: skip
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DatasetError(f"{path}: has no video stream")
            stream = container.streams.video[0]
            frame = next(container.decode(stream), None)
            if frame is None:
                raise DatasetError(f"{path}: holds no decodable frame")
            rate = float(stream.average_rate or stream.guessed_rate or 0)
            return Source(path=path, kind="video", frames=(), height=frame.height, width=frame.width, rate=rate,
                          task=task)  # fmt: skip
    except av.error.FFmpegError as e:
        raise DatasetError(f"{path}: cannot decode this video ({e}); it is truncated, corrupt or not a video") from e


def _read_image(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"{path}: cannot decode this image")
    return image[..., ::-1]  # (H, W, 3) RGB


def _intrinsics(
    given: tuple[float, float, float, float] | None, fov_deg: float, source_hw: tuple[int, int], size: tuple[int, int]
) -> tuple[float, float, float, float]:
    """fx, fy, cx, cy at the stored size: the given (or assumed) source intrinsics scaled by the resize."""
    h, w = source_hw
    if given is None:
        f = (w / 2) / math.tan(math.radians(fov_deg) / 2)
        given = (f, f, w / 2, h / 2)
    sx, sy = size[1] / w, size[0] / h
    fx, fy, cx, cy = given
    return (fx * sx, fy * sy, cx * sx, cy * sy)


def intrinsics_matrix(values: tuple[float, float, float, float]) -> np.ndarray:
    fx, fy, cx, cy = values
    return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], np.float32)  # (3, 3)


# ------------------------------------------------------------------------------------------------
# Decoding (in workers) and writing (in order, in this process).


def decode_source(source: Source, *, size: tuple[int, int], fps: int, resample: bool) -> Iterator[np.ndarray]:
    """(H, W, 3) uint8 frames of one source at `size` (and at `fps` when resampling), one at a time."""
    if source.kind == "video":
        yield from _video_frames(source, size=size, fps=fps if resample else None)
        return
    for path in source.frames:
        image = _read_image(path)
        if image.shape[:2] != (source.height, source.width):
            raise DatasetError(
                f"{path}: frame is {image.shape[0]}x{image.shape[1]} but the folder's first frame is "
                f"{source.height}x{source.width}; every frame of a folder needs one size"
            )
        yield _resize(image, size)


def _video_frames(source: Source, *, size: tuple[int, int], fps: int | None) -> Iterator[np.ndarray]:
    """Decoded frames; with `fps`, output frame k is the latest source frame at or before k / fps."""
    import av

    eps = 1e-6
    next_k, prev, start, last_t = 0, None, None, 0.0
    try:
        with av.open(str(source.path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                image = _resize(frame.to_ndarray(format="rgb24"), size)
                if fps is None:
                    yield image
                    continue
                t = float(frame.time or 0.0)
                start = t if start is None else start
                last_t = t - start
                if prev is not None:
                    while next_k / fps < last_t - eps:
                        yield prev
                        next_k += 1
                prev = image
    except av.error.FFmpegError as e:
        raise DatasetError(f"{source.path}: decoding failed ({e}); the file is truncated or corrupt") from e
    if prev is not None:
        while next_k / fps <= last_t + eps:  # type: ignore[operator]
            yield prev
            next_k += 1


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    if image.shape[:2] == tuple(size):
        return np.ascontiguousarray(image)
    shrink = size[0] * size[1] < image.shape[0] * image.shape[1]
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _stage_one(job: tuple[int, Source, str, tuple[int, int], int, bool]) -> tuple[int, str, int]:
    """Decode one source into the work folder, frame by frame (memory stays one frame), unless a previous run
    finished it: `<stem>.u8` holds the raw (T, H, W, 3) bytes, `<stem>.json` (written last) says T.
    Returns (episode, stem, T)."""
    episode, source, stem, size, fps, resample = job
    done = Path(stem + ".json")
    if not done.is_file():
        tmp, count = Path(stem + ".u8.tmp"), 0
        with tmp.open("wb") as f:
            for frame in decode_source(source, size=size, fps=fps, resample=resample):
                f.write(frame.tobytes())
                count += 1
        if count == 0:
            raise DatasetError(f"{source.path}: no frame could be decoded")
        os.replace(tmp, stem + ".u8")
        _write_json_atomic(done, {"frames": count, "size": list(size)})
    return episode, stem, int(json.loads(done.read_text())["frames"])


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def staged_frames(stem: str, length: int, size: tuple[int, int]) -> np.ndarray:
    """(T, H, W, 3) uint8, memory-mapped from a staged episode."""
    return np.memmap(stem + ".u8", dtype=np.uint8, mode="r", shape=(length, size[0], size[1], 3))


def _staged(jobs: list, workers: int) -> Iterator[tuple[int, str, int]]:
    """Episodes in order, decoded by `workers` processes while this one writes the earlier ones."""
    if workers <= 1 or len(jobs) <= 1:
        yield from map(_stage_one, jobs)
        return
    # spawn: OpenCV and FFmpeg thread pools do not survive fork.
    with multiprocessing.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
        yield from pool.imap(_stage_one, jobs)


def prepare_work_dir(plan: ImportPlan) -> Path:
    """The work folder of `plan`: kept when it was made by the same plan (resume), otherwise emptied."""
    work = plan.work_dir
    record = plan.record()
    plan_file = work / _PLAN_FILE
    if work.exists() and (not plan_file.is_file() or json.loads(plan_file.read_text()) != record):
        shutil.rmtree(work)  # made by other inputs or settings: nothing there is ours to reuse
    work.mkdir(parents=True, exist_ok=True)
    plan_file.write_text(json.dumps(record, indent=2))
    return work


def run_import(plan: ImportPlan) -> Path:
    """Decode (or reuse staged) episodes, write the dataset and publish it atomically; returns its root."""
    from tqdm import tqdm

    from robo4d.data.features import Feature
    from robo4d.data.writer import DatasetWriter

    work = prepare_work_dir(plan)
    h, w = plan.size
    features = {
        types.image_key(CAMERA): Feature(dtype="video", shape=(h, w, 3), names=("height", "width", "channels")),
        types.intrinsics_key(CAMERA): Feature(dtype="float32", shape=(3, 3)),
    }
    jobs = [(e, s, str(work / f"episode_{e:06d}"), plan.size, plan.fps, plan.resample)
            for e, s in enumerate(plan.sources)]  # fmt: skip
    writer = DatasetWriter(plan.out, fps=plan.fps, features=features, robot_type=None, overwrite=plan.overwrite)
    episodes = []
    try:
        bar = tqdm(_staged(jobs, plan.workers), total=len(jobs), desc=f"import {plan.out.name}", unit="video")
        for episode, stem, length in bar:
            source = plan.sources[episode]
            frames = staged_frames(stem, length, plan.size)  # (T, H, W, 3) uint8
            k = np.broadcast_to(intrinsics_matrix(plan.intrinsics[episode]), (length, 3, 3))
            writer.add_episode({types.image_key(CAMERA): frames, types.intrinsics_key(CAMERA): k}, task=source.task,
                               extra={types.EPISODE_SOURCE: str(source.path)})  # fmt: skip
            episodes.append({"source": str(source.path), "frames": length, "source_size": [source.height, source.width],
                             "intrinsics": list(plan.intrinsics[episode])})  # fmt: skip
        root = writer.finalize(robo4d_meta={META_FIELD: _meta(plan, episodes)})
    except BaseException:
        writer.abort()  # the staged episodes stay for the next run
        raise
    shutil.rmtree(work)
    return root


def _meta(plan: ImportPlan, episodes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "camera": CAMERA,
        "fps": plan.fps,
        "fps_source": "--fps (videos resampled)" if plan.resample else "container",
        "size": list(plan.size),
        "intrinsics_assumed": plan.intrinsics_assumed,
        "intrinsics_note": (
            f"guessed: {plan.fov_deg} deg horizontal field of view, square pixels, centred principal point"
            if plan.intrinsics_assumed
            else "given with --intrinsics (source pixels), scaled to the stored size"
        ),
        "fov_deg": plan.fov_deg,
        "episodes": episodes,
        "plan": plan.record(),  # recognises this import's work folder if a kill leaves it behind
    }


def sweep_finished_work(out: Path) -> bool:
    """A run killed between publishing and removing its work folder leaves `<out>.import-work/` beside the
    dataset it built. That folder is recognised by its plan, which the dataset records, and removed."""
    from robo4d.data.reader import Dataset

    work = out.parent / (out.name + WORK_SUFFIX)
    plan_file = work / _PLAN_FILE
    if not plan_file.is_file() or not (out / types.INFO_JSON).is_file():
        return False
    try:
        built_from = Dataset(out).robo4d_meta.get(META_FIELD, {}).get("plan")
    except DatasetError:  # unfinished or unreadable: the work folder may be needed to resume
        return False
    if built_from is None or built_from != json.loads(plan_file.read_text()):
        return False
    shutil.rmtree(work)
    return True


def describe_plan(plan: ImportPlan) -> str:
    fx, fy, cx, cy = plan.intrinsics[0]
    guess = f"assumed from a {plan.fov_deg} deg field of view" if plan.intrinsics_assumed else "given"
    return (f"{len(plan.sources)} episode(s) -> {plan.out} at {plan.size[0]}x{plan.size[1]}, {plan.fps} fps; "
            f"intrinsics {guess} (episode 0: fx={fx:.1f} fy={fy:.1f} cx={cx:.1f} cy={cy:.1f})")  # fmt: skip
