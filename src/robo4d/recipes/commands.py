"""`robo4d demo`: the whole ARM4R story on the embedded world, cached step by step."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, kw_only=True)
class DemoCommand:
    """Generate data, extract 3D tracks, pre-train (stages 1-2), fine-tune (stage 3) and a from-scratch
    baseline, evaluate both on held-out seeds and write outputs/demo/report.md. Re-runs skip done work."""

    preset: str = "default"  # default (21.5 min on 2 cores, README), full (a stronger experiment), tiny (a smoke run)
    out: Path = Path("outputs/demo")  # everything goes here: data/, runs/, eval/, viz/, report.md
    workers: int = 2  # processes for generation, extraction and evaluation

    def run(self) -> None:
        from robo4d.recipes.demo import demo_preset, run_demo

        try:
            preset = demo_preset(self.preset)
        except KeyError as e:
            sys.exit(f"robo4d demo: {e.args[0]}")
        run_demo(preset, self.out, workers=self.workers)


COMMAND = DemoCommand
