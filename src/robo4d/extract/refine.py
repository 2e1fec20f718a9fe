"""The learned tracker's refinement (`--tracker-refine`): per new frame, the candidates for each point's position
(the network's estimate, Lucas-Kanade, and the query carried by its neighbourhood, the frame's planes and the rigid
scene), the one whose patch best matches the query patch, and the track's output (see `Refiner`)."""

from __future__ import annotations

import numpy as np
import torch

_LK_STOP = (3, 10, 3e-2)  # cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS: 10 iterations or 0.03 px
_PATCH_RADIUS = 4  # similarity patches are 9x9 pixels
_PLANE_INLIER_PX = 1.5  # inlier distance of the dominant plane's robust homography fit (network pixels)
_PLANE_MIN_POINTS = 8  # fewer queries than this: no plane candidates
_PLANE_LEFT_PX = 3.0  # settled further than this from the plane's carry: the point left the plane (see `Refiner`)
_NEIGHBOURS = 9  # the local candidate moves a query by the median motion of this many nearest queries (itself too)
# Similarity bonuses of the geometric candidates (see `Refiner`), chosen on videos not evaluated on.
_PLANE_PRIOR = 0.1
_LOCAL_PRIOR = 0.05
_SECOND_PLANE_MIN = 30  # points off the dominant plane, and inliers among them, needed to fit a second plane
_PARALLAX_MIN = 20  # points needed to fit the frame's epipole (see `Parallax`)
_AGREE_PX = 1.5  # a frame's output averages the candidates within this of the kept one (network pixels)
_SMOOTHING = np.array([1, 4, 6, 4, 1]) / 16  # over frames, of each on-plane point's offset from the plane's carry


