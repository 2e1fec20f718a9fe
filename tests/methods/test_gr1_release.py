"""Import of the authors' GR-1 checkpoint: a synthetic file with the published key names and shapes."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from robo4d.methods.gr1 import GR1Policy, preset
from robo4d.methods.gr1.model import sincos_2d
from robo4d.methods.gr1.release import load_release_checkpoint, split_release_state


def release_layout(
    *, d: int, layers: int, c: int, e: int, latents: int, depth: int, inner: int, t: int, patches: int, pix: int
) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the release's `GR1.state_dict()` (its names; GPT-2 Conv1D weights as (in, out)),
    written from the public model's definition, not from robo4d's modules."""
    out: dict[str, tuple[int, ...]] = {"transformer.wte.weight": (1, d)}
    for i in range(layers):
        h = f"transformer.h.{i}."
        out |= {h + "ln_1.weight": (d,), h + "ln_1.bias": (d,), h + "ln_2.weight": (d,), h + "ln_2.bias": (d,)}
        out |= {h + "attn.bias": (1, 1, 1024, 1024), h + "attn.masked_bias": ()}
        out |= {h + "attn.c_attn.weight": (d, 3 * d), h + "attn.c_attn.bias": (3 * d,)}
        out |= {h + "attn.c_proj.weight": (d, d), h + "attn.c_proj.bias": (d,)}
        out |= {h + "mlp.c_fc.weight": (d, 4 * d), h + "mlp.c_fc.bias": (4 * d,)}
        out |= {h + "mlp.c_proj.weight": (4 * d, d), h + "mlp.c_proj.bias": (d,)}
    out |= {"transformer.ln_f.weight": (d,), "transformer.ln_f.bias": (d,)}
    r = "perceiver_resampler."
    out |= {r + "latents": (latents, c), r + "media_pos_emb": (1, 1, c), r + "norm.weight": (c,), r + "norm.bias": (c,)}
    for i in range(depth):
        a, f = f"{r}layers.{i}.0.", f"{r}layers.{i}.1."
        for norm in ("norm_media", "norm_latents"):
            out |= {a + norm + ".weight": (c,), a + norm + ".bias": (c,)}
        out |= {a + "to_q.weight": (inner, c), a + "to_kv.weight": (2 * inner, c), a + "to_out.weight": (c, inner)}
        out |= {f + "0.weight": (c,), f + "0.bias": (c,), f + "1.weight": (4 * c, c), f + "3.weight": (c, 4 * c)}

    def linear(name: str, fan_in: int, fan_out: int) -> None:
        out[name + ".weight"], out[name + ".bias"] = (fan_out, fan_in), (fan_out,)

    linear("embed_arm_state", 6, d)
    linear("embed_gripper_state", 2, d)
    linear("embed_state", 2 * d, d)
    linear("embed_lang", e, d)
    for name in ("embed_img", "embed_hand_img", "embed_patch", "embed_hand_patch"):
        linear(name, c, d)
    out |= {"embed_timestep.weight": (t, d), "embed_ln.weight": (d,), "embed_ln.bias": (d,)}
    out |= {"action_queries.weight": (1, d), "obs_queries.weight": (latents + 1, d)}
    out["obs_hand_queries.weight"] = (latents + 1, d)
    linear("pred_act_mlps.0", d, d // 2)
    linear("pred_act_mlps.1", d // 2, d // 2)
    linear("pred_arm_act", d // 2, 6)
    linear("pred_gripper_act", d // 2, 1)
    linear("decoder_embed", d, d)
    out["mask_token"] = (1, 1, 1, d)
    for i in range(2):
        b = f"decoder_blocks.{i}."
        for norm in ("norm1", "norm2"):
            out |= {b + norm + ".weight": (d,), b + norm + ".bias": (d,)}
        linear(b + "attn.qkv", d, 3 * d)
        linear(b + "attn.proj", d, d)
        linear(b + "mlp.fc1", d, 4 * d)
        linear(b + "mlp.fc2", 4 * d, d)
    out |= {"decoder_norm.weight": (d,), "decoder_norm.bias": (d,), "decoder_pos_embed": (1, patches, d)}
    linear("decoder_pred", d, pix)
    return out


RELEASE = {"d": 384, "layers": 12, "c": 768, "e": 512, "latents": 9, "depth": 3, "inner": 512, "t": 10}
RELEASE |= {"patches": 196, "pix": 768}
# A small config with the release's structure (2 cameras, video + actions), for file round trips in seconds.
SMALL = {"dim": 32, "n_layers": 2, "n_heads": 2, "image_dim": 16, "resampler_depth": 1, "resampler_dim_head": 8}
SMALL |= {"patch_size": 8}
SMALL_LAYOUT = {"d": 32, "layers": 2, "c": 16, "e": 384, "latents": 9, "depth": 1, "inner": 16, "t": 10}
SMALL_LAYOUT |= {"patches": 64, "pix": 192}


def small_policy() -> GR1Policy:
    return GR1Policy(replace(preset("gr1-tiny"), **SMALL, decoder_heads=2, action_mlp_activation=False))


def synthetic_file(tmp_path: Path, layout: dict[str, tuple[int, ...]], *, dim: int, grid: int, **edits) -> Path:
    g = torch.Generator().manual_seed(0)
    state = {k: torch.randn(shape, generator=g) for k, shape in layout.items()}
    state["decoder_pos_embed"] = sincos_2d(dim, grid)[None]
    state |= {"model_clip.token_embedding.weight": torch.zeros(3, 4), "model_mae.cls_token": torch.zeros(1, 1, 4)}
    for key, value in edits.items():
        if value is None:
            del state[key.replace("__", ".")]
        else:
            state[key.replace("__", ".")] = value
    path = tmp_path / "snapshot.pt"
    torch.save({"state_dict": state, "epoch": 20}, path)
    return path


def test_release_layout_fits_gr1_release_exactly() -> None:
    """Every published key maps onto the gr1-release policy with the right shape, and nothing is left over."""
    with torch.device("meta"):
        policy = GR1Policy(preset("gr1-release"))
        layout = {k: torch.empty(s) for k, s in release_layout(**RELEASE).items()}
    mapped, frozen, pos = split_release_state(layout, where="layout")
    own = policy.state_dict()
    assert set(mapped) == set(own) and not frozen and pos is not None
    assert all(mapped[k][1].shape == own[k].shape for k in own)
    buffers = re.compile(r"transformer\.h\.\d+\.attn\.(bias|masked_bias)|decoder_pos_embed")
    trainable = sum(v.numel() for k, v in layout.items() if not buffers.fullmatch(k))
    assert trainable == 45_988_039  # the reference count, its unused 1-token wte included


def test_import_round_trip_transposes_conv1d(tmp_path: Path) -> None:
    policy = small_policy()
    path = synthetic_file(tmp_path, release_layout(**SMALL_LAYOUT), dim=32, grid=8)
    frozen = load_release_checkpoint(policy, path)
    assert sorted(frozen) == ["model_clip.token_embedding.weight", "model_mae.cls_token"]
    state = torch.load(path, weights_only=True)["state_dict"]
    w = policy.model.trunk.h[1].attn.c_attn.weight
    torch.testing.assert_close(w, state["transformer.h.1.attn.c_attn.weight"].t())
    torch.testing.assert_close(policy.model.embed_img[1].weight, state["embed_hand_img.weight"])
    torch.testing.assert_close(policy.model.obs_queries[1].weight, state["obs_hand_queries.weight"])
    torch.testing.assert_close(policy.model.decoder.mask_token.flatten(), state["mask_token"].flatten())
    ffn_out = policy.model.resampler.layers[0][1][3].weight
    torch.testing.assert_close(ffn_out, state["perceiver_resampler.layers.0.1.3.weight"])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"embed_lang__weight": None}, r"missing \['model.embed_lang.weight'\]"),
        ({"transformer__wpe__weight": torch.zeros(1024, 32)}, r"unexpected \['transformer.wpe.weight \(as model"),
        ({"gripper_head__weight": torch.zeros(1, 16)}, r"outside the GR-1 release layout: \['gripper_head.weight'\]"),
        ({"pred_arm_act__weight": torch.zeros(7, 16)}, r"shape mismatch \['model.action_head.arm.weight"),
        ({"decoder_pos_embed": torch.zeros(1, 64, 32)}, "differs from robo4d's 2-D sin-cos positions"),
    ],
    ids=["missing", "extra", "unknown", "shape", "positions"],
)
def test_import_is_strict(tmp_path: Path, edit: dict, message: str) -> None:
    policy = small_policy()
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    path = synthetic_file(tmp_path, release_layout(**SMALL_LAYOUT), dim=32, grid=8, **edit)
    with pytest.raises(ValueError, match=message) as err:
        load_release_checkpoint(policy, path)
    assert "\n" not in str(err.value)  # one line
    assert all(torch.equal(v, before[k]) for k, v in policy.state_dict().items())  # nothing half-loaded
