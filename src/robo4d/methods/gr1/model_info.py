"""GR-1's parameter counts per block for `robo4d model info` (registered with its presets).

Built on the meta device: no weights are read and no memory is allocated.
"""

from __future__ import annotations

VARIANTS = ("finetune", "pretrain")  # the model of the fine-tuning stage (default), and of pre-training


def parameter_counts(preset_name: str, variant: str = "finetune") -> dict[str, int]:
    """Parameters per block of a preset's `variant` model, trainable totals per stage, the fine-tuning total in
    the release's layout (which also holds an unused 1-token GPT-2 word embedding of D values) and the frozen
    image encoder."""
    import torch

    from robo4d.methods.gr1.config import preset
    from robo4d.methods.gr1.model import GR1Model, count
    from robo4d.nn.encoders import build_image_encoder

    if variant not in VARIANTS:
        raise ValueError(f"gr1 variant must be one of {VARIANTS}, got {variant!r}")
    cfg = preset(preset_name)
    with torch.device("meta"):
        models = {stage: GR1Model(preset(preset_name, stage)) for stage in VARIANTS}  # type: ignore[arg-type]
        frozen = build_image_encoder(cfg.image_encoder, image_size=cfg.image_size, random_init=True)
    counts = {name: count(child) for name, child in models[variant].named_children()}
    counts |= {f"trainable.{stage}": count(model) for stage, model in models.items()}
    counts["trainable.finetune.release_layout"] = count(models["finetune"]) + cfg.dim
    counts["frozen.image_encoder"] = count(frozen)
    return counts
