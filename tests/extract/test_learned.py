"""The learned point tracker: network shapes, windowing, visibility, a tiny overfit, strict weight loading."""

from dataclasses import replace

import numpy as np
import pytest
import safetensors.torch
import torch
from extract_fixtures import translating_clip

from robo4d.extract.errors import ExtractError
from robo4d.extract.learned import (
    CARD_FILE,
    WEIGHTS_DIR,
    WEIGHTS_FILE,
    LearnedConfig,
    LearnedTracker,
    load_tracker_weights,
    read_card,
    save_tracker_weights,
    window_starts,
)
from robo4d.extract.learned_model import LearnedTrackerConfig, TrackerNet, tracking_loss
from robo4d.extract.queries import grid_queries

TINY = LearnedTrackerConfig(
    feature_dim=24, levels=2, radius=2, hidden=16, heads=2, blocks=1, virtual=4, iters=2, window=4, overlap=2,
    short_side=32,
)  # fmt: skip


def _net(config: LearnedTrackerConfig = TINY) -> TrackerNet:
    torch.manual_seed(0)
    return TrackerNet(config).eval()


def test_network_shapes():
    net = _net()
    b, s, n = 2, TINY.window, 5
    frames = torch.randint(0, 255, (b, s, 32, 32, 3), dtype=torch.uint8)
    queries = torch.rand(b, n, 2) * 32
    init = queries[:, None].repeat(1, s, 1, 1)
    anchored = torch.zeros(b, s, dtype=torch.bool)
    anchored[:, 0] = True
    steps, logits = net(frames, frames[:, 0], queries, init, anchored)
    assert len(steps) == TINY.iters and all(uv.shape == (b, s, n, 2) for uv in steps)
    assert logits.shape == (b, s, n) and torch.isfinite(logits).all()


@pytest.mark.parametrize("t_len", [2, 3, 4, 5, 9, 12, 31])
def test_windows_cover_every_frame_and_overlap(t_len):
    starts = window_starts(t_len, 4, 2)
    assert starts[0] == 0 and min(starts[-1] + 4, t_len) == t_len
    for a, b in zip(starts, starts[1:], strict=False):
        assert b > a and a + 4 - b >= 2  # each window re-uses at least `overlap` settled frames


def test_short_clip_is_one_window_of_the_network():
    net = _net()
    tracker = LearnedTracker(net)
    frames = torch.from_numpy(translating_clip(3, 32, (1.0, 0.5)))
    queries = torch.from_numpy(grid_queries(32, 32, 3))
    uv, logits = tracker.track_resized(frames, queries)
    with torch.no_grad():
        anchored = torch.tensor([[True, False, False]])
        steps, direct = net(frames[None], frames[:1], queries[None], queries[None, None].repeat(1, 3, 1, 1), anchored)
    assert torch.allclose(uv[1:], steps[-1][0, 1:], atol=1e-5)
    assert torch.allclose(logits[1:], direct[0, 1:], atol=1e-5)
    assert torch.equal(uv[0], queries)  # the query frame is the query


def test_long_clip_windows_continue_from_settled_estimates():
    tracker = LearnedTracker(_net())
    frames = translating_clip(11, 32, (0.5, 0.0))
    uv, visible = tracker.track(frames, grid_queries(32, 32, 3))
    assert uv.shape == (11, 9, 2) and uv.dtype == np.float32 and np.isfinite(uv).all()
    assert visible.shape == (11, 9) and visible.dtype == bool


def test_long_clip_reuses_overlap_correlations_exactly():
    """track_resized correlates only each window's new frames, into two volume buffers used in turn; the result is
    the plain window-by-window run."""
    net = _net()
    frames = torch.from_numpy(translating_clip(11, 32, (0.7, -0.3)))
    queries = torch.from_numpy(grid_queries(32, 32, 3))
    uv, logits = LearnedTracker(net).track_resized(frames, queries)
    with torch.no_grad():
        fmaps = net.features(frames)
        qfeat = net.query_features(fmaps[:1], queries[None])
        ref_uv, ref_logits, done = queries[None].repeat(11, 1, 1), torch.zeros(11, 9), 1
        for start in window_starts(11, TINY.window, TINY.overlap):
            stop = start + TINY.window
            init = ref_uv[start:stop].clone()
            init[done - start :] = ref_uv[done - 1]
            anchored = torch.arange(start, stop) < done
            steps, lg = net.refine(net.correlation_pyramid(fmaps[None, start:stop], qfeat), init[None], anchored[None])
            ref_uv[start:stop] = torch.where(anchored[:, None, None], ref_uv[start:stop], steps[-1][0])
            ref_logits[start:stop] = torch.where(anchored[:, None], ref_logits[start:stop], lg[0])
            done = stop
    assert torch.allclose(uv, ref_uv, atol=1e-5) and torch.allclose(logits[1:], ref_logits[1:], atol=1e-5)


