"""A small robot-like dataset (video, state, action, depth, camera matrices, points) for the data tests.

A plain module (not conftest) so tests import its helpers by a name no other test folder uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robo4d import types
from robo4d.data.features import DEPTH_NAMES, Feature
from robo4d.data.writer import DatasetWriter

H, W, N = 32, 48, 8  # image size and points per camera
FPS = 10
CAM = types.CAM_FRONT
LENGTHS = (12, 15, 9, 14)
TASKS = ("push the block", "open the drawer")

FEATURES = {
    types.image_key(CAM): Feature(dtype="video", shape=(H, W, 3), names=("height", "width", "channels")),
    types.STATE: Feature(dtype="float32", shape=(types.STATE_DIM,)),
    types.ACTION: Feature(dtype="float32", shape=(types.METAWORLD_ACTION_DIM,)),
    types.depth_key(CAM): Feature(dtype="uint16", shape=(H, W), names=DEPTH_NAMES),
    types.intrinsics_key(CAM): Feature(dtype="float32", shape=(3, 3)),
    types.extrinsics_key(CAM): Feature(dtype="float32", shape=(4, 4)),
    types.points_key(CAM): Feature(dtype="float32", shape=(N, 3)),
    types.points_visible_key(CAM): Feature(dtype="bool", shape=(N,)),
    types.SUCCESS: Feature(dtype="bool", shape=(1,)),
}


def render(length: int, seed: int) -> np.ndarray:
    """(T, H, W, 3) uint8: a smooth background with a soft moving blob, like a simple rendered scene."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    frames = np.empty((length, H, W, 3), dtype=np.uint8)
    for t in range(length):
        cy, cx = 8 + (t % 16), 10 + (2 * t + 3 * seed) % 28
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 18.0)[..., None]  # (H, W, 1)
        background = np.stack([60 + 2.5 * xx + 5 * seed, 50 + 4 * yy + t, 110 + xx + yy], axis=-1)  # (H, W, 3)
        frames[t] = np.clip(background * (1 - blob) + np.array([210, 70, 60]) * blob, 0, 255).astype(np.uint8)
    return frames


def make_episode(length: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        types.image_key(CAM): render(length, seed),
        types.STATE: rng.normal(size=(length, types.STATE_DIM)).astype(np.float32),
        types.ACTION: rng.normal(size=(length, types.METAWORLD_ACTION_DIM)).astype(np.float32),
        types.depth_key(CAM): rng.uniform(0.05, 4.0, size=(length, H, W)).astype(np.float32),
        types.intrinsics_key(CAM): np.broadcast_to(np.diag([50.0, 50.0, 1.0]), (length, 3, 3)).astype(np.float32),
        types.extrinsics_key(CAM): rng.normal(size=(length, 4, 4)).astype(np.float32),
        types.points_key(CAM): rng.normal(size=(length, N, 3)).astype(np.float32),
        types.points_visible_key(CAM): rng.random((length, N)) > 0.3,
        types.SUCCESS: np.arange(length) == length - 1,
    }


def write_dataset(root: Path, episodes: list[dict[str, np.ndarray]], **kwargs) -> Path:
    writer = DatasetWriter(root, fps=FPS, features=FEATURES, robot_type="sawyer", **kwargs)
    for ep, frames in enumerate(episodes):
        extra = {types.EPISODE_SUCCESS: ep % 2 == 0, types.EPISODE_SEED: 100 + ep}
        writer.add_episode(frames, task=TASKS[ep % 2], extra=extra)
    return writer.finalize({"world": "tiny"})
