"""A dataset's video as IGOR sees it: one camera, every frame resized to S x S, and each frame's goal frame.

Human video (`ego`) and robot demos (`front`) enter the same stage: each dataset contributes the first of the
config's cameras it has, with that camera's frame gap k. The goal of frame t is o_{t+k}, clamped to the
episode's last frame (near the end the latent action then means "reach the final frame"); training and
labelling use the same rule, so labels match what the LAM was trained on.

Decoded frames stay in memory (uint8, e.g. 12k frames at 64 px are 150 MB) and are looked up by the
dataset's global frame index; forked data-loader workers share the array.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from robo4d import types
from robo4d.methods.igor.config import IGORConfig


def dataset_camera(dataset: Any, cfg: IGORConfig) -> str:
    """The first of the config's cameras whose RGB video the dataset has."""
    for cam in cfg.cameras:
        if types.image_key(cam) in dataset.features:
            return cam
    raise ValueError(
        f"{dataset.root}: no video of any IGOR camera {list(cfg.cameras)} (features: {sorted(dataset.features)})"
    )


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, size, size, 3) uint8 (antialiased bilinear)."""
    if frames.shape[1:3] == (size, size):
        return np.ascontiguousarray(frames)
    out = []
    for start in range(0, len(frames), 256):
        x = torch.from_numpy(frames[start : start + 256]).permute(0, 3, 1, 2).float()
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out.append(x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def goal_indices(lengths: np.ndarray, gap: int) -> np.ndarray:
    """(num_frames,) global index of each frame's goal: t + gap within its episode, clamped to its last frame."""
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    return np.concatenate([s + np.minimum(np.arange(n) + gap, n - 1) for s, n in zip(starts, lengths, strict=True)])


def episode_frames(dataset: Any, ep: int, camera: str, size: int) -> np.ndarray:
    """(T, S, S, 3) uint8 frames of one episode."""
    return resize_frames(dataset.read_episode(ep, [types.image_key(camera)])[types.image_key(camera)], size)


class FrameTable:
    """Every frame of a dataset's IGOR camera, resized; called with global indices as a window frame source."""

    def __init__(self, dataset: Any, cfg: IGORConfig) -> None:
        self.camera = dataset_camera(dataset, cfg)
        self.gap = cfg.frame_gap(self.camera)
        lengths = np.asarray(dataset.episode_lengths)
        self.frames = np.concatenate(
            [episode_frames(dataset, ep, self.camera, cfg.image_size) for ep in range(dataset.num_episodes)]
        )  # fmt: skip  (num_frames, S, S, 3)
        self.goal = goal_indices(lengths, self.gap)  # (num_frames,)

    def sources(self) -> dict[str, Any]:
        return {types.FRAMES: _Rows(self.frames, None), types.GOAL_FRAMES: _Rows(self.frames, self.goal)}


class _Rows:
    """indices (n,) -> rows of `table` (through `remap` when given); picklable for data-loader workers."""

    def __init__(self, table: np.ndarray, remap: np.ndarray | None) -> None:
        self.table, self.remap = table, remap

    def __call__(self, index: np.ndarray) -> np.ndarray:
        index = np.asarray(index)
        return self.table[index if self.remap is None else self.remap[index]]
