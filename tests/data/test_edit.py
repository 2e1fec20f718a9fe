"""add_features: new columns, stats and declarations; copies, in-place swaps, refusals and failed computes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from data_fixtures import CAM, LENGTHS

from robo4d import types
from robo4d.data import layout
from robo4d.data.edit import add_features
from robo4d.data.errors import DatasetError
from robo4d.data.features import Feature
from robo4d.data.reader import Dataset

TRACKS = types.gt_points_key(CAM)
VISIBLE = types.gt_points_visible_key(CAM)
NEW = {TRACKS: Feature(dtype="float32", shape=(5, 3)), VISIBLE: Feature(dtype="bool", shape=(5,))}


def tracks(ep: int) -> dict[str, np.ndarray]:
    t = LENGTHS[ep]
    return {
        TRACKS: np.full((t, 5, 3), ep, np.float32) + np.arange(t, dtype=np.float32)[:, None, None],
        VISIBLE: np.ones((t, 5), bool),
    }


def test_add_features_to_a_copy(dataset_root: Path, tmp_path: Path) -> None:
    out = add_features(dataset_root, NEW, tracks, out=tmp_path / "with_tracks")
    assert TRACKS not in Dataset(dataset_root).features  # the source is untouched
    ds = Dataset(out)
    assert ds.features[TRACKS] == NEW[TRACKS]
    for ep in range(ds.num_episodes):
        got = ds.read_episode(ep, [TRACKS, VISIBLE, types.STATE, types.image_key(CAM)])
        np.testing.assert_array_equal(got[TRACKS], tracks(ep)[TRACKS])
        np.testing.assert_array_equal(
            got[types.STATE], Dataset(dataset_root).read_episode(ep, [types.STATE])[types.STATE]
        )
    everything = np.concatenate([tracks(ep)[TRACKS] for ep in range(len(LENGTHS))])
    np.testing.assert_allclose(ds.stats[TRACKS]["mean"], everything.astype(np.float64).mean(0), rtol=1e-9)
    assert types.STATE in ds.stats
    episodes = pq.read_table(next((out / layout.EPISODES_DIR).glob("*/*.parquet")))
    assert episodes[layout.ep_stats_column(TRACKS, "max")].to_pylist()[1][0] == [LENGTHS[1], LENGTHS[1], LENGTHS[1]]


def test_existing_columns_need_overwrite_and_in_place_swaps(dataset_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    shutil.copytree(dataset_root, root)
    add_features(root, NEW, tracks)
    with pytest.raises(DatasetError, match="already exists; pass overwrite=True"):
        add_features(root, NEW, tracks)
    doubled = lambda ep: {k: v * 2 if v.dtype != bool else v for k, v in tracks(ep).items()}  # noqa: E731
    add_features(root, NEW, doubled, overwrite=True)
    ds = Dataset(root)
    np.testing.assert_array_equal(ds.read_episode(2, [TRACKS])[TRACKS], tracks(2)[TRACKS] * 2)
    assert ds.read_episode(1, [types.image_key(CAM)])[types.image_key(CAM)].shape[0] == LENGTHS[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no stray siblings
    with pytest.raises(DatasetError, match="is a video feature"):
        add_features(root, {types.image_key(CAM): Feature(dtype="float32", shape=(1,))}, tracks, overwrite=True)


def test_failed_compute_leaves_the_dataset_untouched(dataset_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    shutil.copytree(dataset_root, root)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}

    def bad(ep: int) -> dict[str, np.ndarray]:
        out = tracks(ep)
        if ep == 2:
            out[TRACKS] = out[TRACKS][:-1]
        return out

    with pytest.raises(
        DatasetError, match=r"compute\(episode 2\): 'ground_truth.points.front' has 8 frames, the episode has 9"
    ):
        add_features(root, NEW, bad)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    with pytest.raises(DatasetError, match=r"compute\(episode 0\): missing key\(s\) \['ground_truth.points_visible"):
        add_features(root, NEW, lambda ep: {TRACKS: tracks(ep)[TRACKS]})