def test_visibility_follows_the_threshold_and_the_image_border():
    net = _net()
    frames = translating_clip(6, 32, (0.5, 0.0))
    queries = np.concatenate([grid_queries(32, 32, 2), [[40.0, 10.0]]]).astype(np.float32)  # last: outside
    _, logits = LearnedTracker(net).track_resized(torch.from_numpy(frames), torch.from_numpy(queries))
    for threshold in (0.01, 0.5, 0.99):
        uv, visible = LearnedTracker(net, visibility_threshold=threshold).track(frames, queries)
        inside = (uv[..., 0] >= 0) & (uv[..., 0] <= 32) & (uv[..., 1] >= 0) & (uv[..., 1] <= 32)
        expected = (torch.sigmoid(logits).numpy() > threshold) & inside
        assert np.array_equal(visible[1:], expected[1:])
        assert visible[0, :4].all() and not visible[0, 4]
    with pytest.raises(ValueError, match="visibility_threshold"):
        LearnedConfig(visibility_threshold=1.0)


def test_loss_falls_when_overfitting_one_clip():
    from robo4d.recipes.tracker import (
        ANCHORED,
        FRAMES,
        INIT,
        QUERIES,
        QUERY_FRAME,
        TARGET,
        VALID,
        VISIBLE,
        TrackerTrainConfig,
        make_window,
    )  # fmt: skip

    frames = translating_clip(6, 32, (1.5, -1.0))
    t_len = len(frames)
    uv = grid_queries(32, 32, 4)[None] + np.arange(t_len)[:, None, None] * np.float32([1.5, -1.0])
    visible = np.ones((t_len, 16), bool)
    config = TrackerTrainConfig(net=TINY, points=16, first_window_prob=1.0)
    rng = np.random.RandomState(0)
    batch = {k: v[None] for k, v in make_window(frames, uv.astype(np.float32), visible, config, 4, rng).items()}
    torch.manual_seed(0)
    net = TrackerNet(TINY)
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    losses = []
    for _ in range(40):
        steps, logits = net(batch[FRAMES], batch[QUERY_FRAME], batch[QUERIES], batch[INIT], batch[ANCHORED])
        loss, metrics = tracking_loss(steps, logits, batch[TARGET], batch[VISIBLE], batch[VALID])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert set(metrics) == {"epe_px", "within_1px", "vis_acc"}


def test_weights_round_trip_with_strict_keys(tmp_path):
    net = _net()
    save_tracker_weights(net, tmp_path, training={"note": "test"})
    loaded = load_tracker_weights(tmp_path)
    for key, value in net.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])
    assert read_card(tmp_path)["training"] == {"note": "test"}

    state = safetensors.torch.load_file(str(tmp_path / WEIGHTS_FILE))
    safetensors.torch.save_file({**state, "extra.weight": torch.zeros(1)}, str(tmp_path / WEIGHTS_FILE))
    with pytest.raises(ExtractError, match="unexpected \\['extra.weight'\\]"):
        load_tracker_weights(tmp_path)
    state.pop("head.bias")
    safetensors.torch.save_file(state, str(tmp_path / WEIGHTS_FILE))
    with pytest.raises(ExtractError, match="missing \\['head.bias'\\]"):
        load_tracker_weights(tmp_path)
    (tmp_path / WEIGHTS_FILE).unlink()
    with pytest.raises(ExtractError, match="not found"):
        load_tracker_weights(tmp_path)


def test_shipped_weights_load_strictly_and_say_how_they_were_made():
    net = load_tracker_weights(WEIGHTS_DIR)
    assert (WEIGHTS_DIR / WEIGHTS_FILE).stat().st_size < 5 * 2**20  # small enough for the wheel
    card = read_card(WEIGHTS_DIR)
    assert card["config"] == {k: getattr(net.config, k) for k in card["config"]}
    training = card["training"]
    assert training["step"] > 0 and training["data"][0]["clip_seed_base"] > 0
    assert (WEIGHTS_DIR / CARD_FILE).is_file()
    tracker = LearnedConfig().build()
    uv, visible = tracker.track(translating_clip(5, 32, (1.0, 0.0)), grid_queries(32, 32, 4))
    assert uv.shape == (5, 16, 2) and visible.shape == (5, 16)


