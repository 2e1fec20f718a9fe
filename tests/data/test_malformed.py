"""Bad datasets are refused with an error naming the file, the field and what was expected."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from data_fixtures import CAM

from robo4d import types
from robo4d.data import layout
from robo4d.data.errors import DatasetError
from robo4d.data.reader import Dataset


@pytest.fixture
def copy(dataset_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    shutil.copytree(dataset_root, root)
    return root


def edit_info(root: Path, change) -> None:
    path = root / types.INFO_JSON
    info = json.loads(path.read_text())
    change(info)
    path.write_text(json.dumps(info))


def test_missing_directory_and_files(copy: Path) -> None:
    with pytest.raises(DatasetError, match="nowhere: dataset directory does not exist"):
        Dataset(copy.parent / "nowhere")
    (copy / "data/chunk-000/file-001.parquet").unlink()
    with pytest.raises(DatasetError, match=r"file-001.parquet: data file is missing"):
        Dataset(copy)
    (copy / types.TASKS_PARQUET).unlink()
    with pytest.raises(DatasetError, match=r"meta/tasks.parquet: file is missing"):
        Dataset(copy)


def test_malformed_info_json(copy: Path) -> None:
    info = copy / types.INFO_JSON
    text = info.read_text()
    info.write_text(text[:-20])
    with pytest.raises(DatasetError, match=r"meta/info.json: not valid JSON"):
        Dataset(copy)
    info.write_text(text)
    edit_info(copy, lambda i: i.pop("fps"))
    with pytest.raises(DatasetError, match=r"meta/info.json: missing field 'fps'"):
        Dataset(copy)
    info.write_text(text)
    edit_info(copy, lambda i: i["features"][types.ACTION].pop("shape"))
    with pytest.raises(DatasetError, match=r"features\['action'\]: missing field 'shape'"):
        Dataset(copy)


def test_unknown_codebase_version(copy: Path) -> None:
    edit_info(copy, lambda i: i.update(codebase_version="v9.9"))
    with pytest.raises(DatasetError, match=r"info.json: field 'codebase_version' is 'v9.9'; robo4d reads"):
        Dataset(copy)


def test_shape_disagreeing_with_the_declaration(copy: Path) -> None:
    edit_info(copy, lambda i: i["features"][types.STATE].update(shape=[9]))
    with pytest.raises(DatasetError, match=r"file-000.parquet: column 'observation.state': .*fixed size 8"):
        Dataset(copy)
    edit_info(copy, lambda i: i["features"][types.STATE].update(shape=[8]))
    # Nested lists carry no size in their type; the mismatch shows when the rows are read.
    edit_info(copy, lambda i: i["features"][types.intrinsics_key(CAM)].update(shape=[3, 4]))
    ds = Dataset(copy)
    with pytest.raises(DatasetError, match=r"column 'observation.intrinsics.front' has a list of length 3 at axis 1"):
        ds.read_episode(0, [types.intrinsics_key(CAM)])


def test_truncated_video(copy: Path) -> None:
    video = next((copy / "videos").rglob("file-001.mp4"))
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    with pytest.raises(DatasetError, match=r"file-001.mp4: cannot open video .*truncated"):
        Dataset(copy)


def test_nan_in_a_numeric_column(copy: Path) -> None:
    path = copy / "data/chunk-000/file-002.parquet"
    table = pq.read_table(path)
    state = np.stack(table[types.STATE].to_numpy(zero_copy_only=False)).astype(np.float32)  # (rows, P)
    state[4, 1] = np.nan
    column = pa.FixedSizeListArray.from_arrays(pa.array(state.reshape(-1)), state.shape[1])
    pq.write_table(table.set_column(table.column_names.index(types.STATE), types.STATE, column), path)
    ds = Dataset(copy)
    ep = int(table[types.EPISODE_INDEX][0].as_py())
    with pytest.raises(
        DatasetError,
        match=rf"file-002.parquet: column 'observation.state' has NaN or inf in "
        rf"episode {ep} at frame 4",
    ):
        ds.read_episode(ep)


def test_unfinished_dataset(copy: Path) -> None:
    (copy / layout.INCOMPLETE_MARKER).write_text("")
    with pytest.raises(DatasetError, match="unfinished dataset"):
        Dataset(copy)


def test_episode_metadata_disagreeing_with_info(copy: Path) -> None:
    edit_info(copy, lambda i: i.update(total_frames=i["total_frames"] + 1))
    with pytest.raises(DatasetError, match="field 'total_frames' is 51 but the episodes hold 50"):
        Dataset(copy)
