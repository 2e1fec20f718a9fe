"""Shared vocabulary of robo4d: the dimension legend, every dataset key, and the typed batch containers.

Dimension legend (used in shape comments everywhere):
    B  batch                      T  time steps in a window / episode
    N  query points per camera    K  future steps predicted per call (action chunk)
    H, W  image height and width  C  image channels (3 for RGB)
    A  action (or target) width   P  proprio (or flattened points) width
    D  model width                L  tokens per time step

Units and frames: lengths are metres; camera intrinsics are 3x3 pixel matrices; extrinsics are 4x4
world-from-camera transforms in the OpenCV convention (x right, y down, z forward); quaternions are
(w, x, y, z). Depth is metric z-depth along the optical axis (not ray length).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# ---------------------------------------------------------------------------------------------
# LeRobot's standard per-frame columns (every data parquet has them).
TIMESTAMP = "timestamp"
FRAME_INDEX = "frame_index"
EPISODE_INDEX = "episode_index"
INDEX = "index"
TASK_INDEX = "task_index"
DEFAULT_COLUMNS = (TIMESTAMP, FRAME_INDEX, EPISODE_INDEX, INDEX, TASK_INDEX)

# LeRobot's standard features.
STATE = "observation.state"  # (P,) robot proprio: eef xyz + quaternion wxyz + gripper opening
ACTION = "action"  # (A,) the command sent at this frame
IMAGES_PREFIX = "observation.images."  # + camera name -> (H, W, 3) uint8, stored as mp4 video
SUCCESS = "next.success"  # () bool, per frame: task solved at this frame
DONE = "next.done"  # () bool, per frame: last frame of the episode

# robo4d's own features (declared in info.json like any other feature).
DEPTH_PREFIX = "observation.depth."  # + cam -> (H, W) uint16 millimetres (lossless); read back as metres
INTRINSICS_PREFIX = "observation.intrinsics."  # + cam -> (3, 3) float32
EXTRINSICS_PREFIX = "observation.extrinsics."  # + cam -> (4, 4) float32 world-from-camera
POINTS_PREFIX = "observation.points."  # + cam -> (N, 3) float32 extracted 3D tracks
POINTS_VISIBLE_PREFIX = "observation.points_visible."  # + cam -> (N,) bool
GT_POINTS_PREFIX = "ground_truth.points."  # + cam -> (N, 3) float32 exact 3D tracks (embedded world only)
GT_POINTS_VISIBLE_PREFIX = "ground_truth.points_visible."  # + cam -> (N,) bool

# Keys that exist only in training windows (never in a dataset).
PAD_MASK = "pad_mask"  # (T+K,) bool: True where the frame lies past the episode's end
TASK = "task"  # str per window: the episode's instruction (a batch holds a list of B strings)
IMAGE_TOKENS_PREFIX = "frozen.image_tokens."  # + cam -> (L, C) float32 frozen-encoder tokens (a frame source)

# Per-episode metadata columns (meta/episodes/*.parquet) added by robo4d.
EPISODE_SUCCESS = "robo4d.success"  # bool: the episode ended in success
EPISODE_SEED = "robo4d.seed"  # int64: the seed that produced the episode's initial state

# Files.
INFO_JSON = "meta/info.json"
STATS_JSON = "meta/stats.json"
TASKS_PARQUET = "meta/tasks.parquet"
ROBO4D_JSON = "meta/robo4d.json"
CODEBASE_VERSION = "v3.0"

DEPTH_SCALE_M = 0.001  # metres per stored depth unit (uint16 millimetres)
STATE_DIM = 8  # xyz(3) + quaternion wxyz(4) + gripper(1)
METAWORLD_ACTION_DIM = 4  # Meta-World's command: dxyz(3) + gripper(1)

# Camera names used by the embedded world.
CAM_FRONT = "front"
CAM_WRIST = "wrist"
CAM_EGO = "ego"


def image_key(cam: str) -> str:
    return IMAGES_PREFIX + cam


def depth_key(cam: str) -> str:
    return DEPTH_PREFIX + cam


def intrinsics_key(cam: str) -> str:
    return INTRINSICS_PREFIX + cam


def extrinsics_key(cam: str) -> str:
    return EXTRINSICS_PREFIX + cam


def points_key(cam: str) -> str:
    return POINTS_PREFIX + cam


def points_visible_key(cam: str) -> str:
    return POINTS_VISIBLE_PREFIX + cam


def gt_points_key(cam: str) -> str:
    return GT_POINTS_PREFIX + cam


def gt_points_visible_key(cam: str) -> str:
    return GT_POINTS_VISIBLE_PREFIX + cam


def image_tokens_key(cam: str) -> str:
    return IMAGE_TOKENS_PREFIX + cam


def camera_of(key: str) -> str:
    """The camera name at the end of a per-camera key, e.g. 'observation.images.front' -> 'front'."""
    for prefix in (
        IMAGES_PREFIX,
        IMAGE_TOKENS_PREFIX,
        DEPTH_PREFIX,
        INTRINSICS_PREFIX,
        EXTRINSICS_PREFIX,
        POINTS_PREFIX,
        POINTS_VISIBLE_PREFIX,
        GT_POINTS_PREFIX,
        GT_POINTS_VISIBLE_PREFIX,
    ):
        if key.startswith(prefix):
            return key[len(prefix) :]
    raise KeyError(f"{key!r} is not a per-camera key")


# ---------------------------------------------------------------------------------------------
# Containers passed between runtime, evaluation and serving (numpy: no torch needed on a robot).


@dataclass(frozen=True, kw_only=True)
class Observation:
    """One control step's observation, as a robot or the simulator delivers it."""

    images: dict[str, np.ndarray]  # cam -> (H, W, 3) uint8
    state: np.ndarray  # (P,) float32, layout of STATE
    task: str  # the language instruction
    depth: dict[str, np.ndarray] | None = None  # cam -> (H, W) float32 metres
    intrinsics: dict[str, np.ndarray] | None = None  # cam -> (3, 3)
    extrinsics: dict[str, np.ndarray] | None = None  # cam -> (4, 4) world-from-camera


@dataclass(frozen=True, kw_only=True)
class ActionChunk:
    """What a policy returns for one step: K future targets, absolute (already converted from deltas)."""

    actions: np.ndarray  # (K, A) float32
    kind: str  # what a row means, e.g. "eef_pose" (xyz + quat wxyz + gripper) or "metaworld"
