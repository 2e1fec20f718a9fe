"""`robo4d data import-video` killed with SIGKILL mid-write: nothing (or the old dataset, with --overwrite) or the
finished dataset at `out`, readable; the same command run again finishes with the same frames, and no scratch
folder is left beside `out` (a kill after publishing leaves one; the next run on `out` sweeps it)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from video_fixtures import moving_texture, write_mp4

import killpoints
from robo4d import types
from robo4d.data.errors import DatasetError
from robo4d.data.import_video import plan_import
from robo4d.data.reader import Dataset
from robo4d.data.writer import sweep_stale

EGO, K = types.image_key(types.CAM_EGO), types.intrinsics_key(types.CAM_EGO)


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    write_mp4(root / "clip_a.mp4", moving_texture(8, 32, 48, seed=0))
    write_mp4(root / "clip_b.mp4", moving_texture(6, 32, 48, seed=1))
    return root


def args(videos: Path, out: Path, **extra) -> dict:
    return {"inputs": [str(videos)], "out": str(out), "task": "stir the pot", **extra}


def contents(root: Path) -> list[dict[str, np.ndarray]]:
    dataset = Dataset(root)
    return [dataset.read_episode(ep, [EGO, K]) for ep in range(dataset.num_episodes)]


def same(a: list[dict[str, np.ndarray]], b: list[dict[str, np.ndarray]]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x[k], y[k]) for x, y in zip(a, b, strict=True) for k in (EGO, K))


@pytest.fixture(scope="module")
def reference(videos: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list, list[str]]:
    out = tmp_path_factory.mktemp("reference") / "mine"
    events = killpoints.run("import_video", 0, args(videos, out))
    return contents(out), events


@pytest.fixture(scope="module")
def old(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A different earlier import (one short clip) that --overwrite replaces."""
    source = tmp_path_factory.mktemp("old_source")
    write_mp4(source / "old.mp4", moving_texture(4, 32, 48, seed=7))
    out = tmp_path_factory.mktemp("old") / "mine"
    killpoints.run("import_video", 0, args(source, out))
    return out


def check(videos: Path, reference: tuple[list, list[str]], kill_at: int, tmp_path: Path, old: Path | None) -> None:
    expected, events = reference
    out = tmp_path / "mine"
    if old is not None:
        shutil.copytree(old, out)
    run_args = args(videos, out, overwrite=old is not None)
    killed = killpoints.kill_run("import_video", kill_at, run_args)
    assert killed.returncode == -9, f"kill before event {kill_at} ({events[kill_at - 1]}) not reached: {killed.stderr}"
    if not (out.exists() and same(contents(out), expected)):  # else killed after publishing: the whole dataset
        # Nothing, or the old dataset untouched and readable; the same command finishes.
        if old is not None:
            assert same(contents(out), contents(old))
        else:
            assert not out.exists()
        killpoints.run("import_video", 0, run_args)
        assert same(contents(out), expected)
    else:  # killed after publishing: the next import to `out` sweeps what the dead run left behind
        with pytest.raises(DatasetError, match="already exists"):
            plan_import([videos], out=out, task="stir the pot")
        sweep_stale(out)  # what any writer of `out` runs first
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "mine"]
    assert leftovers == [], leftovers
    assert same(contents(out), expected)
    shutil.rmtree(tmp_path)


def random_point(events: list[str], seed: int) -> int:
    return int(np.random.default_rng(seed).integers(1, len(events) + 1))


@pytest.mark.parametrize("seed", [0])
def test_import_killed_leaves_nothing_or_everything(videos, reference, seed: int, tmp_path: Path) -> None:
    check(videos, reference, random_point(reference[1], seed), tmp_path, None)


def test_import_overwrite_killed_mid_episodes_leaves_the_old_dataset(videos, reference, old, tmp_path) -> None:
    second = [i for i, e in enumerate(reference[1], 1) if e == "DatasetWriter.add_episode"][1]
    check(videos, reference, second, tmp_path, old)


def test_import_killed_right_after_publishing_leaves_nothing_behind(videos, reference, tmp_path) -> None:
    """The kill lands between publishing and removing the work folder: the dataset is whole, and the next
    import to the same path removes the folder the dead run left."""
    events = reference[1]
    cleanup = next(i for i, e in enumerate(events, 1) if e == "shutil.rmtree" and i > events.index("os.rename") + 1)
    check(videos, reference, cleanup, tmp_path, None)


def test_scratch_of_dead_writers_is_swept_and_live_ones_kept(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    dead = _dead_pid()
    stale = [tmp_path / f"mine{suffix}{dead}" for suffix in (".partial-", ".edit-", ".old-")]
    live = tmp_path / f"mine.partial-{os.getpid()}"
    for path in (*stale, live, tmp_path / "mine.partial-x", tmp_path / f"other.edit-{dead}"):
        path.mkdir()
    assert sorted(sweep_stale(out)) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["mine.partial-x", live.name, f"other.edit-{dead}"])


def _dead_pid() -> int:
    """The pid of a process that has exited."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.mark.slow
@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("seed", range(1, 7))
def test_import_killed_more_points(videos, reference, old, overwrite: bool, seed: int, tmp_path: Path) -> None:
    check(videos, reference, random_point(reference[1], seed), tmp_path, old if overwrite else None)
