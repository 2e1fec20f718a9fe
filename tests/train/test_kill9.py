"""Training killed with SIGKILL at a random point (mid-step or mid-checkpoint), then resumed: the resumed run
logs the same losses and ends with the same weights as an uninterrupted one (CPU, bitwise)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

import killpoints
from robo4d.train.checkpoint import MODEL_FILE, resolve_checkpoint
from robo4d.train.metrics_log import METRICS_FILE, read_records

# Validation exercises the forked RNG, keep_last=1 the pruning under a kill (the toy adds noise: RNG restore).
STAGE = {"steps": 9, "save_every": 2, "keep_last": 1, "eval_every": 4}


def args(root: Path, run_dir: Path, *, resume: bool) -> dict:
    return {"root": str(root), "run_dir": str(run_dir), "resume": resume, "stage": STAGE}


def losses(run_dir: Path) -> list[tuple[int, float, float | None]]:
    return [(r["step"], r["loss"], r["val_loss"]) for r in read_records(run_dir / "s1" / METRICS_FILE)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    from train_toy import make_toy_dataset

    root = make_toy_dataset(tmp_path_factory.mktemp("toy") / "data")
    run_dir = tmp_path_factory.mktemp("reference")
    return root, run_dir, killpoints.run("train", 0, args(root, run_dir, resume=False))


def check_kill_and_resume(reference: tuple[Path, Path, list[str]], seed: int, tmp_path: Path) -> None:
    root, ref_dir, events = reference
    kill_at = int(np.random.default_rng(seed).integers(1, len(events) + 1))
    killed = killpoints.kill_run("train", kill_at, args(root, tmp_path, resume=False))
    assert killed.returncode == -9, f"kill before event {kill_at} ({events[kill_at - 1]}) not reached: {killed.stderr}"
    killpoints.run("train", 0, args(root, tmp_path, resume=True))  # `robo4d train --resume`
    assert losses(tmp_path) == losses(ref_dir)  # every logged loss, the ones after the resume included
    final, expected = (load_file(resolve_checkpoint(d / "s1") / MODEL_FILE) for d in (tmp_path, ref_dir))
    assert final.keys() == expected.keys() and all((final[k] == expected[k]).all() for k in final)


@pytest.mark.parametrize("seed", [0, 1])
def test_kill9_then_resume_equals_an_uninterrupted_run(reference, seed: int, tmp_path: Path) -> None:
    check_kill_and_resume(reference, seed, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2, 12))
def test_kill9_then_resume_more_seeds(reference, seed: int, tmp_path: Path) -> None:
    check_kill_and_resume(reference, seed, tmp_path)
