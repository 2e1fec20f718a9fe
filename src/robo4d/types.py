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

from dataclasses import dataclass, fields
from typing import Any, Protocol

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
LATENT_ACTION = "latent_action.vector"  # (N, D) float32 a_t: latent action o_t -> o_{t+k} (robo4d label)
LATENT_ACTION_CODES = "latent_action.codes"  # (N,) int64 codebook indices of LATENT_ACTION

# Keys that exist only in training windows (never in a dataset).
PAD_MASK = "pad_mask"  # (T+K,) bool: True where the frame lies past the episode's end
TASK = "task"  # str per window: the episode's instruction (a batch holds a list of B strings)
IMAGE_TOKENS_PREFIX = "frozen.image_tokens."  # + cam -> (L, C) float32 frozen-encoder tokens (a frame source)
FRAMES = "frames"  # (S, S, 3) uint8 RGB of the first policy camera the dataset has, resized (a frame source)
GOAL_FRAMES = "goal_frames"  # (S, S, 3) uint8: FRAMES of the frame k steps later, clamped to the episode end

# Per-episode metadata columns (meta/episodes/*.parquet) added by robo4d.
EPISODE_SUCCESS = "robo4d.success"  # bool: the episode ended in success
EPISODE_SEED = "robo4d.seed"  # int64: the seed that produced the episode's initial state
EPISODE_SOURCE = "robo4d.source"  # str: the video file or frame folder an imported episode came from

# Files.
INFO_JSON = "meta/info.json"
STATS_JSON = "meta/stats.json"
TASKS_PARQUET = "meta/tasks.parquet"
ROBO4D_JSON = "meta/robo4d.json"
CODEBASE_VERSION = "v3.0"

DEPTH_SCALE_M = 0.001  # metres per stored depth unit (uint16 millimetres)
STATE_DIM = 8  # xyz(3) + quaternion wxyz(4) + gripper(1)
EEF_STATE_NAMES = ("x", "y", "z", "qw", "qx", "qy", "qz", "gripper")  # STATE's declared names in that layout
METAWORLD_ACTION_DIM = 4  # Meta-World's command: dxyz(3) + gripper(1)

# What a policy's action chunk rows mean (ActionChunk.kind, PolicyIO.action_kind).
ACTION_EEF_POSE = "eef_pose"  # (K, 8) absolute xyz + quat wxyz + gripper; eval/serve blend and drive a controller
ACTION_JOINT = "joint"  # (K, A) absolute commands in the dataset's own action space, passed through unchanged
CONTROL_ACTION_KINDS = (ACTION_EEF_POSE, ACTION_JOINT)  # kinds a robot can execute; others are pre-training outputs

# What a policy's observation.state holds (PolicyIO.state_kind).
STATE_EEF_POSE = "eef_pose"  # (8,) xyz + quat wxyz + gripper opening, the embedded world's layout
STATE_JOINT = "joint"  # (P,) the dataset's own proprio vector, normalised with the dataset's stats
STATE_NONE = "none"  # the policy reads no proprio (e.g. pre-training on human video)

# Top-level keys of a checkpoint's config.json that eval and serve read (written by the trainer).
CHECKPOINT_IO = "io"  # dataclasses.asdict(policy.io()): the PolicyIO of the checkpoint's stage
CHECKPOINT_CAMERA_MAP = "camera_map"  # {dataset camera: policy camera} the stage trained with ({} = same names)

API_KEY_ENV = "ROBO4D_API_KEY"  # a policy server's API key (serve, eval --remote): keeps the key out of `ps`

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
class PolicyIO:
    """What a policy consumes and produces: the one declaration eval, serve and train read (never a method's
    config fields). Plain data, so a robot-side process can hold it without torch."""

    cameras: tuple[str, ...]  # camera names whose RGB images every observation must carry (policy-side names)
    image_size: tuple[int, int]  # (H, W) of the images the policy expects
    state_kind: str  # STATE_EEF_POSE | STATE_JOINT | STATE_NONE
    state_dim: int  # P: width of observation.state (0 with STATE_NONE)
    action_kind: str  # ACTION_EEF_POSE | ACTION_JOINT, or a pre-training output such as "points" or "frames"
    action_dim: int  # A: width of one chunk row
    chunk: int  # K: rows per predicted chunk

    def __post_init__(self) -> None:
        if not self.cameras or not all(isinstance(c, str) and c for c in self.cameras):
            raise ValueError(f"PolicyIO.cameras: expected non-empty camera names, got {self.cameras!r}")
        if len(self.image_size) != 2 or min(self.image_size) <= 0:
            raise ValueError(f"PolicyIO.image_size: expected (H, W) > 0, got {self.image_size!r}")
        if self.state_kind not in (STATE_EEF_POSE, STATE_JOINT, STATE_NONE):
            raise ValueError(f"PolicyIO.state_kind: expected eef_pose, joint or none, got {self.state_kind!r}")
        if (self.state_kind == STATE_NONE) != (self.state_dim == 0) or self.state_dim < 0:
            raise ValueError(f"PolicyIO.state_dim: {self.state_dim} does not fit state_kind {self.state_kind!r}")
        if self.state_kind == STATE_EEF_POSE and self.state_dim != STATE_DIM:
            raise ValueError(f"PolicyIO.state_dim: eef_pose state is {STATE_DIM} wide, got {self.state_dim}")
        if not self.action_kind or self.action_dim <= 0 or self.chunk <= 0:
            raise ValueError(
                f"PolicyIO: expected an action kind and positive action_dim/chunk, got "
                f"{self.action_kind!r}, {self.action_dim}, {self.chunk}"
            )

    @property
    def controls_robot(self) -> bool:
        """True when the chunks are robot commands (eval/serve refuse pre-training outputs)."""
        return self.action_kind in CONTROL_ACTION_KINDS

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> PolicyIO:
        """Rebuild from `dataclasses.asdict(io)` as a checkpoint or a metadata frame stores it (tuples as lists);
        raises ValueError naming `where` and the field."""
        names = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or set(data) != names:
            got = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"{where}: expected a PolicyIO map with fields {sorted(names)}, got {got}")
        for name in ("cameras", "image_size"):
            if not isinstance(data[name], list | tuple):
                raise ValueError(f"{where}: {name}: expected a list, got {data[name]!r}")
        try:
            return cls(
                cameras=tuple(data["cameras"]),
                image_size=tuple(int(s) for s in data["image_size"]),
                state_kind=str(data["state_kind"]),
                state_dim=int(data["state_dim"]),
                action_kind=str(data["action_kind"]),
                action_dim=int(data["action_dim"]),
                chunk=int(data["chunk"]),
            )
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: {e}") from e


@dataclass(frozen=True, kw_only=True)
class ActionChunk:
    """What a policy returns for one step: K future targets, absolute (already converted from deltas)."""

    actions: np.ndarray  # (K, A) float32
    kind: str  # what a row means, e.g. "eef_pose" (xyz + quat wxyz + gripper) or "metaworld"


class ChunkPolicy(Protocol):
    """What a rollout or a policy server needs from a policy: a `methods.base.Policy`, a remote
    `serve.client.PolicyClient`, or a test fake."""

    def predict_action_chunk(self, obs: Observation) -> ActionChunk: ...

    def reset(self) -> None: ...
