"""A test-only method and an in-memory-sized dataset format, so the trainer is tested without any real method.

The toy policy has what real ones have: a frozen "pretrained" encoder with buffers, rebuilt from a named
source (never saved), optionally a frozen module learned earlier (saved: no source rebuilds it), a
normalisation buffer set from dataset stats, a ModuleList of blocks and a decoder whose shape depends on the
config (to exercise weight maps), and optional training-time noise (to exercise RNG restore on resume).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from robo4d.methods.base import DataSpec, Policy, register_method, register_presets
from robo4d.train.loader import DataBackend
from robo4d.train.stage import StageConfig
from robo4d.types import ACTION, PAD_MASK, STATE, STATE_JOINT, ActionChunk, Observation, PolicyIO

TOY_STATE_DIM = 3
TOY_ACTION_DIM = 2


@dataclass(frozen=True, kw_only=True)
class ToyConfig:
    hidden: int = 16  # block width
    n_blocks: int = 2  # blocks in the ModuleList
    seq_len: int = 3  # T
    horizon: int = 1  # K
    out_scale: int = 1  # decoder predicts out_scale x A values (changing it changes the decoder's shape)
    noise: float = 0.0  # std of training-time input noise (draws from torch's global RNG)
    nan_at_call: int = 0  # training-mode compute_loss call (1-based) that returns NaN; 0: never
    keys: tuple[str, ...] = (STATE, ACTION)  # dataset keys the policy reads
    frozen_learned: bool = False  # add a frozen module whose weights come from training (like IGOR's labeller)


@register_method("toy", ToyConfig)
class ToyPolicy(Policy):
    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.config = config
        # A frozen "pretrained" encoder rebuilt identically by name: fixed weights, BatchNorm buffers.
        gen = torch.Generator().manual_seed(1234)
        self.encoder = nn.Sequential(nn.Linear(TOY_STATE_DIM, 8), nn.BatchNorm1d(8))
        with torch.no_grad():
            self.encoder[0].weight.copy_(torch.randn(8, TOY_STATE_DIM, generator=gen))
            self.encoder[0].bias.copy_(torch.randn(8, generator=gen))
        self.encoder.requires_grad_(False).eval()
        # Frozen too, but its weights are learned (random until loaded): nothing but the checkpoint restores it.
        self.labeller = nn.Linear(TOY_STATE_DIM, 8).requires_grad_(False) if config.frozen_learned else None
        self.register_buffer("state_mean", torch.zeros(TOY_STATE_DIM))
        self.register_buffer("state_std", torch.ones(TOY_STATE_DIM))
        self.proprio_encoder = nn.Linear(TOY_STATE_DIM, config.hidden)
        self.image_norm = nn.LayerNorm(8)
        self.blocks = nn.ModuleList(nn.Linear(config.hidden + 8, config.hidden + 8) for _ in range(config.n_blocks))
        self.action_decoder = nn.Linear(config.hidden + 8, TOY_ACTION_DIM * config.out_scale)
        self._calls = 0

    def train(self, mode: bool = True) -> ToyPolicy:
        super().train(mode)
        self.encoder.eval()  # frozen: its BatchNorm statistics never move
        return self

    def frozen_weight_sources(self) -> dict[str, str]:
        return {"encoder": "toy encoder (fixed init, seed 1234)"}

    def data_spec(self) -> DataSpec:
        return DataSpec(
            keys=self.config.keys,
            seq_len=self.config.seq_len,
            horizon=self.config.horizon,
            produced_by={STATE: "robo4d world robot", "observation.points.ego": "robo4d extract tracks"},
            shapes={STATE: (TOY_STATE_DIM,), ACTION: (TOY_ACTION_DIM,)},
            derived_from={"frozen.image_tokens.ego": STATE},  # what a test's patched frame source computes
        )

    def io(self) -> PolicyIO:
        return PolicyIO(
            cameras=("toy",), image_size=(1, 1), state_kind=STATE_JOINT, state_dim=TOY_STATE_DIM, action_kind="toy",
            action_dim=TOY_ACTION_DIM, chunk=1,
        )  # fmt: skip

    def set_normalization(self, stats: dict[str, dict[str, np.ndarray]]) -> None:
        self.state_mean.copy_(torch.as_tensor(stats[STATE]["mean"], dtype=torch.float32))
        self.state_std.copy_(torch.as_tensor(stats[STATE]["std"], dtype=torch.float32))

    def _features(self, state: torch.Tensor) -> torch.Tensor:
        x = (state - self.state_mean) / self.state_std  # (B, T, 3)
        b, t, _ = x.shape
        frozen = self.image_norm(self.encoder(x.reshape(b * t, -1)).reshape(b, t, -1))  # (B, T, 8)
        if self.labeller is not None:
            frozen = frozen + self.labeller(x)
        h = torch.cat([self.proprio_encoder(x), frozen], dim=-1)  # (B, T, hidden + 8)
        for block in self.blocks:
            h = h + torch.tanh(block(h))
        return self.action_decoder(h)[..., :TOY_ACTION_DIM]  # (B, T, A)

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        t = self.config.seq_len
        state = batch[STATE][:, :t].float()
        if self.training and self.config.noise:
            state = state + self.config.noise * torch.randn_like(state)
        target = batch[ACTION][:, 1 : t + 1].float()  # next step's action
        valid = (~batch[PAD_MASK][:, 1 : t + 1]).float().unsqueeze(-1)
        err = (self._features(state) - target).abs() * valid
        loss = err.sum() / valid.sum().clamp(min=1) / TOY_ACTION_DIM
        if self.training:
            self._calls += 1
            if self._calls == self.config.nan_at_call:
                loss = loss * float("nan")
        return loss, {"abs_err_max": float(err.max().detach())}

    def predict_action_chunk(self, obs: Observation) -> ActionChunk:
        state = torch.as_tensor(obs.state[:TOY_STATE_DIM], dtype=torch.float32).reshape(1, 1, -1)
        with torch.no_grad():
            out = self._features(state)[0].numpy()
        return ActionChunk(actions=out, kind="toy")

    def reset(self) -> None:
        self._calls = 0


TOY_PRESETS = {"toy-small": ToyConfig(), "toy-wide": ToyConfig(hidden=32)}


def toy_parameter_counts(name: str, variant: str) -> dict[str, int]:
    policy = ToyPolicy(TOY_PRESETS[name])
    return {block: sum(p.numel() for p in getattr(policy, block).parameters()) for block in ("blocks", "encoder")}


register_presets("toy", TOY_PRESETS, variants=("policy",), parameter_counts=toy_parameter_counts)


# --- a toy dataset: one .npz per root -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Feature:
    shape: tuple[int, ...]


class ToyDataset:
    def __init__(self, root: Path) -> None:
        with np.load(Path(root) / "episodes.npz") as f:
            self.episodes = [{k: f[f"{i}/{k}"] for k in (STATE, ACTION)} for i in range(int(f["count"]))]
        self.features = {STATE: _Feature((TOY_STATE_DIM,)), ACTION: _Feature((TOY_ACTION_DIM,))}
        self.num_episodes = len(self.episodes)
        self.num_frames = sum(len(e[STATE]) for e in self.episodes)
        allv = {k: np.concatenate([e[k] for e in self.episodes]) for k in (STATE, ACTION)}
        self.stats = {
            k: {"mean": v.mean(0), "std": v.std(0) + 1e-6, "min": v.min(0), "max": v.max(0)} for k, v in allv.items()
        }


def make_toy_dataset(root: Path, *, num_episodes: int = 6, length: int = 10, seed: int = 0) -> Path:
    """Episodes where the action is a fixed linear map of the state (learnable), varying lengths."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {"count": np.array(num_episodes)}
    w = rng.normal(size=(TOY_STATE_DIM, TOY_ACTION_DIM)).astype(np.float32)
    for i in range(num_episodes):
        n = length + i % 3
        state = np.cumsum(rng.normal(size=(n, TOY_STATE_DIM)), axis=0).astype(np.float32) * 0.1 + 1.0
        arrays[f"{i}/{STATE}"] = state
        arrays[f"{i}/{ACTION}"] = state @ w
    np.savez(root / "episodes.npz", **arrays)
    return root