def test_training_windows_are_cut_at_the_networks_scale():
    """Clips are resized to the network's short side, as `LearnedTracker.track` resizes video: frames, queries and
    targets move together (a bright dot stays under its track)."""
    from robo4d.recipes.tracker import FRAMES, INIT, QUERIES, QUERY_FRAME, TARGET, TrackerTrainConfig, make_window

    t_len, size = 6, 32
    frames = np.zeros((t_len, size, size, 3), np.uint8)
    uv = np.zeros((t_len, 1, 2), np.float32)
    for t in range(t_len):
        x, y = 8 + 2 * t, 12 + t
        frames[t, y - 1 : y + 2, x - 1 : x + 2] = 255
        uv[t, 0] = (x + 0.5, y + 0.5)  # the dot's centre, continuous convention
    for side in (32, 64):
        config = TrackerTrainConfig(net=replace(TINY, short_side=side), points=1, first_window_prob=1.0)
        window = make_window(frames, uv, np.ones((t_len, 1), bool), config, 4, np.random.RandomState(1))
        assert window[FRAMES].shape == (4, side, side, 3) and window[QUERY_FRAME].shape == (side, side, 3)
        scale = side / size
        flipped = window[QUERIES][0, 0].item() != uv[0, 0, 0] * scale  # the mirror augmentation may apply
        for t in range(4):
            x, y = window[TARGET][t, 0].tolist()
            expected = uv[t, 0] * scale
            if flipped:
                expected = (side - expected[0], expected[1])
            assert np.allclose((x, y), expected)
            assert window[FRAMES][t, int(y), int(x)].float().mean() > 200  # the dot is under the target
        assert np.allclose(window[INIT][0, 0], window[QUERIES][0])


def test_camera_pan_moves_pixels_and_tracks_together():
    """The pan augmentation warps frames and ground truth by the same map (continuous pixel convention)."""
    import cv2

    from robo4d.recipes.tracker import TARGET, VISIBLE, TrackerTrainConfig, _warp, make_window, pan_warps

    rng = np.random.RandomState(3)
    image = cv2.GaussianBlur(rng.randint(0, 255, (64, 80, 3)).astype(np.uint8), (0, 0), 2.0)
    warps = pan_warps(12, 64, 80, 2.0, rng)
    assert np.allclose(warps[0], [[1, 0, 0], [0, 1, 0]])
    uv = grid_queries(64, 80, 5)  # (25, 2) continuous pixels
    for t in (3, 11):
        moved = uv @ warps[t, :, :2].T + warps[t, :, 2]
        keep = (moved > 12).all(1) & (moved[:, 0] < 68) & (moved[:, 1] < 52)
        warped = _warp(image, warps[t]).astype(np.float32)
        for (x, y), (x2, y2) in zip(uv[keep], moved[keep], strict=True):
            a = cv2.getRectSubPix(image.astype(np.float32), (3, 3), (float(x - 0.5), float(y - 0.5)))
            b = cv2.getRectSubPix(warped, (3, 3), (float(x2 - 0.5), float(y2 - 0.5)))
            assert np.abs(a - b).mean() < 4.0  # uint8 levels: interpolation only
    frames = np.repeat(image[None], 12, 0)
    tracks = np.repeat(uv[None], 12, 0).astype(np.float32)
    config = TrackerTrainConfig(net=replace(TINY, short_side=64), points=25, pan_prob=1.0, pan_speed_px=6.0,
                                first_window_prob=1.0)  # fmt: skip
    window = make_window(frames, tracks, np.ones((12, 25), bool), config, 4, np.random.RandomState(0))
    target, visible = window[TARGET].numpy(), window[VISIBLE].numpy()
    assert not np.allclose(target[-1], target[0])  # the camera moved
    inside = (target[..., 0] >= 0) & (target[..., 0] <= 80) & (target[..., 1] >= 0) & (target[..., 1] <= 64)
    assert np.array_equal(visible, inside)
    with pytest.raises(ValueError, match="pan_prob"):
        TrackerTrainConfig(pan_prob=1.5)


