"""2D point trackers behind one protocol, and re-seeding of lost points on top of any of them.

Coordinates are continuous image coordinates (see `queries`): array pixel (x, y) is centred at (x + 0.5, y + 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from robo4d.extract.queries import reseed_frames


class PointTracker(Protocol):
    """Tracks N query points, all given on frame 0, through a clip.

    track(frames (T, H, W, 3) uint8 RGB, queries (N, 2) float32 (u, v) on frame 0)
      -> uv (T, N, 2) float32, visible (T, N) bool.
    Where a point is not visible its uv is the tracker's best guess (or the last tracked position); it is
    never NaN. visible[0] is True for every query inside the image.
    """

    def track(self, frames: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True, kw_only=True)
class LKConfig:
    """OpenCV pyramidal Lucas-Kanade, frame to frame, on grayscale, with a forward-backward check."""

    win_size: int = 15  # side of the square matching window at each pyramid level, pixels (odd)
    levels: int = 3  # pyramid levels above the base image; motion up to ~win_size/2 * 2**levels px per frame
    max_iters: int = 20  # Gauss-Newton iterations per level
    eps: float = 0.03  # stop iterating once the update is below this, pixels
    # Forward-backward threshold in pixels: track t -> t+1, then back to t; a point whose round trip misses its
    # start by more than this is declared lost (occluded, left the texture, or drifted). None disables the check.
    fb_threshold: float | None = 1.0
    min_eig: float = 1e-4  # OpenCV's minEigThreshold: windows with less texture than this are lost

    def __post_init__(self) -> None:
        if self.win_size < 3 or self.win_size % 2 == 0:
            raise ValueError(f"LKConfig.win_size must be an odd number >= 3, got {self.win_size}")
        if self.levels < 0 or self.max_iters < 1 or self.eps <= 0 or self.min_eig < 0:
            raise ValueError(f"LKConfig has out-of-range values: {self}")
        if self.fb_threshold is not None and self.fb_threshold <= 0:
            raise ValueError(f"LKConfig.fb_threshold must be > 0 pixels or None, got {self.fb_threshold}")

    def build(self) -> LKTracker:
        return LKTracker(self)


class LKTracker:
    """Frame-to-frame pyramidal LK. A point lost once (LK failure, FB failure, left the image) stays lost and
    keeps its last tracked position; re-seeding (see `track_with_reseeding`) is how lost slots are reused."""

    def __init__(self, config: LKConfig) -> None:
        self.config = config

    def track(self, frames: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import cv2  # imported here so that `robo4d extract --help` stays fast

        _check_inputs(frames, queries)
        cfg = self.config
        t_len, height, width = frames.shape[:3]
        lk_args = dict(
            winSize=(cfg.win_size, cfg.win_size),
            maxLevel=cfg.levels,
            criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, cfg.max_iters, cfg.eps),
            minEigThreshold=cfg.min_eig,
        )
        uv = np.empty((t_len, len(queries), 2), np.float32)  # (T, N, 2)
        visible = np.zeros((t_len, len(queries)), bool)  # (T, N)
        uv[0] = queries
        visible[0] = _inside(queries, height, width)
        prev = cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY)  # (H, W) uint8
        for t in range(1, t_len):
            cur = cv2.cvtColor(frames[t], cv2.COLOR_RGB2GRAY)
            uv[t] = uv[t - 1]
            alive = np.flatnonzero(visible[t - 1])
            if alive.size:
                # OpenCV puts pixel centres on integers; our coordinates put them on half-integers.
                p0 = (uv[t - 1, alive] - 0.5).reshape(-1, 1, 2)  # (M, 1, 2)
                p1, ok, _ = cv2.calcOpticalFlowPyrLK(prev, cur, p0, None, **lk_args)
                ok = ok.ravel().astype(bool)
                if cfg.fb_threshold is not None:
                    back, ok_back, _ = cv2.calcOpticalFlowPyrLK(cur, prev, p1, None, **lk_args)
                    round_trip = np.linalg.norm((back - p0).reshape(-1, 2), axis=-1)  # (M,)
                    ok &= ok_back.ravel().astype(bool) & (round_trip <= cfg.fb_threshold)
                new = p1.reshape(-1, 2) + 0.5  # (M, 2)
                ok &= np.isfinite(new).all(-1) & _inside(new, height, width)
                uv[t, alive[ok]] = new[ok]
                visible[t, alive[ok]] = True
            prev = cur
        return uv, visible


def track_with_reseeding(
    tracker: PointTracker, frames: np.ndarray, queries: np.ndarray, *, every: int
) -> tuple[np.ndarray, np.ndarray]:
    """Run `tracker`, and every `every` frames put each lost slot back on its grid query in the current frame.

    The clip is cut into segments [s_k, s_k+1] that share their boundary frame; each segment is tracked from the
    positions at its first frame (visible points continue, lost ones restart at their query pixel), so any
    tracker that follows the protocol can be re-seeded. A re-seeded slot follows a *new* surface point: its
    position jumps at the re-seed frame and it is not comparable to ground truth for the original point after.
    every == 0 tracks the whole clip once. Returns uv (T, N, 2) float32 and visible (T, N) bool.
    """
    t_len = len(frames)
    starts = [0, *reseed_frames(t_len, every)]
    if len(starts) == 1:
        return tracker.track(frames, queries)
    uv = np.empty((t_len, len(queries), 2), np.float32)
    visible = np.zeros((t_len, len(queries)), bool)
    for k, start in enumerate(starts):
        stop = starts[k + 1] if k + 1 < len(starts) else t_len - 1  # inclusive boundary frame
        seg_queries = queries if start == 0 else np.where(visible[start, :, None], uv[start], queries)
        seg_uv, seg_vis = tracker.track(frames[start : stop + 1], seg_queries.astype(np.float32))
        uv[start : stop + 1] = seg_uv
        visible[start : stop + 1] = seg_vis
    return uv, visible


def _inside(uv: np.ndarray, height: int, width: int) -> np.ndarray:
    return (uv[..., 0] >= 0) & (uv[..., 0] <= width) & (uv[..., 1] >= 0) & (uv[..., 1] <= height)


def _check_inputs(frames: np.ndarray, queries: np.ndarray) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    if len(frames) < 2:
        raise ValueError(f"tracking needs at least 2 frames, got {len(frames)}")
    if queries.ndim != 2 or queries.shape[1] != 2 or not np.isfinite(queries).all():
        raise ValueError(f"queries must be finite (N, 2) pixel positions, got shape {queries.shape}")
