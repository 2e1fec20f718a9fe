"""Transformer pieces IGOR's models share: pixel patch embedding, spatio-temporal blocks, readout queries.

Shapes: B batch, F frames, P patches per frame, D width, Q query (or extra) tokens.
Frames enter as float pixels in [-1, 1], (B, F, 3, S, S). A learned pixel patch embedding replaces the
paper's frozen DINOv2 features (a later release of the same group does the same): no pretrained weights
have to be shipped, and the tiny preset trains on CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def to_pixels(frames: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float (..., 3, size, size) in [-1, 1] (bilinear resize when H, W differ)."""
    lead = frames.shape[:-3]
    x = frames.reshape(-1, *frames.shape[-3:]).permute(0, 3, 1, 2).float() / 127.5 - 1.0  # (M, 3, H, W)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.reshape(*lead, 3, size, size)


def random_crops(x: torch.Tensor, scale: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """One random square crop per sample, resized back to the full side: (B, F, 3, S, S) -> same shape; all F
    frames of a sample share the crop (the motion between them stays intact). scale = 1 returns x."""
    if scale >= 1.0:
        return x
    b, f = x.shape[:2]
    shift = (torch.rand(b, 2, generator=generator, device=x.device) * 2 - 1) * (1 - scale)  # (B, 2) in [-(1-s), 1-s]
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, [b, 3, *x.shape[-2:]], align_corners=False)  # (B, S, S, 2)
    grid = grid.repeat_interleave(f, dim=0)  # (B*F, S, S, 2)
    out = F.grid_sample(x.flatten(0, 1), grid, mode="bilinear", align_corners=False)
    return out.view_as(x)


class PatchEmbed(nn.Module):
    """(B, F, 3, S, S) -> (B, F, P, D): a strided conv plus learned per-patch positions."""

    def __init__(self, image_size: int, patch: int, dim: int, in_channels: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch, stride=patch)
        self.pos = nn.Parameter(torch.randn(1, (image_size // patch) ** 2, dim) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, f = x.shape[:2]
        tokens = self.proj(x.flatten(0, 1)).flatten(2).transpose(1, 2)  # (B*F, P, D)
        return (tokens + self.pos).view(b, f, -1, tokens.shape[-1])


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, *, causal: bool = False) -> torch.Tensor:
        """(M, L, D) -> (M, L, D)."""
        m, length, d = x.shape
        q, k, v = self.qkv(x).view(m, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)  # 3 x (M, H, L, E)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)  # (M, H, L, E)
        return self.proj(out.transpose(1, 2).reshape(m, length, d))


class Mlp(nn.Sequential):
    def __init__(self, dim: int, ratio: int = 4) -> None:
        super().__init__(nn.Linear(dim, ratio * dim), nn.GELU(), nn.Linear(ratio * dim, dim))


class Block(nn.Module):
    """Pre-norm ViT block (bidirectional attention over all tokens)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim), Mlp(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class STBlock(nn.Module):
    """Spatio-temporal block: attention over the tokens of each frame, then causal attention over frames at
    each token position (a frame never sees later frames), then an MLP. (B, F, L, D) -> (B, F, L, D)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm_s, self.spatial = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm_t, self.temporal = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm_m, self.mlp = nn.LayerNorm(dim), Mlp(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, f, length, d = x.shape
        x = x + self.spatial(self.norm_s(x).view(b * f, length, d)).view(b, f, length, d)
        xt = self.norm_t(x).transpose(1, 2).reshape(b * length, f, d)  # (B*L, F, D)
        x = x + self.temporal(xt, causal=True).view(b, length, f, d).transpose(1, 2)
        return x + self.mlp(self.norm_m(x))


class Readout(nn.Module):
    """Q learned queries cross-attend to a token set: (B, L, D) -> (B, Q, D)."""

    def __init__(self, dim: int, heads: int, queries: int) -> None:
        super().__init__()
        self.heads = heads
        self.queries = nn.Parameter(torch.randn(1, queries, dim) * 0.02)
        self.norm_kv = nn.LayerNorm(dim)
        self.q, self.kv, self.proj = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)
        self.norm_m, self.mlp = nn.LayerNorm(dim), Mlp(dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        b, length, d = tokens.shape
        q = self.q(self.queries).view(1, -1, self.heads, d // self.heads).transpose(1, 2).expand(b, -1, -1, -1)
        k, v = self.kv(self.norm_kv(tokens)).view(b, length, 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, -1, d)  # (B, Q, D)
        x = self.queries + self.proj(out)
        return x + self.mlp(self.norm_m(x))