def test_anchor_drift_shifts_each_tracks_anchors_by_one_shared_offset():
    """`anchor_drift_px` moves all anchored estimates of a track by the same offset (a drifted track, not
    jitter); the new frames start at the last anchor; with drift off, the anchors are left alone."""
    from robo4d.recipes.tracker import ANCHORED, INIT, TARGET, TrackerTrainConfig, make_window

    t_len, n = 12, 40
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (t_len, 32, 32, 3), dtype=np.uint8)
    uv = (rng.uniform(4, 28, (1, n, 2)) + np.arange(t_len)[:, None, None] * 0.5).astype(np.float32)
    visible = np.ones((t_len, n), bool)
    base = {"net": TINY, "points": n, "first_window_prob": 0.0, "anchor_noise_px": 0.0}
    drifted = make_window(frames, uv, visible, TrackerTrainConfig(**base, anchor_drift_px=6.0), 4,
                          np.random.RandomState(3))  # fmt: skip
    k = TINY.overlap
    assert drifted[ANCHORED].tolist() == [True] * k + [False] * (4 - k)
    offset = (drifted[INIT][:k] - drifted[TARGET][:k]).numpy()  # (k, N, 2)
    assert np.allclose(offset, offset[:1], atol=1e-4)  # shared by the track's anchors
    assert np.abs(offset[0]).max() > 0.5 and np.unique(offset[0].round(3), axis=0).shape[0] == n  # per track
    assert np.allclose(drifted[INIT][k:], drifted[INIT][k - 1])
    clean = make_window(frames, uv, visible, TrackerTrainConfig(**base), 4, np.random.RandomState(3))
    assert np.allclose(clean[INIT][:k], clean[TARGET][:k])  # no noise, no drift: the anchors are the truth
    with pytest.raises(ValueError, match="anchor_drift_px"):
        TrackerTrainConfig(anchor_drift_px=-1.0)


def _shifting_texture() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A blurred random texture translating sub-pixel steps: frames (10, 48, 72, 3), queries (16, 2), truth."""
    import cv2

    rng = np.random.RandomState(1)
    base = cv2.GaussianBlur(rng.randint(0, 255, (48, 72, 3)).astype(np.uint8), (0, 0), 1.5)
    shifts = np.stack([np.arange(10) * 0.4, np.arange(10) * 0.25], -1).astype(np.float32)  # (T, 2) px
    frames = np.stack([cv2.warpAffine(base, np.float32([[1, 0, dx], [0, 1, dy]]), (72, 48),
                                      borderMode=cv2.BORDER_REFLECT_101) for dx, dy in shifts])  # fmt: skip
    queries = grid_queries(48, 72, 4) * np.float32([0.5, 0.5]) + np.float32([18, 12])  # away from the border
    return frames, queries, queries[None] + shifts[:, None]


def test_refinement_aligns_estimates_to_the_query_patches():
    """With `refine`, a translating texture is tracked to sub-pixel accuracy even by an untrained network."""
    frames, queries, truth = _shifting_texture()
    config = replace(TINY, short_side=48)
    plain = LearnedTracker(_net(config)).track(frames, queries)[0]
    refined = LearnedTracker(_net(config), refine_max_px=8.0).track(frames, queries)[0]
    assert np.median(np.abs(refined - truth)) < 0.1 < np.median(np.abs(plain - truth))
    assert np.array_equal(refined[0], queries)
    with pytest.raises(ValueError, match="refine_max_px"):
        LearnedConfig(refine=True, refine_max_px=0.0)


def test_refinement_candidates_land_on_the_truth_from_the_query_and_the_previous_frame():
    """Both Lucas-Kanade alignments, started 1.5 px off, land on the true position (same pixel convention as the
    tracks); one that moves further than max_px gives back its start; the chosen estimate is on the truth."""
    from robo4d.extract.learned import _Refiner

    frames, queries, truth = _shifting_texture()
    refiner = _Refiner(torch.from_numpy(frames), torch.from_numpy(queries), max_px=8.0)
    guess = truth[5] + np.float32([1.5, -1.0])
    assert np.abs(refiner._lk(5, 0, queries, guess) - truth[5]).max() < 0.15
    assert np.abs(refiner._lk(5, 4, truth[4], guess) - truth[5]).max() < 0.15
    strict = _Refiner(torch.from_numpy(frames), torch.from_numpy(queries), max_px=0.5)
    assert np.array_equal(strict._lk(5, 0, queries, guess), guess)
    estimates = torch.from_numpy(truth[:4] + np.float32([2.0, 1.0]))  # frames 0-3, frame 0 settled
    chosen = refiner(estimates, 0, 1).numpy()
    assert np.abs(chosen[1:] - truth[1:4]).max() < 0.15 and np.array_equal(chosen[0], estimates[0].numpy())


def test_refinement_plane_candidates_recover_points_that_were_lost():
    """The homography fitted to all points' estimates carries every query to the truth of a planar scene, also the
    queries whose own estimates were far off; with its Lucas-Kanade start there, such points are chosen on the
    truth again. Too few points for a homography: no plane candidates."""
    from robo4d.extract.learned import _Refiner

    frames, queries, truth = _shifting_texture()  # a translating plane: a homography moves every point exactly
    lost = np.arange(len(queries)) % 4 == 0
    estimates = truth.copy()
    estimates[:, lost] += np.float32([30.0, -25.0])  # a quarter of the points far off, beyond any LK's reach
    refiner = _Refiner(torch.from_numpy(frames), torch.from_numpy(queries), max_px=8.0)
    carried = refiner._carry(refiner._fit_plane(queries, estimates[5], 8), estimates[5])
    (aligned, _), _ = refiner._plane_candidates(5, carried, np.ones(len(queries), bool))
    assert np.abs(carried - truth[5]).max() < 0.02 and np.abs(aligned - truth[5]).max() < 0.15
    chosen = refiner(torch.from_numpy(estimates[:4]), 0, 1).numpy()
    assert np.abs(chosen[1:] - truth[1:4]).max() < 0.15
    assert refiner._fit_plane(queries[:7], truth[5, :7], 8) is None


def test_refinement_keeps_the_planes_carry_on_a_flat_patch_of_the_plane():
    """A query on a flat patch of a moving plane: similarity cannot tell the candidates apart there, and the plane's
    prior keeps the carried query rather than the network's estimate."""
    import cv2

    from robo4d.extract.learned import _Refiner

    frames, queries, truth = _shifting_texture()
    base = frames[0].copy()  # frame 0 is the unshifted texture
    x, y = queries[5].round().astype(int)
    base[y - 8 : y + 9, x - 8 : x + 9] = 120  # flat beyond the patch and the LK window; it moves with the plane
    shifts = truth[:, 0] - queries[0]
    frames = np.stack([cv2.warpAffine(base, np.float32([[1, 0, dx], [0, 1, dy]]), (72, 48),
                                      borderMode=cv2.BORDER_REFLECT_101) for dx, dy in shifts])  # fmt: skip
    estimates = torch.from_numpy(truth[:4] + np.float32([2.0, 1.0]))
    chosen = _Refiner(torch.from_numpy(frames), torch.from_numpy(queries), max_px=8.0)(estimates, 0, 1).numpy()
    assert np.abs(chosen[1:, 5] - truth[1:4, 5]).max() < 0.05