class ToyWindows(torch.utils.data.Dataset):
    """Every (episode, start) window of seq_len + horizon frames, padded past the end like WindowDataset."""

    def __init__(self, dataset: ToyDataset, *, keys, seq_len, horizon, episodes, frame_sources, pad=True) -> None:
        self.dataset, self.keys, self.span = dataset, keys, seq_len + horizon
        # pad=False: only windows inside the episode, so every batch has the same number of valid targets
        # and a mean of per-rank losses equals the global-batch loss (the DDP comparison needs that).
        last = (lambda n: n - 1) if pad else (lambda n: n - self.span + 1)
        self.index = [(e, s) for e in episodes for s in range(last(len(dataset.episodes[e][STATE])))]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        e, s = self.index[i]
        ep = self.dataset.episodes[e]
        n = len(ep[STATE])
        idx = np.minimum(np.arange(s, s + self.span), n - 1)
        item = {k: ep[k][idx] for k in self.keys}
        item[PAD_MASK] = np.arange(s, s + self.span) >= n
        return item


TOY_BACKEND = DataBackend(open_dataset=ToyDataset, make_windows=ToyWindows)
TOY_BACKEND_NO_PAD = DataBackend(open_dataset=ToyDataset, make_windows=partial(ToyWindows, pad=False))


def toy_stage(root: Path, **overrides: Any) -> StageConfig:
    base = StageConfig(
        name="s1",
        method="toy",
        policy=ToyConfig(),
        datasets=(str(root),),
        steps=8,
        batch_size=4,
        log_every=1,
        save_every=4,
        eval_every=4,
        num_workers=0,
        val_fraction=0.2,
    )
    return replace(base, **overrides)
