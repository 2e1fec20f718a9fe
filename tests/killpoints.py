"""Run one robo4d write and SIGKILL the process at its Nth instrumented call: kill -9, no cleanup of any kind.

    python tests/killpoints.py SCENARIO KILL_AT ARGS_JSON     (or `kill_run` / `run` from a test)

Every call to a file-system primitive robo4d's writers use (rename/replace/unlink/link/rmtree, parquet, JSON,
safetensors and torch writes) and every scenario step (a training step, a dataset episode) is an event;
the process kills itself (SIGKILL) just before event KILL_AT (1-based). KILL_AT = 0 never kills; the run then
prints {"events": [names]}, from which callers draw kill points. The events are deterministic for fixed inputs.
Scenarios: "train" (tests/train/train_toy.py's toy stage), "world" (robot demos), "merge" (extraction merge),
"import_video" (`robo4d data import-video`), "label" (IGOR latent-action labelling, in place).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from unittest import mock

import pyarrow.parquet as pq


def _instrument(stack: ExitStack, kill_at: int, targets: list[tuple[Any, str]]) -> list[str]:
    events: list[str] = []  # names of the calls so far

    def wrap(fn: Any, name: str) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            events.append(name)
            if len(events) == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(*args, **kwargs)

        return wrapped

    for owner, name in targets:
        label = f"{getattr(owner, '__name__', type(owner).__name__)}.{name}"
        stack.enter_context(mock.patch.object(owner, name, wrap(getattr(owner, name), label)))
    return events


def _file_targets() -> list[tuple[Any, str]]:
    import safetensors.torch
    import torch

    from robo4d.data import layout, writer

    return [
        (os, "replace"), (os, "rename"), (os, "unlink"), (os, "link"), (shutil, "rmtree"), (Path, "write_text"),
        (pq, "write_table"), (pq.ParquetWriter, "write_table"), (layout, "write_json"),
        (safetensors.torch, "save_file"), (torch, "save"), (writer, "_exchange"),
    ]  # fmt: skip


def train(args: dict[str, Any]) -> tuple[list[tuple[Any, str]], Any]:
    sys.path.insert(0, str(Path(__file__).parent / "train"))
    from train_toy import TOY_BACKEND, ToyConfig, ToyPolicy, toy_stage

    from robo4d.train.trainer import run_stage

    stage = toy_stage(Path(args["root"]), policy=ToyConfig(noise=0.1), **args["stage"])  # noise: RNG restore

    def run() -> None:
        run_stage(stage, Path(args["run_dir"]), backend=TOY_BACKEND, progress=False, resume=args["resume"])

    return [(ToyPolicy, "compute_loss")], run


def world(args: dict[str, Any]) -> tuple[list[tuple[Any, str]], Any]:
    from robo4d.data.writer import DatasetWriter
    from robo4d.world.generate import generate

    def run() -> None:
        generate("robot", Path(args["out"]), **args["generate"])

    return [(DatasetWriter, "add_episode")], run


def merge(args: dict[str, Any]) -> tuple[list[tuple[Any, str]], Any]:
    from robo4d.extract import runner

    return [], lambda: runner.merge(Path(args["root"]), args["camera"])


def import_video(args: dict[str, Any]) -> tuple[list[tuple[Any, str]], Any]:
    from robo4d.data.import_video import plan_import, run_import
    from robo4d.data.writer import DatasetWriter

    def run() -> None:
        inputs = [Path(p) for p in args["inputs"]]
        run_import(plan_import(inputs, out=Path(args["out"]), task=args["task"], workers=1,
                              overwrite=args.get("overwrite", False)))  # fmt: skip

    return [(DatasetWriter, "add_episode")], run


def label(args: dict[str, Any]) -> tuple[list[tuple[Any, str]], Any]:
    from robo4d.methods.igor import label as labelling

    return [(labelling, "episode_latents")], lambda: labelling.label_dataset(args["root"], args["checkpoint"])


SCENARIOS = {"train": train, "world": world, "merge": merge, "import_video": import_video, "label": label}


def run(scenario: str, kill_at: int, args: dict[str, Any]) -> list[str]:
    """Run a scenario (in this process when kill_at = 0); returns the names of its events in order."""
    import torch

    steps, body = SCENARIOS[scenario](args)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same reduction order in a child and in the test process: bitwise comparable
    try:
        with ExitStack() as stack:
            events = _instrument(stack, kill_at, steps + _file_targets())
            body()
    finally:
        torch.set_num_threads(threads)
    return events


def kill_run(scenario: str, kill_at: int, args: dict[str, Any]) -> subprocess.CompletedProcess:
    """Run a scenario in a child process that SIGKILLs itself before event `kill_at`."""
    cmd = [sys.executable, __file__, scenario, str(kill_at), json.dumps(args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


if __name__ == "__main__":
    print(json.dumps({"events": run(sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]))}))
