"""Normalisation statistics in LeRobot v3's layout: per feature min/max/mean/std/count and q01..q99.

Per episode the statistics are exact. The dataset's mean and std are pooled exactly from the episodes
(parallel variance); its quantiles are the count-weighted mean of the episodes' quantiles, as LeRobot does,
so stats never need all frames in memory at once.

Reductions (what one stat array's shape is):
- non-image features: over time only, so a stat has the feature's shape (scalars: (1,));
- videos: per channel over sampled, strided frames scaled to [0, 1] -> (3, 1, 1), as LeRobot;
- depth maps: over sampled, strided frames, in metres -> (1, 1), which broadcasts against an (H, W) map.
Image stats (min/max included) therefore come from a subsample: at most 100 frames of at most 64x64.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from robo4d.data.features import Feature

QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
STAT_NAMES = ("min", "max", "mean", "std", "count", *QUANTILES)

Stats = dict[str, np.ndarray]  # stat name -> array (count: (1,) int64)


def sample_frame_indices(length: int, *, max_samples: int = 100) -> np.ndarray:
    """Evenly spaced frames for video stats (LeRobot samples at most ~100 per episode)."""
    return np.unique(np.round(np.linspace(0, length - 1, min(length, max_samples))).astype(np.int64))


def _subsample_image(frames: np.ndarray, *, max_side: int = 64) -> np.ndarray:
    """Evenly sampled frames, strided to at most `max_side` pixels a side: image stats describe intensity
    distributions, which a few thousand pixels per frame estimate well at a small fraction of the cost."""
    frames = frames[sample_frame_indices(len(frames))]
    step = max(1, -(-max(frames.shape[1:3]) // max_side))  # ceil division
    return frames[:, ::step, ::step]


def episode_stats(feature: Feature, values: np.ndarray) -> Stats | None:
    """Stats of one episode's values as readers return them ((T, ...); videos: the sampled frames).

    Returns None for strings, which have no statistics.
    """
    if feature.dtype == "string":
        return None
    if feature.is_video:
        data = _subsample_image(values).astype(np.float64) / 255.0  # (S, h, w, 3)
        axes: tuple[int, ...] = (0, 1, 2)
        out_shape: tuple[int, ...] = (3, 1, 1)
    elif feature.is_depth:
        data = _subsample_image(values).astype(np.float64)  # (S, h, w) metres
        axes, out_shape = (0, 1, 2), (1, 1)
    else:
        data = values.astype(np.float64)  # (T, *frame_shape)
        axes, out_shape = (0,), feature.shape
    stats = {
        "min": data.min(axis=axes),
        "max": data.max(axis=axes),
        "mean": data.mean(axis=axes),
        "std": data.std(axis=axes),
    }
    qs = (
        np.quantile(np.moveaxis(data, -1, 0).reshape(data.shape[-1], -1), list(QUANTILES.values()), axis=1)
        if feature.is_video
        else np.quantile(data, list(QUANTILES.values()), axis=axes)
    )  # (Q, ...)
    stats.update({name: q for name, q in zip(QUANTILES, qs, strict=True)})
    out = {name: np.asarray(v, dtype=np.float64).reshape(out_shape) for name, v in stats.items()}
    out["count"] = np.array([data.shape[0]], dtype=np.int64)
    return {name: out[name] for name in STAT_NAMES}


def aggregate(per_episode: list[Stats]) -> Stats:
    """Pool episode stats of one feature: exact min/max/mean/std, count-weighted quantiles."""
    per_episode = [{name: np.asarray(v) for name, v in s.items()} for s in per_episode]
    counts = np.array([s["count"].reshape(-1)[0] for s in per_episode], dtype=np.float64)  # (E,)
    total = counts.sum()
    means = np.stack([s["mean"] for s in per_episode])  # (E, ...)
    w = (counts / total).reshape(-1, *([1] * (means.ndim - 1)))  # (E, 1, ...)
    mean = (w * means).sum(axis=0)
    var = (w * (np.stack([s["std"] for s in per_episode]) ** 2 + (means - mean) ** 2)).sum(axis=0)
    out = {
        "min": np.stack([s["min"] for s in per_episode]).min(axis=0),
        "max": np.stack([s["max"] for s in per_episode]).max(axis=0),
        "mean": mean,
        "std": np.sqrt(var),
        "count": np.array([int(total)], dtype=np.int64),
    }
    # LeRobot v2.1 episode stats carry no quantiles; pool them only where every episode has them.
    for name in QUANTILES:
        if all(name in s for s in per_episode):
            out[name] = (w * np.stack([s[name] for s in per_episode])).sum(axis=0)
    return {name: out[name] for name in STAT_NAMES if name in out}


def stats_to_json(stats: dict[str, Stats]) -> dict[str, dict[str, list]]:
    return {key: {name: v.tolist() for name, v in s.items()} for key, s in stats.items()}


def stats_from_json(data: dict) -> dict[str, Stats]:
    return {key: {name: np.asarray(v) for name, v in s.items()} for key, s in data.items()}


def stats_column(arrays: list[np.ndarray]) -> pa.Array:
    """One `stats/<key>/<stat>` column of the episodes table: a nested list per episode, like LeRobot's
    `pa.Table.from_pydict` of `.tolist()` values (variable lists of double, or of int64 for count)."""
    stacked = np.stack(arrays)  # (E, *stat_shape)
    flat: pa.Array = pa.array(stacked.reshape(-1))
    n = stacked.size
    for dim in reversed(stacked.shape[1:]):
        flat = pa.ListArray.from_arrays(pa.array(np.arange(0, n + 1, dim, dtype=np.int32)), flat)
        n //= dim
    return flat


def stats_from_column(column: pa.ChunkedArray | pa.Array) -> list[np.ndarray]:
    """Inverse of `stats_column`: one array per episode (shapes may differ between datasets, not rows)."""
    return [np.asarray(v) for v in column.to_pylist()]
