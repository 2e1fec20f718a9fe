"""IGOR latent-action labelling (in place, through data.edit.add_features) killed with SIGKILL mid-write: the
dataset is the unlabelled one or the labelled one, readable either way; the same command run again finishes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from igor_fixtures import tiny_config, write_dataset

import killpoints
from robo4d import types
from robo4d.config import config_to_dict
from robo4d.data.reader import Dataset
from robo4d.methods.base import build_policy
from robo4d.train.checkpoint import saved_state, write_checkpoint

LABELS = (types.LATENT_ACTION, types.LATENT_ACTION_CODES)


def data_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted((root / "data").rglob("*.parquet"))}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    policy = build_policy("igor", tiny_config("lam")).eval()
    return write_checkpoint(
        tmp_path_factory.mktemp("lam"), 1, model_state=saved_state(policy), stats={}, training_state={}, keep_last=1,
        config={"method": "igor", "policy_config": config_to_dict(policy.config), "stage": {}, "step": 1},
    )  # fmt: skip


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("unlabelled") / "human", "human", episodes=3, length=8)


@pytest.fixture(scope="module")
def reference(unlabelled: Path, checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    root = tmp_path_factory.mktemp("reference") / "human"
    shutil.copytree(unlabelled, root)
    return root, killpoints.run("label", 0, {"root": str(root), "checkpoint": str(checkpoint)})


def check(unlabelled: Path, checkpoint: Path, reference: tuple[Path, list], kill_at: int, tmp_path: Path) -> None:
    ref, events = reference
    root = tmp_path / "human"
    shutil.copytree(unlabelled, root)
    run_args = {"root": str(root), "checkpoint": str(checkpoint)}
    killed = killpoints.kill_run("label", kill_at, run_args)
    assert killed.returncode == -9, f"kill before event {kill_at} ({events[kill_at - 1]}) not reached: {killed.stderr}"
    dataset = Dataset(root)  # readable whatever the kill point
    if not set(LABELS) <= set(dataset.features):  # the old dataset, untouched; the rerun labels it
        assert not set(LABELS) & set(dataset.features) and data_files(root) == data_files(unlabelled)
        killpoints.run("label", 0, run_args)
    assert data_files(root) == data_files(ref)
    codes = Dataset(root).read_episode(2, list(LABELS))[types.LATENT_ACTION_CODES]
    assert codes.shape == (8, tiny_config("lam").num_latents)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "human"]
    assert all(".edit-" in n for n in leftovers), leftovers  # only the killed edit's scratch
    shutil.rmtree(tmp_path)


def random_point(events: list[str], seed: int) -> int:
    return int(np.random.default_rng(seed).integers(1, len(events) + 1))


def test_labelling_killed_mid_episodes_leaves_the_unlabelled_dataset(unlabelled, checkpoint, reference, tmp_path):
    second = [i for i, e in enumerate(reference[1], 1) if e.endswith("episode_latents")][1]
    check(unlabelled, checkpoint, reference, second, tmp_path)


def test_labelling_killed_right_after_the_swap(unlabelled, checkpoint, reference, tmp_path) -> None:
    swap = reference[1].index("robo4d.data.writer._exchange") + 1  # 1-based event number of the swap
    check(unlabelled, checkpoint, reference, swap + 1, tmp_path)  # labelled in place, the old copy not yet removed


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(0, 10))
def test_labelling_killed_more_points(unlabelled, checkpoint, reference, seed: int, tmp_path: Path) -> None:
    check(unlabelled, checkpoint, reference, random_point(reference[1], seed), tmp_path)
