"""Training-time image augmentation for policies that read frozen-encoder features from the feature cache.

The release augments every training window afresh: one brightness and contrast change per window, a random
resized crop (area scale 0.65-1) on every camera but the wrist's, and Gaussian noise on the proprio input of
the robot stages. robo4d encodes each frame once (`nn.feature_cache`), so a fresh crop per window would mean
running the frozen encoder on every frame of every batch. Instead a pool of `copies` augmentations is drawn
once from a fixed seed; copy j applies the same crop box, brightness and contrast to every frame of the
dataset, its encoded frames are one cache entry, and each window reads one copy drawn at random (torch's RNG,
so the trainer's seed fixes the draws). Within a window every frame shares one augmentation, as in the
release; across windows the augmentation comes from a pool of `copies` instead of a continuum. The pool costs
`copies` encodings of the stage's frames, once, shared by every run that reads the same dataset.

The release's brightness and contrast ranges are not recorded in the reference; robo4d draws both factors
uniformly from [1 - 0.2, 1 + 0.2]. The crop's aspect ratio is drawn log-uniformly from [3/4, 4/3] (the usual
random-resized-crop default); the cropped box is resized back to the frame's size.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from robo4d.nn.feature_cache import TokenLookup, feature_shape

CROP_SCALE = (0.65, 1.0)  # area fraction of the crop (release)
CROP_RATIO = (3 / 4, 4 / 3)  # width / height of the crop
JITTER = 0.2  # brightness and contrast factors are drawn from [1 - JITTER, 1 + JITTER]
POOL_SEED = 0  # the pool of augmentations is the same for every run: only the per-window draws vary


@dataclass(frozen=True)
class Augmentation:
    """One augmentation: a crop box in fractions of the frame (top, left, height, width), then brightness and
    contrast factors."""

    top: float
    left: float
    height: float
    width: float
    brightness: float
    contrast: float

    @property
    def tag(self) -> str:
        """A short name that changes with any of the parameters (part of the feature-cache key)."""
        values = (self.top, self.left, self.height, self.width, self.brightness, self.contrast)
        return "aug-" + hashlib.sha256(repr(tuple(round(v, 6) for v in values)).encode()).hexdigest()[:10]

    def apply(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B, H, W, 3) uint8 -> (B, H, W, 3) uint8 augmented."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(
                f"augmentation expects (B, H, W, 3) uint8 frames, got {images.dtype} {tuple(images.shape)}"
            )
        h, w = images.shape[1:3]
        x = images.permute(0, 3, 1, 2).float()  # (B, 3, H, W)
        top, left = round(self.top * h), round(self.left * w)
        ch, cw = max(1, round(self.height * h)), max(1, round(self.width * w))
        x = x[:, :, top : top + ch, left : left + cw]
        if (ch, cw) != (h, w):
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        x = x * self.brightness
        gray = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).mean(dim=(1, 2))  # (B,) mean luminance
        x = (x - gray[:, None, None, None]) * self.contrast + gray[:, None, None, None]
        return x.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def is_wrist(camera: str) -> bool:
    """Wrist cameras are not cropped (the release crops the others only)."""
    return "wrist" in camera.lower()


def augmentation_pool(copies: int, *, crop: bool, seed: int = POOL_SEED) -> list[Augmentation]:
    """`copies` augmentations drawn from `seed`; without `crop` every box is the whole frame."""
    if copies < 1:
        raise ValueError(f"an augmentation pool needs copies >= 1, got {copies}")
    rng = np.random.default_rng(seed)
    pool = []
    for _ in range(copies):
        top, left, height, width = 0.0, 0.0, 1.0, 1.0
        if crop:
            for _attempt in range(10):  # rejection sampling of a box that fits; the whole frame if none does
                area = rng.uniform(*CROP_SCALE)
                ratio = math.exp(rng.uniform(math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])))
                bw, bh = math.sqrt(area * ratio), math.sqrt(area / ratio)
                if bw <= 1.0 and bh <= 1.0:
                    top, left, height, width = rng.uniform(0, 1 - bh), rng.uniform(0, 1 - bw), bh, bw
                    break
        brightness, contrast = rng.uniform(1 - JITTER, 1 + JITTER, size=2)
        pool.append(Augmentation(top, left, height, width, float(brightness), float(contrast)))
    return pool


class AugmentedEncoder:
    """A frozen frame encoder that augments its input first; named apart so the cache keeps its own entry."""

    def __init__(self, encoder: Any, augmentation: Augmentation) -> None:
        self.encoder, self.augmentation = encoder, augmentation
        self.name = f"{encoder.name}+{augmentation.tag}"
        self.feature_shape = feature_shape(encoder)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder.encode(self.augmentation.apply(images))


class AugmentedLookup:
    """A frame source over several cached copies: each call (one window) reads one copy drawn at random."""

    def __init__(self, copies: list[TokenLookup]) -> None:
        if not copies:
            raise ValueError("AugmentedLookup needs at least one cached copy")
        self.copies = copies

    def __call__(self, indices: np.ndarray) -> np.ndarray:
        return self.copies[int(torch.randint(len(self.copies), ()))](indices)


def augmented_lookup(cache: Any, dataset: Any, camera: str, encoder: Any, copies: int) -> AugmentedLookup:
    """The camera's frames encoded under a pool of `copies` augmentations (cropped unless a wrist camera),
    each copy cached like plain features; windows draw one copy each."""
    pool = augmentation_pool(copies, crop=not is_wrist(camera))
    return AugmentedLookup([cache.lookup(dataset, camera, AugmentedEncoder(encoder, a)) for a in pool])
