"""The shared front half of every frozen image encoder: uint8 frames -> resized, normalised float tensors.

Each concrete encoder only supplies `forward_tokens` (normalised (B, 3, S, S) -> (B, L, C)); validation,
resizing, normalisation, freezing and eval mode live here once, so every encoder treats frames the same way
at training, feature-caching and serving time.
"""

from __future__ import annotations

import abc

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FrozenImageEncoder(nn.Module, abc.ABC):
    """Implements the `ImageEncoder` protocol of `base.py` for a torch backbone.

    Subclasses set `name`, `num_tokens`, `dim` and implement `forward_tokens`. Parameters never require grad
    and the module stays in eval mode even when a parent policy calls `.train()`: batch-norm statistics and
    dropout of a frozen network must not change with the policy's mode.
    """

    name: str
    num_tokens: int  # L
    dim: int  # C

    def __init__(self, *, image_size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        if image_size <= 0:
            raise ValueError(f"image_size must be positive, got {image_size}")
        self.image_size = image_size  # S: frames are resized to S x S before the backbone
        # Non-persistent: normalisation constants are code, not weights, and must not enter state dicts.
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def freeze(self) -> None:
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FrozenImageEncoder:
        return super().train(False)

    @abc.abstractmethod
    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, S, S) normalised float32 -> (B, L, C)."""

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> (B, 3, S, S) float32 normalised, on the encoder's device."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(
                f"{self.name}: images must be uint8 (B, H, W, 3), got {images.dtype} {tuple(images.shape)}"
            )
        x = images.to(self.mean.device).permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W) in [0, 1]
        if x.shape[-2:] != (self.image_size, self.image_size):
            # Antialiased bilinear: plain bilinear aliases badly when shrinking camera frames several-fold.
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True)
        return (x - self.mean) / self.std

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B, H, W, 3) uint8 -> (B, L, C) float32 tokens (no grad; not inference-mode tensors, so a
        trainable layer may consume them)."""
        tokens = self.forward_tokens(self.preprocess(images))  # (B, L, C)
        return tokens.float()
