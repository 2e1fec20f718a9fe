"""`robo4d model ...`: inspect any registered method's presets. Imports torch and the models only when run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Info:
    """Print a preset's parameter counts per block, one `name: count` per line (any registered method)."""

    preset: str = "arm4r-tiny"  # a registered preset name, e.g. arm4r-tiny, arm4r-base
    variant: str | None = None  # which of the method's models to break down (arm4r: points, control); default: first

    def run(self) -> None:
        from robo4d.methods.base import preset_family

        try:
            family = preset_family(self.preset)
            variant = family.variants[0] if self.variant is None else self.variant
            if variant not in family.variants:
                raise KeyError(
                    f"unknown variant {variant!r} of {family.method!r} presets; known: {', '.join(family.variants)}"
                )
            counts = family.parameter_counts(self.preset, variant)
        except KeyError as e:
            raise SystemExit(f"robo4d model info: {e.args[0]}") from None
        for name, count in counts.items():
            print(f"{name}: {count}")


COMMANDS: dict[str, type] = {"info": Info}
