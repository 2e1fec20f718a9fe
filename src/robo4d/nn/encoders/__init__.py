"""Frozen pretrained encoders behind small protocols; weights are loaded lazily from local files only."""

from robo4d.nn.encoders.base import ImageEncoder, TextEncoder
from robo4d.nn.encoders.registry import IMAGE_ENCODERS, TEXT_ENCODERS, build_image_encoder, build_text_encoder

__all__ = [
    "IMAGE_ENCODERS",
    "TEXT_ENCODERS",
    "ImageEncoder",
    "TextEncoder",
    "build_image_encoder",
    "build_text_encoder",
]