def test_refinement_moves_a_point_on_a_flat_patch_with_its_neighbours():
    """Where no candidate's patch has texture (and there are too few points for a plane), similarity says nothing
    and the neighbourhood's carry is kept: a point whose own estimate strays moves as its neighbours do."""
    from robo4d.extract.learned import _Refiner

    frames = np.full((3, 32, 32, 3), 120, np.uint8)
    queries = np.float32([[10.0, 12.0], [20.5, 16.25], [15.0, 20.0]])
    estimates = queries[None].repeat(3, 0) + np.float32([0.7, -0.3])
    estimates[:, 2] += np.float32([3.0, 2.0])  # one point's estimate strays from its neighbours'
    out = _Refiner(torch.from_numpy(frames), torch.from_numpy(queries), max_px=8.0)(torch.from_numpy(estimates), 0, 1)
    assert np.allclose(out[1:].numpy(), queries + np.float32([0.7, -0.3]), atol=1e-5)


def test_refinement_outputs_the_mean_of_the_candidates_that_agree_with_the_kept_one():
    """On a flat image the neighbourhood's carry is kept and seeds the next window; the track's output is the mean of
    the candidates within 1.5 px of it (a network estimate 1 px off is one of them, one 3 px off is not)."""
    from robo4d.extract.learned import _Refiner

    frames = np.full((2, 32, 32, 3), 120, np.uint8)
    queries = np.float32([[10.0, 12.0], [20.5, 16.25], [15.0, 20.0], [8.0, 24.0], [24.0, 6.0]])
    estimates = queries[None].repeat(2, 0) + np.float32([0.7, -0.3])  # the network's estimates: points 2, 3 stray
    estimates[1, 2] += np.float32([1.0, 0.0])
    estimates[1, 3] += np.float32([3.0, 0.0])
    estimates[0] = queries  # frame 0, settled
    refiner = _Refiner(torch.from_numpy(frames), torch.from_numpy(queries), max_px=8.0)
    seeds = refiner(torch.from_numpy(estimates), 0, 1).numpy()
    carried = queries + np.float32([0.7, -0.3])  # the median motion of each point's neighbourhood
    assert np.allclose(seeds[1], carried, atol=1e-5)
    output = refiner.finish(torch.from_numpy(seeds)).numpy()  # too few points for a plane: nothing is smoothed
    expected = carried.copy()
    expected[2] += np.float32([0.5, 0.0])  # the network's estimate and "followed" (no texture: LK stays) 1 px off
    assert np.allclose(output[1], expected, atol=1e-5) and np.array_equal(output[0], queries)


