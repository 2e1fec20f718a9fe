import numpy as np
import pytest
from extract_fixtures import texture, translating_clip

from robo4d.extract.queries import grid_queries, reseed_frames
from robo4d.extract.trackers import LKConfig, LKTracker, track_with_reseeding


def test_grid_is_row_major_on_cell_centres():
    q = grid_queries(64, 128, 4)  # (16, 2)
    assert q.shape == (16, 2) and q.dtype == np.float32
    np.testing.assert_allclose(q[:4, 0], [16, 48, 80, 112])  # top row, left to right: (i + 0.5) * W / G
    np.testing.assert_allclose(q[:4, 1], 8)  # (j + 0.5) * H / G with j = 0
    np.testing.assert_allclose(q[4, 1], 24)


def test_grid_larger_than_image_is_rejected():
    with pytest.raises(ValueError, match="larger than the image"):
        grid_queries(16, 32, 17)


def test_reseed_frames():
    assert reseed_frames(10, 0) == []
    assert reseed_frames(10, 4) == [4, 8]
    assert reseed_frames(9, 4) == [4]  # never on the last frame


def test_lk_recovers_known_translation():
    shift = (1.5, -0.75)
    frames = translating_clip(8, 64, shift)
    q = grid_queries(64, 64, 6)
    uv, vis = LKTracker(LKConfig()).track(frames, q)
    assert uv.shape == (8, 36, 2) and vis.shape == (8, 36)
    expected = q[None] + np.arange(8)[:, None, None] * np.array(shift, np.float32)
    inside = (expected > 2).all(-1) & (expected < 62).all(-1)
    assert vis[inside].mean() > 0.95
    err = np.linalg.norm(uv - expected, axis=-1)[vis & inside]
    assert np.median(err) < 0.1


def test_fb_check_loses_points_on_a_scene_cut_and_they_stay_lost():
    a = texture(64, seed=1)
    b = texture(64, seed=2)  # unrelated content: nothing can be tracked
    frames = np.stack([a, a, b, a])
    q = grid_queries(64, 64, 8)
    uv, vis = LKTracker(LKConfig(fb_threshold=0.5)).track(frames, q)
    assert vis[1].mean() > 0.95
    assert vis[2].mean() < 0.3
    assert not (vis[3] & ~vis[2]).any()  # lost stays lost
    np.testing.assert_array_equal(uv[3][~vis[3]], uv[2][~vis[3]])  # ...and holds its last position


def test_reseeding_restarts_lost_slots_on_their_query():
    a = texture(64, seed=1)
    b = texture(64, seed=2)
    frames = np.stack([a, b, b, b, b])
    q = grid_queries(64, 64, 8)
    tracker = LKTracker(LKConfig(fb_threshold=0.5))
    _, vis_plain = track_with_reseeding(tracker, frames, q, every=0)
    uv, vis = track_with_reseeding(tracker, frames, q, every=2)
    assert vis_plain[2:].mean() < 0.3
    assert vis[2].all()  # every slot restarts at frame 2...
    np.testing.assert_allclose(uv[2][~vis_plain[2]], q[~vis_plain[2]])  # ...lost ones on their grid pixel
    assert vis[4].mean() > 0.95  # static content afterwards: they stay


def test_lk_config_validation():
    with pytest.raises(ValueError, match="odd"):
        LKConfig(win_size=10)
    with pytest.raises(ValueError, match="fb_threshold"):
        LKConfig(fb_threshold=0)
