"""Tiny IGOR config and synthetic datasets: a blob moving with the robot's actions, seen by `front` (robot
demos with state and actions) or `ego` (human video, no actions). A plain module, named for IGOR only."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from robo4d import types
from robo4d.data.features import Feature
from robo4d.data.writer import DatasetWriter
from robo4d.methods.igor.config import IGORConfig, preset

SIDE = 32  # stored image side = the test config's image_size (no resize)
TEXT_DIM = 16
TASKS = ("push the block left", "push the block right")


def tiny_config(objective: str = "lam", **overrides) -> IGORConfig:
    """igor-tiny shrunk so a training step takes milliseconds."""
    small = {"image_size": SIDE, "patch_size": 8, "lam_dim": 32, "lam_heads": 2, "idm_layers": 1, "fdm_layers": 1,
             "code_dim": 16, "policy_dim": 32, "policy_heads": 2, "policy_layers": 1, "world_dim": 32,
             "world_heads": 2, "world_layers": 1, "text_dim": TEXT_DIM, "sample_steps": 4, "restart_every": 10,
             "usage_decay": 0.8}  # fmt: skip
    return replace(preset("igor-tiny", objective), **(small | overrides))


def _render(xy: np.ndarray) -> np.ndarray:
    """(T, 2) blob centres in pixels -> (T, S, S, 3) uint8 frames."""
    yy, xx = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)
    blob = np.exp(-((yy - xy[:, 1, None, None]) ** 2 + (xx - xy[:, 0, None, None]) ** 2) / 8.0)[..., None]
    background = np.stack([40 + 3 * xx, 60 + 2 * yy, 90 + xx + yy], axis=-1)[None]  # (1, S, S, 3)
    return np.clip(background * (1 - blob) + np.array([230, 60, 50]) * blob, 0, 255).astype(np.uint8)


def _episode(length: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    direction = 1.0 if seed % 2 else -1.0  # task 1 pushes right, task 0 left
    action = np.zeros((length, types.METAWORLD_ACTION_DIM), np.float32)
    action[:, 0] = direction * rng.uniform(0.5, 1.0, length)
    action[:, 1] = rng.uniform(-0.5, 0.5, length)
    action[:, 3] = (np.arange(length) > length // 2).astype(np.float32) * 2 - 1
    pos = np.cumsum(np.vstack((np.zeros((1, 4)), action[:-1])), axis=0)[:, :3] * 0.01  # metres
    pos[:, :2] += rng.uniform(-0.05, 0.05, 2)
    state = np.zeros((length, types.STATE_DIM), np.float32)
    state[:, :3] = pos
    state[:, 3] = 1.0  # identity quaternion wxyz
    state[:, 7] = (action[:, 3] + 1) / 2
    pixels = np.clip(SIDE / 2 + pos[:, :2] * 100, 3, SIDE - 4)  # 1 cm = 1 px
    return {"frames": _render(pixels), types.STATE: state, types.ACTION: action}


def write_dataset(root: Path, kind: str, *, episodes: int = 4, length: int = 24) -> Path:
    """kind "robot": `front` video + state + actions; "human": `ego` video only."""
    cam = types.CAM_FRONT if kind == "robot" else types.CAM_EGO
    video = Feature(dtype="video", shape=(SIDE, SIDE, 3), names=("height", "width", "channels"))
    features = {types.image_key(cam): video}
    if kind == "robot":
        features |= {types.STATE: Feature(dtype="float32", shape=(types.STATE_DIM,)),
                     types.ACTION: Feature(dtype="float32", shape=(types.METAWORLD_ACTION_DIM,))}  # fmt: skip
    writer = DatasetWriter(root, fps=10, features=features, robot_type="sawyer" if kind == "robot" else None)
    for ep in range(episodes):
        data = _episode(length, ep + (100 if kind == "human" else 0))
        frames = {types.image_key(cam): data.pop("frames")}
        if kind == "robot":
            frames |= data
        writer.add_episode(frames, task=TASKS[ep % 2], extra={types.EPISODE_SUCCESS: True, types.EPISODE_SEED: ep})
    return writer.finalize({"world": "igor-test"})