class Refiner:
    """Per new frame, up to nine candidates for each point, and the one whose 9x9 patch is most similar (normalised
    cross-correlation) to the query patch, plus the candidate's bonus, is kept:
    - the network's estimate;
    - Lucas-Kanade from the previous frame's settled estimate, started at the network's estimate ("followed"):
      follows a point whose look changes, but can drift;
    - the query moved by the median motion (from the query to "followed") of its nearest queries: a neighbourhood
      that moves together, an object or a patch of background, carries the point along; bonus `_LOCAL_PRIOR`;
    - Lucas-Kanade from the query patch started there;
    - the query carried by the homography that best explains "followed" over all points (a robust fit): the
      frame's dominant plane (a table, a wall, the background under a turning camera), which cannot drift; bonus
      `_PLANE_PRIOR`;
    - Lucas-Kanade from the query patch started there, with the same bonus where it stayed within the plane's
      inlier distance of the carried query;
    - the same two from a second plane, fitted to the points off the dominant one (a wall, a box's face), for the
      points that are off the dominant plane and were on the second one last frame;
    - the rigid scene's carry (`Parallax`): the plane's carry plus the point's own parallax, which holds a static
      point that lies off the plane; bonus `_PLANE_PRIOR` while the point stays within `_PLANE_LEFT_PX` of it, and
      none (but still a chance, unlike the planes' candidates) once it strays.
    A Lucas-Kanade candidate maximises similarity around where it starts, so it wins the comparison even where it
    settled on a look-alike; the geometric candidates do not, hence their bonuses. A point settled further than
    `_PLANE_LEFT_PX` from the plane's carry has left the plane (it moves on its own, e.g. in a hand, or lies off
    the plane) and gets no plane candidates in the next frame. On a flat patch, where similarity says nothing, the
    bonuses decide (the plane's carry, else the neighbourhood's); on an exact tie the network's estimate, then
    "followed", is preferred.

    The kept candidate seeds the next window. The track's output is sharper: per frame, the mean of the candidates
    within `_AGREE_PX` of the kept one (independent estimates that agree), and once all frames are in (`finish`),
    each point's offset from the plane's carry smoothed over the neighbouring frames where the point is on the
    plane (the carry holds the camera's shake, the offset what is left, which changes slowly there; a point that
    moves on its own is left as it is)."""

    def __init__(self, frames: torch.Tensor, queries: torch.Tensor, max_px: float) -> None:
        import cv2
        from scipy.spatial import cKDTree

        self.grey = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames.numpy()]
        self.queries = queries.numpy().astype(np.float32)
        self.sample = PatchSampler(len(self.queries))
        self.query_patches = self.sample(self.grey[0], self.queries).copy()  # (N, P)
        self.previous = self.queries.copy()  # the last aligned frame's estimates (frame 0: queries)
        self.on_plane = np.ones(len(self.queries), bool)  # per point: settled near the plane's carry last frame
        self.on_second = np.ones(len(self.queries), bool)  # the same for the second plane
        self.parallax = Parallax(self.queries, frames.shape[2], frames.shape[1])
        self.output: dict[int, np.ndarray] = {}  # per frame: (N, 2) the track's estimate (see `finish`)
        self.planes: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # per frame with a plane: carry, `on_plane` after
        k = min(_NEIGHBOURS, len(self.queries))
        self.neighbours = cKDTree(self.queries).query(self.queries, k=k)[1].reshape(len(self.queries), k)  # (N, k)
        self.max_px = max_px

    def __call__(self, estimates: torch.Tensor, start: int, done: int) -> torch.Tensor:
        """estimates (S, N, 2) of frames start..start+S-1 -> the same, each new frame's replaced by its best candidate
        (frames before `done` are settled and left alone). New frames must come in order, each once."""
        out = estimates.numpy().copy()
        n = out.shape[1]
        for j in range(max(0, done - start), len(out)):
            t = start + j
            followed = self._lk(t, t - 1, self.previous, out[j])
            candidates, bonus = [out[j], followed], [np.zeros(n), np.zeros(n)]
            homography = self._fit_plane(self.queries, followed, _PLANE_MIN_POINTS)
            carried = second = rigid = None
            if homography is not None:
                carried = self._carry(homography, followed)
                off = np.linalg.norm(carried - followed, axis=-1) >= _PLANE_INLIER_PX
                fit = self._fit_plane(self.queries[off], followed[off], _SECOND_PLANE_MIN)
                second = None if fit is None else self._carry(fit, followed)
                rigid = self.parallax.carry(homography, followed)
            for plane, member in ((carried, self.on_plane), (second, self.on_second & ~self.on_plane)):
                if plane is not None:
                    more, bonuses = self._plane_candidates(t, plane, member)
                    candidates += more
                    bonus += bonuses
            local = self.queries + np.median((followed - self.queries)[self.neighbours], axis=1)
            candidates += [self._lk(t, 0, self.queries, local, levels=0), local]
            bonus += [np.zeros(n), np.full(n, _LOCAL_PRIOR)]
            if rigid is not None:
                candidates.append(rigid)
                bonus.append(np.where(self.parallax.on, _PLANE_PRIOR, 0.0))
            image = self.grey[t].astype(np.float32)  # once for all candidates' patches
            scores = np.full((len(candidates), n), -np.inf)  # a candidate's excluded points are not even sampled
            for score, candidate, prior in zip(scores, candidates, bonus, strict=True):
                live = np.isfinite(prior)
                rows = slice(None) if live.all() else live  # a view of all points, no copy
                patches = self.sample(image, candidate[rows])
                score[rows] = np.einsum("ij,ij->i", patches, self.query_patches[rows]) + prior[rows]
            candidates = np.stack(candidates)  # (C, N, 2)
            out[j] = candidates[scores.argmax(0), np.arange(n)]
            agree = (np.linalg.norm(candidates - out[j], axis=-1) <= _AGREE_PX) & np.isfinite(scores)  # (C, N)
            self.output[t] = np.einsum("cn,cnd->nd", agree, candidates) / agree.sum(0)[:, None]
            if carried is not None:
                self.on_plane = np.linalg.norm(out[j] - carried, axis=-1) < _PLANE_LEFT_PX
                self.planes[t] = carried, self.on_plane
            if second is not None:
                self.on_second = np.linalg.norm(out[j] - second, axis=-1) < _PLANE_LEFT_PX
            if rigid is not None:
                self.parallax.update(out[j], rigid)
            self.previous = out[j]
        return torch.from_numpy(out)

    def finish(self, uv: torch.Tensor) -> torch.Tensor:
        """uv (T, N, 2), every frame after the first passed through this refiner -> the track's output (see the class
        docstring). The smoothing is a normalised convolution over the point-frames on the plane (frame 0 is: its
        plane is the identity; it takes part but stays); the others neither take part nor change."""
        from scipy.ndimage import convolve1d

        uv = uv.numpy().astype(np.float64)
        for t, estimate in self.output.items():
            uv[t] = estimate
        carried, on = uv.copy(), np.zeros(uv.shape[:2])
        carried[0], on[0] = self.queries, 1.0
        for t, (plane, on_plane) in self.planes.items():
            carried[t], on[t] = plane, on_plane
        offset = convolve1d((uv - carried) * on[..., None], _SMOOTHING, axis=0, mode="constant")
        norm = convolve1d(on, _SMOOTHING, axis=0, mode="constant")[..., None]
        smoothed = np.where(on[..., None] > 0, carried + offset / np.maximum(norm, 1e-12), uv)
        smoothed[0] = uv[0]
        return torch.from_numpy(smoothed.astype(np.float32))

    def _plane_candidates(self, t: int, carried: np.ndarray, member: np.ndarray) -> tuple[list, list]:
        """([LK from the query patch started at the carried query, the carried query], [their bonuses]) for frame t:
        the plane's bonus for the points that are `member`s (the Lucas-Kanade one only where it stayed within the
        plane's inlier distance of the carry), and no chance for the others."""
        aligned = carried.copy()  # aligned only where it can be kept
        if member.any():
            aligned[member] = self._lk(t, 0, self.queries[member], carried[member], levels=0)
        held = np.linalg.norm(aligned - carried, axis=-1) < _PLANE_INLIER_PX
        excluded = np.where(member, 0.0, -np.inf)
        return [aligned, carried], [_PLANE_PRIOR * held + excluded, _PLANE_PRIOR + excluded]

    @staticmethod
    def _fit_plane(source: np.ndarray, target: np.ndarray, min_points: int) -> np.ndarray | None:
        """The homography (3, 3) of the plane that best explains source -> target (M, 2): USAC, then least squares
        over its inliers; None where there are fewer than `min_points` points or inliers, or no homography."""
        import cv2

        if len(source) < min_points:
            return None
        homography, inliers = cv2.findHomography(source, target, cv2.USAC_FAST, _PLANE_INLIER_PX)
        if homography is None or inliers.sum() < min_points:
            return None
        inliers = inliers[:, 0].astype(bool)  # USAC_FAST's model is loose: least squares over its inliers
        return cv2.findHomography(source[inliers], target[inliers], 0)[0]

    def _carry(self, homography: np.ndarray, followed: np.ndarray) -> np.ndarray:
        """The queries moved by `homography`; a point sent to infinity keeps `followed`."""
        import cv2

        carried = cv2.perspectiveTransform(self.queries[:, None], homography)[:, 0]
        return np.where(np.isfinite(carried), carried, followed).astype(np.float32)

    def _lk(self, t: int, source: int, points: np.ndarray, guess: np.ndarray, levels: int = 2) -> np.ndarray:
        """Lucas-Kanade of `points` in frame `source` to frame t, started at `guess` (N, 2), over `levels` pyramid
        levels above full resolution; where it fails or moves further than max_px from the guess, the guess."""
        import cv2

        start = (guess - 0.5).astype(np.float32).reshape(-1, 1, 2)  # OpenCV: pixel centres at integers
        moved, status, _ = cv2.calcOpticalFlowPyrLK(
            self.grey[source], self.grey[t], (points - 0.5).astype(np.float32).reshape(-1, 1, 2), start.copy(),
            winSize=(9, 9), maxLevel=levels, flags=cv2.OPTFLOW_USE_INITIAL_FLOW, criteria=_LK_STOP,
        )  # fmt: skip
        moved = moved[:, 0] + 0.5
        ok = (status[:, 0] == 1) & np.isfinite(moved).all(-1)
        moved = np.where(ok[:, None], moved, guess)
        near = np.linalg.norm(moved - guess, axis=-1) < self.max_px
        return np.where(near[:, None], moved, guess).astype(np.float32)


