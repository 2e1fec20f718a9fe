import numpy as np
import pytest
from extract_fixtures import pinhole, translating_clip

from robo4d.extract.depth import SensorDepth
from robo4d.extract.errors import ExtractError
from robo4d.extract.lift import (
    camera_to_world,
    depth_discontinuity,
    hold_last_valid,
    sample_depth,
    to_uvd,
    unproject,
)
from robo4d.extract.pipeline import EpisodeInput, LiftConfig, extract_episode
from robo4d.extract.queries import grid_queries
from robo4d.extract.trackers import LKConfig, LKTracker

TRACKER = LKTracker(LKConfig())


def test_bilinear_sampling_is_exact_on_a_linear_ramp_and_nearest_snaps():
    depth = np.tile(1.0 + 0.01 * np.arange(16, dtype=np.float32), (1, 8, 1))  # (1, 8, 16): z = 1 + 0.01 x
    uv = np.array([[[3.5, 2.5], [4.0, 2.5], [4.25, 6.0]]], np.float32)  # pixel 3 centre, between 3 and 4, ...
    np.testing.assert_allclose(sample_depth(depth, uv)[0], [1.03, 1.035, 1.0375], atol=1e-6)
    np.testing.assert_allclose(sample_depth(depth, uv, mode="nearest")[0], [1.03, 1.04, 1.04], atol=1e-6)


def test_invalid_depth_taps_and_outside_points_give_nan():
    depth = np.full((1, 8, 8), 2.0, np.float32)
    depth[0, 2, 2] = np.nan
    depth[0, 5, 5] = 0.0
    depth[0, 6, 1] = np.inf
    uv = np.array([[[2.9, 2.9], [5.5, 5.5], [1.5, 6.5], [7.5, 7.5], [9.0, 1.0]]], np.float32)
    z = sample_depth(depth, uv)[0]
    assert np.isnan(z[:3]).all() and z[3] == 2.0 and np.isnan(z[4])


def test_discontinuity_flags_only_points_near_a_depth_step():
    depth = np.full((1, 16, 16), 1.0, np.float32)
    depth[0, :, 8:] = 3.0  # wall behind, starting at column 8
    uv = np.array([[[3.5, 8.0], [7.5, 8.0], [8.5, 8.0], [12.5, 8.0]]], np.float32)
    np.testing.assert_array_equal(depth_discontinuity(depth, uv, rel_threshold=0.1)[0], [False, True, True, False])