def test_refinement_smooths_offsets_from_the_planes_carry_only_where_points_are_on_the_plane():
    """`finish` smooths each point's offset from the plane's carry over frames, where the point is on the plane;
    point-frames off the plane, and frame 0, are left as they are."""
    from robo4d.extract.learned import _Refiner

    frames, queries, _ = _shifting_texture()
    t_len, n = 9, len(queries)
    refiner = _Refiner(torch.from_numpy(frames), torch.from_numpy(queries), max_px=8.0)
    carry = queries + np.arange(t_len, dtype=np.float32)[:, None, None] * np.float32([1.0, 0.5])  # (T, N, 2)
    jitter = np.where(np.arange(t_len) % 2 == 0, 0.3, -0.3).astype(np.float32)[:, None, None] * np.ones((1, n, 2))
    jitter[0] = 0.0
    off_plane = np.arange(n) == 3
    for t in range(1, t_len):
        refiner.output[t] = carry[t] + jitter[t] + 5.0 * off_plane[:, None]
        refiner.planes[t] = carry[t], ~off_plane
    out = refiner.finish(torch.from_numpy(carry.copy())).numpy()
    assert np.array_equal(out[0], queries)
    assert np.allclose(out[1:, 3], carry[1:, 3] + jitter[1:, 3] + 5.0)  # off the plane: as it was output
    inner = np.abs(out[2:-2, ~off_plane] - carry[2:-2, ~off_plane])
    assert inner.max() < 0.03  # 1-4-6-4-1 cancels an alternating jitter (frame 0 has none: 0.019 px at frame 2)


def test_refinement_follows_an_object_moving_over_a_static_background():
    """Points on an object that moves on its own over a still textured background: the background is the plane,
    the object's points leave it (no plane candidates for them once 3 px away), and an object point whose own
    estimate is lost is carried along by its neighbours on the object."""
    import cv2

    from robo4d.extract.learned import _Refiner

    rng = np.random.RandomState(2)
    texture = lambda h, w: cv2.GaussianBlur(rng.randint(0, 255, (h, w, 3)).astype(np.uint8), (0, 0), 1.5)  # noqa: E731
    background, thing = texture(64, 96), np.zeros((64, 96, 3), np.uint8)
    thing[20:44, 30:54] = texture(24, 24)
    mask = np.zeros((64, 96), np.float32)
    mask[20:44, 30:54] = 1.0
    shifts = np.stack([np.arange(8) * 1.0, np.arange(8) * 0.5], -1).astype(np.float32)  # the object's motion
    frames = []
    for dx, dy in shifts:
        move = np.float32([[1, 0, dx], [0, 1, dy]])
        m = cv2.warpAffine(mask, move, (96, 64))[..., None]
        frames.append((background * (1 - m) + cv2.warpAffine(thing, move, (96, 64)) * m).round().astype(np.uint8))
    frames = np.stack(frames)
    on_thing = np.stack(np.meshgrid([37.0, 42.0, 47.0], [27.0, 32.0, 37.0]), -1).reshape(-1, 2)  # 9, 5 px apart
    still = np.stack(np.meshgrid(np.arange(8.0, 96, 14), [6.0, 58.0]), -1).reshape(-1, 2)  # 14 on the background
    queries = np.concatenate([on_thing, still]).astype(np.float32)
    truth = queries[None].repeat(8, 0)
    truth[:, :9] += shifts[:, None]
    estimates = truth.copy()
    estimates[:, 4] += np.float32([9.0, -7.0])  # the object's centre point is lost by the network
    refiner = _Refiner(torch.from_numpy(frames), torch.from_numpy(queries), max_px=8.0)
    chosen = refiner(torch.from_numpy(estimates), 0, 1).numpy()
    assert np.abs(chosen[1:] - truth[1:]).max() < 0.2
    assert not refiner.on_plane[:9].any() and refiner.on_plane[9:].all()


def test_correlation_window_equals_bilinear_grid_sampling():
    """The lattice gather gives grid_sample's values, zero padding at and beyond the border included."""
    import torch.nn.functional as F

    from robo4d.extract.learned_model import _to_grid, _window

    torch.manual_seed(0)
    maps = torch.randn(300, 1, 9, 13)
    centre = torch.rand(300, 2) * torch.tensor([19.0, 15.0]) - 3.0  # some windows cross or leave the map
    centre[:4] = torch.tensor([[0.0, 0.0], [12.0, 8.0], [-5.0, 2.5], [6.25, 4.75]])  # corners, far out, inside
    r = torch.arange(-2, 3, dtype=torch.float32)
    dy, dx = torch.meshgrid(r, r, indexing="ij")
    grid = _to_grid(centre[:, None] + torch.stack([dx, dy], -1).reshape(-1, 2), maps.shape[-2:])[:, None]
    expected = F.grid_sample(maps, grid, align_corners=True).reshape(300, -1)
    assert torch.allclose(_window(maps, centre, 2), expected, atol=1e-5)
    assert torch.equal(_window(maps, torch.tensor([[-5.0, 2.5]]).expand(300, 2), 2), torch.zeros(300, 25))


