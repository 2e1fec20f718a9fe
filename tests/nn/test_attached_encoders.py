"""The one holder of a policy's frozen encoders: size checks name the config field, instructions are encoded
once, and the holder stays off the policy's module tree (nothing of it in state dicts)."""

from __future__ import annotations

import pytest
import torch

from robo4d.methods.arm4r.config import preset as arm4r_preset
from robo4d.methods.arm4r.policy import ARM4RPolicy
from robo4d.methods.gr1.config import preset as gr1_preset
from robo4d.methods.gr1.policy import GR1Policy
from robo4d.nn.encoders.attached import AttachedEncoders, EncoderSpec


class _Text:
    def __init__(self, dim: int) -> None:
        self.name, self.dim, self.calls = "text", dim, []

    def encode(self, texts: list[str]) -> torch.Tensor:
        self.calls.append(list(texts))
        return torch.stack([torch.full((self.dim,), float(len(t))) for t in texts])


class _Image:
    def __init__(self, tokens: int, dim: int) -> None:
        self.name, self.num_tokens, self.dim = "image", tokens, dim


def test_sizes_are_checked_against_the_named_config_fields() -> None:
    held = AttachedEncoders(EncoderSpec(owner="XConfig", text="t", text_weights=None, text_dim=4, image="i",
                                        image_tokens=16, image_dim=8))  # fmt: skip
    with pytest.raises(ValueError, match=r"^XConfig\.text_dim is 4 but the attached encoder gives 5$"):
        held.attach(text=_Text(5))
    with pytest.raises(ValueError, match=r"^XConfig\.image_tokens is 16 but the attached encoder gives 9$"):
        held.attach(text=_Text(4), image=_Image(9, 8))
    with pytest.raises(ValueError, match=r"^XConfig\.image_dim is 8 but the attached encoder gives 3$"):
        held.attach(text=_Text(4), image=_Image(16, 3))


def test_each_instruction_is_encoded_once_until_new_encoders_come() -> None:
    held = AttachedEncoders(EncoderSpec(owner="XConfig", text="t", text_weights=None, text_dim=2))
    text = _Text(2)
    held.attach(text=text)
    out = held.embed_texts(["ab", "c", "ab"], torch.device("cpu"))
    assert out.shape == (3, 2) and out[:, 0].tolist() == [2.0, 1.0, 2.0]
    held.embed_texts(["c", "ab", "def"], torch.device("cpu"))
    assert text.calls == [["ab", "c"], ["def"]]
    other = _Text(2)
    held.attach(text=other)  # a new encoder: nothing cached from the old one is reused
    held.embed_texts(["ab"], torch.device("cpu"))
    assert other.calls == [["ab"]]


@pytest.mark.parametrize("make", [lambda: ARM4RPolicy(arm4r_preset("arm4r-tiny", 3)),
                                  lambda: GR1Policy(gr1_preset("gr1-tiny"))], ids=["arm4r", "gr1"])  # fmt: skip
def test_policies_keep_their_frozen_encoders_out_of_state_dicts(make) -> None:
    policy = make()
    names = set(policy.state_dict())
    cfg = policy.config
    image = torch.nn.Linear(2, 2)  # a module: were it on the tree, its weights would enter the state dict
    image.name, image.num_tokens, image.dim = "image", cfg.image_tokens, cfg.image_dim  # type: ignore[assignment]
    policy.use_encoders(image=image, text=_Text(cfg.text_dim))  # type: ignore[arg-type]
    assert policy.encoders().image is image and set(policy.state_dict()) == names
    assert policy.embed_texts(["open the drawer"]).shape == (1, cfg.text_dim)
