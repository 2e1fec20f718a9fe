"""Per-stage training records: `metrics.jsonl` always (one JSON object per log step), TensorBoard when installed.

Record fields: step, stage, loss (mean since the previous record), lr, metrics (the policy's floats, same
averaging), samples_per_s, val_loss (only at validation steps), time (unix seconds).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of one metrics.jsonl, skipping a torn last line left by a crash mid-write."""
    records = []
    lines = path.read_text().splitlines()
    for n, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            if n != len(lines):
                raise ValueError(f"{path}:{n}: not a JSON record: {e}") from e
    return records


class MetricsLog:
    """Writes a stage's records (rank 0 only). On resume from step s, records past s from the interrupted run
    are dropped first so the file reads as one uninterrupted run."""

    def __init__(self, stage_dir: Path, stage: str, *, resume_step: int, enabled: bool) -> None:
        self.stage, self.enabled = stage, enabled
        self.path = stage_dir / METRICS_FILE
        self._tb = None
        if not enabled:
            return
        stage_dir.mkdir(parents=True, exist_ok=True)
        kept = [r for r in read_records(self.path) if r["step"] <= resume_step] if self.path.exists() else []
        tmp = self.path.with_name(f".{METRICS_FILE}.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        os.replace(tmp, self.path)  # a kill here leaves the old records or the trimmed ones, never a truncated file
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # TensorBoard is optional; metrics.jsonl is the record of truth
            return
        self._tb = SummaryWriter(str(stage_dir / "tensorboard"), purge_step=resume_step + 1)

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"step": record["step"], "stage": self.stage, **record, "time": time.time()}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            step = record["step"]
            for key in ("loss", "lr", "samples_per_s", "val_loss"):
                if record.get(key) is not None:
                    self._tb.add_scalar(f"{self.stage}/{key}", record[key], step)
            for key, value in record.get("metrics", {}).items():
                self._tb.add_scalar(f"{self.stage}/metrics/{key}", value, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
