"""IGOR's parameter counts per block for `robo4d model info` (registered with its presets)."""

from __future__ import annotations

import torch

from robo4d.methods.igor.config import OBJECTIVES, preset

VARIANTS = OBJECTIVES  # the policy of each stage: lam, world, foundation, control


def parameter_counts(preset_name: str, variant: str) -> dict[str, int]:
    """Parameters per block of a preset's policy for one stage (built on the meta device), and how many of them
    train in that stage (the rest are learned earlier and frozen)."""
    from robo4d.methods.igor.policy import IGORPolicy

    if variant not in VARIANTS:
        raise ValueError(f"igor variant must be one of {VARIANTS}, got {variant!r}")
    with torch.device("meta"):
        policy = IGORPolicy(preset(preset_name, variant))  # type: ignore[arg-type]
    counts = {}
    for name, child in policy.named_children():
        for sub, module in child.named_children():
            counts[f"{name}.{sub}"] = sum(p.numel() for p in module.parameters())
    counts["trainable"] = sum(p.numel() for p in policy.parameters() if p.requires_grad)
    counts["frozen"] = sum(p.numel() for p in policy.parameters() if not p.requires_grad)
    return counts
