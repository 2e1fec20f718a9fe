"""Label a dataset with IGOR latent actions: per frame t, the LAM's code indices and code vectors of
o_t -> o_{t+k} (k: the frame gap of the dataset's camera; clamped to the episode end like training).

Works on any video dataset (human video has no actions; robot demos keep theirs). The columns are added
with `robo4d.data.edit.add_features`, so the dataset is rewritten atomically: a crash leaves it as it was.
Resumable: a dataset that already has both columns is left alone unless `overwrite`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from robo4d import types
from robo4d.data.edit import add_features
from robo4d.data.features import Feature
from robo4d.methods.igor.frames import dataset_camera, episode_frames

if TYPE_CHECKING:
    from robo4d.methods.igor.policy import IGORPolicy


@dataclass(frozen=True)
class LabelResult:
    path: Path  # the labelled dataset
    labelled: bool  # False: the columns were present and left as they were
    camera: str  # the camera whose video was labelled
    frame_gap: int  # k used


def label_features(num_latents: int, code_dim: int) -> dict[str, Feature]:
    return {
        types.LATENT_ACTION: Feature(dtype="float32", shape=(num_latents, code_dim)),
        types.LATENT_ACTION_CODES: Feature(dtype="int64", shape=(num_latents,)),
    }


def episode_latents(
    policy: IGORPolicy, frames: np.ndarray, gap: int, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """(T, S, S, 3) uint8 frames of one episode -> (codes (T, N) int64, vectors (T, N, D) float32)."""
    t = len(frames)
    goals = np.minimum(np.arange(t) + gap, t - 1)
    codes, vectors = [], []
    for start in range(0, t, batch_size):
        rows = np.arange(start, min(t, start + batch_size))
        pairs = torch.from_numpy(np.stack((frames[rows], frames[goals[rows]]), axis=1))  # (b, 2, S, S, 3)
        c, v = policy.latent_actions(pairs)
        codes.append(c.cpu().numpy())
        vectors.append(v.float().cpu().numpy())
    return np.concatenate(codes).astype(np.int64), np.concatenate(vectors).astype(np.float32)


def label_dataset(
    root: str | Path, checkpoint: str | Path, *, overwrite: bool = False, out: str | Path | None = None
) -> LabelResult:
    """Write LATENT_ACTION and LATENT_ACTION_CODES into the dataset at `root` (or a copy at `out`)."""
    from robo4d.data.reader import Dataset
    from robo4d.train.checkpoint import load_policy

    dataset = Dataset(root)
    policy = load_policy(checkpoint)
    if policy.io().action_kind != "latent_action":
        raise ValueError(f"{checkpoint}: not an IGOR latent action model checkpoint (objective 'lam')")
    cfg = policy.config
    camera = dataset_camera(dataset, cfg)
    gap = cfg.frame_gap(camera)
    present = {types.LATENT_ACTION, types.LATENT_ACTION_CODES} <= set(dataset.features)
    if present and not overwrite and out is None:
        return LabelResult(Path(root), False, camera, gap)

    def compute(ep: int) -> dict[str, np.ndarray]:
        codes, vectors = episode_latents(policy, episode_frames(dataset, ep, camera, cfg.image_size), gap)
        return {types.LATENT_ACTION: vectors, types.LATENT_ACTION_CODES: codes}

    features = label_features(cfg.num_latents, cfg.code_dim)
    path = add_features(root, features, compute, out=out, overwrite=present)
    return LabelResult(Path(path), True, camera, gap)
