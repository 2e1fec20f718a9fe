"""Where tracks start: a regular query grid on frame 0 (ARM4R's 36x36 = 1296 points).

Pixel convention used by every stage of extract/ (and by the intrinsics): continuous image coordinates in which
the image spans [0, W] x [0, H] and array pixel (x, y) is centred at (u, v) = (x + 0.5, y + 0.5). The grid sits
on cell centres, u = (i + 0.5) * W / G, v = (j + 0.5) * H / G, in row-major order (index = j * G + i: the first
G points are the top row, left to right), so it matches the embedded world's ground-truth grid point for point.
"""

from __future__ import annotations

import numpy as np


def grid_queries(height: int, width: int, grid: int) -> np.ndarray:
    """(G*G, 2) float32 query pixels (u, v) on a GxG grid of cell centres, row-major (see the module docstring)."""
    if grid < 1:
        raise ValueError(f"grid must be >= 1, got {grid}")
    if grid > min(height, width):
        raise ValueError(
            f"grid {grid}x{grid} is larger than the image ({height}x{width} pixels): "
            f"use --grid <= {min(height, width)} so every query lands on a distinct pixel"
        )
    u = (np.arange(grid, dtype=np.float64) + 0.5) * width / grid  # (G,)
    v = (np.arange(grid, dtype=np.float64) + 0.5) * height / grid  # (G,)
    uu, vv = np.meshgrid(u, v)  # (G, G) each; row j = one v
    return np.stack([uu.ravel(), vv.ravel()], axis=-1).astype(np.float32)  # (N, 2)


def reseed_frames(num_frames: int, every: int) -> list[int]:
    """Frame indices at which lost points are re-seeded: every K frames after frame 0 (none when K == 0).

    The last frame is never a re-seed frame: a point seeded there could not be tracked anywhere.
    """
    if every < 0:
        raise ValueError(f"reseed_every must be >= 0 (0 = never), got {every}")
    if every == 0:
        return []
    return list(range(every, num_frames - 1, every))
