"""`robo4d data import-video` killed with SIGKILL mid-write: nothing (or the old dataset, with --overwrite) or the
finished dataset at `out`, readable; the same command run again finishes with the same frames."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from video_fixtures import moving_texture, write_mp4

import killpoints
from robo4d import types
from robo4d.data.reader import Dataset

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
        assert not (tmp_path / "mine.import-work").exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "mine"]
    assert all(".partial-" in n or n.endswith(".import-work") for n in leftovers), leftovers
    shutil.rmtree(tmp_path)


def random_point(events: list[str], seed: int) -> int:
    return int(np.random.default_rng(seed).integers(1, len(events) + 1))


@pytest.mark.parametrize("seed", [0])
def test_import_killed_leaves_nothing_or_everything(videos, reference, seed: int, tmp_path: Path) -> None:
    check(videos, reference, random_point(reference[1], seed), tmp_path, None)


def test_import_overwrite_killed_mid_episodes_leaves_the_old_dataset(videos, reference, old, tmp_path) -> None:
    second = [i for i, e in enumerate(reference[1], 1) if e == "DatasetWriter.add_episode"][1]
    check(videos, reference, second, tmp_path, old)


@pytest.mark.slow
@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("seed", range(1, 7))
def test_import_killed_more_points(videos, reference, old, overwrite: bool, seed: int, tmp_path: Path) -> None:
    check(videos, reference, random_point(reference[1], seed), tmp_path, old if overwrite else None)
