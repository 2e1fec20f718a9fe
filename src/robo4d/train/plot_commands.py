"""`robo4d plot-metrics RUN [--out PNG]`: a run's train and validation loss curves, stage after stage."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tyro.conf import Positional


def stage_records(run_dir: Path) -> list[tuple[str, list[dict[str, Any]]]]:
    """(stage name, records) for every stage directory of a run holding metrics, in training order."""
    from robo4d.train.metrics_log import METRICS_FILE, read_records

    dirs = [p for p in sorted(run_dir.iterdir()) if (p / METRICS_FILE).is_file()] if run_dir.is_dir() else []
    stages = [(p.name, records) for p in dirs if (records := read_records(p / METRICS_FILE))]
    return sorted(stages, key=lambda item: item[1][0]["time"])


def plot_run(run_dir: Path, out: Path) -> Path:
    """Draw train loss (lines) and validation loss (markers) over the run's cumulative step, one colour per
    stage, with a log-scale loss axis (stage losses differ by orders of magnitude)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    stages = stage_records(run_dir)
    if not stages:
        raise FileNotFoundError(f"{run_dir}: no <stage>/metrics.jsonl with records")
    fig, ax = plt.subplots(figsize=(9, 4.5))
    offset = 0
    for i, (name, records) in enumerate(stages):
        color = f"C{i}"
        steps = [offset + r["step"] for r in records]
        ax.plot(steps, [r["loss"] for r in records], color=color, lw=1.2, label=f"{name} train")
        val = [(offset + r["step"], r["val_loss"]) for r in records if r.get("val_loss") is not None]
        if val:
            ax.plot(*zip(*val, strict=True), "o--", color=color, ms=4, lw=0.8, label=f"{name} val")
        if i:
            ax.axvline(offset, color="0.7", lw=0.8)
        offset = steps[-1]
    ax.set(xlabel="step (cumulative over stages)", ylabel="loss", yscale="log", title=run_dir.name)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


@dataclass(frozen=True, kw_only=True)
class PlotMetricsCommand:
    """Plot a run's loss curves (train + val, per stage) to a PNG."""

    run_dir: Positional[Path]  # run directory (the --out of robo4d train)
    out: Path | None = None  # PNG to write (default: RUN/metrics.png)

    def run(self) -> None:
        try:
            print(plot_run(self.run_dir, self.out or self.run_dir / "metrics.png"))
        except FileNotFoundError as e:
            sys.exit(f"robo4d plot-metrics: {e}")


COMMAND = PlotMetricsCommand
