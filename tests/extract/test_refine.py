"""The learned tracker's refinement: its candidates, the choice between them, the output, and the rigid-scene model."""

import numpy as np
import torch
from extract_fixtures import shifting_texture

from robo4d.extract.refine import Parallax, PatchSampler, Refiner


def test_refinement_candidates_land_on_the_truth_from_the_query_and_the_previous_frame():
    """Both Lucas-Kanade alignments, started 1.5 px off, land on the true position (same pixel convention as the
    tracks); one that moves further than max_px gives back its start; the chosen estimate is on the truth."""
    frames, queries, truth = shifting_texture()
    refiner = Refiner(torch.from_numpy(frames), torch.from_numpy(queries), max_px=8.0)
    guess = truth[5] + np.float32([1.5, -1.0])
    assert np.abs(refiner._lk(5, 0, queries, guess) - truth[5]).max() < 0.15
    assert np.abs(refiner._lk(5, 4, truth[4], guess) - truth[5]).max() < 0.15
    strict = Refiner(torch.from_numpy(frames), torch.from_numpy(queries), max_px=0.5)
    assert np.array_equal(strict._lk(5, 0, queries, guess), guess)
    estimates = torch.from_numpy(truth[:4] + np.float32([2.0, 1.0]))  # frames 0-3, frame 0 settled
    chosen = refiner(estimates, 0, 1).numpy()
    assert np.abs(chosen[1:] - truth[1:4]).max() < 0.15 and np.array_equal(chosen[0], estimates[0].numpy())


def test_refinement_plane_candidates_recover_points_that_were_lost():
    """The homography fitted to all points' estimates carries every query to the truth of a planar scene, also the
    queries whose own estimates were far off; with its Lucas-Kanade start there, such points are chosen on the
    truth again. Too few points for a homography: no plane candidates."""
    frames, queries, truth = shifting_texture()  # a translating plane: a homography moves every point exactly
    lost = np.arange(len(queries)) % 4 == 0
    estimates = truth.copy()
    estimates[:, lost] += np.float32([30.0, -25.0])  # a quarter of the points far off, beyond any LK's reach
    refiner = Refiner(torch.from_numpy(frames), torch.from_numpy(queries), max_px=8.0)
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

    frames, queries, truth = shifting_texture()
    base = frames[0].copy()  # frame 0 is the unshifted texture
    x, y = queries[5].round().astype(int)
    base[y - 8 : y + 9, x - 8 : x + 9] = 120  # flat beyond the patch and the LK window; it moves with the plane
    shifts = truth[:, 0] - queries[0]
    frames = np.stack([cv2.warpAffine(base, np.float32([[1, 0, dx], [0, 1, dy]]), (72, 48),
                                      borderMode=cv2.BORDER_REFLECT_101) for dx, dy in shifts])  # fmt: skip
    estimates = torch.from_numpy(truth[:4] + np.float32([2.0, 1.0]))
    chosen = Refiner(torch.from_numpy(frames), torch.from_numpy(queries), max_px=8.0)(estimates, 0, 1).numpy()
    assert np.abs(chosen[1:, 5] - truth[1:4, 5]).max() < 0.05


def test_refinement_moves_a_point_on_a_flat_patch_with_its_neighbours():
    """Where no candidate's patch has texture (and there are too few points for a plane), similarity says nothing
    and the neighbourhood's carry is kept: a point whose own estimate strays moves as its neighbours do."""
    frames = np.full((3, 32, 32, 3), 120, np.uint8)
    queries = np.float32([[10.0, 12.0], [20.5, 16.25], [15.0, 20.0]])
    estimates = queries[None].repeat(3, 0) + np.float32([0.7, -0.3])
    estimates[:, 2] += np.float32([3.0, 2.0])  # one point's estimate strays from its neighbours'
    out = Refiner(torch.from_numpy(frames), torch.from_numpy(queries), max_px=8.0)(torch.from_numpy(estimates), 0, 1)
    assert np.allclose(out[1:].numpy(), queries + np.float32([0.7, -0.3]), atol=1e-5)


def test_refinement_outputs_the_mean_of_the_candidates_that_agree_with_the_kept_one():
    """On a flat image the neighbourhood's carry is kept and seeds the next window; the track's output is the mean of
    the candidates within 1.5 px of it (a network estimate 1 px off is one of them, one 3 px off is not)."""
    frames = np.full((2, 32, 32, 3), 120, np.uint8)
    queries = np.float32([[10.0, 12.0], [20.5, 16.25], [15.0, 20.0], [8.0, 24.0], [24.0, 6.0]])
    estimates = queries[None].repeat(2, 0) + np.float32([0.7, -0.3])  # the network's estimates: points 2, 3 stray
    estimates[1, 2] += np.float32([1.0, 0.0])
    estimates[1, 3] += np.float32([3.0, 0.0])
    estimates[0] = queries  # frame 0, settled
    refiner = Refiner(torch.from_numpy(frames), torch.from_numpy(queries), max_px=8.0)
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
    frames, queries, _ = shifting_texture()
    t_len, n = 9, len(queries)
    refiner = Refiner(torch.from_numpy(frames), torch.from_numpy(queries), max_px=8.0)
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
    refiner = Refiner(torch.from_numpy(frames), torch.from_numpy(queries), max_px=8.0)
    chosen = refiner(torch.from_numpy(estimates), 0, 1).numpy()
    assert np.abs(chosen[1:] - truth[1:]).max() < 0.2
    assert not refiner.on_plane[:9].any() and refiner.on_plane[9:].all()


def test_patch_sampler_gives_normalised_subpixel_crops_and_reuses_its_buffers():
    """Each patch is the bilinear 9x9 crop around its point (as cv2.getRectSubPix cuts it), zero mean and divided by
    its norm plus one grey level; more points than one remap call takes (16384) are sampled in pieces, and fewer
    points than the buffers hold (a subset) get the same patches."""
    import cv2

    rng = np.random.default_rng(0)
    grey = (rng.random((40, 60)) * 255).astype(np.float32)
    points = np.concatenate([rng.random((20000, 2)) * [50, 30] + 5, [[30.25, 20.5]]]).astype(np.float32)
    sample = PatchSampler(len(points))
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


def test_parallax_carries_static_points_off_the_plane_and_ignores_one_that_moves_on_its_own():
    """A static scene seen by a moving camera: half the points on a plane, half at other depths. Once each point's
    parallax has been seen in one frame, the rigid carry puts every static point within 0.1 px of its true position,
    also where its own estimate is lost; a point that moves on its own leaves the model (`on`) without bending it."""
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

    parallax = Parallax(pixels.astype(np.float32), 128, 96)
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
    carried = Parallax(at_infinity, 128, 96).carry(np.array([[1.0, 0, 0], [0, 1, 0], [-1 / 100, 0, 1]]), at_infinity)
    assert np.isfinite(carried).all() and np.array_equal(carried[0], at_infinity[0])


def test_refinement_tracks_a_second_plane_and_recovers_its_lost_points():
    """A large textured object moving over a textured background that moves too: the background is the dominant
    plane, the object's points leave it and are carried by the second plane, fitted to them, and a block of them
    whose estimates are lost (too many together for their neighbourhood to carry) is kept on the truth."""
    import cv2

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
    refiner = Refiner(torch.from_numpy(frames), torch.from_numpy(queries), max_px=8.0)
    chosen = refiner(torch.from_numpy(estimates), 0, 1).numpy()
    assert np.abs(chosen[1:] - truth[1:]).max() < 0.2
    assert not refiner.on_plane[moving].any() and refiner.on_plane[~moving].all() and refiner.on_second[moving].all()