def test_attention_equals_torchs_multihead_attention_with_the_same_weights():
    """The blocks' attention keeps nn.MultiheadAttention's weights (and checkpoint keys) and its outputs, for self-
    attention (over time) and for attention between the tracks and the virtual tokens, both ways."""
    from robo4d.extract.learned_model import _attend

    torch.manual_seed(0)
    attn = torch.nn.MultiheadAttention(32, 4, batch_first=True).eval()
    with torch.no_grad():  # nonzero biases, so slicing them per projection is checked too
        attn.in_proj_bias.normal_()
        attn.out_proj.bias.normal_()
    tracks, virtual = torch.randn(5, 40, 32), torch.randn(5, 6, 32)
    with torch.no_grad():
        for query, kv in ((tracks, tracks), (virtual, tracks), (tracks, virtual)):
            expected = attn(query, kv, kv, need_weights=False)[0]
            assert torch.allclose(_attend(attn, query, kv), expected, atol=1e-5)
            assert torch.allclose(_attend(attn, query, kv.clone()), expected, atol=1e-5)  # no self-attention path


@pytest.mark.parametrize("refine", [False, True])
def test_no_queries_give_empty_tracks(refine):
    tracker = LearnedTracker(_net(), refine_max_px=8.0 if refine else None)
    uv, visible = tracker.track(np.zeros((5, 32, 32, 3), np.uint8), np.zeros((0, 2), np.float32))
    assert uv.shape == (5, 0, 2) and visible.shape == (5, 0) and uv.dtype == np.float32 and visible.dtype == bool


def test_patch_sampler_gives_normalised_subpixel_crops_and_reuses_its_buffers():
    """Each patch is the bilinear 9x9 crop around its point (as cv2.getRectSubPix cuts it), zero mean and divided by
    its norm plus one grey level; more points than one remap call takes (16384) are sampled in pieces, and fewer
    points than the buffers hold (a subset) get the same patches."""
    import cv2

    from robo4d.extract.learned import _PatchSampler

    rng = np.random.default_rng(0)
    grey = (rng.random((40, 60)) * 255).astype(np.float32)
    points = np.concatenate([rng.random((20000, 2)) * [50, 30] + 5, [[30.25, 20.5]]]).astype(np.float32)
    sample = _PatchSampler(len(points))
    patches = sample(grey, points)
    for i in (0, 16383, 16384, 19999, 20000):
        crop = cv2.getRectSubPix(grey, (9, 9), tuple(map(float, points[i] - 0.5))).ravel()
        crop -= crop.mean()
        assert np.allclose(patches[i], crop / (np.linalg.norm(crop) + 1.0), atol=2e-3)
    last = sample(grey, points[::-1])[0].copy()  # the same buffer, refilled
    assert np.shares_memory(sample(grey, points), patches) and np.allclose(last, patches[-1])
    expected = patches[[3, 17000]].copy()
    assert np.array_equal(sample(grey, points[[3, 17000]]), expected)  # fewer points: the buffer's first rows
    assert sample(grey, points[:0]).shape == (0, 81)


def test_extraction_settings_name_the_refinement_design():
    """Tracks made with another refinement design (or none) record different settings, so they are not mixed."""
    from robo4d.extract.learned import weights_record

    plain, refined = weights_record(LearnedConfig()), weights_record(LearnedConfig(refine=True))
    assert "refine" not in plain and refined["refine"] == "best-of-9+mean+smooth" and refined["refine_max_px"] == 8.0
    assert refined["weights_sha256"] == plain["weights_sha256"]


