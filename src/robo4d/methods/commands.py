"""`robo4d model ...`: inspect method presets. Imports torch and the model only when a command runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


def parameter_counts(preset_name: str, objective: Literal["points", "control"]) -> dict[str, int]:
    """Parameters per block of an ARM4R preset for an objective, trainable totals per stage and the frozen
    image encoder (built on the meta device: no weights are read and no memory is allocated)."""
    import torch

    from robo4d.methods.arm4r.config import preset
    from robo4d.methods.arm4r.model import ARM4RModel
    from robo4d.nn.encoders import build_image_encoder

    def total(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    with torch.device("meta"):
        models = {stage: ARM4RModel(preset(preset_name, stage)) for stage in (1, 2, 3)}
        cfg = preset(preset_name)
        frozen = build_image_encoder(cfg.image_encoder, image_size=cfg.image_size, random_init=True)
    model = models[1 if objective == "points" else 3]
    counts = {name: total(child) for name, child in model.named_children()}
    counts |= {f"trainable.stage{stage}": total(m) for stage, m in models.items()}
    counts["frozen.image_encoder"] = total(frozen)
    return counts


@dataclass(frozen=True)
class Info:
    """Print an ARM4R preset's parameter counts per block, one `name: count` per line."""

    preset: str = "arm4r-tiny"  # arm4r-tiny, arm4r-mini, arm4r-small, arm4r-base, arm4r-large
    objective: Literal["points", "control"] = "points"  # points: stages 1-2; control: stage 3

    def run(self) -> None:
        try:
            counts = parameter_counts(self.preset, self.objective)
        except KeyError as e:
            raise SystemExit(f"robo4d model info: {e.args[0]}") from None
        for name, count in counts.items():
            print(f"{name}: {count}")


COMMANDS: dict[str, type] = {"info": Info}
