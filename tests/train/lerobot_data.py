"""Small real-format LeRobot v3 datasets written in tests: a joint-space robot (as LeRobot records one) and
video with extracted tracks (as `robo4d extract tracks` leaves one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robo4d import types
from robo4d.data.features import Feature
from robo4d.data.writer import DatasetWriter

SIZE = 32  # frame side: the frozen encoders resize, so tiny frames keep encoding fast
_VIDEO = ("height", "width", "channels")


def _frames(rng: np.random.Generator, length: int) -> np.ndarray:
    """(T, SIZE, SIZE, 3) uint8 frames of a square drifting over a textured background."""
    frames = np.broadcast_to(rng.integers(40, 90, (1, SIZE, SIZE, 3), dtype=np.uint8), (length, SIZE, SIZE, 3)).copy()
    for t in range(length):
        x = 4 + t % (SIZE - 12)
        frames[t, 10:18, x : x + 8] = (220, 60, 40)
    return frames


def make_joint_robot_dataset(
    root: Path,
    *,
    camera: str = "image",
    state_dim: int = 34,
    action_dim: int | None = None,
    with_action: bool = True,
    episodes: int = 4,
    length: int = 26,
    seed: int = 0,
) -> Path:
    """A LeRobot-style robot dataset: camera key observation.images.<camera>, a joint `observation.state` and
    `action` of the same width (commands lead the state by one step), named motors, no eef pose, no depth."""
    rng = np.random.default_rng(seed)
    action_dim = state_dim if action_dim is None else action_dim
    features = {
        types.image_key(camera): Feature(dtype="video", shape=(SIZE, SIZE, 3), names=_VIDEO),
        types.STATE: Feature(dtype="float32", shape=(state_dim,), names=tuple(f"motor_{i}" for i in range(state_dim))),
    }
    if with_action:
        features[types.ACTION] = Feature(
            dtype="float32", shape=(action_dim,), names=tuple(f"motor_{i}" for i in range(action_dim))
        )
    writer = DatasetWriter(root, fps=10, features=features, robot_type="bimanual_34dof")
    for ep in range(episodes):
        phase = rng.uniform(0, 2 * np.pi, state_dim)
        t = np.arange(length + 1)[:, None] / 10.0
        joints = (np.sin(t + phase) * 0.5 + rng.normal(0, 0.01, (length + 1, state_dim))).astype(np.float32)
        frame = {types.image_key(camera): _frames(rng, length), types.STATE: joints[:-1]}
        if with_action:
            frame[types.ACTION] = joints[1:, :action_dim]
        writer.add_episode(frame, task=["pick up the cube", "fold the towel"][ep % 2])
    return writer.finalize()


def make_tracks_dataset(
    root: Path, *, camera: str = "ego", grid: int = 4, episodes: int = 4, length: int = 12, seed: int = 0
) -> Path:
    """Video of one camera with extracted 3D tracks of a grid x grid query grid (no state, no actions)."""
    rng = np.random.default_rng(seed)
    n = grid * grid
    features = {
        types.image_key(camera): Feature(dtype="video", shape=(SIZE, SIZE, 3), names=_VIDEO),
        types.points_key(camera): Feature(dtype="float32", shape=(n, 3)),
        types.points_visible_key(camera): Feature(dtype="bool", shape=(n,)),
    }
    writer = DatasetWriter(root, fps=10, features=features, robot_type=None)
    for _ in range(episodes):
        start = rng.normal(0, 0.1, (1, n, 3)) + np.array([0.0, 0.0, 0.6])
        motion = np.cumsum(rng.normal(0, 0.005, (length, 1, 3)), axis=0)
        writer.add_episode(
            {
                types.image_key(camera): _frames(rng, length),
                types.points_key(camera): (start + motion).astype(np.float32),
                types.points_visible_key(camera): rng.random((length, n)) > 0.1,
            },
            task="wipe the table",
        )
    return writer.finalize()
