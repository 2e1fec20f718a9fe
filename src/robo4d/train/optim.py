"""AdamW with decoupled weight decay on matrices only, and the per-iteration warmup + half-cosine schedule.

Matches the ARM4R release: betas (0.9, 0.95), weight decay 0.01 except on 1-D parameters (biases, norm
gains, per-channel scales), linear warmup then half-cosine to exactly 0, no gradient clipping by default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True, kw_only=True)
class OptimConfig:
    """Optimiser and learning-rate schedule of one stage."""

    lr: float = 5e-4  # peak learning rate (absolute, not scaled by batch size), reached at the end of warmup
    betas: tuple[float, float] = (0.9, 0.95)  # AdamW (beta1, beta2)
    weight_decay: float = 0.01  # applied to parameters with ndim >= 2 only
    eps: float = 1e-8  # AdamW denominator epsilon
    warmup_fraction: float = 0.125  # share of the stage's steps spent in linear warmup (release: 1.25 of 10 epochs)
    grad_clip: float | None = None  # max global grad norm; None = no clipping (as the release)

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"OptimConfig.lr must be > 0, got {self.lr}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"OptimConfig.betas must be two values in [0, 1), got {self.betas}")
        if self.weight_decay < 0:
            raise ValueError(f"OptimConfig.weight_decay must be >= 0, got {self.weight_decay}")
        if not self.eps > 0:
            raise ValueError(f"OptimConfig.eps must be > 0, got {self.eps}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"OptimConfig.warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"OptimConfig.grad_clip must be > 0 or None, got {self.grad_clip}")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups over the trainable parameters: matrices (decayed) and everything 1-D or 0-D
    (biases, norm gains, scalars: decaying them only shrinks a scale the model needs). Frozen parameters
    never reach the optimiser, so they hold no state and cannot drift through weight decay."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, config: OptimConfig) -> torch.optim.AdamW:
    groups = param_groups(model, config.weight_decay)
    if not any(g["params"] for g in groups):
        raise ValueError(f"{type(model).__name__} has no trainable parameters (all requires_grad=False)")
    # foreach=False: identical numerics whether the model is wrapped (DDP) or not, and on resume.
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, eps=config.eps, foreach=False)


def lr_factor(step: int, total_steps: int, warmup_fraction: float) -> float:
    """Multiplier of the peak lr for the update with 0-based index `step`: linear warmup over
    round(warmup_fraction * total_steps) updates ending at 1, then half-cosine reaching 0 at `total_steps`."""
    warmup = round(warmup_fraction * total_steps)
    if step < warmup:
        return (step + 1) / warmup
    if step >= total_steps:
        return 0.0
    progress = (step - warmup) / max(1, total_steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: OptimConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, config.warmup_fraction)
    )
