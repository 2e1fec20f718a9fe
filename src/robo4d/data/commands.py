"""`robo4d data ...` commands. Import-light: the dataset code loads only when a command runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import tyro

from robo4d.data.import_video import DEFAULT_FOV_DEG

if TYPE_CHECKING:
    from robo4d.data.reader import Dataset


@dataclass(frozen=True, kw_only=True)
class Info:
    """Print a dataset's summary: episodes, frames, features, tasks, videos, size, robo4d metadata."""

    path: tyro.conf.Positional[Path]  # dataset root (the folder holding meta/info.json)

    def run(self) -> None:
        from robo4d.data.reader import Dataset

        # Videos are checked by describe(), which lists every problem instead of stopping at the first.
        print(describe(Dataset(self.path, check_videos=False)))


@dataclass(frozen=True, kw_only=True)
class ImportVideo:
    """Import your own videos as a LeRobot v3.0 human-video dataset (camera `ego`: RGB + per-frame intrinsics; no
    depth, state or actions), ready for `robo4d extract tracks --camera ego --depth model` and video pre-training.

    Inputs: video files, folders of videos (one episode each), or folders of image frames (one episode each, in
    natural name order). Sources are never modified. An interrupted import resumes when the same command is run
    again: decoded episodes are kept in OUT.import-work/ until the dataset is published."""

    inputs: Annotated[tuple[Path, ...], tyro.conf.Positional, tyro.conf.arg(metavar="VIDEO_OR_DIR...")]  # sources
    out: Path  # the dataset to write (published atomically when complete)
    task: str | None = None  # the task text of every input (the default for inputs --tasks does not name)
    tasks: Path | None = None  # CSV (header file,task) or JSON {file: task}: per-input task, by file/folder name
    fps: int | None = None  # frame rate (default: the videos' own, rounded); resamples videos; needed for frames
    size: tuple[int, int] | None = None  # resize every frame to H W (even numbers); needed for mixed resolutions
    intrinsics: str | None = None  # fx,fy,cx,cy in source pixels; default: assumed from --fov (recorded as such)
    fov: float = DEFAULT_FOV_DEG  # horizontal field of view in degrees assumed when --intrinsics is not given
    workers: int = 0  # decoding processes (0: one per CPU core, at most 8)
    overwrite: bool = False  # replace an existing dataset at --out

    def run(self) -> None:
        from robo4d.data.import_video import describe_plan, plan_import, run_import

        plan = plan_import(list(self.inputs), out=self.out, task=self.task, tasks=self.tasks, fps=self.fps,
                           size=self.size, intrinsics=self.intrinsics, fov_deg=self.fov, workers=self.workers,
                           overwrite=self.overwrite)  # fmt: skip
        print(describe_plan(plan))
        root = run_import(plan)
        print(f"{root}: done; next: robo4d extract tracks --dataset {root} --camera ego --depth model "
              "--depth-model-dir DIR --depth-median METRES")  # fmt: skip


def describe(ds: Dataset) -> str:
    files = [p for p in ds.root.rglob("*") if p.is_file()]
    size_mb = sum(p.stat().st_size for p in files) / 2**20
    lengths = ds.episode_lengths
    lines = [
        f"dataset   {ds.root}",
        f"format    LeRobot {ds.codebase_version}, robot_type={ds.robot_type}",
        f"episodes  {ds.num_episodes} (length min {lengths.min()}, mean {lengths.mean():.1f}, max {lengths.max()})",
        f"frames    {ds.num_frames} at {ds.fps} fps = {ds.num_frames / ds.fps:.1f} s",
        f"size      {size_mb:.2f} MiB in {len(files)} files",
        "features",
    ]
    width = max(len(k) for k in ds.features)
    for key, feature in ds.features.items():
        lines.append(f"  {key:<{width}}  {feature.dtype:<8} {tuple(feature.shape)}")
    lines.append(f"tasks     {len(ds.tasks)}")
    lines += [f"  [{i}] {task}" for i, task in enumerate(ds.tasks)]
    for key in ds.video_keys:
        info = ds.features[key].info or {}
        n_files = len({ds.video_file(e, key) for e in range(ds.num_episodes)})
        lines.append(
            f"video     {key}: {info.get('video.width')}x{info.get('video.height')} {info.get('video.codec')} "
            f"{info.get('video.pix_fmt')} {info.get('video.fps')} fps in {n_files} file(s)"
        )
    lines.append(f"robo4d    {ds.robo4d_meta if ds.robo4d_meta else '(none: not written by robo4d)'}")
    problems = ds.video_problems()
    if problems:
        lines.append(f"PROBLEMS  {len(problems)} video file(s) cannot be read as declared:")
        lines += [f"  {p}" for p in problems]
    return "\n".join(lines)


COMMANDS: dict[str, type] = {"info": Info, "import-video": ImportVideo}
