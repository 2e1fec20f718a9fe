"""ARM4R's parameter counts per block for `robo4d model info` (registered with its presets)."""

from __future__ import annotations

import torch

from robo4d.methods.arm4r.config import preset
from robo4d.methods.arm4r.model import ARM4RModel

VARIANTS = ("points", "control")  # the model of stages 1-2, and of stage 3


def parameter_counts(preset_name: str, variant: str) -> dict[str, int]:
    """Parameters per block of a preset's `variant` model, trainable totals per stage and the frozen image
    encoder (built on the meta device: no weights are read and no memory is allocated)."""
    from robo4d.nn.encoders import build_image_encoder

    if variant not in VARIANTS:
        raise ValueError(f"arm4r variant must be one of {VARIANTS}, got {variant!r}")

    def total(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    with torch.device("meta"):
        models = {stage: ARM4RModel(preset(preset_name, stage)) for stage in (1, 2, 3)}
        cfg = preset(preset_name)
        frozen = build_image_encoder(cfg.image_encoder, image_size=cfg.image_size, random_init=True)
    model = models[1 if variant == "points" else 3]
    counts = {name: total(child) for name, child in model.named_children()}
    counts |= {f"trainable.stage{stage}": total(m) for stage, m in models.items()}
    counts["frozen.image_encoder"] = total(frozen)
    return counts
