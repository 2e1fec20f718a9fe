"""Training windows over episodes, and a deterministic episode-level train/val split.

A window starts at every frame s of an episode with s + seq_len <= length and covers frames
s .. s + seq_len + horizon - 1. Frames past the episode's end repeat its last frame and are flagged in
`PAD_MASK` (LeRobot's delta-timestamp padding), so targets near the end stay usable but maskable.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from robo4d import types
from robo4d.data.errors import DatasetError
from robo4d.data.reader import Dataset

FrameSource = Callable[[np.ndarray], np.ndarray]  # (T+K,) global frame index -> (T+K, ...) array


class WindowDataset(torch.utils.data.Dataset):
    """Items: key -> (T+K, ...) tensor for each of `keys` and `frame_sources`, `PAD_MASK` -> (T+K,) bool,
    and `TASK` -> the episode's instruction (str).

    Each worker process keeps the episodes it has read in an LRU cache bounded by `cache_mb`, so the
    windows of one episode read and decode it once; the cache never crosses a fork.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        keys: Sequence[str],
        seq_len: int,
        horizon: int = 0,
        episodes: Sequence[int] | None = None,
        frame_sources: dict[str, FrameSource] | None = None,
        cache_mb: float = 256.0,
    ) -> None:
        if seq_len < 1 or horizon < 0:
            raise DatasetError(f"{dataset.root}: windows need seq_len >= 1 and horizon >= 0, got {seq_len}, {horizon}")
        unknown = [k for k in keys if k not in dataset.features]
        if unknown:
            raise DatasetError(
                f"{dataset.root}: window key(s) {unknown} are not features of the dataset; it has "
                f"{sorted(dataset.features)}"
            )
        self.frame_sources = dict(frame_sources or {})
        clash = sorted(set(self.frame_sources) & (set(keys) | {types.PAD_MASK, types.TASK}))
        if clash:
            raise DatasetError(f"{dataset.root}: frame_sources {clash} clash with dataset keys or window keys")
        self.dataset = dataset
        self.keys = tuple(keys)
        self.seq_len, self.horizon = seq_len, horizon
        self.episodes = tuple(range(dataset.num_episodes)) if episodes is None else tuple(int(e) for e in episodes)
        for ep in self.episodes:
            if not 0 <= ep < dataset.num_episodes:
                raise DatasetError(f"{dataset.root}: episode {ep} out of range 0..{dataset.num_episodes - 1}")
        lengths = dataset.episode_lengths[list(self.episodes)]  # (E',)
        starts = np.maximum(lengths - seq_len + 1, 0)  # (E',) windows per episode
        self._window_ep = np.repeat(np.asarray(self.episodes, dtype=np.int64), starts)  # (M,)
        first = np.repeat(np.cumsum(starts) - starts, starts)  # (M,) position of each episode's first window
        self._window_start = np.arange(int(starts.sum()), dtype=np.int64) - first  # (M,)
        if len(self._window_ep) == 0:
            raise DatasetError(
                f"{dataset.root}: no episode among {len(self.episodes)} has {seq_len} frames; "
                f"no windows (longest: {int(lengths.max(initial=0))})"
            )
        self.cache_bytes = int(cache_mb * 1024 * 1024)
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self._cache_size = 0
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self._window_ep)

    def window(self, i: int) -> tuple[int, int]:
        """(episode, start frame) of window i."""
        return int(self._window_ep[i]), int(self._window_start[i])

    def __getitem__(self, i: int) -> dict[str, Any]:
        ep, start = self.window(i)
        length = self.dataset.episode_length(ep)
        frames = np.arange(start, start + self.seq_len + self.horizon)  # (T+K,)
        pad = frames >= length  # (T+K,)
        frames = np.minimum(frames, length - 1)
        data = self._episode(ep)
        item: dict[str, Any] = {key: torch.from_numpy(np.ascontiguousarray(data[key][frames])) for key in self.keys}
        index = self.dataset.episode_from_index(ep) + frames  # (T+K,) global frame index
        for key, source in self.frame_sources.items():
            values = np.asarray(source(index))
            if values.shape[:1] != index.shape:
                raise DatasetError(f"frame source {key!r} returned shape {values.shape} for {len(index)} indices")
            item[key] = torch.from_numpy(np.ascontiguousarray(values))
        item[types.PAD_MASK] = torch.from_numpy(pad)
        item[types.TASK] = self.dataset.episode_task(ep)
        return item

    def _episode(self, ep: int) -> dict[str, np.ndarray]:
        if self._pid != os.getpid():  # a forked worker starts its own cache
            self._cache, self._cache_size, self._pid = OrderedDict(), 0, os.getpid()
        if ep in self._cache:
            self._cache.move_to_end(ep)
            return self._cache[ep]
        data = self.dataset.read_episode(ep, list(self.keys)) if self.keys else {}
        size = sum(v.nbytes for v in data.values())
        while self._cache and self._cache_size + size > self.cache_bytes:
            self._cache_size -= sum(v.nbytes for v in self._cache.popitem(last=False)[1].values())
        if size <= self.cache_bytes:
            self._cache[ep] = data
            self._cache_size += size
        return data

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cache"], state["_cache_size"] = OrderedDict(), 0
        return state


def split_episodes(num_episodes: int, *, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, val) episode indices, each sorted. The same arguments always give the same split; with
    val_fraction > 0 and at least two episodes, both parts are non-empty."""
    if not 0.0 <= val_fraction < 1.0:
        raise DatasetError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if num_episodes < 1:
        raise DatasetError(f"cannot split {num_episodes} episodes")
    order = np.random.default_rng(seed).permutation(num_episodes)
    n_val = min(int(round(val_fraction * num_episodes)), num_episodes - 1)  # training keeps at least one
    if val_fraction > 0 and num_episodes >= 2:
        n_val = max(n_val, 1)  # a requested validation set is never silently empty
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())
