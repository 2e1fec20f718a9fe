"""Frozen ViT-B/16 with MAE or CrossMAE weights (He et al., "Masked Autoencoders Are Scalable Vision
Learners", CVPR 2022; Fu et al., "Rethinking Patch Dependence for Masked Autoencoders" (CrossMAE), 2024).

ARM4R and GR-1 both read a frozen MAE-style ViT-B/16: CLS + 196 patch tokens x 768 at 224 px. The module
names follow the MAE checkpoint layout (`cls_token`, `pos_embed`, `patch_embed.proj`, `blocks.N.{norm1,
attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}`, `norm`), so the authors' files load strictly. Pre-training
checkpoints also hold the decoder (`decoder_*`, `mask_token`, and CrossMAE's `wfm.*`, `dec_norms.*`); those
keys are dropped by name, nothing else is. CrossMAE's encoder has no final `norm` (its decoder reads
per-layer features), so `vit-b16-crossmae` returns the last block's tokens and ARM4R adds its own LayerNorm.

No weights ship with robo4d: pass `weights=PATH` (.pth with a `model` sub-dict, or .safetensors). At an
image size other than the checkpoint's, the patch position embedding is resized bicubically (as MAE does
when fine-tuning at another resolution): at 128 px, 1 + 8 x 8 = 65 tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from robo4d.nn.encoders.frozen import IMAGENET_MEAN, IMAGENET_STD, FrozenImageEncoder
from robo4d.nn.encoders.weights import fingerprint, read_state_dict
from robo4d.nn.state_dict import load_strict

LN_EPS = 1e-6  # MAE's LayerNorm epsilon
# Pre-training-only parts of MAE / CrossMAE checkpoints: the pixel decoder and its inputs.
DECODER_PREFIXES = ("decoder_", "mask_token", "wfm.", "dec_norms.")


@dataclass(frozen=True, kw_only=True)
class ViTConfig:
    """Architecture of an MAE-style ViT encoder; the defaults are ViT-B/16 at 224 px."""

    patch_size: int = 16
    width: int = 768  # C
    depth: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    image_size: int = 224  # S: input side; tokens = 1 + (S / patch)^2
    final_norm: bool = True  # MAE ends with LayerNorm `norm`; CrossMAE does not

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} must be a multiple of patch_size {self.patch_size}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} must be divisible by heads {self.heads}")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size


class Attention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, h, L, c/h)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, h, L, c/h)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))  # (B, L, C)


class Mlp(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.width, eps=LN_EPS)
        self.attn = Attention(config.width, config.heads)
        self.norm2 = nn.LayerNorm(config.width, eps=LN_EPS)
        self.mlp = Mlp(config.width, int(config.width * config.mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, config.width, config.patch_size, stride=config.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, 3, S, S) -> (B, (S/p)^2, C)


class ViT(nn.Module):
    """The MAE encoder without masking: (B, 3, S, S) -> (B, 1 + (S/p)^2, C), CLS first."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbed(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.width))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + config.grid**2, config.width))
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        if config.final_norm:
            self.norm = nn.LayerNorm(config.width, eps=LN_EPS)
        self._init_random()

    def _init_random(self) -> None:
        """MAE's initialisation (only seen when no weights are loaded: tests, CPU smoke runs)."""
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.pos_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x) + self.pos_embed[:, 1:]  # (B, G*G, C)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)  # (B, 1, C)
        x = torch.cat([cls, x], dim=1)  # (B, 1 + G*G, C)
        for block in self.blocks:
            x = block(x)
        return self.norm(x) if self.config.final_norm else x


def resize_pos_embed(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    """(1, 1 + g*g, C) -> (1, 1 + grid*grid, C): the CLS entry kept, the patch grid resized bicubically."""
    n = pos_embed.shape[1] - 1
    g = math.isqrt(n)
    if g * g != n:
        raise ValueError(f"pos_embed has {n} patch positions, not a square grid")
    if g == grid:
        return pos_embed
    patches = pos_embed[:, 1:].reshape(1, g, g, -1).permute(0, 3, 1, 2).float()  # (1, C, g, g)
    patches = F.interpolate(patches, size=(grid, grid), mode="bicubic", align_corners=False)
    patches = patches.permute(0, 2, 3, 1).reshape(1, grid * grid, -1).to(pos_embed.dtype)
    return torch.cat([pos_embed[:, :1], patches], dim=1)


def load_mae_weights(vit: ViT, path: str | Path) -> None:
    """Load an MAE / CrossMAE checkpoint (encoder keys strictly; decoder keys dropped by name)."""
    state = read_state_dict(path, subkey="model")
    if "pos_embed" in state:
        state["pos_embed"] = resize_pos_embed(state["pos_embed"], vit.config.grid)
    if not vit.config.final_norm and "norm.weight" in state:
        raise ValueError(
            f"weights {path} end with a LayerNorm `norm` (an MAE encoder); use 'vit-b16-mae', not 'vit-b16-crossmae'"
        )
    if vit.config.final_norm and "norm.weight" not in state and "blocks.0.norm1.weight" in state:
        raise ValueError(f"weights {path} have no final LayerNorm `norm` (a CrossMAE encoder?); use 'vit-b16-crossmae'")
    load_strict(vit, {k: v for k, v in state.items() if not k.startswith(DECODER_PREFIXES)}, source=f"weights {path}")


@dataclass(frozen=True, kw_only=True)
class MAEViTEncoderConfig:
    vit: ViTConfig = ViTConfig()
    weights: str | None = None  # MAE/CrossMAE checkpoint (.pth with a `model` dict, or .safetensors)
    random_init: bool = False  # explicit opt-in to untrained weights (tests, CPU forward/backward checks)
    seed: int = 0  # random_init only: the initialisation is deterministic so cached features stay valid
    label: str = "vit-b16-mae"  # registry name, the first part of the encoder's `name`

    def __post_init__(self) -> None:
        if self.weights is None and not self.random_init:
            raise ValueError(
                f"{self.label} needs pre-trained weights: pass weights=PATH to a local MAE/CrossMAE checkpoint "
                "(e.g. mae_pretrain_vit_base.pth from facebookresearch/mae, or a CrossMAE ViT-B/16 .pth; "
                ".safetensors also works), or random_init=True for an untrained encoder (tests only)"
            )
        if self.weights is not None and self.random_init:
            raise ValueError("give either weights or random_init=True, not both")


class MAEViTEncoder(FrozenImageEncoder):
    """Frozen MAE-style ViT: (B, H, W, 3) uint8 -> (B, 1 + (S/16)^2, 768) float32, CLS token first."""

    def __init__(self, config: MAEViTEncoderConfig) -> None:
        super().__init__(image_size=config.vit.image_size, mean=IMAGENET_MEAN, std=IMAGENET_STD)
        self.config = config
        if config.random_init:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(config.seed)
                self.vit = ViT(config.vit)
            # Random weights are identified by seed and architecture (loaded ones by the file's hash).
            v = config.vit
            tag = f"random{config.seed}-p{v.patch_size}w{v.width}d{v.depth}h{v.heads}{'' if v.final_norm else 'n'}"
        else:
            assert config.weights is not None  # guaranteed by the config's validation
            self.vit = ViT(config.vit)
            load_mae_weights(self.vit, config.weights)
            tag = fingerprint(config.weights)
        self.num_tokens = 1 + config.vit.grid**2
        self.dim = config.vit.width
        self.name = f"{config.label}:{tag}@{config.vit.image_size}"
        self.freeze()

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit(x)  # (B, 1 + G*G, C)
