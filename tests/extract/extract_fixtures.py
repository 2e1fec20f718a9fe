"""Synthetic scenes with known motion and depth, shared by the extract tests."""

from __future__ import annotations

import cv2
import numpy as np

from robo4d.extract.queries import grid_queries


def texture(size: int, seed: int = 0) -> np.ndarray:
    """(size, size, 3) uint8 smooth random texture that LK can lock on to (blurred noise, full contrast)."""
    rng = np.random.default_rng(seed)
    f = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), 1.5)
    f = (f - f.min()) / (f.max() - f.min())
    return np.repeat((f * 255).astype(np.uint8)[..., None], 3, axis=-1)


def translating_clip(t_len: int, size: int, shift: tuple[float, float], seed: int = 0) -> np.ndarray:
    """(T, size, size, 3) window on a larger texture whose content moves by `shift` (du, dv) px per frame."""
    big = texture(size * 2, seed)
    frames = []
    for t in range(t_len):
        # dst(x) = big(x - shift * t + size / 2): the window sits mid-texture, so nothing enters from a border.
        m = np.float32([[1, 0, shift[0] * t - size / 2], [0, 1, shift[1] * t - size / 2]])
        frames.append(cv2.warpAffine(big, m, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT))
    return np.stack(frames)


def pinhole(size: int, focal: float = 100.0) -> np.ndarray:
    return np.array([[focal, 0, size / 2], [0, focal, size / 2], [0, 0, 1]], np.float32)


def shifting_texture() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A blurred random texture translating sub-pixel steps: frames (10, 48, 72, 3), queries (16, 2), truth."""
    rng = np.random.RandomState(1)
    base = cv2.GaussianBlur(rng.randint(0, 255, (48, 72, 3)).astype(np.uint8), (0, 0), 1.5)
    shifts = np.stack([np.arange(10) * 0.4, np.arange(10) * 0.25], -1).astype(np.float32)  # (T, 2) px
    frames = np.stack([cv2.warpAffine(base, np.float32([[1, 0, dx], [0, 1, dy]]), (72, 48),
                                      borderMode=cv2.BORDER_REFLECT_101) for dx, dy in shifts])  # fmt: skip
    queries = grid_queries(48, 72, 4) * np.float32([0.5, 0.5]) + np.float32([18, 12])  # away from the border
    return frames, queries, queries[None] + shifts[:, None]
