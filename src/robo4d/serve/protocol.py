"""The wire protocol between `serve.server` and `serve.client` (openpi-compatible in its shape).

Session: the server sends one metadata frame on connect (what the policy expects: `IOSpec` fields plus
`PROTOCOL_VERSION`); then each client frame is either an observation map or `{RESET: true}`, and each
gets exactly one reply frame:
    observation  {"observation.images.<cam>": (H, W, 3) uint8, ..., "observation.state": (P,) float,
                  "task" or "prompt": str}           -> {ACTIONS: (K, A) float32, KIND: str,
                                                         SERVER_TIMING: {"infer_ms": float, "total_ms": float}}
    reset        {RESET: true}                       -> {RESET: true}
    anything bad                                     -> {ERROR: "what was wrong and what was expected"}
Arrays use openpi's msgpack layout (see `msgpack_numpy`), so `openpi_client.WebsocketClientPolicy` works
as is: its `infer` returns the reply map (an {ERROR} map for a bad frame), and `infer({RESET: True})` resets.
A bad frame costs the client one error frame, not its connection (openpi's server closes instead).
Torch-free: imported by the robot-side client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from robo4d.types import STATE, ActionChunk, Observation, image_key

PROTOCOL_VERSION = 1

# Frame keys beyond the dataset keys (types.STATE, types.image_key(cam)) an observation uses.
TASK = "task"  # str: the language instruction
PROMPT = "prompt"  # openpi clients' name for the instruction; accepted in place of TASK (never both)
RESET = "reset"  # client -> server: forget this connection's episode context
ACTIONS = "actions"  # (K, A) float32 predicted chunk
KIND = "kind"  # ActionChunk.kind, e.g. "eef_pose"
SERVER_TIMING = "server_timing"  # {"infer_ms": policy call, "total_ms": decode + validate + infer + encode}
ERROR = "error"  # str: why the request was refused
VERSION = "protocol_version"

HEALTH_PATH = "/healthz"  # plain HTTP GET -> 200 "ok" (no websocket, no key)
AUTH_HEADER = "Authorization"  # handshake header carrying the API key when the server requires one


def auth_value(api_key: str) -> str:
    return f"Api-Key {api_key}"


@dataclass(frozen=True, kw_only=True)
class IOSpec:
    """What a served policy consumes and produces; sent as the metadata frame and used to validate requests."""

    cameras: tuple[str, ...]  # camera names whose RGB images every observation must carry
    image_size: tuple[int, int]  # (H, W) every image must have
    state_dim: int  # P: width of observation.state
    action_kind: str  # ActionChunk.kind of the replies, e.g. "eef_pose"
    method: str = ""  # the policy's registered method name (informational)

    def __post_init__(self) -> None:
        if not self.cameras or not all(isinstance(c, str) and c for c in self.cameras):
            raise ValueError(f"IOSpec.cameras: expected non-empty camera names, got {self.cameras!r}")
        if len(self.image_size) != 2 or min(self.image_size) <= 0:
            raise ValueError(f"IOSpec.image_size: expected (H, W) > 0, got {self.image_size!r}")
        if self.state_dim <= 0:
            raise ValueError(f"IOSpec.state_dim: expected > 0, got {self.state_dim}")
        if not self.action_kind:
            raise ValueError("IOSpec.action_kind: expected a non-empty kind such as 'eef_pose'")

    def to_metadata(self) -> dict[str, Any]:
        return {
            "cameras": list(self.cameras),
            "image_size": list(self.image_size),
            "state_dim": self.state_dim,
            "action_kind": self.action_kind,
            "method": self.method,
            VERSION: PROTOCOL_VERSION,
        }

    @classmethod
    def from_metadata(cls, meta: Any) -> IOSpec:
        if not isinstance(meta, dict) or meta.get(VERSION) != PROTOCOL_VERSION:
            got = meta.get(VERSION) if isinstance(meta, dict) else type(meta).__name__
            raise ValueError(f"metadata frame: expected {VERSION}={PROTOCOL_VERSION}, got {got!r}")
        try:
            return cls(
                cameras=tuple(meta["cameras"]),
                image_size=(int(meta["image_size"][0]), int(meta["image_size"][1])),
                state_dim=int(meta["state_dim"]),
                action_kind=str(meta["action_kind"]),
                method=str(meta.get("method", "")),
            )
        except (KeyError, TypeError, IndexError) as e:
            raise ValueError(f"metadata frame: missing or malformed field ({e!r}); got keys {sorted(meta)}") from e


def observation_to_frame(obs: Observation) -> dict[str, Any]:
    """The observation map a client sends (only what a policy consumes: images, state, instruction)."""
    frame: dict[str, Any] = {image_key(cam): img for cam, img in obs.images.items()}
    frame[STATE] = obs.state
    frame[TASK] = obs.task
    return frame


def frame_to_observation(frame: Any, spec: IOSpec) -> Observation:
    """Validate a client's observation map against `spec`; raises ValueError naming the key and what was expected."""
    if not isinstance(frame, dict):
        raise ValueError(f"expected an observation map, got {type(frame).__name__}")
    expected = {image_key(c) for c in spec.cameras} | {STATE, TASK, PROMPT}
    unknown = sorted(str(k) for k in set(frame) - expected)
    if unknown:
        raise ValueError(f"unexpected key(s) {unknown}; expected exactly {sorted(expected)}")
    h, w = spec.image_size
    images = {}
    for cam in spec.cameras:
        key = image_key(cam)
        img = frame.get(key)
        if img is None:
            raise ValueError(f"missing camera image {key!r}; expected (H, W, 3) = ({h}, {w}, 3) uint8")
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.shape != (h, w, 3):
            got = f"{img.dtype} {img.shape}" if isinstance(img, np.ndarray) else type(img).__name__
            raise ValueError(f"{key!r}: expected ({h}, {w}, 3) uint8, got {got}")
        images[cam] = img
    state = frame.get(STATE)
    if not isinstance(state, np.ndarray) or state.dtype.kind != "f" or state.shape != (spec.state_dim,):
        got = f"{state.dtype} {state.shape}" if isinstance(state, np.ndarray) else type(state).__name__
        raise ValueError(f"{STATE!r}: expected ({spec.state_dim},) float, got {got}")
    if not np.all(np.isfinite(state)):
        raise ValueError(f"{STATE!r}: expected finite values, got {state.tolist()}")
    if TASK in frame and PROMPT in frame:
        raise ValueError(f"both {TASK!r} and {PROMPT!r} given; expected the instruction under one of them")
    key = PROMPT if PROMPT in frame else TASK
    task = frame.get(key)
    if not isinstance(task, str):
        raise ValueError(f"{key!r}: expected the instruction as a string, got {type(task).__name__}")
    return Observation(images=images, state=state.astype(np.float32), task=task)


def chunk_to_frame(chunk: ActionChunk, timing: dict[str, float]) -> dict[str, Any]:
    return {ACTIONS: np.asarray(chunk.actions, dtype=np.float32), KIND: chunk.kind, SERVER_TIMING: timing}


def frame_to_chunk(frame: Any) -> ActionChunk:
    """The client's view of a reply; an error frame or a malformed reply raises RuntimeError with the message."""
    if isinstance(frame, dict) and ERROR in frame:
        raise RuntimeError(f"policy server refused the request: {frame[ERROR]}")
    if not isinstance(frame, dict) or not isinstance(frame.get(ACTIONS), np.ndarray) or frame[ACTIONS].ndim != 2:
        raise RuntimeError(f"policy server reply: expected {{{ACTIONS!r}: (K, A) array, {KIND!r}: str}}, got {frame!r}")
    return ActionChunk(actions=frame[ACTIONS].astype(np.float32), kind=str(frame.get(KIND, "")))
