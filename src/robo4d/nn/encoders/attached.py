"""A policy's frozen encoders, held off its module tree: built lazily from the config's names, size-checked,
kept on the policy's device, and each distinct instruction embedded once.

Frozen encoders are rebuilt from named weight sources, never saved in checkpoints, so a policy must not
register them as submodules (its state dict and `.to()` would then carry them). Every method that reads
frozen encoders holds one `AttachedEncoders`; the method's config supplies the names and expected sizes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import nn

from robo4d.nn.encoders.base import ImageEncoder, TextEncoder


@dataclass(frozen=True, kw_only=True)
class EncoderSpec:
    """What a config says of its frozen encoders. `image` None: the policy reads text only."""

    owner: str  # the config class, named in size-mismatch errors (e.g. "GR1Config")
    text: str
    text_weights: str | None
    text_dim: int
    image: str | None = None
    image_weights: str | None = None
    image_size: int | None = None  # encoder input side (None: the encoder's own)
    image_tokens: int | None = None  # None: not checked (the config derives it from the encoder)
    image_dim: int | None = None


@dataclass
class FrozenEncoders:
    image: ImageEncoder | None  # None when the spec names none
    text: TextEncoder


class AttachedEncoders:
    def __init__(self, spec: EncoderSpec) -> None:
        self.spec = spec
        self._held: FrozenEncoders | None = None
        self._text_cache: dict[str, torch.Tensor] = {}  # instruction -> (E,) embedding

    def attach(self, *, text: TextEncoder, image: ImageEncoder | None = None) -> None:
        """Use these encoders (tests, or encoders built elsewhere); their sizes must match the spec."""
        spec = self.spec
        checks = [("text_dim", text.dim, spec.text_dim)]
        if image is not None:
            checks += [("image_tokens", image.num_tokens, spec.image_tokens), ("image_dim", image.dim, spec.image_dim)]
        for what, got, want in checks:
            if want is not None and got != want:
                raise ValueError(f"{spec.owner}.{what} is {want} but the attached encoder gives {got}")
        self._held = FrozenEncoders(image=image, text=text)
        self._text_cache.clear()

    def get(self, device: torch.device) -> FrozenEncoders:
        """The encoders (built on first use), the image encoder moved to `device` when it is a module held
        elsewhere; the text encoder stays where it is (it runs once per distinct instruction)."""
        if self._held is None:
            from robo4d.nn.encoders import build_image_encoder, build_text_encoder

            spec = self.spec
            image = None
            if spec.image is not None:
                image = build_image_encoder(spec.image, weights=spec.image_weights, image_size=spec.image_size)
            self.attach(image=image, text=build_text_encoder(spec.text, weights=spec.text_weights))
        assert self._held is not None
        image = self._held.image
        if isinstance(image, nn.Module):
            held = next(itertools.chain(image.parameters(), image.buffers()), None)
            if held is not None and held.device != device:
                image.to(device)
        return self._held

    def embed_texts(self, texts: list[str] | tuple[str, ...], device: torch.device) -> torch.Tensor:
        """Instructions -> (n, E) frozen embeddings on `device`, each distinct string encoded once."""
        todo = sorted({t for t in texts if t not in self._text_cache})
        if todo:
            text = self._held.text if self._held is not None else self.get(device).text
            for instruction, vec in zip(todo, text.encode(todo), strict=True):
                self._text_cache[instruction] = vec.float()
        return torch.stack([self._text_cache[t] for t in texts]).to(device)
