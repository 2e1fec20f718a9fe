"""GR-1: presets and sizes, token layout and attention mask, losses on hand-made targets, step-wise inference."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from robo4d import types
from robo4d.config import config_from_dict, config_to_dict
from robo4d.methods.base import build_policy
from robo4d.methods.gr1 import GR1Config, GR1Policy, preset
from robo4d.methods.gr1 import actions as act
from robo4d.methods.gr1.config import patch_pixels_key
from robo4d.methods.gr1.model import (
    GR1Model,
    action_losses,
    count,
    frame_loss,
    normalise_patches,
    query_free_mask,
    sincos_2d,
)
from robo4d.methods.gr1.policy import PatchPixels
from robo4d.train.checkpoint import load_saved_state, saved_state

# A small finetune config: 2 cameras, 4-step windows, so every test runs in well under a second.
SMALL = {"seq_len": 4, "dim": 64, "n_layers": 2, "n_heads": 2, "resampler_depth": 1, "image_dim": 32}


def small(stage: str = "finetune", **kw) -> GR1Config:
    return replace(preset("gr1-tiny", stage, video_loss=kw.pop("video_loss", True)), **SMALL, **kw)


def random_states(shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    """(..., 8) plausible states: xyz, unit quaternion wxyz, gripper opening in [0, 1]."""
    s = torch.randn(*shape, 8, generator=g) * 0.1
    s[..., 3:7] = torch.randn(*shape, 4, generator=g)
    s[..., 3:7] /= s[..., 3:7].norm(dim=-1, keepdim=True)
    s[..., 7] = torch.rand(shape, generator=g)
    return s


def fake_batch(cfg: GR1Config, batch: int = 2, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    t = cfg.seq_len + cfg.horizon
    out: dict = {types.PAD_MASK: torch.zeros(batch, t, dtype=torch.bool), types.TASK: ["open the drawer"] * batch}
    for cam in cfg.cameras:
        out[types.image_tokens_key(cam)] = torch.randn(batch, t, cfg.image_tokens, cfg.image_dim, generator=g)
        out[patch_pixels_key(cam)] = torch.rand(batch, t, cfg.num_patches, cfg.patch_dim, generator=g)
    if cfg.predicts_actions:
        out[types.STATE] = random_states((batch, t), g)
    return out


def test_presets_validation_and_config_round_trip() -> None:
    with pytest.raises(KeyError, match="did you mean 'gr1-tiny'"):
        preset("gr1-tny")
    with pytest.raises(ValueError, match="GR1Config.frame_size"):
        GR1Config(frame_size=60, patch_size=8)
    with pytest.raises(ValueError, match="pretrain stage reads exactly one camera"):
        GR1Config(stage="pretrain")
    with pytest.raises(ValueError, match="finetune only"):
        preset("gr1-tiny", "pretrain", video_loss=False)
    cfg = preset("gr1-release", "pretrain")
    assert config_from_dict(GR1Config, config_to_dict(cfg)) == cfg
    assert cfg.cameras == (types.CAM_EGO,) and cfg.horizon == 3
    assert preset("gr1-tiny").horizon == 3 and replace(preset("gr1-tiny"), chunk=5).horizon == 5


def test_release_parameter_counts() -> None:
    """The published sizes (reference: the public model built on CPU). robo4d's trunk leaves out the release's
    unused 1-token word embedding (384 values), so trunk and total are 384 below the release's counts."""
    with torch.device("meta"):
        model = GR1Model(preset("gr1-release"))
    parts = {name: count(child) for name, child in model.named_children()}
    assert parts["trunk"] + 384 == 21_294_720 and parts["trunk"] == 12 * 1_774_464 + 768
    assert parts["resampler"] == 18_897_408
    assert parts["decoder"] == 3_993_600 and model.decoder.pos_embed.numel() == 75_264
    assert parts["action_head"] == 112_327
    assert parts["embed_arm_state"] + parts["embed_gripper_state"] + parts["embed_state"] == 299_136
    assert parts["embed_lang"] == 196_992 and parts["embed_img"] + parts["embed_patch"] == 1_181_184
    queries = ("embed_timestep", "embed_ln", "action_queries", "obs_queries")
    assert sum(parts[q] for q in queries) == 12_672
    assert count(model) + 384 == 45_988_039