def test_parallax_carries_static_points_off_the_plane_and_ignores_one_that_moves_on_its_own():
    """A static scene seen by a moving camera: half the points on a plane, half at other depths. Once each point's
    parallax has been seen in one frame, the rigid carry puts every static point within 0.1 px of its true position,
    also where its own estimate is lost; a point that moves on its own leaves the model (`on`) without bending it."""
    from robo4d.extract.learned import _Parallax

    rng = np.random.RandomState(0)
    k_matrix = np.array([[100.0, 0, 64], [0, 100.0, 48], [0, 0, 1]])
    n = 60
    pixels = np.stack([rng.uniform(10, 118, n), rng.uniform(10, 86, n)], -1)
    depth = np.where(np.arange(n) < n // 2, 2.0, rng.uniform(1.2, 3.5, n))  # the first half on the plane z = 2
    points = np.linalg.solve(k_matrix, np.concatenate([pixels, np.ones((n, 1))], 1).T).T * depth[:, None]  # (N, 3)

    def view(t: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame t: the points' pixels and the plane's homography (pixels of frame 0 -> frame t)."""
        angle = 0.01 * t
        rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
        shift = np.array([0.08, -0.03, 0.1]) * t
        image = (k_matrix @ (points @ rotation.T + shift).T).T
        plane = k_matrix @ (rotation + np.outer(shift, [0, 0, 1]) / 2.0) @ np.linalg.inv(k_matrix)
        return image[:, :2] / image[:, 2:], plane

    parallax = _Parallax(pixels.astype(np.float32), 128, 96)
    mover = n - 1  # off the plane, and it moves on its own from frame 2
    for t in range(1, 7):
        truth, plane = view(t)
        seen = truth.copy()
        seen[mover] += np.float32([4.0, -3.0]) * max(t - 1, 0)
        followed = seen.copy()
        if t >= 3:
            followed[:8] += np.float32([30.0, 20.0])  # lost estimates, plane and off-plane points alike
        carried = parallax.carry(plane, followed.astype(np.float32))
        assert carried is not None
        if t >= 2:
            error = np.linalg.norm(carried - truth, axis=-1)
            assert np.delete(error, mover).max() < 0.1  # the mover and the lost estimates weigh in a little
        parallax.update(seen.astype(np.float32), carried)
    assert not parallax.on[mover] and np.delete(parallax.on, mover).all()
    vanishing = np.array([[1.0, 0, 0], [0, 1, 0], [-1 / 64, 0, 1]])  # sends the image's centre column to infinity
    assert parallax.carry(vanishing, pixels.astype(np.float32)) is None
    at_infinity = pixels.astype(np.float32)
    at_infinity[0] = [100.0, 50.0]
    carried = _Parallax(at_infinity, 128, 96).carry(np.array([[1.0, 0, 0], [0, 1, 0], [-1 / 100, 0, 1]]), at_infinity)
    assert np.isfinite(carried).all() and np.array_equal(carried[0], at_infinity[0])


def test_refinement_tracks_a_second_plane_and_recovers_its_lost_points():
    """A large textured object moving over a textured background that moves too: the background is the dominant
    plane, the object's points leave it and are carried by the second plane, fitted to them, and a block of them
    whose estimates are lost (too many together for their neighbourhood to carry) is kept on the truth."""
    import cv2

    from robo4d.extract.learned import _Refiner

    rng = np.random.RandomState(3)
    texture = lambda: cv2.GaussianBlur(rng.randint(0, 255, (80, 128, 3)).astype(np.uint8), (0, 0), 1.5)  # noqa: E731
    background, thing = texture(), texture()
    mask = np.zeros((80, 128), np.float32)
    mask[24:54, 36:86] = 1.0
    steps = np.float32([[0.4, 0.25], [-1.5, 0.75]])  # per frame, px: the background's, the object's
    t_len = 8
    frames = []
    for t in range(t_len):
        move = [np.float32([[1, 0, dx * t], [0, 1, dy * t]]) for dx, dy in steps]
        m = cv2.warpAffine(mask, move[1], (128, 80))[..., None]
        still = cv2.warpAffine(background, move[0], (128, 80), borderMode=cv2.BORDER_REFLECT_101)
        frames.append((still * (1 - m) + cv2.warpAffine(thing, move[1], (128, 80)) * m).round().astype(np.uint8))
    frames = np.stack(frames)
    grid = lambda xs, ys: np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)  # noqa: E731
    around = [grid(np.arange(6.0, 123, 8), [6.0, 12.0, 68.0, 74.0]), grid([6.0, 14.0, 100.0, 108.0, 116.0],
                                                                          np.arange(22.0, 59, 9))]  # fmt: skip
    around = np.concatenate(around)  # 85 points around the object's path
    on_thing = grid(np.arange(41.0, 77, 5), np.arange(29.0, 50, 5))  # 40 points
    queries = np.concatenate([around, on_thing]).astype(np.float32)
    moving = np.arange(len(queries)) >= len(around)
    truth = queries[None] + np.arange(t_len, dtype=np.float32)[:, None, None] * steps[moving.astype(int)][None]
    estimates = truth.copy()
    lost = moving & (np.abs(queries[:, 0] - 56) < 6) & (np.abs(queries[:, 1] - 39) < 6)  # 3 x 3 object points
    estimates[3:, lost] += np.float32([25.0, -20.0])
    refiner = _Refiner(torch.from_numpy(frames), torch.from_numpy(queries), max_px=8.0)
    chosen = refiner(torch.from_numpy(estimates), 0, 1).numpy()
    assert np.abs(chosen[1:] - truth[1:]).max() < 0.2
    assert not refiner.on_plane[moving].any() and refiner.on_plane[~moving].all() and refiner.on_second[moving].all()
