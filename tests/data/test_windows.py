"""WindowDataset: window enumeration, end-of-episode padding, frame sources, DataLoader workers; the split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from data_fixtures import CAM, LENGTHS, TASKS

from robo4d import types
from robo4d.data.errors import DatasetError
from robo4d.data.reader import Dataset
from robo4d.data.windows import WindowDataset, split_episodes

KEYS = (types.STATE, types.ACTION, types.image_key(CAM), types.depth_key(CAM))


def test_windows_cover_every_start_and_pad_past_the_end(dataset_root: Path) -> None:
    ds = Dataset(dataset_root)
    windows = WindowDataset(ds, keys=KEYS, seq_len=4, horizon=3)
    assert len(windows) == sum(n - 4 + 1 for n in LENGTHS)
    ep, start = windows.window(len(windows) - 1)  # the last window of the last episode
    assert (ep, start) == (3, LENGTHS[3] - 4)
    item = windows[len(windows) - 1]
    whole = ds.read_episode(3, list(KEYS))
    frames = np.minimum(np.arange(start, start + 7), LENGTHS[3] - 1)
    for key in KEYS:
        assert isinstance(item[key], torch.Tensor) and item[key].shape[0] == 7
        np.testing.assert_array_equal(item[key].numpy(), whole[key][frames])
    assert item[types.PAD_MASK].tolist() == [False] * 4 + [True] * 3
    assert item[types.TASK] == TASKS[1]
    assert not windows[0][types.PAD_MASK].any()


def test_frame_sources_and_episode_subset(dataset_root: Path) -> None:
    ds = Dataset(dataset_root)
    table = np.arange(ds.num_frames, dtype=np.float32)[:, None] * 10  # (frames, 1) looked up by global index
    windows = WindowDataset(
        ds, keys=(types.STATE,), seq_len=2, horizon=1, episodes=[2], frame_sources={"cached": lambda idx: table[idx]}
    )
    assert len(windows) == LENGTHS[2] - 1
    item = windows[0]
    first = sum(LENGTHS[:2])
    assert item["cached"][:, 0].tolist() == [10.0 * first, 10.0 * (first + 1), 10.0 * (first + 2)]


def test_dataloader_with_two_workers(dataset_root: Path) -> None:
    ds = Dataset(dataset_root)
    windows = WindowDataset(ds, keys=KEYS, seq_len=3, horizon=2)
    windows[0]  # the parent opens decoders first: forked workers must neither reuse nor close them (hang)
    loader = torch.utils.data.DataLoader(windows, batch_size=8, num_workers=2, shuffle=False, timeout=60)
    states = []
    for batch in loader:
        assert batch[types.image_key(CAM)].dtype == torch.uint8 and batch[types.PAD_MASK].shape[1] == 5
        assert len(batch[types.TASK]) == batch[types.STATE].shape[0]
        states.append(batch[types.STATE])
    got = torch.cat(states)  # (M, 5, P)
    assert got.shape[0] == len(windows)
    np.testing.assert_array_equal(got[-1].numpy(), windows[len(windows) - 1][types.STATE].numpy())


def test_window_arguments_are_checked(dataset_root: Path) -> None:
    ds = Dataset(dataset_root)
    with pytest.raises(DatasetError, match="not features of the dataset"):
        WindowDataset(ds, keys=("observation.nope",), seq_len=2)
    with pytest.raises(DatasetError, match="no episode among 4 has 100 frames"):
        WindowDataset(ds, keys=KEYS, seq_len=100)


def test_split_is_deterministic_and_disjoint() -> None:
    train, val = split_episodes(10, val_fraction=0.2, seed=3)
    assert (train, val) == split_episodes(10, val_fraction=0.2, seed=3)
    assert len(val) == 2 and sorted(train + val) == list(range(10))
    assert split_episodes(10, val_fraction=0.2, seed=4) != (train, val)
    assert split_episodes(2, val_fraction=0.01, seed=0)[1] != []  # both parts non-empty
    assert split_episodes(1, val_fraction=0.9, seed=0) == ([0], [])  # training keeps its one episode
    assert split_episodes(5, val_fraction=0.0, seed=0)[1] == []
    with pytest.raises(DatasetError, match="val_fraction"):
        split_episodes(10, val_fraction=1.0, seed=0)
