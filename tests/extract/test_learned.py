"""The learned point tracker: network shapes, windowing, visibility, a tiny overfit, strict weight loading."""

from dataclasses import replace

import numpy as np
import pytest
import safetensors.torch
import torch
from extract_fixtures import shifting_texture, translating_clip

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


def test_refinement_aligns_estimates_to_the_query_patches():
    """With `refine`, a translating texture is tracked to sub-pixel accuracy even by an untrained network."""
    frames, queries, truth = shifting_texture()
    config = replace(TINY, short_side=48)
    plain = LearnedTracker(_net(config)).track(frames, queries)[0]
    refined = LearnedTracker(_net(config), refine_max_px=8.0).track(frames, queries)[0]
    assert np.median(np.abs(refined - truth)) < 0.1 < np.median(np.abs(plain - truth))
    assert np.array_equal(refined[0], queries)
    with pytest.raises(ValueError, match="refine_max_px"):
        LearnedConfig(refine=True, refine_max_px=0.0)


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


def test_extraction_settings_name_the_refinement_design():
    """Tracks made with another refinement design (or none) record different settings, so they are not mixed."""
    from robo4d.extract.learned import weights_record

    plain, refined = weights_record(LearnedConfig()), weights_record(LearnedConfig(refine=True))
    assert "refine" not in plain and refined["refine"] == "best-of-9+mean+smooth" and refined["refine_max_px"] == 8.0
    assert refined["weights_sha256"] == plain["weights_sha256"]
