"""The one strict state-dict load of robo4d: checkpoints, release imports, encoder and tracker weights."""

from __future__ import annotations

from collections.abc import Collection, Mapping

import torch
from torch import nn

SHOWN = 20  # names listed per kind of problem; the rest are counted


def _listed(names: list[str]) -> str:
    more = f" (+{len(names) - SHOWN} more)" if len(names) > SHOWN else ""
    return f"{names[:SHOWN]}{more}"


def load_strict(
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    source: str,
    names: Collection[str] | None = None,
    error: type[Exception] = ValueError,
) -> None:
    """Copy `state` into `module`: exactly the entries `names` (default: all of the module's state dict), each
    with the module's shape; the module's other entries keep their values. Anything missing, unexpected or
    mis-shaped raises `error` naming `source` and listing every case of each kind."""
    current = module.state_dict()
    expected = set(current) if names is None else set(names)
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    mismatched = sorted(
        f"{n}: file {tuple(state[n].shape)} vs model {tuple(current[n].shape)}"
        for n in expected & set(state)
        if state[n].shape != current[n].shape
    )
    problems = [
        f"{label} {_listed(found)}"
        for label, found in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched))
        if found
    ]
    if problems:
        raise error(f"{source} does not fit {type(module).__name__}: " + "; ".join(problems))
    module.load_state_dict({**current, **state}, strict=True)
