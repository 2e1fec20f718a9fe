"""Small deterministic stand-ins for the frozen encoders, so method tests never load pretrained weights."""

from __future__ import annotations

import zlib

import pytest
import torch
import torch.nn.functional as F


class FakeImageEncoder:
    """(B, H, W, 3) uint8 -> (B, L, C): average-pooled colours on a sqrt(L) grid through a fixed projection."""

    def __init__(self, num_tokens: int, dim: int) -> None:
        self.name, self.num_tokens, self.dim = "fake-image", num_tokens, dim
        self.side = int(num_tokens**0.5)
        self.proj = torch.randn(3, dim, generator=torch.Generator().manual_seed(7))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W)
        grid = F.adaptive_avg_pool2d(x, self.side).flatten(2).transpose(1, 2)  # (B, side^2, 3)
        tokens = grid @ self.proj  # (B, side^2, C)
        extra = self.num_tokens - tokens.shape[1]  # e.g. a class token
        return torch.cat((tokens.mean(1, keepdim=True).expand(-1, extra, -1), tokens), dim=1)


class FakeTextEncoder:
    """A fixed random vector per distinct string."""

    def __init__(self, dim: int) -> None:
        self.name, self.dim = "fake-text", dim

    def encode(self, texts: list[str]) -> torch.Tensor:
        gens = [torch.Generator().manual_seed(zlib.crc32(t.encode())) for t in texts]
        return torch.stack([torch.randn(self.dim, generator=g) for g in gens]) if texts else torch.zeros(0, self.dim)


@pytest.fixture
def attach_fakes():
    def attach(policy):
        cfg = policy.config
        policy.use_encoders(image=FakeImageEncoder(cfg.image_tokens, cfg.image_dim), text=FakeTextEncoder(cfg.text_dim))
        return policy

    return attach
