"""Self-describing checkpoints: a directory that rebuilds its policy with nothing but its path.

    <stage dir>/last                      text file: "checkpoints/step_000100" (relative), replaced atomically
    <stage dir>/checkpoints/step_000100/
        model.safetensors                 every parameter and buffer, except the fully frozen submodules the
                                          policy rebuilds from a named weight source (frozen_weight_sources)
        config.json                       format_version, method, policy config (fitted to the data), stage
                                          config, step, datasets, "io" (asdict of Policy.io(): what eval and
                                          serve feed and expect), "camera_map" (dataset camera -> policy
                                          camera, possibly {}), "frozen_sources" (module -> weight source)
        stats.json                        the training dataset's normalisation stats
        training_state.pt                 optimiser, scheduler, RNG states, step, data position (resume only)
    <run dir>/last                        text file: the most recently trained stage's directory name

Each checkpoint is written into a temporary sibling directory and renamed into place, so a crash leaves
either the old or the new checkpoint, never half of one. Reading fails with an error naming the file.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from torch import nn

from robo4d.config import config_from_dict
from robo4d.methods.base import Policy, method_entry
from robo4d.nn.state_dict import load_strict

FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STATS_FILE = "stats.json"
STATE_FILE = "training_state.pt"
LAST_FILE = "last"
CHECKPOINTS_DIR = "checkpoints"


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt or from another format version; the message names the file."""


def step_dir_name(step: int) -> str:
    return f"step_{step:07d}"


# --- what is saved ------------------------------------------------------------------------------------------


def frozen_sources(model: nn.Module) -> dict[str, str]:
    """Submodule -> named weight source of the submodules a checkpoint leaves out. Each must exist and be
    fully frozen: a module that trains, or that was never loaded from a source, has to be saved."""
    sources = model.frozen_weight_sources() if isinstance(model, Policy) else {}
    modules = dict(model.named_modules())
    for name, source in sources.items():
        module = modules.get(name) if name else None
        if module is None:
            raise ValueError(f"{type(model).__name__}.frozen_weight_sources names {name!r}, which is not a submodule")
        if any(p.requires_grad for p in module.parameters()):
            raise ValueError(
                f"{type(model).__name__}.frozen_weight_sources names {name!r} ({source}), but it has trainable "
                "parameters; only fully frozen modules may be rebuilt from a source instead of saved"
            )
    return dict(sources)


def saved_names(model: nn.Module) -> set[str]:
    """State-dict names a checkpoint holds: every parameter and buffer except those inside a submodule rebuilt
    from a recorded weight source (a pretrained encoder: its buffers come with its weights). A frozen module
    without a source (e.g. a latent action model learned in an earlier stage) is saved like any other."""
    prefixes = tuple(name + "." for name in frozen_sources(model))
    return {name for name in model.state_dict() if not name.startswith(prefixes)}


