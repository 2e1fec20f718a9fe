"""Import of the authors' released ARM4R checkpoints (`pretrained_epic.pth`, fine-tuned `ft_*.pth`).

A release file is `torch.save({"model": state_dict, "optimizer": ..., "epoch": ..., "scaler": ..., "args":
ExperimentConfig})` (or a bare state dict). The state dict holds only the trainable tensors (the frozen ViT is
not saved) under the release's module names; `args` is a pickled dataclass of their code base, which a plain
`torch.load(weights_only=True)` refuses and `weights_only=False` would import and run.

Safe loading: the file is read by torch's own zip/storage machinery, but with a restricted unpickler. Tensor
rebuild functions, storage types, dtypes and OrderedDict come from an allow-list; every other global the pickle
names (their config classes, pathlib, numpy, ...) becomes an inert placeholder class that only records its
constructor arguments and state. No foreign module is imported and no foreign code runs, and the placeholders
are thrown away with everything except the weights.

Name mapping (release -> robo4d `ARM4RPolicy` state dict):
    llama.* (older files: llma.*)      -> model.trunk.*   (layers.{i}.attention.w{q,k,v,o}, feed_forward.w{1,2,3},
                                                          attention_norm, ffn_norm, norm: identical below the prefix)
    arm4r_text_encoder.*               -> model.text_proj.*
    arm4r_vision_norm.*                -> model.image_norm.*
    arm4r_attn_pooling.{i}.*           -> model.pools.{i}.*  (a single unindexed pool -> model.pools.0.*)
    arm4r_proprio_encoder.*            -> model.proprio_encoder.*
    arm4r_action_encoder.*             -> model.action_encoder.*
    arm4r_action_decoder.mlp.*         -> model.action_decoder.*
A key outside this map, a policy tensor the file lacks, or a shape mismatch is an error listing every case.
Release control checkpoints store 6-D rotations as matrix rows (`RELEASE_ROT6D`): a control policy with any
other `ARM4RConfig.rot6d` is refused, since its weights would load and then turn every rotation wrongly.
"""

from __future__ import annotations

import pickle
import re
import types as pytypes
from pathlib import Path
from typing import Any

import torch

from robo4d.methods.arm4r.policy import ARM4RPolicy
from robo4d.nn.state_dict import load_strict

RELEASE_ROT6D = "rows"  # the 6-D rotation layout of the release's control (fine-tuned) checkpoints
RELEASE_PREFIXES = (
    ("llama.", "model.trunk."),
    ("llma.", "model.trunk."),
    ("arm4r_text_encoder.", "model.text_proj."),
    ("arm4r_vision_norm.", "model.image_norm."),
    ("arm4r_attn_pooling.", "model.pools."),
    ("arm4r_proprio_encoder.", "model.proprio_encoder."),
    ("arm4r_action_encoder.", "model.action_encoder."),
    ("arm4r_action_decoder.mlp.", "model.action_decoder."),
)


class InertObject:
    """Stands in for a pickled object of a class the loader does not trust; it never runs foreign code."""

    origin = "?"  # "module.name" of the class the pickle asked for

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs, self.state, self.items = args, kwargs, None, []

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def append(self, item: Any) -> None:
        self.items.append(item)

    def extend(self, items: Any) -> None:
        self.items.extend(items)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items.append((key, value))


def _trusted(module: str, name: str) -> Any | None:
    if (module, name) == ("collections", "OrderedDict"):
        import collections

        return collections.OrderedDict
    if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_parameter"):
        return getattr(torch._utils, name)
    if module == "torch":
        obj = getattr(torch, name, None)
        if name.endswith("Storage") and isinstance(obj, type) or isinstance(obj, torch.dtype) or obj is torch.Size:
            return obj
    return None


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        trusted = _trusted(module, name)
        if trusted is not None:
            return trusted
        return type(name, (InertObject,), {"origin": f"{module}.{name}", "__module__": __name__})


def _restricted_pickle_module() -> pytypes.ModuleType:
    mod = pytypes.ModuleType("robo4d_restricted_pickle")
    mod.Unpickler = RestrictedUnpickler  # type: ignore[attr-defined]
    mod.load = lambda file, **kw: RestrictedUnpickler(file, **kw).load()  # type: ignore[attr-defined]
    return mod


def read_release_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The weights of a release checkpoint (float32, CPU), read without running any pickled code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    obj = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_restricted_pickle_module())
    state = obj.get("model", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a dict of tensors (or {{'model': state_dict, ...}}), got {type(obj)}")
    return {k: v.float() for k, v in state.items()}


def map_release_names(state: dict[str, torch.Tensor], *, where: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Release key names -> robo4d policy state-dict names; unknown keys raise, listing all of them."""
    out, unknown = {}, []
    for key, value in state.items():
        for old, new in RELEASE_PREFIXES:
            if key.startswith(old):
                rest = key[len(old) :]
                if old == "arm4r_attn_pooling." and not re.match(r"\d+\.", rest):
                    rest = "0." + rest  # one shared pool (separate_camera_adapter off)
                out[new + rest] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"{where}: {len(unknown)} key(s) outside the ARM4R release layout: {sorted(unknown)}")
    return out


def load_release_checkpoint(policy: ARM4RPolicy, path: str | Path) -> None:
    """Load a release checkpoint into `policy` strictly (its config must match the checkpoint's sizes, and a
    control policy must use the release's 6-D rotation layout)."""
    cfg = policy.config
    if cfg.objective == "control" and cfg.rot6d != RELEASE_ROT6D:
        raise ValueError(
            f"{path}: release control checkpoints store 6-D rotations as {RELEASE_ROT6D!r}, but this policy's "
            f"ARM4RConfig.rot6d is {cfg.rot6d!r}; its rotations would be wrong. Use rot6d={RELEASE_ROT6D!r}"
        )
    mapped = map_release_names(read_release_state_dict(path), where=str(path))
    try:
        load_strict(policy, mapped, source=str(path))
    except ValueError as e:
        raise ValueError(
            f"{e}. The release's stage-1 file needs preset('arm4r-base', stage=1), its fine-tuned files "
            "preset('arm4r-base', stage=3)"
        ) from None
