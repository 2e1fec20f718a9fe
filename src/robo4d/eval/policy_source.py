"""Where evaluation and serving get a policy from, and what it declares: checkpoint checks before any rollout.

The contract is the policy's `types.PolicyIO` and nothing else (no method's config field is read here).
`checkpoint_io` takes it from the checkpoint's config.json (key `types.CHECKPOINT_IO`, written by the
trainer), so a wrong checkpoint fails in milliseconds, before policies are built in worker processes; a
checkpoint written before the trainer recorded it gets its policy rebuilt once to ask (`Policy.io()`).
A missing path, a file that is not a checkpoint, or a policy whose actions are not robot commands (e.g. a
points pre-training stage) all raise `ValueError` in one line. The factories below are module-level
functions so process-pool workers can unpickle them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from robo4d.eval.camera_map import RenamedCameras
from robo4d.types import (
    ACTION_EEF_POSE,
    ACTION_JOINT,
    CHECKPOINT_CAMERA_MAP,
    CHECKPOINT_IO,
    ChunkPolicy,
    PolicyIO,
)


@dataclass(frozen=True, kw_only=True)
class CheckpointIO:
    """What a checkpoint says about its policy, read without building it (when the trainer recorded `io`)."""

    path: Path  # the resolved checkpoint directory
    method: str  # the registered method name
    io: PolicyIO  # what the policy consumes and produces
    camera_map: dict[str, str]  # {dataset camera: policy camera} the stage trained with ({} = same names)


def checkpoint_io(path: str | Path) -> CheckpointIO:
    """The contract of a checkpoint (directory, or stage/run directory with `last`); raises ValueError."""
    from robo4d.train.checkpoint import CONFIG_FILE, CheckpointError, read_config, resolve_checkpoint

    if not Path(path).exists():
        raise ValueError(f"checkpoint {str(path)!r}: no such file or directory")
    try:
        ckpt = resolve_checkpoint(path)
        config = read_config(ckpt)
    except CheckpointError as e:
        raise ValueError(f"checkpoint {str(path)!r}: {e}") from e
    where = f"{ckpt / CONFIG_FILE}: {CHECKPOINT_IO}"
    if CHECKPOINT_IO in config:
        io = PolicyIO.from_dict(config[CHECKPOINT_IO], where=where)
    else:  # written before the trainer recorded the contract: the policy itself knows it
        from robo4d.train.checkpoint import load_policy

        io = load_policy(ckpt).io()
    camera_map = config.get(CHECKPOINT_CAMERA_MAP) or {}
    if not isinstance(camera_map, dict) or not all(isinstance(n, str) for n in (*camera_map, *camera_map.values())):
        raise ValueError(f"{ckpt / CONFIG_FILE}: {CHECKPOINT_CAMERA_MAP}: expected a map of camera names")
    return CheckpointIO(path=ckpt, method=str(config["method"]), io=io, camera_map=camera_map)


def require_control(io: PolicyIO, method: str, source: str | Path) -> None:
    """Refuse policies that cannot drive a robot (e.g. a checkpoint of a points pre-training stage)."""
    if not io.controls_robot:
        raise ValueError(
            f"{str(source)!r} is a {method!r} '{io.action_kind}' pre-training policy: it predicts "
            f"{io.action_kind}, not robot commands ({ACTION_EEF_POSE!r} or {ACTION_JOINT!r}); evaluate or serve "
            "a checkpoint of a control stage instead"
        )


def load_local_policy(checkpoint: str, camera_map: dict[str, str] | None = None) -> ChunkPolicy:
    """A trained policy from a checkpoint, in eval mode (imports torch), fed the robot's cameras under the
    policy's names. Gradients are left alone: evaluation may run inside a process that trains next
    (`--workers 1`); policies run inference under no_grad."""
    from robo4d.train.checkpoint import load_policy

    policy = load_policy(checkpoint)
    return RenamedCameras(policy, camera_map) if camera_map else policy


def connect_remote_policy(url: str, api_key: str | None, camera_map: dict[str, str] | None = None) -> ChunkPolicy:
    """A policy served by `robo4d serve` at `url` (no torch needed in this process)."""
    from robo4d.serve.client import PolicyClient

    client = PolicyClient(url, api_key=api_key)
    return RenamedCameras(client, camera_map) if camera_map else client