def test_model_info_counts() -> None:
    from robo4d.methods.gr1.model_info import parameter_counts

    counts = parameter_counts("gr1-release")
    assert counts["trainable.finetune.release_layout"] == 45_988_039 and counts["resampler"] == 18_897_408
    assert counts["frozen.image_encoder"] == 85_798_656  # MAE ViT-B/16, as measured on the release
    assert counts["trainable.pretrain"] < counts["trainable.finetune"]
    tiny = parameter_counts("gr1-tiny")
    assert tiny["trainable.finetune"] < 4_000_000


def test_token_layout_and_counts() -> None:
    cfg = preset("gr1-release")
    with torch.device("meta"):
        model = GR1Model(cfg)
    assert model.num_inputs == 22  # language, state, 2 x (9 patches + CLS)
    assert model.query_tokens(obs=True).shape == (21, 384)  # ACT + 2 x 10 OBS: 43 tokens per step
    assert model.query_tokens(obs=False).shape == (1, 384)  # the released evaluation's 23 tokens
    with torch.device("meta"):
        pre = GR1Model(preset("gr1-release", "pretrain"))
    assert pre.num_inputs == 11 and pre.query_tokens(obs=True).shape == (10, 384)


def test_mask_no_token_attends_to_a_query() -> None:
    is_query = torch.tensor([False, False, True, False, True, True])
    allowed = query_free_mask(is_query, cached=3)  # (6, 9)
    assert allowed[:, :3].all()  # cached (non-query) tokens are visible to all new ones
    new = allowed[:, 3:]
    assert not new[:, is_query].any()  # not even a query itself
    expected = torch.tensor([[j <= i and not is_query[j] for j in range(6)] for i in range(6)])
    assert torch.equal(new, expected)


def test_queries_are_independent_and_steps_causal() -> None:
    """Through the whole trunk: OBS queries change no other output; a later step changes no earlier one."""
    torch.manual_seed(0)
    model = GR1Model(small()).eval()
    inputs = torch.randn(2, 4, model.num_inputs, 64)
    with_obs = model(inputs, obs=True)
    without = model(inputs, obs=False)
    torch.testing.assert_close(with_obs[:, :, : model.num_inputs + 1], without)
    changed = inputs.clone()
    changed[:, 2:] += 1.0
    after = model(changed, obs=True)
    torch.testing.assert_close(after[:, :2], with_obs[:, :2])
    assert not torch.allclose(after[:, 2], with_obs[:, 2])


@pytest.mark.parametrize(
    ("stage", "video"), [("pretrain", True), ("finetune", True), ("finetune", False)], ids=["pre", "ft", "ft-novideo"]
)
def test_losses_shapes_and_gradients(stage: str, video: bool, attach_fakes) -> None:
    cfg = small(stage, video_loss=video)
    policy = attach_fakes(build_policy("gr1", cfg))
    spec = policy.data_spec()
    batch = fake_batch(cfg)
    assert set(spec.keys) <= set(batch) and set(spec.produced_by) == set(spec.keys)
    assert (patch_pixels_key(cfg.cameras[0]) in spec.keys) == video
    assert (types.STATE in spec.keys) == (stage == "finetune")
    loss, metrics = policy.compute_loss(batch)
    assert loss.shape == () and torch.isfinite(loss)
    assert ("arm_smooth_l1" in metrics) == (stage == "finetune")
    assert (f"video_mse.{cfg.cameras[0]}" in metrics) == video
    loss.backward()
    m = policy.model
    assert m.trunk.h[0].attn.c_attn.weight.grad is not None and m.resampler.latents.grad is not None
    assert hasattr(m, "decoder") == video
    if video:
        assert m.decoder.mask_token.grad is not None and m.obs_queries[0].weight.grad is not None
    io = policy.io()
    assert io.cameras == cfg.cameras and io.controls_robot == (stage == "finetune")


