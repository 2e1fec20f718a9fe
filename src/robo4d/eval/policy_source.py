"""Where evaluation and serving get a policy from, and what it expects: checkpoint checks before any rollout.

`checkpoint_io_spec` reads only the checkpoint's config.json (and its training dataset's info.json for the
image size), so a wrong checkpoint fails in milliseconds, before policies are built in worker processes:
a missing path, a file that is not a checkpoint, or a pre-training checkpoint whose objective is not control
(e.g. ARM4R's stage-1 "points": it predicts point motion, not end-effector poses) all raise `ValueError`.
The factories below are module-level functions so process-pool workers can unpickle them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from robo4d.eval.runtime import EEF_POSE, ChunkPolicy
from robo4d.serve.protocol import IOSpec
from robo4d.types import INFO_JSON, STATE_DIM, image_key

CONTROL_OBJECTIVE = "control"  # policy_config.objective of checkpoints that predict end-effector poses


def _training_image_size(config: dict[str, Any], cameras: tuple[str, ...]) -> tuple[int, int] | None:
    """(H, W) of the first camera in the checkpoint's first training dataset, when that dataset is reachable."""
    for identity in config.get("datasets") or ():
        info_path = Path(identity.get("root", "")) / INFO_JSON
        if info_path.is_file():
            features = json.loads(info_path.read_text()).get("features", {})
            shape = features.get(image_key(cameras[0]), {}).get("shape")
            if shape and len(shape) == 3:
                return int(shape[0]), int(shape[1])
    return None


def checkpoint_io_spec(path: str | Path, *, image_size: tuple[int, int] | None = None) -> IOSpec:
    """The observation/action contract of a control checkpoint (directory, or stage/run directory with `last`).

    `image_size` overrides the training data's image size (needed when that dataset is not on this machine).
    """
    from robo4d.train.checkpoint import CheckpointError, read_config, resolve_checkpoint

    if not Path(path).exists():
        raise ValueError(f"checkpoint {str(path)!r}: no such file or directory")
    try:
        config = read_config(resolve_checkpoint(path))
    except CheckpointError as e:
        raise ValueError(f"checkpoint {str(path)!r}: {e}") from e
    policy_config = config["policy_config"]
    objective = policy_config.get("objective", CONTROL_OBJECTIVE)
    kind = EEF_POSE if objective == CONTROL_OBJECTIVE else str(objective)
    # Before the image size: a pre-training checkpoint must get the "wrong kind" error, not a data question.
    require_eef_actions(kind, str(config["method"]), path)
    cameras = tuple(dict.fromkeys(policy_config.get("cameras", ())))  # pool slots may repeat a camera
    if not cameras:
        raise ValueError(f"checkpoint {str(path)!r}: policy_config.cameras is empty; cannot tell what to observe")
    size = image_size or _training_image_size(config, cameras)
    if size is None:
        side = policy_config.get("image_size")
        if not isinstance(side, int):
            raise ValueError(
                f"checkpoint {str(path)!r}: its training dataset is not reachable to read the image size; "
                "pass the (H, W) the robot's cameras deliver explicitly"
            )
        size = (side, side)
    return IOSpec(cameras=cameras, image_size=size, state_dim=STATE_DIM, action_kind=kind, method=config["method"])


def require_eef_actions(action_kind: str, method: str, source: str | Path) -> None:
    """Refuse policies that cannot drive the robot (e.g. a checkpoint of a points pre-training stage)."""
    if action_kind != EEF_POSE:
        raise ValueError(
            f"{str(source)!r} is a {method!r} '{action_kind}' pre-training policy: it predicts {action_kind}, not "
            f"end-effector poses ({EEF_POSE!r}); evaluate or serve a checkpoint of the control stage "
            f"(policy_config.objective = {CONTROL_OBJECTIVE!r}) instead"
        )


def load_local_policy(checkpoint: str) -> ChunkPolicy:
    """A trained policy from a checkpoint, in eval mode (imports torch). Gradients are left alone: evaluation
    may run inside a process that trains next (`--workers 1`); policies run inference under no_grad."""
    from robo4d.train.checkpoint import load_policy

    return load_policy(checkpoint)


def connect_remote_policy(url: str, api_key: str | None) -> ChunkPolicy:
    """A policy served by `robo4d serve` at `url` (no torch needed in this process)."""
    from robo4d.serve.client import PolicyClient

    return PolicyClient(url, api_key=api_key)
