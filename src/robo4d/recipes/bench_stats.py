"""Statistics of the bench: success over training seeds x fixed evaluation episodes, with bootstrap intervals.

A group of cells (one method/data/setting at one demo count, several training seeds) is a success matrix
S (seeds, episodes) of 0/1, every row scored on the same held-out initial states in the same order. Its
95% interval comes from a two-level bootstrap: resample training seeds (rows) and initial states (columns)
with replacement, so both the luck of training and the choice of test states count. The paired difference
to scratch is the same bootstrap over D = S_method - S_scratch, rows matched by training seed and columns
by initial state: the states both policies met are the same, so their shared difficulty cancels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BOOTSTRAP_SAMPLES = 2000
CONFIDENCE = 0.95


@dataclass(frozen=True, kw_only=True)
class Interval:
    """Mean (percent) with its spread over training seeds and a bootstrap confidence interval."""

    mean: float  # mean over seeds and episodes, percent
    std: float  # population std of the per-seed means, percent (0 with one seed)
    low: float  # lower end of the 95% bootstrap interval, percent
    high: float  # upper end, percent
    seeds: int  # training seeds (rows)
    episodes: int  # evaluation episodes per seed (columns)

    def as_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "std": self.std, "low": self.low, "high": self.high, "seeds": self.seeds,
                "episodes": self.episodes}  # fmt: skip


def bootstrap_interval(values: np.ndarray, *, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> Interval:
    """`values` (seeds, episodes) in [-1, 1] (successes, or paired differences of successes)."""
    values = np.asarray(values, np.float64)
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"bootstrap_interval: expected a non-empty (seeds, episodes) matrix, got {values.shape}")
    n_seeds, n_eps = values.shape
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, n_seeds, (samples, n_seeds))  # (B, S)
    cols = rng.integers(0, n_eps, (samples, n_eps))  # (B, E)
    # mean of values[rows][:, cols] without materialising (B, S, E): per-row sums over resampled columns.
    col_sums = np.stack([values[:, c].sum(axis=1) for c in cols])  # (B, S)
    means = np.take_along_axis(col_sums, rows, axis=1).sum(axis=1) / (n_seeds * n_eps)  # (B,)
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return Interval(
        mean=100 * float(values.mean()),
        std=100 * float(values.mean(axis=1).std()),
        low=100 * float(low),
        high=100 * float(high),
        seeds=n_seeds,
        episodes=n_eps,
    )


def success_matrix(results: list[dict]) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """(seeds, episodes) 0/1 from cell results sorted by training seed; columns keyed (task, env seed)."""
    keys: list[tuple[str, int]] | None = None
    rows = []
    for result in sorted(results, key=lambda r: r["cell"]["seed"]):
        episodes = {(e["task"], int(e["seed"])): bool(e["success"]) for e in result["episodes"]}
        if keys is None:
            keys = sorted(episodes)
        if sorted(episodes) != keys:
            raise ValueError(f"cell {result['key']}: evaluated on other initial states than its group")
        rows.append([episodes[k] for k in keys])
    assert keys is not None, "success_matrix needs at least one result"
    return np.array(rows, np.float64), keys


def _on_common_seeds(*groups: list[dict]) -> list[tuple[np.ndarray, list[tuple[str, int]]]] | None:
    """`success_matrix` of each group restricted to the training seeds all groups share; None if they share none."""
    seeds = set.intersection(*({r["cell"]["seed"] for r in g} for g in groups))
    if not seeds:
        return None
    return [success_matrix([r for r in g if r["cell"]["seed"] in seeds]) for g in groups]


def paired_difference(method: list[dict], baseline: list[dict]) -> Interval | None:
    """Bootstrap of method - baseline, paired by training seed and initial state; None without common seeds."""
    matrices = _on_common_seeds(method, baseline)
    if matrices is None:
        return None
    (m, m_keys), (b, b_keys) = matrices
    if m_keys != b_keys:
        raise ValueError("paired difference: method and baseline were evaluated on different initial states")
    return bootstrap_interval(m - b)


def gain_difference(a: list[dict], a_base: list[dict], b: list[dict], b_base: list[dict]) -> Interval | None:
    """Bootstrap of (a - a_base) - (b - b_base): how much more a method gains over its baseline in one world than
    in another. Each gain is paired by training seed and initial state within its own world; the two worlds'
    episodes are matched by position (their states differ, so that match carries no pairing). None without a
    training seed common to all four."""
    matrices = _on_common_seeds(a, a_base, b, b_base)
    if matrices is None:
        return None
    (m_a, k_a), (m_ab, k_ab), (m_b, k_b), (m_bb, k_bb) = matrices
    if k_a != k_ab or k_b != k_bb:
        raise ValueError("gain difference: a method and its baseline were evaluated on different initial states")
    if m_a.shape != m_b.shape:
        raise ValueError(f"gain difference: the two worlds have {m_a.shape[1]} and {m_b.shape[1]} episodes per cell")
    return bootstrap_interval((m_a - m_ab) - (m_b - m_bb))


def resolvable_difference(episodes: int, seeds: int) -> float:
    """Points an unpaired comparison of two groups resolves at 95% when success is near 50% (the worst case):
    1.96 x the standard error of a difference of two proportions of `episodes * seeds` trials each."""
    return 100 * 1.96 * float(np.sqrt(2 * 0.25 / max(1, episodes * seeds)))
