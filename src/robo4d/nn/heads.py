"""Small shared layers: a two-layer GELU MLP and attention pooling with a learned latent query.

Parameter names (`fc1`, `fc2`; `latent`, `q`, `kv`, `proj`, `norm`, `mlp`) are the ones timm-style code
uses, so checkpoints written by such code map one-to-one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Mlp(nn.Module):
    """Linear -> GELU -> Linear, with biases."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.fc2 = nn.Linear(hidden_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class AttentionPool(nn.Module):
    """One learned query attends over a token set; the result is projected, then refined by a residual
    LayerNorm + MLP. (N, L, C) tokens -> (N, out_features)."""

    def __init__(self, dim: int, out_features: int, *, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"AttentionPool: width {dim} does not split into {num_heads} heads")
        self.num_heads = num_heads
        self.latent = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.latent, std=dim**-0.5, a=-2 * dim**-0.5, b=2 * dim**-0.5)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, out_features)
        self.norm = nn.LayerNorm(out_features, eps=1e-6)
        self.mlp = Mlp(out_features, int(out_features * mlp_ratio), out_features)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        n, length, c = tokens.shape
        q = self.q(self.latent).view(1, self.num_heads, 1, -1).expand(n, -1, -1, -1)  # (N, heads, 1, C/heads)
        k, v = self.kv(tokens).view(n, length, 2, self.num_heads, -1).permute(2, 0, 3, 1, 4)  # 2 x (N, heads, L, c)
        pooled = F.scaled_dot_product_attention(q, k, v).reshape(n, c)  # (N, C)
        x = self.proj(pooled)  # (N, out)
        return x + self.mlp(self.norm(x))
