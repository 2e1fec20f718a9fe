"""`robo4d bench`: run (a shard of) the pre-training experiment grid, or merge shards, then write the report.

robo4d bench --preset quick --out outputs/bench                 # the whole quick grid (< 45 min, 2 cores)
robo4d bench --preset paper --out /data/bench --shard 0/4      # one of four machines
robo4d bench --merge /data/bench-0 /data/bench-1 --out merged  # gather shards, write the report
robo4d bench --preset medium --methods arm4r-no-stage2 --out o  # one lever on medium's budget (+ scratch)
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, kw_only=True)
class BenchCommand:
    """A resumable grid of training runs (method x demos x seed x human data x tracks x setting); finished
    cells are skipped, so a re-run continues where the last one stopped. Writes <out>/report.md."""

    preset: str = "quick"  # tiny (tests), quick (< 45 min on 2 cores), medium (~70 min), levers, paper (full grid)
    out: Path = Path("outputs/bench")  # cells/, data/, report.md, data_efficiency.png, bench.json
    shard: str | None = None  # "i/n": run only every n-th cell, starting at i (merge the shards afterwards)
    merge: tuple[Path, ...] = ()  # bench outputs to gather into --out instead of running cells
    report_only: bool = False  # write the report from the finished cells without running any
    workers: int = 2  # processes for generation, extraction and evaluation
    threads: int = 1  # torch threads of this process (the machine is often shared)
    # Replace one of the preset's axes, keeping its budget, e.g. a lever on the medium budget:
    # --preset medium --methods arm4r-3stage arm4r-no-stage2 --human other in-domain (scratch always runs).
    methods: tuple[str, ...] = ()  # replace the preset's methods (its budget stays; scratch always runs)
    demos: tuple[int, ...] = ()  # replace its robot demos per task
    seeds: tuple[int, ...] = ()  # replace its training seeds
    human: tuple[str, ...] = ()  # replace its human data: other, other-x4, all, in-domain, tiny
    tracks: tuple[str, ...] = ()  # replace its track sources: extracted, ground-truth
    settings: tuple[str, ...] = ()  # replace its settings: default, wide, camera, distractors

    def run(self) -> None:
        from robo4d.recipes import bench, bench_report

        try:
            axes = {name: getattr(self, name) for name in bench.AXES}
            preset = bench.bench_preset(self.preset, **axes)
            shard = bench.parse_shard(self.shard)
            if not self.merge and not self.report_only:
                bench.expand(preset)  # unknown methods fail here, before any data is generated
            if self.workers < 1 or self.threads < 1:
                raise ValueError(f"--workers and --threads must be >= 1, got {self.workers}, {self.threads}")
            if self.merge:
                print(f"merged {bench.merge(self.merge, self.out)} new cells into {self.out}")
        except (KeyError, ValueError) as e:
            sys.exit(f"robo4d bench: {e.args[0]}")
        if not self.merge and not self.report_only:
            os.environ.setdefault("OMP_NUM_THREADS", str(self.threads))
            import torch

            torch.set_num_threads(self.threads)
            bench.run_bench(preset, self.out, shard=shard, workers=self.workers)
        results = bench.load_results(self.out)
        if not results:
            sys.exit(f"robo4d bench: {self.out}: no finished cells to report")
        planned = len(bench.expand(preset))
        print(f"report: {bench_report.write_report(results, self.out, planned=planned)}")


COMMAND = BenchCommand