def test_unproject_and_world_transform_round_trip():
    k = pinhole(64, focal=80.0)[None]  # (1, 3, 3)
    xyz = np.array([[[0.1, -0.2, 2.0], [0.0, 0.0, 1.0]]], np.float32)
    uv = (np.einsum("tij,tnj->tni", k, xyz) / xyz[..., 2:])[..., :2]
    np.testing.assert_allclose(unproject(uv, xyz[..., 2], k), xyz, atol=1e-6)
    pose = np.eye(4, dtype=np.float32)[None]
    pose[0, :3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    pose[0, :3, 3] = [1, 2, 3]
    np.testing.assert_allclose(camera_to_world(xyz, pose)[0, 0], [1.2, 2.1, 5.0], atol=1e-6)
    np.testing.assert_allclose(to_uvd(uv, xyz[..., 2])[0, 1], [0.064, 0.064, 1.0], atol=1e-6)


def test_hold_last_valid():
    values = np.arange(5, dtype=np.float32)[:, None, None].repeat(3, 1)  # (T=5, N=3, 1), value = t
    valid = np.array([[0, 1, 0], [1, 1, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]], bool)
    out = hold_last_valid(values, valid)[..., 0]
    np.testing.assert_array_equal(out[:, 0], [1, 1, 1, 3, 3])  # leading gap takes the first valid value
    np.testing.assert_array_equal(out[:, 1], [0, 1, 2, 2, 2])
    np.testing.assert_array_equal(out[:, 2], 0)  # never valid: nothing to hold


def _plane_episode(depth_value: float = 2.0, **kw) -> EpisodeInput:
    frames = translating_clip(6, 64, (1.0, 0.5))
    depth = np.full(frames.shape[:3], depth_value, np.float32)
    return EpisodeInput(source="synthetic", frames=frames, intrinsics=pinhole(64), depth=depth, **kw)


def test_pipeline_lifts_a_moving_plane():
    ep = _plane_episode()
    tracks = extract_episode(ep, tracker=TRACKER, depth_source=SensorDepth(), config=LiftConfig(grid=8))
    assert tracks.points.shape == (6, 64, 3) and tracks.points.dtype == np.float32
    q = grid_queries(64, 64, 8)
    true_uv = q[None] + np.arange(6)[:, None, None] * np.array([1.0, 0.5], np.float32)
    true_xyz = np.concatenate([(true_uv - 32) / 100 * 2.0, np.full((6, 64, 1), 2.0)], -1)
    vis = tracks.visible
    assert vis[:, 9:-9].mean() > 0.9  # away from the borders
    assert np.median(np.linalg.norm(tracks.points - true_xyz, axis=-1)[vis]) < 0.005
    uvd = extract_episode(ep, tracker=TRACKER, depth_source=SensorDepth(), config=LiftConfig(grid=8, format="uvd"))
    np.testing.assert_allclose(uvd.points[0, :, :2], q * 0.002, atol=1e-6)


def test_nan_depth_points_are_not_visible_and_never_lifted():
    ep = _plane_episode()
    ep.depth[3, :, :32] = np.nan  # left half of frame 3 has no depth
    tracks = extract_episode(ep, tracker=TRACKER, depth_source=SensorDepth(), config=LiftConfig(grid=8))
    left = grid_queries(64, 64, 8)[:, 0] < 20
    assert not tracks.visible[3, left].any()
    assert np.isfinite(tracks.points).all()
    held = tracks.visible[2, left]
    np.testing.assert_array_equal(tracks.points[3, left][held], tracks.points[2, left][held])  # held, not made up
    assert tracks.invalid_depth > 0


def test_world_frame_uses_extrinsics():
    pose = np.eye(4, dtype=np.float32)
    pose[:3, 3] = [0.0, 0.0, 1.0]
    ep = _plane_episode(extrinsics=pose)
    cfg = LiftConfig(grid=4)
    cam = extract_episode(ep, tracker=TRACKER, depth_source=SensorDepth(), config=cfg).points
    world = extract_episode(
        ep, tracker=TRACKER, depth_source=SensorDepth(), config=LiftConfig(grid=4, world_frame=True)
    )
    np.testing.assert_allclose(world.points, cam + [0, 0, 1], atol=1e-6)


def test_bad_inputs_raise_clear_errors():
    ep = _plane_episode()
    with pytest.raises(ExtractError, match="no stored depth.*--depth model --depth-model-dir"):
        extract_episode(
            EpisodeInput(source="s", frames=ep.frames, intrinsics=ep.intrinsics),
            tracker=TRACKER,
            depth_source=SensorDepth(),
            config=LiftConfig(grid=4),
        )
    with pytest.raises(ExtractError, match="depth has shape .* same frames"):
        EpisodeInput(source="s", frames=ep.frames, intrinsics=ep.intrinsics, depth=ep.depth[:-1])
    for n in (0, 1):
        with pytest.raises(ExtractError, match=f"has {n} frame"):
            EpisodeInput(source="s", frames=ep.frames[:n], intrinsics=ep.intrinsics)
    with pytest.raises(ExtractError, match="larger than the image"):
        extract_episode(ep, tracker=TRACKER, depth_source=SensorDepth(), config=LiftConfig(grid=65))
    with pytest.raises(ExtractError, match="intrinsics must be"):
        EpisodeInput(source="s", frames=ep.frames, intrinsics=np.eye(4))
    with pytest.raises(ExtractError, match="needs camera extrinsics"):
        extract_episode(ep, tracker=TRACKER, depth_source=SensorDepth(), config=LiftConfig(grid=4, world_frame=True))
    with pytest.raises(ValueError, match="world_frame applies to format 'xyz'"):
        LiftConfig(format="uvd", world_frame=True)
