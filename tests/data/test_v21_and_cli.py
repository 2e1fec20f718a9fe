"""Reading LeRobot v2.1 (one parquet and one mp4 per episode, jsonl metadata); the `robo4d data info` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from data_fixtures import CAM, FPS, LENGTHS, TASKS

from robo4d import cli, types
from robo4d.data.reader import Dataset
from robo4d.data.video import VideoFileWriter

VIDEO = types.image_key(CAM)


def to_v21(src: Dataset, root: Path) -> Path:
    """Lay `src` out as LeRobot v2.1 writes it, independently of robo4d's writer."""
    info = json.loads((src.root / types.INFO_JSON).read_text())
    info.update(
        codebase_version="v2.1",
        total_chunks=1,
        total_videos=src.num_episodes,
        data_path="data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        video_path="videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
    )
    for key in ("data_files_size_in_mb", "video_files_size_in_mb"):
        info.pop(key)
    (root / "meta").mkdir(parents=True)
    (root / types.INFO_JSON).write_text(json.dumps(info, indent=4))
    episodes, stats = [], []
    for ep in range(src.num_episodes):
        rows = pq.read_table(src.data_file(ep)).slice(src.data_row_offset(ep), src.episode_length(ep))
        (root / "data/chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(rows, root / f"data/chunk-000/episode_{ep:06d}.parquet")
        video = VideoFileWriter(
            root / f"videos/chunk-000/{VIDEO}/episode_{ep:06d}.mp4", fps=FPS, height=32, width=48, crf=12, gop=10
        )
        video.append(src.read_episode(ep, [VIDEO])[VIDEO])
        video.close()
        episodes.append({"episode_index": ep, "tasks": [src.episode_task(ep)], "length": src.episode_length(ep)})
        state = src.read_episode(ep, [types.STATE])[types.STATE].astype(np.float64)
        stats.append(
            {
                "episode_index": ep,
                "stats": {
                    types.STATE: {
                        "min": state.min(0).tolist(),
                        "max": state.max(0).tolist(),
                        "mean": state.mean(0).tolist(),
                        "std": state.std(0).tolist(),
                        "count": [len(state)],
                    }
                },
            }
        )
    for name, rows in (
        ("episodes", episodes),
        ("episodes_stats", stats),
        ("tasks", [{"task_index": i, "task": t} for i, t in enumerate(src.tasks)]),
    ):
        (root / f"meta/{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_reads_v21(dataset_root: Path, tmp_path: Path) -> None:
    v3 = Dataset(dataset_root)
    v21 = Dataset(to_v21(v3, tmp_path / "v21"))
    assert v21.codebase_version == "v2.1" and v21.num_frames == sum(LENGTHS) and v21.tasks == list(TASKS)
    for ep in range(v21.num_episodes):
        a, b = v3.read_episode(ep), v21.read_episode(ep)
        for key in a:
            if key == VIDEO:  # re-encoded once more, so close rather than equal
                assert np.abs(a[key].astype(int) - b[key]).mean() < 2.0
            else:
                np.testing.assert_array_equal(a[key], b[key])
    assert v21.episode_from_index(2) == sum(LENGTHS[:2])
    everything = np.concatenate([v3.read_episode(e, [types.STATE])[types.STATE] for e in range(4)]).astype(float)
    np.testing.assert_allclose(v21.stats[types.STATE]["std"], everything.std(0), rtol=1e-9)
    assert v21.read_frames(1, [3, 0], [VIDEO])[VIDEO].shape == (2, 32, 48, 3)


def test_info_command(dataset_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli.main(["data", "info", str(dataset_root)])
    out = capsys.readouterr().out
    assert f"episodes  4 (length min {min(LENGTHS)}" in out and f"frames    {sum(LENGTHS)} at {FPS} fps" in out
    assert "observation.depth.front" in out and "uint16" in out and TASKS[1] in out
    assert f"video     {VIDEO}: 48x32 h264 yuv420p {FPS} fps in 2 file(s)" in out
    assert "'world': 'tiny'" in out and "MiB" in out


def test_commands_module_is_import_light() -> None:
    code = "import sys, robo4d.data.commands; print(sorted({'pyarrow', 'av', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
