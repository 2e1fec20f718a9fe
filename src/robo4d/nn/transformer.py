"""A LLaMA-style causal transformer trunk with a key/value cache for step-wise decoding.

Pre-RMSNorm blocks, rotary position embedding on interleaved channel pairs (LLaMA's convention, so
checkpoints of LLaMA-style code load unchanged), SwiGLU feed-forward with hidden width 2*4d/3 rounded up
to a multiple of `ffn_multiple_of`, no biases. Parameter names follow LLaMA (`layers.{i}.attention.wq`,
`feed_forward.w1`, `attention_norm`, `ffn_norm`, `norm`) so weight maps stay one-to-one.

Shapes: B batch, S new tokens, L cached tokens, D width, H heads, E head width (D / H).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True, kw_only=True)
class TransformerConfig:
    dim: int  # D: token width
    n_layers: int  # number of blocks
    n_heads: int  # H: attention heads (D must divide evenly)
    ffn_multiple_of: int = 256  # SwiGLU hidden width is rounded up to a multiple of this
    norm_eps: float = 1e-5  # RMSNorm epsilon
    rope_theta: float = 1e4  # rotary base frequency

    def __post_init__(self) -> None:
        for name in ("dim", "n_layers", "n_heads", "ffn_multiple_of"):
            if getattr(self, name) <= 0:
                raise ValueError(f"TransformerConfig.{name} must be positive, got {getattr(self, name)}")
        if self.dim % self.n_heads or (self.dim // self.n_heads) % 2:
            raise ValueError(f"TransformerConfig: dim {self.dim} must split into {self.n_heads} heads of even width")

    @property
    def ffn_hidden(self) -> int:
        hidden = int(2 * 4 * self.dim / 3)
        return self.ffn_multiple_of * math.ceil(hidden / self.ffn_multiple_of)


@dataclass
class KVCache:
    """Per-layer rotated keys and values of the cached tokens: each (B, H, L, E). `offset` is the position of
    the first cached token (non-zero once `drop_oldest` evicted some), so new tokens continue the positions."""

    keys: list[torch.Tensor] = field(default_factory=list)
    values: list[torch.Tensor] = field(default_factory=list)
    offset: int = 0

    @property
    def length(self) -> int:
        return self.keys[0].shape[2] if self.keys else 0

    def drop_oldest(self, n: int) -> None:
        """Evict the n oldest tokens. Not exact: deeper layers' kept keys and values were computed while
        attending to the evicted tokens (rotary scores depend only on distances, so positions stay right)."""
        self.keys = [k[:, :, n:] for k in self.keys]
        self.values = [v[:, :, n:] for v in self.values]
        self.offset += n


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


def rotary_angles(positions: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotary angles: positions (S,) -> two (S, E/2) float32 tensors."""
    inv_freq = theta ** (-torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim)
    angles = positions.float()[:, None] * inv_freq[None, :]  # (S, E/2)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved channel pairs (x0, x1), (x2, x3), ... of x (B, H, S, E) by the per-position angles."""
    pairs = x.float().unflatten(-1, (-1, 2))  # (B, H, S, E/2, 2)
    even, odd = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)  # (B, H, S, E/2, 2)
    return rotated.flatten(-2).type_as(x)


class Attention(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.wq = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.wk = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.wv = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.wo = nn.Linear(cfg.dim, cfg.dim, bias=False)

    def forward(
        self,
        x: torch.Tensor,  # (B, S, D)
        cos: torch.Tensor,  # (S, E/2)
        sin: torch.Tensor,  # (S, E/2)
        past: tuple[torch.Tensor, torch.Tensor] | None,  # cached (B, H, L, E) keys and values
        last_only: bool = False,  # output only the last token's row (B, 1, D); keys/values still cover all S
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        b, s, d = x.shape
        q, k, v = (w(x).view(b, s, self.n_heads, -1).transpose(1, 2) for w in (self.wq, self.wk, self.wv))  # (B,H,S,E)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if past is not None:
            k, v = torch.cat((past[0], k), dim=2), torch.cat((past[1], v), dim=2)  # (B, H, L+S, E)
        if last_only:  # the last token sees every key: no mask
            out = F.scaled_dot_product_attention(q[:, :, -1:], k, v)  # (B, H, 1, E)
            return self.wo(out.transpose(1, 2).reshape(b, 1, d)), (k, v)
        if past is None:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, S, E)
        else:
            cached = k.shape[2] - s
            # New token i sits at position cached + i and may see every key up to and including that position.
            keys_at = torch.arange(k.shape[2], device=x.device)  # (L+S,)
            allowed = keys_at[None, :] <= cached + torch.arange(s, device=x.device)[:, None]  # (S, L+S)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)  # (B, H, S, E)
        return self.wo(out.transpose(1, 2).reshape(b, s, d)), (k, v)


class FeedForward(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.w1 = nn.Linear(cfg.dim, cfg.ffn_hidden, bias=False)
        self.w2 = nn.Linear(cfg.ffn_hidden, cfg.dim, bias=False)
        self.w3 = nn.Linear(cfg.dim, cfg.ffn_hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.attention = Attention(cfg)
        self.feed_forward = FeedForward(cfg)
        self.attention_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.norm_eps)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        past: tuple[torch.Tensor, torch.Tensor] | None,
        last_only: bool = False,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        attn, kv = self.attention(self.attention_norm(x), cos, sin, past, last_only)
        h = (x[:, -1:] if last_only else x) + attn
        return h + self.feed_forward(self.ffn_norm(h)), kv


class CausalTransformer(nn.Module):
    """`forward(x)` runs a whole causal sequence; `forward(x, cache=c)` appends x after the cached tokens and
    extends `c` in place, so decoding one step at a time gives the same outputs as one full-sequence call."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)

    def forward(self, x: torch.Tensor, *, cache: KVCache | None = None, last_only: bool = False) -> torch.Tensor:
        """x: (B, S, D) -> (B, S, D) normalised outputs; with `last_only`, (B, 1, D) at the last token only:
        the final block then skips attention and feed-forward for the other S - 1 rows (same values)."""
        start = 0 if cache is None else cache.offset + cache.length
        positions = torch.arange(start, start + x.shape[1], device=x.device)  # (S,)
        cos, sin = rotary_angles(positions, self.cfg.dim // self.cfg.n_heads, self.cfg.rope_theta)
        cached = cache is not None and cache.length > 0
        for i, layer in enumerate(self.layers):
            past = (cache.keys[i], cache.values[i]) if cached else None
            x, (k, v) = layer(x, cos, sin, past, last_only and i == len(self.layers) - 1)
            if cache is not None:
                if i < len(cache.keys):
                    cache.keys[i], cache.values[i] = k, v
                else:
                    cache.keys.append(k)
                    cache.values.append(v)
        return self.norm(x)