def test_per_patch_normalisation_and_frame_loss() -> None:
    patch = torch.tensor([0.0, 1.0, 2.0, 3.0])  # mean 1.5, unbiased std sqrt(5/3)
    expected = (patch - 1.5) / (np.sqrt(5 / 3) + 1e-6)
    torch.testing.assert_close(normalise_patches(patch[None]), expected[None].float())
    pixels = torch.rand(1, 2, 3, 4)
    pred = normalise_patches(pixels).clone()
    pred[0, 1] += 2.0  # step 1 is wrong by 2 everywhere...
    valid = torch.tensor([[True, True]])
    assert frame_loss(pred, pixels, valid).item() == pytest.approx(2.0)  # mean of (0, 4)
    assert frame_loss(pred, pixels, torch.tensor([[True, False]])).item() == pytest.approx(0.0)  # ...but masked


def test_action_losses_on_hand_made_targets() -> None:
    arm = torch.zeros(1, 1, 1, 6)
    target = torch.tensor([0.5, -3.0, 0.0, 0.0, 0.0, 0.0]).view(1, 1, 1, 6)
    logit, is_open = torch.tensor([[[0.0]]]), torch.tensor([[[True]]])
    arm_loss, grip_loss = action_losses(arm, logit, target, is_open, torch.ones(1, 1, 1, dtype=torch.bool))
    assert arm_loss.item() == pytest.approx((0.5 * 0.5**2 + (3.0 - 0.5)) / 6)  # quadratic below 1, linear above
    assert grip_loss.item() == pytest.approx(np.log(2.0))


def test_delta_targets_compose_round_trip() -> None:
    g = torch.Generator().manual_seed(3)
    current, future = random_states((5,), g), random_states((5, 3), g)
    arm, is_open = act.delta_targets(current, future, (50.0, 20.0), 0.5)
    assert arm.shape == (5, 3, 6) and is_open.shape == (5, 3)
    back = act.compose(current, arm, is_open.float(), (50.0, 20.0))
    torch.testing.assert_close(back[..., :3], future[..., :3], atol=1e-5, rtol=0)
    same_rotation = (back[..., 3:7] * future[..., 3:7]).sum(-1).abs()
    torch.testing.assert_close(same_rotation, torch.ones(5, 3), atol=1e-5, rtol=0)
    assert torch.equal(back[..., 7] == 1.0, future[..., 7] >= 0.5)
    arm_in, onehot = act.state_inputs(current, 0.5)
    assert arm_in.shape == (5, 6) and torch.equal(onehot.sum(-1), torch.ones(5))


def test_loss_ignores_targets_past_episode_end(attach_fakes) -> None:
    cfg = small()
    policy = attach_fakes(GR1Policy(cfg)).eval()
    batch = fake_batch(cfg)
    batch[types.PAD_MASK][:, 5:] = True  # frames 5.. lie past the end: step 3's action target, steps 2-3's frames
    loss, _ = policy.compute_loss(batch)
    altered = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in batch.items()}
    altered[types.STATE][:, 5:, :3] += 5.0
    for cam in cfg.cameras:
        altered[patch_pixels_key(cam)][:, 5:] = torch.rand_like(altered[patch_pixels_key(cam)][:, 5:])
    torch.testing.assert_close(policy.compute_loss(altered)[0], loss)


def test_patch_pixels_layout() -> None:
    img = torch.zeros(1, 8, 8, 3, dtype=torch.uint8)
    img[0, 4:, :4, 1] = 255  # bottom-left quadrant green
    pix = PatchPixels(frame_size=8, patch_size=4).encode(img)  # (1, 4, 48)
    assert pix.shape == (1, 4, 48)
    assert pix[0, 2].view(4, 4, 3)[..., 1].eq(1).all() and pix[0, [0, 1, 3]].eq(0).all()


def test_sincos_positions_are_mae_layout() -> None:
    pos = sincos_2d(8, 3)  # (9, 8): first half encodes the column, second half the row
    assert pos.shape == (9, 8)
    torch.testing.assert_close(pos[1, 4:], pos[0, 4:])  # same row
    torch.testing.assert_close(pos[3, :4], pos[0, :4])  # same column
    torch.testing.assert_close(pos[0], torch.tensor([0.0, 0.0, 1.0, 1.0] * 2))


