"""World generation killed with SIGKILL mid-write: nothing or the finished dataset at `out`; a rerun finishes
and writes the same bytes as an uninterrupted run."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import killpoints
from robo4d import types
from robo4d.data.reader import Dataset

GENERATE = {
    "task_names": ["reach-v3"], "episodes": 2, "seed": 1, "image_size": 32, "max_steps": 8, "grid": 0,
    "workers": 1, "keep_failures": True, "preset": "tiny",
}  # fmt: skip


def files(root: Path) -> dict[str, bytes]:
    """Every parquet and JSON file; robo4d.json is left out (it records the generation time)."""
    paths = [*root.rglob("*.parquet"), *root.rglob("*.json")]
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in paths if p.name != "robo4d.json"}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("reference") / "robot"
    return out, killpoints.run("world", 0, {"out": str(out), "generate": GENERATE})


def check(reference: tuple[Path, list[str]], seed: int, tmp_path: Path) -> None:
    ref, events = reference
    kill_at = int(np.random.default_rng(seed).integers(1, len(events) + 1))
    out = tmp_path / "robot"
    killed = killpoints.kill_run("world", kill_at, {"out": str(out), "generate": GENERATE})
    assert killed.returncode == -9, f"kill before event {kill_at} ({events[kill_at - 1]}) not reached: {killed.stderr}"
    if out.exists():  # killed after publishing: the whole dataset, readable
        assert files(out) == files(ref)
        assert Dataset(out).read_episode(1)[types.STATE].shape[1:] == (types.STATE_DIM,)
    else:  # the rerun finishes
        killpoints.run("world", 0, {"out": str(out), "generate": GENERATE})
        assert files(out) == files(ref)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "robot"]
    assert all(".partial-" in n for n in leftovers), leftovers  # only the killed writer's refused scratch
    shutil.rmtree(tmp_path)


@pytest.mark.parametrize("seed", [0, 1])
def test_world_generation_killed_leaves_nothing_or_everything(reference, seed: int, tmp_path: Path) -> None:
    check(reference, seed, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2, 10))
def test_world_generation_killed_more_seeds(reference, seed: int, tmp_path: Path) -> None:
    check(reference, seed, tmp_path)
