"""Lifting 2D tracks to 3D: sample depth at each track, reject what cannot be trusted, back-project.

Sampling is bilinear by default: LK positions are sub-pixel, and on a smooth slanted surface nearest sampling
quantises depth by up to half a pixel's depth gradient. Bilinear sampling across a depth discontinuity would
invent a "flying" point between the two surfaces, so every point whose neighbourhood straddles a discontinuity
is rejected (not visible) rather than lifted — for such a point even nearest sampling is a coin toss between
foreground and background at one pixel of tracking error.

Depth is metric z-depth along the optical axis (types.py). Invalid depth (NaN, inf, <= 0) is never used: a tap
that touches it makes the point invalid for that frame.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Sampling = Literal["bilinear", "nearest"]

ARM4R_UV_SCALE = 0.002  # ARM4R stores (0.002 u, 0.002 v, depth): pixels scaled so 912-px-wide video is ~O(1)


def sample_depth(depth: np.ndarray, uv: np.ndarray, *, mode: Sampling = "bilinear") -> np.ndarray:
    """Depth at continuous pixel positions, NaN where any tap is invalid or the point is outside the image.

    depth (T, H, W) float32 metres; uv (T, N, 2) -> (T, N) float32.
    """
    t_len, height, width = depth.shape
    valid_px = np.isfinite(depth) & (depth > 0)  # (T, H, W)
    clean = np.where(valid_px, depth, np.nan).astype(np.float32)
    frame = np.arange(t_len)[:, None]  # (T, 1) broadcast against (T, N)
    x = uv[..., 0] - 0.5  # array coordinates: pixel centres on integers
    y = uv[..., 1] - 0.5
    inside = (x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5)
    if mode == "nearest":
        xi = np.clip(np.rint(x), 0, width - 1).astype(np.int64)
        yi = np.clip(np.rint(y), 0, height - 1).astype(np.int64)
        out = clean[frame, yi, xi]
    elif mode == "bilinear":
        # Half a pixel beyond the outermost centres there is only one column/row of taps: clamp (edge extension).
        x = np.clip(x, 0, width - 1)
        y = np.clip(y, 0, height - 1)
        x0 = np.minimum(np.floor(x).astype(np.int64), max(width - 2, 0))
        y0 = np.minimum(np.floor(y).astype(np.int64), max(height - 2, 0))
        x1 = np.minimum(x0 + 1, width - 1)
        y1 = np.minimum(y0 + 1, height - 1)
        fx = (x - x0).astype(np.float32)  # (T, N)
        fy = (y - y0).astype(np.float32)
        top = clean[frame, y0, x0] * (1 - fx) + clean[frame, y0, x1] * fx
        bottom = clean[frame, y1, x0] * (1 - fx) + clean[frame, y1, x1] * fx
        out = top * (1 - fy) + bottom * fy  # NaN if any tap is NaN
    else:
        raise ValueError(f"depth sampling must be 'bilinear' or 'nearest', got {mode!r}")
    return np.where(inside, out, np.nan).astype(np.float32)


def depth_discontinuity(depth: np.ndarray, uv: np.ndarray, *, rel_threshold: float, radius: int = 1) -> np.ndarray:
    """True where the (2r+1)^2 neighbourhood of a point's pixel spans more than `rel_threshold` relative depth.

    (max - min) / min over valid pixels; relative because depth noise and the depth step across one pixel of a
    slanted surface both grow with distance. depth (T, H, W), uv (T, N, 2) -> (T, N) bool.
    """
    t_len, height, width = depth.shape
    valid_px = np.isfinite(depth) & (depth > 0)
    low = np.where(valid_px, depth, np.inf)
    high = np.where(valid_px, depth, -np.inf)
    frame = np.arange(t_len)[:, None, None]  # (T, 1, 1)
    offsets = np.arange(-radius, radius + 1)
    xc = np.clip(np.floor(uv[..., 0]).astype(np.int64), 0, width - 1)  # (T, N) pixel containing the point
    yc = np.clip(np.floor(uv[..., 1]).astype(np.int64), 0, height - 1)
    dy, dx = np.meshgrid(offsets, offsets, indexing="ij")
    xs = np.clip(xc[..., None] + dx.ravel(), 0, width - 1)  # (T, N, K)
    ys = np.clip(yc[..., None] + dy.ravel(), 0, height - 1)
    d_min = low[frame, ys, xs].min(-1)  # (T, N)
    d_max = high[frame, ys, xs].max(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = (d_max - d_min) / d_min
    return np.isfinite(spread) & (spread > rel_threshold)


def unproject(uv: np.ndarray, z: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """Camera-frame XYZ (OpenCV axes) from pixels and z-depth. uv (T, N, 2), z (T, N), intrinsics (T, 3, 3)."""
    fx = intrinsics[:, 0, 0, None]  # (T, 1)
    fy = intrinsics[:, 1, 1, None]
    cx = intrinsics[:, 0, 2, None]
    cy = intrinsics[:, 1, 2, None]
    skew = intrinsics[:, 0, 1, None]
    y = (uv[..., 1] - cy) / fy * z
    x = ((uv[..., 0] - cx) * z - skew * y) / fx
    return np.stack([x, y, z], axis=-1).astype(np.float32)  # (T, N, 3)


def camera_to_world(xyz: np.ndarray, extrinsics: np.ndarray) -> np.ndarray:
    """World-frame points from camera-frame points; extrinsics (T, 4, 4) world-from-camera, xyz (T, N, 3)."""
    rot = extrinsics[:, :3, :3]  # (T, 3, 3)
    trans = extrinsics[:, None, :3, 3]  # (T, 1, 3)
    return (np.einsum("tij,tnj->tni", rot, xyz) + trans).astype(np.float32)


def to_uvd(uv: np.ndarray, z: np.ndarray) -> np.ndarray:
    """ARM4R's storage format (0.002 u, 0.002 v, depth metres). uv (T, N, 2), z (T, N) -> (T, N, 3)."""
    return np.concatenate([uv * ARM4R_UV_SCALE, z[..., None]], axis=-1).astype(np.float32)


def hold_last_valid(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Fill each point's invalid frames with its nearest valid value in time (the last one, or for a leading gap
    the first one), so that a point that is not visible reads as *not moving* rather than as a made-up position.

    values (T, N, C) float, valid (T, N) bool -> (T, N, C). A point never valid in the clip has nothing to hold
    and is filled with 0; its visibility is False on every frame, which is the flag consumers must respect.
    """
    t_len = len(values)
    idx = np.where(valid, np.arange(t_len)[:, None], -1)  # (T, N)
    last = np.maximum.accumulate(idx, axis=0)  # (T, N) index of the last valid frame so far, -1 if none yet
    first = np.where(valid.any(0), valid.argmax(0), 0)  # (N,)
    src = np.where(last >= 0, last, first[None, :])  # (T, N)
    out = np.take_along_axis(values, src[..., None], axis=0)
    return np.where(valid.any(0)[None, :, None], out, 0).astype(values.dtype)
