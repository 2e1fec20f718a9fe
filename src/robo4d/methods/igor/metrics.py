"""Latent-action predictiveness (IGOR, Sec. 3.4.2): do nearby latent actions mean similar robot actions?

For M sampled frames of labelled robot demos, find each one's k nearest neighbours by latent action (L2 over
the flattened N x D vector, itself excluded) and take the standard deviation of the real robot actions among
those k neighbours, per action dimension, divided by that dimension's standard deviation over all frames.
Averaged over the M frames this is 1 when latents carry no information about actions and falls below 1 as
they predict them; it should fall as k shrinks. For small k the spread of k samples is biased low even
without any information (two random actions have an expected normalised spread of about 0.56), so the
report also gives the same curve with the latents shuffled across frames: the no-information reference.

The robot action paired with latent a_t (o_t -> o_{t+k}) is the mean command over the steps it spans,
u_t .. u_{t+k-1} (clamped to the episode): a latent summarises k steps, a single command is one of them.
Quantised latents tie often (|C|^N combinations, few used); ties are broken by a seeded random order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robo4d import types


def spanned_actions(actions: np.ndarray, gap: int) -> np.ndarray:
    """(T, A) commands of one episode -> (T, A) mean command over t .. t+gap-1 (clamped to the episode)."""
    csum = np.concatenate((np.zeros((1, actions.shape[1])), np.cumsum(actions, axis=0)))  # (T+1, A)
    t = np.arange(len(actions))
    end = np.minimum(t + gap, len(actions))
    return (csum[end] - csum[t]) / (end - t)[:, None]


def predictiveness(
    latents: np.ndarray, actions: np.ndarray, ks: tuple[int, ...], *, samples: int = 2000, seed: int = 0
) -> dict[int, np.ndarray]:
    """latents (M, L), actions (M, A) -> k -> (A,) mean normalised std of actions among k nearest latents."""
    if min(ks) < 2:
        raise ValueError(f"predictiveness needs k >= 2 neighbours (the spread of one action is 0), got {ks}")
    if len(latents) != len(actions) or len(latents) <= max(ks):
        raise ValueError(f"predictiveness needs more than {max(ks)} labelled frames, got {len(actions)}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(latents))  # random tie-breaking: ties keep this order under a stable sort
    lat, act = latents[order].astype(np.float64), actions[order].astype(np.float64)
    scale = act.std(0)
    scale[scale == 0] = 1.0  # a constant dimension has nothing to predict; it reports 0
    queries = rng.choice(len(lat), size=min(samples, len(lat)), replace=False)
    sq = (lat**2).sum(1)
    out = {k: np.zeros(act.shape[1]) for k in ks}
    for start in range(0, len(queries), 256):
        q = queries[start : start + 256]
        dist = sq[q, None] - 2 * lat[q] @ lat.T + sq[None]  # (b, M)
        dist[np.arange(len(q)), q] = np.inf  # never its own neighbour
        nearest = np.argsort(dist, axis=1, kind="stable")[:, : max(ks)]  # (b, kmax)
        for k in ks:
            out[k] += (act[nearest[:, :k]].std(1) / scale).sum(0)  # (A,)
    return {k: v / len(queries) for k, v in out.items()}


def dataset_predictiveness(
    roots: tuple[str | Path, ...], ks: tuple[int, ...], *, gap: int, samples: int = 2000, seed: int = 0
) -> dict:
    """The metric over labelled robot datasets: {"k": {k: {"per_dim": [...], "mean": x, "shuffled_mean": y}},
    "frames": M}."""
    from robo4d.data.reader import Dataset

    latents, actions = [], []
    for root in roots:
        ds = Dataset(root)
        missing = [k for k in (types.LATENT_ACTION, types.ACTION) if k not in ds.features]
        if missing:
            raise ValueError(f"{root}: lacks {missing}; label it (robo4d label latent-actions) and use robot demos")
        for ep in range(ds.num_episodes):
            data = ds.read_episode(ep, [types.LATENT_ACTION, types.ACTION])
            latents.append(data[types.LATENT_ACTION].reshape(len(data[types.ACTION]), -1))
            actions.append(spanned_actions(data[types.ACTION], gap))
    lat, act = np.concatenate(latents), np.concatenate(actions)
    curve = predictiveness(lat, act, ks, samples=samples, seed=seed)
    shuffled = predictiveness(np.random.default_rng(seed).permutation(lat), act, ks, samples=samples, seed=seed)
    return {
        "frames": int(len(act)),
        "k": {str(k): {"per_dim": v.round(4).tolist(), "mean": round(float(v.mean()), 4),
                       "shuffled_mean": round(float(shuffled[k].mean()), 4)} for k, v in curve.items()},
    }  # fmt: skip