class Parallax:
    """The rigid scene's carry of each query. A static point moves as the dominant plane's carry plus its own
    parallax: in homogeneous image coordinates x_t ~ H_t x_0 + k e_t, with H_t the plane's homography, e_t the
    epipole (where the camera moves; shared by all points in the frame) and k the point's depth relative to the
    plane (constant over time). Per frame, e_t is fitted to the points whose k is best known (the better half, by
    the evidence summed so far) by reweighted least squares; before any k is known, as the point where the points'
    parallax lines (the carry to "followed") meet. Each point's k is a least-squares fit over the frames where its
    kept estimate was within `_PLANE_LEFT_PX` of the model (any frame while it has none), so a point that moves on
    its own, or is lost, does not bend it. `on`: per point, kept within `_PLANE_LEFT_PX` of last frame's carry."""

    def __init__(self, queries: np.ndarray, width: int, height: int) -> None:
        self.centre, self.scale = np.array([width / 2, height / 2]), max(width, height) / 2  # for conditioning
        self.start = self._lift(queries)  # (N, 3)
        self.num, self.den = np.zeros(len(queries)), np.zeros(len(queries))  # k's normal equations, summed
        self.on = np.ones(len(queries), bool)
        self.model: tuple[np.ndarray, np.ndarray] | None = None  # the last carry's (H_t x_0 (N, 3), e_t (3,))

    def carry(self, homography: np.ndarray, followed: np.ndarray) -> np.ndarray | None:
        """homography (3, 3) of the dominant plane (pixels), followed (N, 2) -> (N, 2) the rigid scene's carry, or
        None where the epipole cannot be fitted (too few points with parallax)."""
        norm = np.array([[self.scale, 0, self.centre[0]], [0, self.scale, self.centre[1]], [0, 0, 1]])
        h_t = np.linalg.inv(norm) @ homography @ norm
        if not np.isfinite(h_t).all() or abs(h_t[2, 2]) < 1e-12:  # the image centre sent to infinity
            self.model = None
            return None
        planar = self.start @ (h_t / h_t[2, 2]).T  # (N, 3)
        seen, k = self._lift(followed), self._depth()
        epipole = None
        finite = np.isfinite(self._drop(planar)).all(-1)  # a point sent to infinity takes no part in the fits
        known = (self.den > 0) & (self.den >= np.quantile(self.den, 0.5)) & finite
        if known.sum() >= _PARALLAX_MIN:  # k * (seen x e) = -(seen x planar), reweighted by the residual in pixels
            p, x, kk = seen[known], planar[known], k[known]
            cross = np.zeros((len(p), 3, 3))  # (M, 3, 3): cross @ e = p x e
            cross[:, 0, 1], cross[:, 0, 2], cross[:, 1, 2] = -p[:, 2], p[:, 1], -p[:, 0]
            cross -= cross.transpose(0, 2, 1)
            weight = np.ones(len(p))
            for _ in range(3):
                a = (kk[:, None, None] * cross * np.sqrt(weight)[:, None, None]).reshape(-1, 3)
                b = (-np.cross(p, x) * np.sqrt(weight)[:, None]).reshape(-1)
                epipole = np.linalg.lstsq(a, b, rcond=None)[0]
                residual = np.linalg.norm(self._drop(x + kk[:, None] * epipole) - self._drop(p), axis=-1)
                weight = 1 / np.maximum(np.where(np.isfinite(residual), residual, 1e6), 0.5)
        else:  # the epipole lies on every line through a point's carry and its estimate
            moved = finite & (np.linalg.norm(self._drop(seen) - self._drop(planar), axis=-1) > 0.7)  # px: not noise
            if moved.sum() >= _PARALLAX_MIN:
                epipole = np.linalg.svd(np.cross(seen[moved], planar[moved]))[2][-1]
        if epipole is None:
            self.model = None
            return None
        self.model = planar, epipole
        carried = self._drop(planar + k[:, None] * epipole)
        return np.where(np.isfinite(carried), carried, followed).astype(np.float32)

    def update(self, kept: np.ndarray, carried: np.ndarray) -> None:
        """kept (N, 2): the frame's kept estimates, after `carry` gave `carried` -> `on` and k's evidence updated."""
        planar, epipole = self.model
        self.on = np.linalg.norm(kept - carried, axis=-1) < _PLANE_LEFT_PX
        seen = self._lift(kept)
        a, b = np.cross(seen, epipole), np.cross(seen, planar)
        residual = np.linalg.norm(self._drop(planar + self._depth()[:, None] * epipole) - kept, axis=-1)
        agree = ((residual < _PLANE_LEFT_PX) | (self.den <= 0)) & np.isfinite(residual)
        self.num[agree] -= np.einsum("ij,ij->i", a, b)[agree]
        self.den[agree] += np.einsum("ij,ij->i", a, a)[agree]

    def _depth(self) -> np.ndarray:
        return np.where(self.den > 0, self.num / np.maximum(self.den, 1e-12), 0.0)

    def _lift(self, points: np.ndarray) -> np.ndarray:
        return np.concatenate([(points - self.centre) / self.scale, np.ones((len(points), 1))], 1)

    def _drop(self, points: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return points[:, :2] / points[:, 2:] * self.scale + self.centre


class PatchSampler:
    """Bilinear 9x9 patches around N points, zero mean and divided by their norm plus one grey level (so a flat patch
    is near zero and scores low against any patch), written into buffers reused from call to call: fresh arrays of
    this size cost about as much to allocate as to fill. Each call overwrites the previous call's patches."""

    def __init__(self, n: int) -> None:
        r = np.arange(-_PATCH_RADIUS, _PATCH_RADIUS + 1, dtype=np.float32)
        dy, dx = np.meshgrid(r, r, indexing="ij")
        self.dx, self.dy = dx.ravel(), dy.ravel()
        self.map_x, self.map_y, self.patches = (np.empty((n, len(self.dx)), np.float32) for _ in range(3))

    def __call__(self, grey: np.ndarray, points: np.ndarray) -> np.ndarray:
        """grey (H, W), points (M, 2) pixel coordinates (continuous), M <= N -> (M, P) patches (the shared buffer's
        first M rows)."""
        import cv2

        m = len(points)
        map_x, map_y, patches = self.map_x[:m], self.map_y[:m], self.patches[:m]
        centres = points.astype(np.float32) - 0.5  # OpenCV: pixel centres at integers
        np.add(centres[:, :1], self.dx, out=map_x)
        np.add(centres[:, 1:], self.dy, out=map_y)
        image = np.asarray(grey, np.float32)  # no copy when the caller converted it already
        for lo in range(0, m, 16384):  # remap's maps stay under 32767 rows
            rows = slice(lo, lo + 16384)
            cv2.remap(image, map_x[rows], map_y[rows], cv2.INTER_LINEAR, dst=patches[rows],
                      borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
        patches -= patches.mean(1, keepdims=True)
        patches /= (np.sqrt(np.einsum("ij,ij->i", patches, patches)) + 1.0)[:, None]
        return patches
