"""IGOR: VQ gradients and codebook health, losses of every objective, rectified flow, labels, predictiveness."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from igor_fixtures import TEXT_DIM, tiny_config, write_dataset

from conftest import FakeTextEncoder
from robo4d import types
from robo4d.config import config_from_dict, config_to_dict
from robo4d.data.reader import Dataset
from robo4d.methods.base import build_policy
from robo4d.methods.igor import IGORConfig, preset
from robo4d.methods.igor.frames import goal_indices
from robo4d.methods.igor.label import label_dataset
from robo4d.methods.igor.metrics import predictiveness, spanned_actions
from robo4d.methods.igor.vq import VectorQuantizer
from robo4d.methods.igor.world_model import flow_loss, flow_pair
from robo4d.train.checkpoint import saved_state, write_checkpoint


def make_policy(objective: str, **overrides):
    torch.manual_seed(0)
    policy = build_policy("igor", tiny_config(objective, **overrides))
    policy.use_text_encoder(FakeTextEncoder(TEXT_DIM))
    return policy


def fake_batch(policy, batch: int = 3, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    cfg, spec = policy.config, policy.data_spec()
    t = spec.seq_len + spec.horizon
    side = cfg.image_size
    frames = lambda: torch.randint(0, 256, (batch, t, side, side, 3), generator=g, dtype=torch.uint8)  # noqa: E731
    out = {types.FRAMES: frames(), types.GOAL_FRAMES: frames(), types.TASK: ["push the block left"] * batch,
           types.PAD_MASK: torch.zeros(batch, t, dtype=torch.bool),
           types.STATE: torch.randn(batch, t, types.STATE_DIM, generator=g)}  # fmt: skip
    return {k: v for k, v in out.items() if k in spec.keys or k in (types.PAD_MASK, types.TASK)}


def test_presets_validate_and_round_trip() -> None:
    for name in ("igor-tiny", "igor-base"):
        for objective in ("lam", "world", "foundation", "control"):
            cfg = preset(name, objective)
            assert config_from_dict(IGORConfig, config_to_dict(cfg)) == cfg
    base = preset("igor-base")
    assert (base.num_latents, base.codebook_size, base.code_dim, base.tau) == (4, 32, 128, 3)
    assert preset("igor-tiny", "control").cameras == (types.CAM_FRONT,)
    with pytest.raises(KeyError, match="did you mean 'igor-tiny'"):
        preset("igor-tny")
    with pytest.raises(ValueError, match="frame_gaps"):
        IGORConfig(frame_gaps=(3,))


@pytest.mark.parametrize("objective", ["lam", "world", "foundation", "control"])
def test_losses_and_gradients(objective: str) -> None:
    policy = make_policy(objective).train()
    usage = policy.lam.vq.usage.clone()
    loss, metrics = policy.compute_loss(fake_batch(policy))
    if objective != "lam":  # a frozen LAM labels in eval mode: no usage updates, no restarts, no gradients
        assert not policy.lam.training and torch.equal(usage, policy.lam.vq.usage)
        assert not any(p.requires_grad for p in policy.lam.parameters())
    assert loss.shape == () and torch.isfinite(loss)
    loss.backward()
    grads = {n: p.grad is not None for n, p in policy.named_parameters() if p.requires_grad}
    assert grads and all(grads.values()), [n for n, g in grads.items() if not g]
    if objective == "lam":
        assert {"recon", "vq", "perplexity", "codes_used", "dead_codes", "code_usage.00"} <= set(metrics)
    if objective == "control":  # the foundation is frozen: only the low-level head trains
        assert not any(p.requires_grad for p in policy.foundation.parameters())
        assert all(p.requires_grad for p in policy.low_level.parameters())


def test_vq_straight_through_gradients() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 4, commitment=0.25, restart_every=0, dead_usage=0.0, decay=0.9).eval()
    z = torch.randn(5, 3, 4, requires_grad=True)
    q = vq(z)
    assert torch.equal(q.codes, vq.nearest(z))
    torch.testing.assert_close(q.quantized, vq.codebook[q.codes])  # forward: the code vectors
    weights = torch.randn(5, 3, 4)
    (q.quantized * weights).sum().backward()
    torch.testing.assert_close(z.grad, weights)  # backward: identity to the encoder output
    assert vq.codebook.grad is None  # the codebook learns only through the VQ loss
    z2 = z.detach().clone().requires_grad_(True)
    q2 = vq(z2)
    q2.loss.backward()
    e = vq.codebook[q2.codes].detach()
    torch.testing.assert_close(z2.grad, 0.25 * 2 * (z2 - e).detach() / z2.numel())  # commitment pulls z to e
    assert vq.codebook.grad is not None and vq.codebook.grad.abs().sum() > 0


def test_collapse_is_detected_and_dead_codes_restart() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 4, commitment=0.25, restart_every=5, dead_usage=0.5, decay=0.5).train()
    z = torch.randn(64, 4)
    assert vq.health(vq(z).codes)["codes_used"] > 8  # the first training forward seeds the codes from z
    with torch.no_grad():
        vq.codebook[1:] = 100.0  # collapse: every input is nearest to code 0
    first = vq(z)
    health = vq.health(first.codes)
    assert health["perplexity"] == pytest.approx(1.0) and health["codes_used"] == 1
    restarted = [vq(z).restarted for _ in range(3)]  # the 5th forward checks: 15 codes' usage EMA is ~0
    assert restarted[-1] == 15 and sum(restarted[:-1]) == 0
    after = vq.health(vq(z).codes)
    assert after["codes_used"] > 8 and after["perplexity"] > 6 and after["dead_codes"] == 0
    vq.eval()
    usage = vq.usage.clone()
    vq(z)
    assert torch.equal(usage, vq.usage)  # evaluation never changes the statistics


def test_rectified_flow_loss_on_a_known_velocity() -> None:
    x1, x0 = torch.full((2, 3, 4, 4), 0.5), torch.zeros(2, 3, 4, 4)
    n = torch.tensor([0.0, 0.25])
    xn, v = flow_pair(x1, x0, n)
    torch.testing.assert_close(xn[0], x0[0]) and torch.testing.assert_close(xn[1], torch.full((3, 4, 4), 0.125))
    torch.testing.assert_close(v, x1 - x0)
    assert flow_loss(v, x1, x0) == 0 and flow_loss(v + 1, x1, x0) == pytest.approx(1.0)
    # An oracle velocity for a one-point data set (x1 = c): v(x, n) = (c - x) / (1 - n) integrates to c.
    policy = make_policy("world")
    world, c = policy.world, torch.rand(1, 3, 32, 32) * 2 - 1
    world.velocity = lambda x, n, history, latent: (c - x) / (1 - n.view(-1, 1, 1, 1))  # type: ignore[method-assign]
    sample = world.sample(torch.zeros(1, 2, 3, 32, 32), torch.zeros(1, 4, 16))
    torch.testing.assert_close(sample, c)


def test_goal_indices_clamp_to_each_episode() -> None:
    np.testing.assert_array_equal(goal_indices(np.array([3, 4]), 2), [2, 2, 2, 5, 6, 6, 6])


def test_label_round_trip_robot_and_human(tmp_path: Path) -> None:
    policy = make_policy("lam").eval()
    ckpt = write_checkpoint(
        tmp_path / "lam", 1, model_state=saved_state(policy), stats={}, training_state={}, keep_last=1,
        config={"method": "igor", "policy_config": config_to_dict(policy.config), "stage": {}, "step": 1},
    )  # fmt: skip
    for kind in ("robot", "human"):
        root = write_dataset(tmp_path / kind, kind, episodes=2, length=10)
        result = label_dataset(root, ckpt)
        assert result.labelled and result.frame_gap == 3
        ds = Dataset(root)
        assert ds.features[types.LATENT_ACTION].shape == (4, 16)
        cam = types.CAM_FRONT if kind == "robot" else types.CAM_EGO
        data = ds.read_episode(1, [types.image_key(cam), types.LATENT_ACTION, types.LATENT_ACTION_CODES])
        frames = data[types.image_key(cam)]
        pairs = torch.from_numpy(np.stack((frames[[0, 8]], frames[[3, 9]]), axis=1))  # goal o_{t+3}, clamped at 9
        codes, vectors = policy.latent_actions(pairs)
        np.testing.assert_array_equal(data[types.LATENT_ACTION_CODES][[0, 8]], codes.numpy())
        np.testing.assert_allclose(data[types.LATENT_ACTION][[0, 8]], vectors.numpy(), atol=1e-5)
        stored = torch.from_numpy(data[types.LATENT_ACTION_CODES].copy())
        np.testing.assert_allclose(policy.lam.vq.lookup(stored).detach().numpy(), data[types.LATENT_ACTION], atol=1e-6)
        mtime = (root / types.INFO_JSON).stat().st_mtime_ns
        assert not label_dataset(root, ckpt).labelled  # resumable: labelled data is left alone
        assert (root / types.INFO_JSON).stat().st_mtime_ns == mtime
        assert label_dataset(root, ckpt, overwrite=True).labelled


def test_label_refuses_a_non_lam_checkpoint(tmp_path: Path) -> None:
    policy = make_policy("world")
    ckpt = write_checkpoint(
        tmp_path / "w", 1, model_state=saved_state(policy), stats={}, training_state={}, keep_last=1,
        config={"method": "igor", "policy_config": config_to_dict(policy.config), "stage": {}, "step": 1},
    )  # fmt: skip
    with pytest.raises(ValueError, match="not an IGOR latent action model"):
        label_dataset(write_dataset(tmp_path / "r", "robot", episodes=1, length=6), ckpt)


def test_predictiveness_separates_informative_from_random_latents() -> None:
    rng = np.random.default_rng(0)
    actions = rng.normal(size=(600, 4))
    informative = predictiveness(actions + 0.05 * rng.normal(size=actions.shape), actions, (2, 8, 64))
    random = predictiveness(rng.normal(size=(600, 8)), actions, (2, 8, 64))
    assert informative[2].mean() < 0.2 and informative[2].mean() < informative[8].mean() < informative[64].mean()
    with pytest.raises(ValueError, match="k >= 2"):
        predictiveness(actions, actions, (1, 8))
    assert all(0.8 < random[k].mean() < 1.1 and informative[k].mean() < 0.7 * random[k].mean() for k in (8, 64))
    np.testing.assert_allclose(spanned_actions(np.arange(8.0).reshape(4, 2), 2), [[1, 2], [3, 4], [5, 6], [6, 7]])


def test_control_chunks_are_absolute_eef_poses_and_other_objectives_refuse() -> None:
    policy = make_policy("control").eval()
    io = policy.io()
    assert io.controls_robot and io.chunk == 3 and io.cameras == (types.CAM_FRONT,)
    state = np.array([0.1, 0.6, 0.2, 1, 0, 0, 0, 0.5], np.float32)
    obs = types.Observation(images={"front": np.zeros((64, 64, 3), np.uint8)}, state=state, task="push")
    chunk = policy.predict_action_chunk(obs)
    assert chunk.kind == types.ACTION_EEF_POSE and chunk.actions.shape == (3, 8)
    np.testing.assert_allclose(np.linalg.norm(chunk.actions[:, 3:7], axis=1), 1.0, atol=1e-5)
    assert np.abs(chunk.actions[:, :3] - state[:3]).max() < 1.0  # deltas are scaled back to metres
    policy.reset()
    np.testing.assert_allclose(policy.predict_action_chunk(obs).actions, chunk.actions, atol=1e-6)
    for objective in ("lam", "foundation"):
        assert not make_policy(objective).io().controls_robot
        with pytest.raises(ValueError, match="not robot actions"):
            make_policy(objective).predict_action_chunk(obs)
    assert replace(policy.config, objective="lam").objective == "lam"
