"""Latent-action transfer (IGOR, Fig. 2): the motion of one video, replayed by the world model on another.

The LAM extracts latent actions a_j = LAM(o_{jk}, o_{(j+1)k}) from a source episode; starting from the first
frame of a target episode, the world model generates one frame per latent action, each conditioned on the
last H generated (or initial) frames. Written: an mp4 (PyAV, h264) showing source | imagined side by side,
and a PNG grid (top row source frames o_{jk}, bottom row the imagined frames).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from robo4d.methods.igor.blocks import to_pixels
from robo4d.methods.igor.frames import dataset_camera, episode_frames


@dataclass(frozen=True)
class ImagineResult:
    video: Path
    grid: Path
    steps: int  # latent actions applied


def _uint8(x: torch.Tensor) -> np.ndarray:
    """(..., 3, S, S) in [-1, 1] -> (..., S, S, 3) uint8."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).movedim(-3, -1).cpu().numpy()


def transfer(
    lam_policy, world_policy, source: np.ndarray, target_first: np.ndarray, gap: int, steps: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """source (T, S, S, 3) and target_first (S, S, 3) uint8 -> (source keyframes, imagined) each (steps+1, S, S, 3)."""
    steps = min(steps, (len(source) - 1) // gap)
    if steps < 1:
        raise ValueError(f"the source episode has {len(source)} frames: too short for one latent action of gap {gap}")
    keys = np.arange(steps + 1) * gap  # (steps+1,)
    pairs = torch.from_numpy(np.stack((source[keys[:-1]], source[keys[1:]]), axis=1))  # (steps, 2, S, S, 3)
    _, latents = lam_policy.latent_actions(pairs)  # (steps, N, D)
    cfg = world_policy.config
    generator = torch.Generator().manual_seed(seed)
    frames = [to_pixels(torch.from_numpy(target_first)[None], cfg.image_size)]  # each (1, 3, S, S)
    for j in range(steps):
        past = frames[-cfg.history :]
        past = [past[0]] * (cfg.history - len(past)) + past  # the first frame stands in for a missing past
        history = torch.stack(past, dim=1)  # (1, H, 3, S, S)
        frames.append(world_policy.world.sample(history, latents[j : j + 1].float(), generator=generator))
    return source[keys], _uint8(torch.cat(frames))


def write_outputs(source: np.ndarray, imagined: np.ndarray, out: Path, fps: int) -> tuple[Path, Path]:
    """out.mp4 (source | imagined per frame) and out.png (2 x (steps+1) grid)."""
    from PIL import Image

    from robo4d.data.video import VideoFileWriter

    out.parent.mkdir(parents=True, exist_ok=True)
    side = np.concatenate((source, imagined), axis=2)  # (n, S, 2S, 3)
    video = out.with_suffix(".mp4")
    writer = VideoFileWriter(video, fps=fps, height=side.shape[1], width=side.shape[2], crf=18, gop=30)
    writer.append(np.repeat(side, 4, axis=0))  # each generated step held for 4 frames, so it can be seen
    writer.close()
    grid = np.concatenate((np.concatenate(list(source), axis=1), np.concatenate(list(imagined), axis=1)), axis=0)
    png = out.with_suffix(".png")
    Image.fromarray(grid).save(png)
    return video, png


def imagine(
    *, lam: str | Path, world: str | Path, source: str | Path, source_episode: int, target: str | Path,
    target_episode: int, out: str | Path, steps: int, seed: int = 0,
) -> ImagineResult:  # fmt: skip
    from robo4d.data.reader import Dataset
    from robo4d.train.checkpoint import load_policy

    lam_policy, world_policy = load_policy(lam), load_policy(world)
    for path, policy, kind in ((lam, lam_policy, "latent_action"), (world, world_policy, "frames")):
        if policy.io().action_kind != kind:
            got = policy.io().action_kind
            raise ValueError(f"{path}: expected an IGOR checkpoint predicting {kind!r}, got one predicting {got!r}")
    if world_policy.config.code_dim != lam_policy.config.code_dim:
        raise ValueError(f"{world}: its latent width differs from the LAM's at {lam}")
    src_ds, tgt_ds = Dataset(source), Dataset(target)
    for ds, ep, name in ((src_ds, source_episode, "--source-episode"), (tgt_ds, target_episode, "--target-episode")):
        if not 0 <= ep < ds.num_episodes:
            raise ValueError(f"{name} {ep}: {ds.root} has episodes 0..{ds.num_episodes - 1}")
    cfg = lam_policy.config
    cam = dataset_camera(src_ds, cfg)
    src = episode_frames(src_ds, source_episode, cam, cfg.image_size)
    first = episode_frames(tgt_ds, target_episode, dataset_camera(tgt_ds, cfg), cfg.image_size)[0]
    keyframes, imagined = transfer(lam_policy, world_policy, src, first, cfg.frame_gap(cam), steps, seed)
    video, grid = write_outputs(keyframes, imagined, Path(out), fps=max(1, src_ds.fps // 4))
    return ImagineResult(video, grid, len(imagined) - 1)
