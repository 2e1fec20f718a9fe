"""Parameter counts of a GR-1 preset (what `robo4d model info --preset gr1-...` prints).

Built on the meta device: no weights are read and no memory is allocated.
"""

from __future__ import annotations


def parameter_counts(preset_name: str) -> dict[str, int]:
    """Parameters per block of the finetune model, trainable totals per stage, the total in the release's
    layout (which also holds an unused 1-token GPT-2 word embedding of D values) and the frozen image encoder."""
    import torch

    from robo4d.methods.gr1.config import preset
    from robo4d.methods.gr1.model import GR1Model, count
    from robo4d.nn.encoders import build_image_encoder

    cfg = preset(preset_name)
    with torch.device("meta"):
        finetune = GR1Model(cfg)
        pretrain = GR1Model(preset(preset_name, "pretrain"))
        frozen = build_image_encoder(cfg.image_encoder, image_size=cfg.image_size, random_init=True)
    counts = {name: count(child) for name, child in finetune.named_children()}
    counts["trainable.pretrain"] = count(pretrain)
    counts["trainable.finetune"] = count(finetune)
    counts["trainable.finetune.release_layout"] = count(finetune) + cfg.dim
    counts["frozen.image_encoder"] = count(frozen)
    return counts