def saved_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors a checkpoint of `model` holds, detached CPU copies (clones: safetensors rejects shared storage)."""
    keep = saved_names(model)
    return {n: t.detach().cpu().contiguous().clone() for n, t in model.state_dict().items() if n in keep}


def load_saved_state(model: nn.Module, state: dict[str, torch.Tensor], *, source: str) -> None:
    """Strictly load a checkpoint's tensors: the names must be exactly the model's saved names, shapes equal."""
    load_strict(model, state, source=source, names=saved_names(model), error=CheckpointError)


# --- atomic writes ------------------------------------------------------------------------------------------


def _write_pointer(path: Path, target: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(target + "\n")
    os.replace(tmp, path)


def _stats_to_json(stats: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {k: {s: np.asarray(v).tolist() for s, v in d.items()} for k, d in stats.items()}


def write_checkpoint(
    stage_dir: Path,
    step: int,
    *,
    model_state: dict[str, torch.Tensor],
    config: dict[str, Any],
    stats: dict[str, dict[str, Any]],
    training_state: dict[str, Any],
    keep_last: int,
) -> Path:
    """Write checkpoint `step` of a stage atomically, point `last` at it, and prune all but `keep_last`."""
    root = stage_dir / CHECKPOINTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_dir_name(step)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
    safetensors.torch.save_file(model_state, str(tmp / MODEL_FILE))
    (tmp / CONFIG_FILE).write_text(json.dumps({"format_version": FORMAT_VERSION, **config}, indent=2))
    (tmp / STATS_FILE).write_text(json.dumps(_stats_to_json(stats)))
    torch.save(training_state, tmp / STATE_FILE)
    if final.exists():  # re-written after a resume from an earlier step: replace the stale copy
        stale = root / f".stale.{final.name}.{os.getpid()}"
        os.replace(final, stale)
        shutil.rmtree(stale)
    os.replace(tmp, final)
    _write_pointer(stage_dir / LAST_FILE, f"{CHECKPOINTS_DIR}/{final.name}")
    _write_pointer(stage_dir.parent / LAST_FILE, stage_dir.name)
    steps = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_"))
    for old in steps[: max(0, len(steps) - keep_last)]:
        shutil.rmtree(old)
    return final


# --- reading ------------------------------------------------------------------------------------------------


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory from itself, a stage directory or a run directory (following `last` files)."""
    path = Path(path)
    for _ in range(3):
        if (path / CONFIG_FILE).is_file():
            return path
        pointer = path / LAST_FILE
        if not pointer.is_file():
            break
        path = path / pointer.read_text().strip()
    raise CheckpointError(f"{path}: not a checkpoint (no {CONFIG_FILE}) and no '{LAST_FILE}' pointer to follow")


def read_config(ckpt: Path) -> dict[str, Any]:
    path = ckpt / CONFIG_FILE
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read the checkpoint config: {e}") from e
    version = config.get("format_version") if isinstance(config, dict) else None
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format_version is {version!r}, this robo4d reads {FORMAT_VERSION}")
    for field in ("method", "policy_config", "stage", "step"):
        if field not in config:
            raise CheckpointError(f"{path}: missing field {field!r}")
    return config


def read_model(ckpt: Path) -> dict[str, torch.Tensor]:
    path = ckpt / MODEL_FILE
    try:
        return safetensors.torch.load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for truncated or garbled headers
        raise CheckpointError(f"{path}: cannot read the weights ({type(e).__name__}: {e})") from e


def read_stats(ckpt: Path) -> dict[str, dict[str, np.ndarray]]:
    path = ckpt / STATS_FILE
    try:
        raw = json.loads(path.read_text())
        return {k: {s: np.asarray(v, dtype=np.float32) for s, v in d.items()} for k, d in raw.items()}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot read the normalisation stats: {e}") from e


def read_training_state(ckpt: Path) -> dict[str, Any]:
    path = ckpt / STATE_FILE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load raises several types for truncated or foreign files
        raise CheckpointError(f"{path}: cannot read the training state ({type(e).__name__}: {e})") from e


def build_from_config(config: dict[str, Any], *, where: str) -> Policy:
    """The policy a checkpoint config describes, freshly initialised (frozen encoders load their weights)."""
    entry = method_entry(config["method"])
    policy_config = config_from_dict(entry.config_cls, config["policy_config"], where=f"{where}:policy_config")
    return entry.policy_cls(policy_config)


def check_frozen_sources(policy: Policy, config: dict[str, Any], *, where: str) -> None:
    """The rebuilt policy must load its left-out modules from the sources the checkpoint recorded."""
    recorded = config.get("frozen_sources", {})
    current = frozen_sources(policy)
    if recorded != current:
        raise CheckpointError(
            f"{where}: frozen modules were saved as rebuilt from {recorded}, but this policy rebuilds {current}; "
            "their weights are not in the checkpoint"
        )


def load_policy(path: str | Path) -> Policy:
    """Rebuild a trained policy from a checkpoint directory (or a stage/run directory via `last`), in eval mode."""
    ckpt = resolve_checkpoint(path)
    config = read_config(ckpt)
    policy = build_from_config(config, where=str(ckpt / CONFIG_FILE))
    check_frozen_sources(policy, config, where=str(ckpt / CONFIG_FILE))
    policy.set_normalization(read_stats(ckpt))
    load_saved_state(policy, read_model(ckpt), source=str(ckpt / MODEL_FILE))
    return policy.eval()
