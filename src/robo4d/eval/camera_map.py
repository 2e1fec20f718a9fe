"""`--camera-map ROBOT=POLICY`: the robot's camera names -> the policy's, for `robo4d eval` and `robo4d serve`.

A policy names its cameras as its training data did (after the trainer's own dataset -> policy map); a robot
(or the embedded world) may call the same camera something else. A map entry `image=front` says "the robot's
`image` camera is what the policy calls `front`"; cameras left out keep their names. Every entry is checked
against the policy's cameras before anything starts. The map a checkpoint was trained with (its config's
`camera_map`, dataset -> policy) is never applied in reverse automatically: the robot that serves a policy
need not name its cameras like the dataset did, so a silent rename could feed the wrong view; serve logs the
recorded map as a hint instead.

Numpy-only (imported by the robot-side client's protocol module).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from robo4d.config import parse_pairs
from robo4d.types import ActionChunk, ChunkPolicy, Observation

FLAG = "--camera-map"


def parse_camera_map(items: Iterable[str], policy_cameras: tuple[str, ...], *, flag: str = FLAG) -> dict[str, str]:
    """`("image=front", ...)` -> {robot camera: policy camera}, validated; raises ValueError in one line."""
    mapping = parse_pairs(items, flag=flag, source="robot camera", syntax="ROBOT_CAMERA=POLICY_CAMERA")
    check_camera_map(mapping, policy_cameras, flag=flag)
    return mapping


def check_camera_map(mapping: Mapping[str, str], policy_cameras: tuple[str, ...], *, flag: str = FLAG) -> None:
    """Every target is one of the policy's cameras, at most once, and no robot camera feeds two policy cameras."""
    targets: dict[str, str] = {}
    for robot, policy in mapping.items():
        if policy not in policy_cameras:
            raise ValueError(
                f"{flag} {robot}={policy}: the policy has no camera {policy!r}; it reads {list(policy_cameras)}"
            )
        if policy in targets:
            raise ValueError(f"{flag}: policy camera {policy!r} is fed by both {targets[policy]!r} and {robot!r}")
        targets[policy] = robot
    robot_cameras(policy_cameras, mapping, flag=flag)


def robot_cameras(policy_cameras: tuple[str, ...], mapping: Mapping[str, str], *, flag: str = FLAG) -> tuple[str, ...]:
    """The robot-side name of each policy camera (same order); raises when two policy cameras get one name."""
    source = {policy: robot for robot, policy in mapping.items()}
    names = tuple(source.get(cam, cam) for cam in policy_cameras)
    for i, name in enumerate(names):
        if name in names[:i]:
            first = policy_cameras[names.index(name)]
            raise ValueError(
                f"{flag}: robot camera {name!r} would feed both policy cameras {first!r} and {policy_cameras[i]!r}; "
                "give each policy camera a robot camera of its own"
            )
    return names


def rename_cameras(obs: Observation, mapping: Mapping[str, str]) -> Observation:
    """The observation with every per-camera dict keyed by the policy's camera names."""

    def rename(views: dict | None) -> dict | None:
        return None if views is None else {mapping.get(cam, cam): v for cam, v in views.items()}

    return replace(
        obs,
        images=rename(obs.images),
        depth=rename(obs.depth),
        intrinsics=rename(obs.intrinsics),
        extrinsics=rename(obs.extrinsics),
    )


class RenamedCameras:
    """A `ChunkPolicy` that renames the robot's cameras to the policy's before every call."""

    def __init__(self, policy: ChunkPolicy, mapping: Mapping[str, str]) -> None:
        self.policy = policy
        self.mapping = dict(mapping)

    def predict_action_chunk(self, obs: Observation) -> ActionChunk:
        return self.policy.predict_action_chunk(rename_cameras(obs, self.mapping))

    def reset(self) -> None:
        self.policy.reset()

    def close(self) -> None:
        """Closes a remote policy's connection (local policies have nothing to close)."""
        close = getattr(self.policy, "close", None)
        if close is not None:
            close()
