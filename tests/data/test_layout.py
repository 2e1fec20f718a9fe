"""Our files read back with plain pyarrow, json and PyAV (no robo4d reader): LeRobot v3.0's layout exactly."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from data_fixtures import CAM, FPS, LENGTHS, TASKS, H, W

from robo4d import types

VIDEO = types.image_key(CAM)


def test_info_json(dataset_root: Path) -> None:
    info = json.loads((dataset_root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == FPS and info["robot_type"] == "sawyer"
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (4, sum(LENGTHS), 2)
    assert info["splits"] == {"train": "0:4"} and info["chunks_size"] == 1000
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    assert {"data_files_size_in_mb", "video_files_size_in_mb"} <= set(info)
    features = info["features"]
    for key in types.DEFAULT_COLUMNS:
        assert features[key]["shape"] == [1] and features[key]["dtype"] in ("int64", "float32")
    assert features[types.depth_key(CAM)] == {"dtype": "uint16", "shape": [H, W], "names": ["height", "width"]}
    video = features[VIDEO]
    assert video["dtype"] == "video" and video["shape"] == [H, W, 3]
    assert video["names"] == ["height", "width", "channels"]
    assert video["info"]["video.codec"] == "h264" and video["info"]["video.pix_fmt"] == "yuv420p"
    assert (video["info"]["video.height"], video["info"]["video.width"], video["info"]["video.fps"]) == (H, W, FPS)


def test_data_files(dataset_root: Path) -> None:
    files = sorted((dataset_root / "data").glob("chunk-*/file-*.parquet"))
    table = pa.concat_tables([pq.read_table(f) for f in files])
    assert table.num_rows == sum(LENGTHS)
    assert VIDEO not in table.column_names
    assert set(types.DEFAULT_COLUMNS) <= set(table.column_names)
    np.testing.assert_array_equal(table[types.INDEX].to_numpy(), np.arange(sum(LENGTHS)))
    assert table.schema.field(types.TIMESTAMP).type == pa.float32()
    assert table.schema.field(types.STATE).type == pa.list_(pa.float32(), types.STATE_DIM)  # HF Sequence(length)
    assert table.schema.field(types.depth_key(CAM)).type == pa.list_(pa.list_(pa.uint16()))  # HF Array2D storage
    assert table.schema.field(types.SUCCESS).type == pa.bool_()  # shape (1,) is a plain Value
    assert len(table[types.depth_key(CAM)][0].as_py()) == H


def test_episodes_metadata_and_videos(dataset_root: Path) -> None:
    episodes = pq.read_table(dataset_root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    ends = np.cumsum(LENGTHS)
    frames_in_file: dict[str, int] = {}
    for ep, row in enumerate(episodes):
        assert row["episode_index"] == ep and row["length"] == LENGTHS[ep] and row["tasks"] == [TASKS[ep % 2]]
        assert (row["dataset_from_index"], row["dataset_to_index"]) == (ends[ep] - LENGTHS[ep], ends[ep])
        path = f"videos/{VIDEO}/chunk-{row[f'videos/{VIDEO}/chunk_index']:03d}/"
        path += f"file-{row[f'videos/{VIDEO}/file_index']:03d}.mp4"
        start = frames_in_file.get(path, 0)
        assert row[f"videos/{VIDEO}/from_timestamp"] == start / FPS
        assert row[f"videos/{VIDEO}/to_timestamp"] == (start + LENGTHS[ep]) / FPS
        frames_in_file[path] = start + LENGTHS[ep]
        data = pq.read_table(
            dataset_root / f"data/chunk-{row['data/chunk_index']:03d}/file-{row['data/file_index']:03d}.parquet"
        )
        assert ep in data[types.EPISODE_INDEX].to_pylist()
        assert row["stats/observation.state/mean"] is not None and len(row["stats/observation.images.front/q99"]) == 3
        assert row[types.EPISODE_SEED] == 100 + ep
    assert len(frames_in_file) > 1
    for path, count in frames_in_file.items():
        with av.open(str(dataset_root / path)) as container:
            decoded = sum(1 for _ in container.decode(video=0))
            assert decoded == count and container.streams.video[0].codec_context.name == "h264"


def test_tasks_and_stats(dataset_root: Path) -> None:
    tasks = pq.read_table(dataset_root / "meta/tasks.parquet")
    assert tasks.column_names == ["task_index", "task"] and tasks["task"].to_pylist() == list(TASKS)
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["task"]  # pandas restores the index
    stats = json.loads((dataset_root / "meta/stats.json").read_text())
    assert set(stats[types.STATE]) == {"min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"}
    assert np.asarray(stats[VIDEO]["mean"]).shape == (3, 1, 1)
    assert json.loads((dataset_root / "meta/robo4d.json").read_text())["depth_scale_m"] == 0.001
