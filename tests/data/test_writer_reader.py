"""Round trips through DatasetWriter and Dataset: exact values, 1 mm depth, video PSNR, rolling files, stats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_fixtures import CAM, FEATURES, FPS, LENGTHS, TASKS, make_episode, write_dataset

from robo4d import types
from robo4d.data import layout
from robo4d.data.errors import DatasetError
from robo4d.data.reader import Dataset
from robo4d.data.writer import DatasetWriter

VIDEO = types.image_key(CAM)
DEPTH = types.depth_key(CAM)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def test_round_trip_values(dataset_root: Path, episodes: list[dict[str, np.ndarray]]) -> None:
    ds = Dataset(dataset_root)
    for ep, frames in enumerate(episodes):
        got = ds.read_episode(ep)
        for key, want in frames.items():
            if key == VIDEO:
                assert got[key].dtype == np.uint8 and got[key].shape == want.shape
                # Measured 39.7 dB at the default crf 12; yuv420p chroma subsampling alone caps these
                # 32x48 frames at 40.3 dB (crf 0), so the encoder costs well under 1 dB.
                assert psnr(got[key], want) > 38.5
            elif key == DEPTH:
                assert got[key].dtype == np.float32
                assert np.abs(got[key] - want).max() <= 0.0005 + 1e-6  # rounded to the nearest millimetre
            elif key == types.SUCCESS:
                np.testing.assert_array_equal(got[key], want)  # (T,) scalars
            else:
                assert got[key].dtype == want.dtype
                np.testing.assert_array_equal(got[key], want)
        np.testing.assert_array_equal(got[types.FRAME_INDEX], np.arange(LENGTHS[ep]))
        np.testing.assert_array_equal(got[types.INDEX], sum(LENGTHS[:ep]) + np.arange(LENGTHS[ep]))
        np.testing.assert_allclose(got[types.TIMESTAMP], np.arange(LENGTHS[ep]) / FPS, rtol=1e-6)
        assert (got[types.TASK_INDEX] == ep % 2).all() and (got[types.EPISODE_INDEX] == ep).all()


def test_depth_exact_to_the_millimetre(tmp_path: Path) -> None:
    frames = make_episode(3, seed=7)
    mm = np.random.default_rng(0).integers(0, 65535, size=frames[DEPTH].shape)
    frames[DEPTH] = (mm * 0.001).astype(np.float64)
    ds = Dataset(write_dataset(tmp_path / "d", [frames]))
    got = ds.read_episode(0, [DEPTH])[DEPTH]
    np.testing.assert_array_equal(np.rint(got.astype(np.float64) * 1000).astype(np.int64), mm)


def test_read_frames_matches_episode(dataset_root: Path) -> None:
    ds = Dataset(dataset_root)
    whole = ds.read_episode(1)
    idx = np.array([14, 0, 7, 7, 3])
    part = ds.read_frames(1, idx)
    for key in whole:
        np.testing.assert_array_equal(part[key], whole[key][idx])
    with pytest.raises(DatasetError, match="episode 1 has frames 0..14"):
        ds.read_frames(1, [15])


def test_metadata(dataset_root: Path) -> None:
    ds = Dataset(dataset_root)
    assert (ds.num_episodes, ds.num_frames, ds.fps) == (len(LENGTHS), sum(LENGTHS), FPS)
    assert ds.tasks == list(TASKS) and ds.episode_task(3) == TASKS[1]
    assert [ds.episode_length(e) for e in range(ds.num_episodes)] == list(LENGTHS)
    meta = ds.episode_meta(2)
    assert meta[types.EPISODE_SUCCESS] is True and meta[types.EPISODE_SEED] == 102
    assert ds.robo4d_meta == {"format_version": 1, "depth_scale_m": 0.001, "world": "tiny"}
    assert set(FEATURES) | set(types.DEFAULT_COLUMNS) == set(ds.features)
    assert ds.features[VIDEO].info["video.codec"] == "h264" and ds.robot_type == "sawyer"
    with pytest.raises(DatasetError, match="episode 4 out of range"):
        ds.episode_length(4)


def test_files_roll_over_at_the_size_limits(dataset_root: Path) -> None:
    ds = Dataset(dataset_root)
    data_files = {ds.data_file(e) for e in range(ds.num_episodes)}
    video_files = {ds.video_file(e, VIDEO) for e in range(ds.num_episodes)}
    assert len(data_files) > 1 and len(video_files) > 1
    assert (dataset_root / "data/chunk-000/file-001.parquet").is_file()


def test_stats_match_numpy(dataset_root: Path, episodes: list[dict[str, np.ndarray]]) -> None:
    ds = Dataset(dataset_root)
    state = np.concatenate([e[types.STATE] for e in episodes]).astype(np.float64)  # (sum T, P)
    s = ds.stats[types.STATE]
    np.testing.assert_allclose(s["mean"], state.mean(0), rtol=1e-9)
    np.testing.assert_allclose(s["std"], state.std(0), rtol=1e-9)
    np.testing.assert_array_equal(s["min"], state.min(0))
    assert s["count"].tolist() == [sum(LENGTHS)]
    assert s["q01"].shape == s["q99"].shape == (types.STATE_DIM,) and (s["q01"] <= s["q99"]).all()
    video = ds.stats[VIDEO]
    assert video["mean"].shape == (3, 1, 1) and 0.0 <= video["min"].min() and video["max"].max() <= 1.0
    depth = ds.stats[DEPTH]
    assert depth["mean"].shape == (1, 1) and 0.04 < depth["min"].item() and depth["max"].item() < 4.01  # metres


def test_identical_inputs_give_identical_bytes(tmp_path: Path, episodes: list[dict[str, np.ndarray]]) -> None:
    a = write_dataset(tmp_path / "a", episodes[:2])
    b = write_dataset(tmp_path / "b", episodes[:2])
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_unfinished_dataset_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "crashed"
    writer = DatasetWriter(root, fps=FPS, features=FEATURES, robot_type=None)
    writer.add_episode(make_episode(5, seed=1), task="t")
    # The process "dies" here: nothing was published and the partial directory reads as unfinished.
    assert not root.exists()
    with pytest.raises(DatasetError, match="unfinished dataset"):
        Dataset(writer.tmp)
    writer.abort()
    assert not writer.tmp.exists()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda f: f.pop(types.ACTION), r"episode 0: missing key\(s\) \['action'\]"),
        (lambda f: f.update({"observation.extra": np.zeros(5)}), r"undeclared key\(s\) \['observation.extra'\]"),
        (lambda f: f.update({types.STATE: np.zeros((5, 7), np.float32)}), r"'observation.state' has shape \(5, 7\)"),
        (lambda f: f.update({types.ACTION: np.zeros((5, 4), np.int64)}), "'action' is declared float32"),
        (lambda f: f[types.STATE].__setitem__((3, 2), np.nan), "'observation.state' has NaN or inf at frame 3"),
        (lambda f: f[DEPTH].__setitem__((1, 0, 0), np.inf), "'observation.depth.front' has NaN or inf at frame 1"),
        (lambda f: f[DEPTH].__setitem__((2, 0, 0), 70.0), "storable depth is"),
        (lambda f: f.update({VIDEO: f[VIDEO].astype(np.float32)}), "must be uint8"),
        (lambda f: f.update({types.SUCCESS: np.zeros(4, bool)}), "same T >= 1 frames"),
    ],
)
def test_writer_rejects_bad_episodes(tmp_path: Path, change, match: str) -> None:
    writer = DatasetWriter(tmp_path / "bad", fps=FPS, features=FEATURES, robot_type=None)
    frames = make_episode(5, seed=3)
    change(frames)
    with pytest.raises(DatasetError, match=match):
        writer.add_episode(frames, task="t")
    writer.abort()


def test_writer_refuses_existing_root_and_inconsistent_extra(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "d", [make_episode(4, seed=0)])
    with pytest.raises(DatasetError, match="already exists"):
        DatasetWriter(root, fps=FPS, features=FEATURES, robot_type=None)
    writer = DatasetWriter(tmp_path / "e", fps=FPS, features=FEATURES, robot_type=None)
    writer.add_episode(make_episode(4, seed=0), task="t", extra={types.EPISODE_SEED: 1})
    with pytest.raises(DatasetError, match="episode 1: extra has keys/types"):
        writer.add_episode(make_episode(4, seed=1), task="t", extra={types.EPISODE_SEED: 1.5})
    writer.abort()


def test_overwrite_replaces_atomically(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "d", [make_episode(4, seed=0)])
    writer = DatasetWriter(root, fps=FPS, features=FEATURES, robot_type=None, overwrite=True)
    writer.add_episode(make_episode(6, seed=1), task="new")
    assert Dataset(root).num_frames == 4  # the old dataset stays readable until finalize
    writer.finalize()
    assert Dataset(root).num_frames == 6 and not list(tmp_path.glob("d.*"))
    assert not (root / layout.INCOMPLETE_MARKER).exists()
