"""Extraction merge (in place) killed with SIGKILL mid-write: the dataset is the old one (shards kept) or the
merged one (columns + settings record, shards gone), readable either way; a rerun finishes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from test_dataset import SETTINGS, dataset_root  # noqa: F401  (the module's dataset fixture)

import killpoints
from robo4d import types
from robo4d.data.reader import Dataset
from robo4d.extract import runner


def data_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted((root / "data").rglob("*.parquet"))}


@pytest.fixture(scope="module")
def extracted(dataset_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    root = tmp_path_factory.mktemp("extracted") / "human"
    shutil.copytree(dataset_root, root)
    runner.extract_shard(root, "ego", SETTINGS)
    return root


@pytest.fixture(scope="module")
def reference(extracted: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("reference") / "human"
    shutil.copytree(extracted, root)
    return root, killpoints.run("merge", 0, {"root": str(root), "camera": "ego"})


def check(extracted: Path, reference: tuple[Path, list[str]], kill_at: int, tmp_path: Path) -> None:
    ref, events = reference
    root = tmp_path / "human"
    shutil.copytree(extracted, root)
    killed = killpoints.kill_run("merge", kill_at, {"root": str(root), "camera": "ego"})
    assert killed.returncode == -9, f"kill before event {kill_at} ({events[kill_at - 1]}) not reached: {killed.stderr}"
    dataset = Dataset(root)  # readable whatever the kill point
    merged = types.points_key("ego") in dataset.features
    if merged:
        assert runner.recorded_settings(dataset, "ego") == SETTINGS.record()
        assert not (root / runner.EXTRACT_DIR / "ego").exists()
    else:
        assert data_files(root) == data_files(extracted) and runner.recorded_settings(dataset, "ego") is None
        killpoints.run("merge", 0, {"root": str(root), "camera": "ego"})  # the rerun finishes
    assert data_files(root) == data_files(ref)
    assert Dataset(root).read_episode(2)[types.points_key("ego")].shape[1:] == (16, 3)


def random_point(events: list[str], seed: int) -> int:
    return int(np.random.default_rng(seed).integers(1, len(events) + 1))


@pytest.mark.parametrize("seed", [0])
def test_merge_killed_leaves_old_or_new(extracted, reference, seed: int, tmp_path: Path) -> None:
    check(extracted, reference, random_point(reference[1], seed), tmp_path)


def test_merge_killed_right_after_the_swap(extracted, reference, tmp_path: Path) -> None:
    swap = reference[1].index("robo4d.data.writer._exchange") + 1  # 1-based event number of the swap
    check(extracted, reference, swap + 1, tmp_path)  # the merged dataset is in place, the old one not yet removed


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1, 12))
def test_merge_killed_more_seeds(extracted, reference, seed: int, tmp_path: Path) -> None:
    check(extracted, reference, random_point(reference[1], seed), tmp_path)
