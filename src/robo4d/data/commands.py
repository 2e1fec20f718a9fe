"""`robo4d data ...` commands. Import-light: the dataset code loads only when a command runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import tyro

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


COMMANDS: dict[str, type] = {"info": Info}
