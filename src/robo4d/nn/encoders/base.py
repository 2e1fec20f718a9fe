"""The two encoder protocols every method uses; concrete encoders live beside this file."""

from __future__ import annotations

from typing import Protocol

import torch


class ImageEncoder(Protocol):
    """A frozen image encoder: uint8 frames in, a token map out (always eval mode, no grad)."""

    name: str  # identifies architecture + weights + input resolution; part of feature-cache keys
    num_tokens: int  # L: tokens per image
    dim: int  # C: channels per token

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B, H, W, 3) uint8 -> (B, L, C) float32."""
        ...


class TextEncoder(Protocol):
    """A frozen sentence encoder; embeddings are cached per distinct string."""

    name: str
    dim: int

    def encode(self, texts: list[str]) -> torch.Tensor:
        """texts: n strings -> (n, dim) float32."""
        ...
