"""`robo4d demo`: the whole pre-training story on the embedded world (ARM4R's by default), cached step by step."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, kw_only=True)
class DemoCommand:
    """Generate data, extract 3D tracks, train every recipe of --method (ARM4R: pre-train stages 1-2, fine-tune
    stage 3) and its from-scratch baseline, evaluate all on held-out seeds, write outputs/demo/report.md with
    each policy's interval and paired difference to the baseline. Re-runs skip done work."""

    preset: str = "default"  # default (21.5 min on 2 cores, README), full (a stronger experiment), tiny (a smoke run)
    out: Path = Path("outputs/demo")  # everything goes here: data/, runs/, eval/, viz/, report.md
    workers: int = 2  # processes for generation, extraction and evaluation
    method: str = "arm4r"  # registered method whose recipes are trained (with its no-pre-training baseline)

    def run(self) -> None:
        from robo4d.recipes.demo import demo_preset, demo_recipes, run_demo

        try:
            preset = demo_preset(self.preset)
            demo_recipes(self.method)
        except KeyError as e:
            sys.exit(f"robo4d demo: {e.args[0]}")
        run_demo(preset, self.out, workers=self.workers, method=self.method)


COMMAND = DemoCommand
