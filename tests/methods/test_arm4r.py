"""ARM4R: presets, losses of both objectives, masking, rotations, golden numerics, KV-cached inference."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from robo4d import types
from robo4d.config import config_from_dict, config_to_dict
from robo4d.methods.arm4r import ARM4RConfig, ARM4RPolicy, preset
from robo4d.methods.arm4r import geometry as geo
from robo4d.methods.arm4r.inference import StepwiseDecoder, full_sequence_readout
from robo4d.methods.arm4r.model_info import parameter_counts
from robo4d.methods.base import build_policy
from robo4d.nn.encoders.frozen import IMAGENET_MEAN, IMAGENET_STD, FrozenImageEncoder


def random_states(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """(..., 8) plausible robo4d states: xyz, unit quaternion wxyz, gripper in [0, 1]."""
    s = torch.randn(*shape, 8, generator=generator)
    s[..., 3:7] /= s[..., 3:7].norm(dim=-1, keepdim=True)
    s[..., 7] = torch.rand(shape, generator=generator)
    return s


def fake_batch(cfg: ARM4RConfig, batch: int = 2, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    t = cfg.seq_len + cfg.horizon
    out: dict = {types.PAD_MASK: torch.zeros(batch, t, dtype=torch.bool), types.TASK: ["open the drawer"] * batch}
    for cam in dict.fromkeys(cfg.cameras):
        out[types.image_tokens_key(cam)] = torch.randn(batch, t, cfg.image_tokens, cfg.image_dim, generator=g)
    if cfg.objective == "points":
        out[cfg.points_prefix + cfg.points_camera] = torch.randn(batch, t, cfg.num_points, 3, generator=g)
        visible = (
            types.POINTS_VISIBLE_PREFIX if cfg.points_prefix == types.POINTS_PREFIX else types.GT_POINTS_VISIBLE_PREFIX
        )
        out[visible + cfg.points_camera] = torch.ones(batch, t, cfg.num_points, dtype=torch.bool)
    else:
        out[types.STATE] = random_states((batch, t), g)
    return out


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_tiny_loss_and_data_spec(stage: int, attach_fakes) -> None:
    cfg = preset("arm4r-tiny", stage)
    policy = attach_fakes(build_policy("arm4r", cfg))
    spec = policy.data_spec()
    assert spec.seq_len == cfg.seq_len and spec.horizon == (1 if stage < 3 else 16)
    assert set(spec.produced_by) == set(spec.keys)
    batch = fake_batch(cfg)
    assert set(spec.keys) <= set(batch)
    loss, metrics = policy.compute_loss(batch)
    assert loss.shape == () and torch.isfinite(loss) and metrics["valid_fraction"] == 1.0
    loss.backward()
    assert policy.model.trunk.layers[0].attention.wq.weight.grad is not None
    assert policy.model.pools[1].latent.grad is not None


def test_hidden_points_have_no_motion_target(attach_fakes) -> None:
    """A point hidden at t or t+1 has no motion target (its stored position is a placeholder)."""
    cfg = preset("arm4r-tiny", 1)
    policy = attach_fakes(build_policy("arm4r", cfg))
    batch = fake_batch(cfg)
    visible_key = next(k for k in batch if "points_visible" in k)
    batch[visible_key][:, 3, :10] = False  # ten points hidden in frame 3: targets 2->3 and 3->4 are unknown
    _, _, valid = policy.targets(batch)  # (B, T, 1, 3N)
    hidden = torch.zeros_like(valid)
    hidden[:, 2:4, :, :30] = True  # x, y, z of points 0..9 at steps 2 and 3
    assert torch.equal(valid, ~hidden)
    _, metrics = policy.compute_loss(batch)
    assert metrics["valid_fraction"] == pytest.approx(1 - 2 * 30 / (cfg.seq_len * 3 * cfg.num_points))


def test_targets_shapes_and_points_delta() -> None:
    cfg = preset("arm4r-tiny", 1)
    policy = ARM4RPolicy(cfg)
    batch = fake_batch(cfg)
    proprio, target, valid = policy.targets(batch)
    pts = batch[types.gt_points_key("ego")].flatten(2)
    assert proprio.shape == (2, 8, 3 * 256) and target.shape == (2, 8, 1, 768) and valid.shape == (2, 8, 1, 768)
    torch.testing.assert_close(target[:, 3, 0], pts[:, 4] - pts[:, 3])
    cfg3 = preset("arm4r-tiny", 3)
    proprio, target, valid = ARM4RPolicy(cfg3).targets(fake_batch(cfg3))
    assert proprio.shape == (2, 8, 10) and target.shape == (2, 8, 16, 10) and valid.shape == (2, 8, 16)


def test_loss_ignores_frames_past_episode_end(attach_fakes) -> None:
    cfg = preset("arm4r-tiny", 3)
    policy = attach_fakes(ARM4RPolicy(cfg))
    batch = fake_batch(cfg)
    batch[types.PAD_MASK][:, 10:] = True  # episode ends after frame 9
    loss, metrics = policy.compute_loss(batch)
    altered = {**batch, types.STATE: batch[types.STATE].clone()}
    altered[types.STATE][:, 10:, :3] += 5.0  # past-the-end values must not matter
    torch.testing.assert_close(policy.compute_loss(altered)[0], loss)
    assert 0 < metrics["valid_fraction"] < 1
    batch[types.PAD_MASK][:, 1:] = True  # nothing valid: zero loss, still differentiable
    empty, _ = policy.compute_loss(batch)
    assert empty.item() == 0.0 and empty.requires_grad


@pytest.mark.parametrize("layout", ["columns", "rows"])
def test_rotation_round_trips(layout: str) -> None:
    g = torch.Generator().manual_seed(1)
    quat = random_states((64,), g)[:, 3:7]
    rot = geo.quat_wxyz_to_matrix(quat)
    back = geo.sixd_to_matrix(geo.matrix_to_6d(rot, layout), layout)
    torch.testing.assert_close(back, rot, atol=1e-5, rtol=0)
    q2 = geo.matrix_to_quat_wxyz(back)
    assert torch.allclose(q2.abs(), quat.abs(), atol=1e-5) and (q2[:, 0] >= 0).all()
    if layout == "columns":
        torch.testing.assert_close(geo.matrix_to_6d(rot, layout)[:, :3], rot[:, :, 0])


def test_relative_targets_invert_and_use_current_frame() -> None:
    g = torch.Generator().manual_seed(2)
    current, future = random_states((5,), g), random_states((5, 16), g)
    deltas = geo.relative_targets(current, future, "columns")
    assert deltas.shape == (5, 16, 10)
    back = geo.compose_targets(current, deltas, "columns")
    torch.testing.assert_close(back[..., :3], future[..., :3], atol=1e-5, rtol=0)
    torch.testing.assert_close(back[..., 7], future[..., 7])
    same = geo.quat_wxyz_to_matrix(back[..., 3:7]) @ geo.quat_wxyz_to_matrix(future[..., 3:7]).transpose(-1, -2)
    torch.testing.assert_close(same, torch.eye(3).expand_as(same), atol=1e-5, rtol=0)
    # A pure translation along the current x axis reads as +x in the current frame.
    moved = current.clone()
    moved[..., :3] += geo.quat_wxyz_to_matrix(current[..., 3:7])[..., :, 0] * 0.1
    torch.testing.assert_close(
        geo.relative_targets(current, moved[:, None], "rows")[:, 0, :3], torch.tensor([0.1, 0, 0]).expand(5, 3)
    )


# Recorded from this code on CPU fp32 (torch 2.13); a change means the numerics moved — check why first.
GOLDEN_LOSS = 0.72332752
GOLDEN_PRED = [0.14179923, 0.30246031, 0.0829106, 0.11791113]


def test_golden_outputs_do_not_drift(attach_fakes) -> None:
    torch.manual_seed(0)
    # Pinned sizes and 6-D layout (the goldens were recorded with "columns"): they track numerics, not defaults.
    cfg = replace(
        preset("arm4r-tiny", 3), seq_len=4, image_encoder="efficientnet-lite0", image_dim=1280, rot6d="columns"
    )
    policy = attach_fakes(ARM4RPolicy(cfg))
    batch = fake_batch(cfg, seed=3)
    loss, _ = policy.compute_loss(batch)
    proprio, target, _ = policy.targets(batch)
    images = {cam: batch[types.image_tokens_key(cam)][:, :4] for cam in ("front", "wrist")}
    text = policy.embed_texts(batch[types.TASK])[:, None].expand(-1, 4, -1)
    with torch.no_grad():
        pred = policy.model(policy.model.step_tokens(text, images, proprio, target[:, :, 0]))  # (B, T, K, A)
    assert loss.item() == pytest.approx(GOLDEN_LOSS, abs=1e-5)
    torch.testing.assert_close(pred[0, -1, 0, :4], torch.tensor(GOLDEN_PRED), atol=1e-5, rtol=0)


def test_stepwise_cache_equals_full_sequence_before_and_after_window_fills() -> None:
    torch.manual_seed(0)
    cfg = replace(preset("arm4r-tiny", 3), seq_len=4)
    model = ARM4RPolicy(cfg).model.eval()
    tokens = torch.randn(2, 11, 3, cfg.dim)  # (B, steps, [language, state, action], D)
    decoder = StepwiseDecoder(model, cfg.seq_len)
    for t in range(tokens.shape[1]):
        prev = tokens[:, t - 1, 2] if t else None
        got = decoder.step(tokens[:, t, 0], tokens[:, t, 1], prev)  # (B, K, A)
        start = max(0, t - cfg.seq_len + 1)
        want = full_sequence_readout(model, tokens[:, start : t + 1])
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
        assert decoder.cache.length == (3 * t + 2 if t < cfg.seq_len else 0)
    with torch.no_grad():  # the training forward reads out the same values at every step
        torch.testing.assert_close(model(tokens[:, :4])[:, 3], full_sequence_readout(model, tokens[:, :4]))


def test_predict_action_chunk_is_absolute_and_resets(attach_fakes) -> None:
    cfg = replace(preset("arm4r-tiny", 3), seq_len=3)
    policy = attach_fakes(ARM4RPolicy(cfg)).eval()
    g = torch.Generator().manual_seed(4)
    rng = np.random.default_rng(0)
    states = random_states((5,), g).numpy()

    def obs(i: int) -> types.Observation:
        images = {cam: rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for cam in ("front", "wrist")}
        return types.Observation(images=images, state=states[i], task="open the drawer")

    chunks = [policy.predict_action_chunk(obs(i)) for i in range(5)]
    assert all(c.actions.shape == (16, 8) and c.kind == "eef_pose" for c in chunks)
    np.testing.assert_allclose(np.linalg.norm(chunks[-1].actions[:, 3:7], axis=1), 1.0, atol=1e-5)
    policy.reset()
    rng = np.random.default_rng(0)
    np.testing.assert_allclose(policy.predict_action_chunk(obs(0)).actions, chunks[0].actions, atol=1e-6)
    with pytest.raises(KeyError, match="wrist"):
        policy.predict_action_chunk(
            types.Observation(images={"front": obs(0).images["front"]}, state=states[0], task="")
        )
    with pytest.raises(ValueError, match="points"):
        attach_fakes(ARM4RPolicy(preset("arm4r-tiny", 1))).predict_action_chunk(obs(0))


def test_presets_config_round_trip_and_unknown_name() -> None:
    for name in ("arm4r-tiny", "arm4r-mini", "arm4r-small", "arm4r-base", "arm4r-large"):
        for stage in (1, 2, 3):
            cfg = preset(name, stage)
            assert config_from_dict(ARM4RConfig, config_to_dict(cfg)) == cfg
    assert preset("arm4r-base", 3).cameras == ("front", "wrist") and preset("arm4r-base", 2).cameras == ("front",) * 2
    with pytest.raises(KeyError, match="did you mean 'arm4r-tiny'"):
        preset("arm4r-tny")
    with pytest.raises(ValueError, match="horizon"):
        ARM4RConfig(objective="points", horizon=4)


def test_base_parameter_counts_match_the_release(capsys: pytest.CaptureFixture[str]) -> None:
    counts = parameter_counts("arm4r-base", "points")
    assert counts["trunk"] == 84_953_856  # 85.0M
    assert counts["trainable.stage1"] == 128_926_736  # 128.9M
    assert abs(counts["trainable.stage3"] - 92.3e6) < 0.1e6  # 92,248,572
    assert abs(counts["frozen.image_encoder"] - 85.8e6) < 0.05e6
    assert "image_proj" not in counts  # ViT width == pool width: no projection, as the release
    from robo4d.methods.commands import Info

    Info(preset="arm4r-tiny", variant="control").run()
    lines = capsys.readouterr().out.splitlines()
    assert "action_decoder: 37152" in lines and all(": " in line for line in lines)


def test_base_forward_backward_with_random_vit(attach_fakes) -> None:
    from robo4d.nn.encoders import build_image_encoder

    cfg = replace(preset("arm4r-base", 1), seq_len=2)
    vit = build_image_encoder(cfg.image_encoder, random_init=True)
    policy = attach_fakes(ARM4RPolicy(cfg))
    policy.use_encoders(image=vit, text=policy.encoders().text)
    frames = torch.randint(0, 255, (3, 224, 224, 3), dtype=torch.uint8)
    batch = {
        types.PAD_MASK: torch.zeros(1, 3, dtype=torch.bool),
        types.TASK: ["cut the onion"],
        types.image_tokens_key("ego"): vit.encode(frames)[None],  # (1, T+K, 197, 768)
        types.gt_points_key("ego"): torch.randn(1, 3, 1296, 3),
        types.gt_points_visible_key("ego"): torch.ones(1, 3, 1296, dtype=torch.bool),
    }
    loss, _ = policy.compute_loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and policy.model.proprio_encoder.fc1.weight.grad is not None


class _TinyFrames:
    """A FrameSource of two short episodes (the feature cache accepts any)."""

    identity, num_frames = "tiny-frames-v1", 5

    def episodes(self):
        rng = np.random.default_rng(0)
        yield np.arange(3), rng.integers(0, 255, (3, 16, 16, 3), dtype=np.uint8)
        yield np.arange(3, 5), rng.integers(0, 255, (2, 16, 16, 3), dtype=np.uint8)


def test_frame_sources_serve_cached_tokens(tmp_path, monkeypatch, attach_fakes) -> None:
    monkeypatch.setenv("ROBO4D_CACHE_DIR", str(tmp_path))
    cfg = preset("arm4r-tiny", 3)
    policy = attach_fakes(ARM4RPolicy(cfg))
    sources = policy.frame_sources(_TinyFrames())
    assert set(sources) == {types.image_tokens_key("front"), types.image_tokens_key("wrist")}
    tokens = sources[types.image_tokens_key("front")](np.array([4, 0]))
    assert tokens.shape == (2, cfg.image_tokens, cfg.image_dim)


def test_augmented_frame_sources_draw_one_cached_copy_per_window(tmp_path, monkeypatch, attach_fakes) -> None:
    monkeypatch.setenv("ROBO4D_CACHE_DIR", str(tmp_path))
    cfg = replace(preset("arm4r-tiny", 3), image_augment=3)
    policy = attach_fakes(ARM4RPolicy(cfg))
    plain = attach_fakes(ARM4RPolicy(preset("arm4r-tiny", 3))).frame_sources(_TinyFrames())
    sources = policy.frame_sources(_TinyFrames())
    assert len(list(tmp_path.iterdir())) == 2 + 2 * 3  # plain front + wrist, then 3 copies of each
    for key, source in sources.items():
        window = np.array([0, 1, 2])
        copies = [copy(window) for copy in source.copies]
        assert all(not np.allclose(c, plain[key](window)) for c in copies)
        got = source(window)  # one draw: all its frames from one copy
        assert any(np.array_equal(got, c) for c in copies)


def test_proprio_noise_perturbs_training_inputs_only(attach_fakes) -> None:
    cfg = replace(preset("arm4r-tiny", 3), proprio_noise=0.005)
    policy = attach_fakes(ARM4RPolicy(cfg))
    batch = fake_batch(cfg)
    policy.eval()
    clean = policy.compute_loss(batch)[1]["l1"]
    assert policy.compute_loss(batch)[1]["l1"] == clean
    policy.train()
    torch.manual_seed(0)
    noisy = [policy.compute_loss(batch)[1]["l1"] for _ in range(2)]
    assert noisy[0] != noisy[1] and all(abs(n - clean) < 0.05 for n in noisy)
    with pytest.raises(ValueError, match="proprio_noise must be >= 0, got -1.0"):
        replace(cfg, proprio_noise=-1.0)


class TinyFrozenEncoder(FrozenImageEncoder):
    """A real (nn.Module) frozen encoder, small enough to build in a test."""

    name, num_tokens, dim = "tiny-frozen", 16, 8

    def __init__(self) -> None:
        super().__init__(image_size=16, mean=IMAGENET_MEAN, std=IMAGENET_STD)
        self.conv = torch.nn.Conv2d(3, 8, 4, stride=4)
        self.freeze()

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).flatten(2).transpose(1, 2)  # (B, 16, 8)


def test_frozen_image_encoder_follows_the_policy_device(attach_fakes) -> None:
    cfg = replace(preset("arm4r-tiny", 3), image_tokens=16, image_dim=8)
    policy = ARM4RPolicy(cfg)
    text = attach_fakes(ARM4RPolicy(cfg)).encoders().text
    policy.use_encoders(image=TinyFrozenEncoder(), text=text)
    policy.to("meta")  # any device other than the CPU stands in for CUDA here
    assert policy.encoders().image.conv.weight.device.type == "meta" and policy.encoders().image.mean.is_meta


def test_rolling_cache_is_exact_until_the_window_fills_then_drifts() -> None:
    torch.manual_seed(0)
    cfg = replace(preset("arm4r-tiny", 3), seq_len=4)
    model = ARM4RPolicy(cfg).model.eval()
    tokens = torch.randn(1, 9, 3, cfg.dim)  # (B, steps, [language, state, action], D)
    exact, rolling = StepwiseDecoder(model, cfg.seq_len), StepwiseDecoder(model, cfg.seq_len, exact=False)
    for t in range(tokens.shape[1]):
        prev = tokens[:, t - 1, 2] if t else None
        a, b = exact.step(tokens[:, t, 0], tokens[:, t, 1], prev), rolling.step(tokens[:, t, 0], tokens[:, t, 1], prev)
        if t < cfg.seq_len:
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
        else:
            assert not torch.allclose(a, b, atol=1e-5)  # approximate: deeper layers remember evicted steps
            assert rolling.cache.length == 3 * cfg.seq_len - 1