def test_stepwise_inference_equals_full_forward(attach_fakes) -> None:
    """Step t of an episode equals a full forward over steps max(0, t-T+1) .. t, and each frame is encoded once."""
    torch.manual_seed(0)
    cfg = small()
    policy = attach_fakes(GR1Policy(cfg)).eval()
    calls = []
    encode = policy.encoders().image.encode
    policy.encoders().image.encode = lambda x: calls.append(x.shape[0]) or encode(x)
    g = torch.Generator().manual_seed(1)
    steps = 9
    states = random_states((steps,), g)
    frames = {cam: torch.randint(0, 256, (steps, 32, 32, 3), generator=g, dtype=torch.uint8) for cam in cfg.cameras}
    policy.reset()
    chunks = []
    for t in range(steps):
        obs = types.Observation(
            images={cam: frames[cam][t].numpy() for cam in cfg.cameras}, state=states[t].numpy(), task="reach"
        )
        chunks.append(policy.predict_action_chunk(obs))
    assert calls == [1] * (steps * len(cfg.cameras))
    assert chunks[0].actions.shape == (cfg.chunk, 8) and chunks[0].kind == types.ACTION_EEF_POSE
    image = policy.encoders().image
    for t in (0, 2, 3, 4, 8):
        lo = max(0, t - cfg.seq_len + 1)
        batch = {types.TASK: ["reach"], types.STATE: states[None, lo : t + 1]}
        for cam in cfg.cameras:
            batch[types.image_tokens_key(cam)] = image.encode(frames[cam][lo : t + 1])[None]
        with torch.no_grad():
            full = replace(cfg, seq_len=t + 1 - lo)
            hidden = policy.model(_inputs(policy, full, batch), obs=False)
            arm, grip = policy.model.predict_actions(hidden)
        expected = act.compose(states[t], arm[0, -1], grip[0, -1].sigmoid(), cfg.arm_scale)
        np.testing.assert_allclose(chunks[t].actions, expected.numpy(), atol=1e-5)


def _inputs(policy: GR1Policy, cfg: GR1Config, batch: dict) -> torch.Tensor:
    """The policy's training-time input tokens for a window of `cfg.seq_len` steps."""
    saved, policy.config = policy.config, cfg
    try:
        return policy.step_inputs(batch)
    finally:
        policy.config = saved


def test_pretrain_policy_refuses_to_act(attach_fakes) -> None:
    policy = attach_fakes(GR1Policy(small("pretrain")))
    obs = types.Observation(images={"ego": np.zeros((32, 32, 3), np.uint8)}, state=np.zeros(8, np.float32), task="x")
    with pytest.raises(ValueError, match="predicts future frames"):
        policy.predict_action_chunk(obs)
    assert policy.io().action_kind == "frames" and policy.io().state_kind == types.STATE_NONE


def test_save_load_round_trip(attach_fakes) -> None:
    torch.manual_seed(0)
    cfg = small()
    policy = attach_fakes(GR1Policy(cfg)).eval()
    state = saved_state(policy)
    assert not any("pos_embed" in k for k in state)  # fixed positions are code, not weights
    other = attach_fakes(GR1Policy(config_from_dict(GR1Config, config_to_dict(cfg)))).eval()
    load_saved_state(other, state, source="test")
    batch = fake_batch(cfg)
    torch.testing.assert_close(other.compute_loss(batch)[0], policy.compute_loss(batch)[0])


def test_golden_losses_do_not_drift(attach_fakes) -> None:
    """Fixed seed, fixed fake batch: the loss terms of the small finetune model (recorded when written)."""
    torch.manual_seed(0)
    cfg = small()
    policy = attach_fakes(GR1Policy(cfg)).eval()
    _, metrics = policy.compute_loss(fake_batch(cfg))
    golden = {"video_mse.front": 1.0238730, "video_mse.wrist": 1.0241321, "arm_smooth_l1": 16.429802}
    golden["gripper_bce"] = 0.6935530
    assert metrics == pytest.approx(golden, rel=1e-4)
