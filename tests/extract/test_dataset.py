"""Extraction over a real (tiny) LeRobot dataset written with data.writer: shards, merge, errors."""

import shutil

import numpy as np
import pytest
from extract_fixtures import pinhole, translating_clip

from robo4d import types
from robo4d.data.features import Feature
from robo4d.data.reader import Dataset
from robo4d.data.writer import DatasetWriter
from robo4d.extract import runner
from robo4d.extract.errors import ExtractError
from robo4d.extract.pipeline import LiftConfig
from robo4d.extract.queries import grid_queries
from robo4d.extract.viz import render_episode

# T > 40: data.writer (as of this commit) stats the mp4 before x264 (40-frame lookahead) has flushed any packet.
SIZE, T, EPISODES = 32, 48, 3
SETTINGS = runner.ExtractSettings(lift=LiftConfig(grid=4))


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds") / "human"
    video = Feature(dtype="video", shape=(SIZE, SIZE, 3))
    features = {
        types.image_key("ego"): video,
        types.depth_key("ego"): Feature(dtype="uint16", shape=(SIZE, SIZE), names=("height", "width")),
        types.intrinsics_key("ego"): Feature(dtype="float32", shape=(3, 3)),
        types.image_key("side"): video,  # no depth
        types.intrinsics_key("side"): Feature(dtype="float32", shape=(3, 3)),
        types.image_key("bare"): video,  # no intrinsics
        types.gt_points_key("ego"): Feature(dtype="float32", shape=(16, 3)),
        types.gt_points_visible_key("ego"): Feature(dtype="bool", shape=(16,)),
    }
    writer = DatasetWriter(root, fps=10, features=features, robot_type=None)
    for ep in range(EPISODES):
        frames = translating_clip(T, SIZE, (0.5 * ep, 0.25), seed=ep)
        k = np.broadcast_to(pinhole(SIZE, 40.0), (T, 3, 3))
        uv = grid_queries(SIZE, SIZE, 4)[None] + np.arange(T)[:, None, None] * np.float32([0.5 * ep, 0.25])
        gt = np.concatenate([(uv - SIZE / 2) / 40.0 * (1 + ep), np.full((T, 16, 1), 1.0 + ep)], -1)
        writer.add_episode(
            {
                types.image_key("ego"): frames,
                types.depth_key("ego"): np.full((T, SIZE, SIZE), 1.0 + ep, np.float32),
                types.intrinsics_key("ego"): k,
                types.image_key("side"): frames,
                types.intrinsics_key("side"): k,
                types.image_key("bare"): frames,
                types.gt_points_key("ego"): gt.astype(np.float32),
                types.gt_points_visible_key("ego"): np.ones((T, 16), bool),
            },
            task="wave",
        )
    writer.finalize()
    return root


def test_shards_cover_the_dataset_and_merge_checks_them(dataset_root):
    for i in range(2):
        runner.extract_shard(dataset_root, "ego", SETTINGS, index=i, count=2)
    shards = runner.collect_shards(dataset_root, "ego", EPISODES)
    assert sorted(shards.files) == [0, 1, 2] and shards.settings == SETTINGS.record()
    points, visible = runner.load_tracks(shards.files[2])
    assert points.shape == (T, 16, 3) and visible.shape == (T, 16)
    np.testing.assert_allclose(points[0, visible[0], 2], 3.0, atol=1e-3)  # episode 2 stands 3 m away

    stray = runner.shard_dir(dataset_root, "ego", 0, 3)
    stray.mkdir(parents=True)
    with pytest.raises(ExtractError, match="different splits"):
        runner.collect_shards(dataset_root, "ego", EPISODES)
    stray.rmdir()
    (runner.shard_dir(dataset_root, "ego", 1, 2) / runner.SHARD_MANIFEST).unlink()
    with pytest.raises(ExtractError, match=r"unfinished \['shard-1-of-2'\]"):
        runner.collect_shards(dataset_root, "ego", EPISODES)
    runner.extract_shard(dataset_root, "ego", SETTINGS, index=1, count=2)  # resumes: files are kept
    runner.collect_shards(dataset_root, "ego", EPISODES)
    shutil.rmtree(dataset_root / runner.EXTRACT_DIR)  # the fixture is shared with the next tests


def test_camera_errors(dataset_root):
    dataset = Dataset(dataset_root)
    with pytest.raises(ExtractError, match="no camera 'front'; available cameras: bare, ego, side"):
        runner.check_camera(dataset, "front")
    with pytest.raises(ExtractError, match="camera 'bare' has no intrinsics"):
        runner.check_camera(dataset, "bare")
    with pytest.raises(ExtractError, match="no stored depth.*--depth model --depth-model-dir"):
        runner.extract_shard(dataset_root, "side", SETTINGS)
    with pytest.raises(ExtractError, match="--depth model needs local weights"):
        runner.ExtractSettings(depth="model")


def test_viz_writes_video_and_scatter(dataset_root, tmp_path):
    video, png = render_episode(dataset_root, 1, "ego", tmp_path, key="ground_truth.points", trail=4)
    assert video.stat().st_size > 0 and png.stat().st_size > 0


def test_viz_rejects_missing_tracks_and_unknown_keys(dataset_root, tmp_path):
    with pytest.raises(ExtractError, match="run `robo4d extract tracks` first"):
        render_episode(dataset_root, 0, "side", tmp_path, key="ground_truth.points", trail=4)
    with pytest.raises(ExtractError, match="--key must be one of"):
        render_episode(dataset_root, 0, "ego", tmp_path, key="observation.images", trail=4)


def test_tracks_command_adds_columns_and_is_idempotent(dataset_root, tmp_path, capsys):
    from robo4d.extract.commands import Tracks

    out = tmp_path / "with_tracks"
    Tracks(dataset=dataset_root, camera="ego", grid=4, out=out).run()
    ds = Dataset(out)
    data = ds.read_episode(1, [types.points_key("ego"), types.points_visible_key("ego"), types.gt_points_key("ego")])
    points, visible = data[types.points_key("ego")], data[types.points_visible_key("ego")]
    assert points.shape == (T, 16, 3) and visible.dtype == bool
    err = np.linalg.norm(points - data[types.gt_points_key("ego")], axis=-1)[visible]
    assert np.median(err) < 0.01  # same grid, same frame: the columns compare point by point
    assert ds.robo4d_meta["extract"]["ego"] == runner.ExtractSettings(lift=LiftConfig(grid=4)).record()
    assert not (out / runner.EXTRACT_DIR / "ego").exists() and not (dataset_root / runner.EXTRACT_DIR / "ego").exists()

    capsys.readouterr()
    Tracks(dataset=out, camera="ego", grid=4).run()
    assert "nothing to do" in capsys.readouterr().out
    with pytest.raises(ExtractError, match="made with other settings.*--overwrite"):
        Tracks(dataset=out, camera="ego", grid=4, fb_threshold=2.0).run()
    Tracks(dataset=out, camera="ego", grid=4, fb_threshold=2.0, overwrite=True).run()
    assert Dataset(out).robo4d_meta["extract"]["ego"]["lk"]["fb_threshold"] == 2.0
