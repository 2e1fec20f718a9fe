"""The wire protocol between `serve.server` and `serve.client` (openpi-compatible in its shape).

Session: the server sends one metadata frame on connect (what the policy expects: the `types.PolicyIO` fields,
the robot -> policy `camera_map`, the method name and `PROTOCOL_VERSION`); then each client frame is either an
observation map or `{RESET: true}`, and each gets exactly one reply frame:
    observation  {"observation.images.<robot cam>": (H, W, 3) uint8, ..., "observation.state": (P,) float,
                  "task" or "prompt": str}           -> {ACTIONS: (K, A) float32, KIND: str,
                                                         SERVER_TIMING: {"infer_ms": float, "total_ms": float}}
    reset        {RESET: true}                       -> {RESET: true}
    anything bad                                     -> {ERROR: "what was wrong and what was expected"}
Images are keyed by the robot's camera names (the policy's, unless the server was given a camera map); the
state key is absent for a policy that reads no state (`STATE_NONE`). Replies carry the policy's action kind:
end-effector poses or joint-space commands, never a pre-training output (the server refuses those at start).
Arrays use openpi's msgpack layout (see `msgpack_numpy`), so `openpi_client.WebsocketClientPolicy` works
as is: its `infer` returns the reply map (an {ERROR} map for a bad frame), and `infer({RESET: True})` resets.
A bad frame costs the client one error frame, not its connection (openpi's server closes instead).
Torch-free: imported by the robot-side client.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from robo4d.eval.camera_map import check_camera_map, robot_cameras
from robo4d.types import STATE, STATE_NONE, TASK, ActionChunk, Observation, PolicyIO, image_key

PROTOCOL_VERSION = 2  # 2: the metadata frame carries PolicyIO's fields and the camera map

# Frame keys beyond the dataset keys (types.STATE, types.TASK, types.image_key(cam)) an observation uses.
PROMPT = "prompt"  # openpi clients' name for the instruction; accepted in place of types.TASK (never both)
RESET = "reset"  # client -> server: forget this connection's episode context
ACTIONS = "actions"  # (K, A) float32 predicted chunk
KIND = "kind"  # ActionChunk.kind, e.g. types.ACTION_EEF_POSE
SERVER_TIMING = "server_timing"  # {"infer_ms": policy call, "total_ms": decode + validate + infer + encode}
ERROR = "error"  # str: why the request was refused
VERSION = "protocol_version"
CAMERA_MAP = "camera_map"  # metadata: {robot camera: policy camera}
METHOD = "method"  # metadata: the policy's registered method name (informational)

HEALTH_PATH = "/healthz"  # plain HTTP GET -> 200 "ok" (no websocket, no key)
AUTH_HEADER = "Authorization"  # handshake header carrying the API key when the server requires one


def auth_value(api_key: str) -> str:
    return f"Api-Key {api_key}"


@dataclass(frozen=True, kw_only=True)
class IOSpec:
    """The wire form of a served policy's `PolicyIO`: sent as the metadata frame, and what requests are checked
    against. `io` is the policy's own declaration (image size possibly overridden by the server's operator)."""

    io: PolicyIO
    camera_map: dict[str, str] = field(default_factory=dict)  # robot camera -> policy camera; {} = same names
    method: str = ""  # the policy's registered method name (informational)

    def __post_init__(self) -> None:
        check_camera_map(self.camera_map, self.io.cameras, flag="IOSpec.camera_map")

    @property
    def robot_cameras(self) -> tuple[str, ...]:
        """The camera names an observation frame carries, in the order of `io.cameras`."""
        return robot_cameras(self.io.cameras, self.camera_map)

    def to_metadata(self) -> dict[str, Any]:
        return {**asdict(self.io), CAMERA_MAP: dict(self.camera_map), METHOD: self.method, VERSION: PROTOCOL_VERSION}

    @classmethod
    def from_metadata(cls, meta: Any) -> IOSpec:
        if not isinstance(meta, dict) or meta.get(VERSION) != PROTOCOL_VERSION:
            got = meta.get(VERSION) if isinstance(meta, dict) else type(meta).__name__
            raise ValueError(f"metadata frame: expected {VERSION}={PROTOCOL_VERSION}, got {got!r}")
        fields = {k: v for k, v in meta.items() if k not in (CAMERA_MAP, METHOD, VERSION)}
        camera_map = meta.get(CAMERA_MAP, {})
        if not isinstance(camera_map, dict) or not all(isinstance(v, str) for v in (*camera_map, *camera_map.values())):
            raise ValueError(f"metadata frame: {CAMERA_MAP!r}: expected a map of camera names, got {camera_map!r}")
        io = PolicyIO.from_dict(fields, where="metadata frame")
        return cls(io=io, camera_map=camera_map, method=str(meta.get(METHOD, "")))


def observation_to_frame(obs: Observation, spec: IOSpec) -> dict[str, Any]:
    """The observation map a client sends: only what the policy consumes (its cameras' images under the robot's
    names, the state unless the policy reads none, the instruction)."""
    frame: dict[str, Any] = {image_key(cam): obs.images[cam] for cam in spec.robot_cameras if cam in obs.images}
    if spec.io.state_kind != STATE_NONE:
        frame[STATE] = obs.state
    frame[TASK] = obs.task
    return frame


def frame_to_observation(frame: Any, spec: IOSpec) -> Observation:
    """Validate a client's observation map against `spec`; raises ValueError naming the key and what was expected.
    The observation's images are keyed by the policy's camera names."""
    if not isinstance(frame, dict):
        raise ValueError(f"expected an observation map, got {type(frame).__name__}")
    io = spec.io
    with_state = io.state_kind != STATE_NONE
    expected = {image_key(c) for c in spec.robot_cameras} | {TASK, PROMPT} | ({STATE} if with_state else set())
    unknown = sorted(str(k) for k in set(frame) - expected)
    if unknown:
        raise ValueError(f"unexpected key(s) {unknown}; expected exactly {sorted(expected)}")
    h, w = io.image_size
    images = {}
    for robot_cam, cam in zip(spec.robot_cameras, io.cameras, strict=True):
        key = image_key(robot_cam)
        img = frame.get(key)
        if img is None:
            raise ValueError(f"missing camera image {key!r}; expected (H, W, 3) = ({h}, {w}, 3) uint8")
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.shape != (h, w, 3):
            got = f"{img.dtype} {img.shape}" if isinstance(img, np.ndarray) else type(img).__name__
            raise ValueError(f"{key!r}: expected ({h}, {w}, 3) uint8, got {got}")
        images[cam] = img
    state = frame.get(STATE) if with_state else np.zeros(0, np.float32)  # (P,); P = 0 for STATE_NONE
    if not isinstance(state, np.ndarray) or state.dtype.kind != "f" or state.shape != (io.state_dim,):
        got = f"{state.dtype} {state.shape}" if isinstance(state, np.ndarray) else type(state).__name__
        raise ValueError(f"{STATE!r}: expected ({io.state_dim},) float ({io.state_kind} state), got {got}")
    if not np.all(np.isfinite(state)):
        raise ValueError(f"{STATE!r}: expected finite values, got {state.tolist()}")
    if TASK in frame and PROMPT in frame:
        raise ValueError(f"both {TASK!r} and {PROMPT!r} given; expected the instruction under one of them")
    key = PROMPT if PROMPT in frame else TASK
    task = frame.get(key)
    if not isinstance(task, str):
        raise ValueError(f"{key!r}: expected the instruction as a string, got {type(task).__name__}")
    return Observation(images=images, state=state.astype(np.float32), task=task)


def check_reply(chunk: ActionChunk, io: PolicyIO) -> None:
    """A policy's chunk must be what its `io` declares: kind and (K, A) = (chunk, action_dim), finite."""
    actions = np.asarray(chunk.actions)
    finite = bool(np.isfinite(actions).all())
    if chunk.kind != io.action_kind or actions.shape != (io.chunk, io.action_dim) or not finite:
        raise ValueError(
            f"policy returned a {chunk.kind!r} chunk of shape {actions.shape} (finite: {finite}); "
            f"its PolicyIO declares finite {io.action_kind!r} chunks of ({io.chunk}, {io.action_dim})"
        )


def chunk_to_frame(chunk: ActionChunk, timing: dict[str, float]) -> dict[str, Any]:
    return {ACTIONS: np.asarray(chunk.actions, dtype=np.float32), KIND: chunk.kind, SERVER_TIMING: timing}


def frame_to_chunk(frame: Any) -> ActionChunk:
    """The client's view of a reply; an error frame or a malformed reply raises RuntimeError with the message."""
    if isinstance(frame, dict) and ERROR in frame:
        raise RuntimeError(f"policy server refused the request: {frame[ERROR]}")
    if not isinstance(frame, dict) or not isinstance(frame.get(ACTIONS), np.ndarray) or frame[ACTIONS].ndim != 2:
        raise RuntimeError(f"policy server reply: expected {{{ACTIONS!r}: (K, A) array, {KIND!r}: str}}, got {frame!r}")
    return ActionChunk(actions=frame[ACTIONS].astype(np.float32), kind=str(frame.get(KIND, "")))
