"""ARM4R fitted to the data: points and cameras from the dataset, the joint-space control head (robo4d's
extension) with the dataset's normalisation, and its place in the 2 -> 3 weight map."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch

from robo4d import types
from robo4d.methods.arm4r import ARM4RPolicy, preset
from robo4d.methods.arm4r.recipes import transfer_map
from robo4d.train.checkpoint import saved_state
from robo4d.train.weight_map import apply_weight_map

P, A = 6, 5  # joint state and action widths of the test robot


@dataclass(frozen=True)
class F:
    shape: tuple[int, ...]
    names: tuple[str, ...] | None = None


def joint_features(cameras: tuple[str, ...] = ("front",)) -> dict[str, F]:
    features = {types.image_key(c): F((32, 32, 3)) for c in cameras}
    return features | {types.STATE: F((P,), tuple(f"j{i}" for i in range(P))), types.ACTION: F((A,))}


def joint_policy(attach_fakes) -> ARM4RPolicy:
    base = replace(preset("arm4r-tiny", 3), seq_len=3, horizon=2, image_size=32)
    cfg = ARM4RPolicy.fit_config(base, joint_features())
    policy = attach_fakes(ARM4RPolicy(cfg))
    rng = np.random.default_rng(0)
    policy.set_normalization({
        types.STATE: {"mean": rng.normal(size=P), "std": rng.uniform(0.5, 2, P)},
        types.ACTION: {"mean": rng.normal(size=A), "std": rng.uniform(0.5, 2, A)},
    })  # fmt: skip
    return policy


def test_fit_config_reads_the_dataset() -> None:
    eef = {types.STATE: F((8,), types.EEF_STATE_NAMES), types.image_key("front"): F((8, 8, 3)),
           types.image_key("wrist"): F((8, 8, 3))}  # fmt: skip
    cfg = ARM4RPolicy.fit_config(preset("arm4r-tiny", 3), eef)
    assert (cfg.control_space, cfg.cameras, cfg.input_dim) == ("eef_pose", ("front", "wrist"), 10)
    cfg = ARM4RPolicy.fit_config(preset("arm4r-tiny", 3), joint_features())
    assert (cfg.control_space, cfg.cameras, cfg.input_dim, cfg.action_dim) == ("joint", ("front", "front"), P, A)
    points = {types.points_key("ego"): F((1296, 3))}
    assert (
        ARM4RPolicy.fit_config(replace(preset("arm4r-tiny", 1), points_prefix=types.POINTS_PREFIX), points).num_points
        == 1296
    )
    with pytest.raises(ValueError, match=r"feature observation.points.ego has shape \(1296,\), expected \(N, 3\)"):
        ARM4RPolicy.fit_config(replace(preset("arm4r-tiny", 1), points_prefix=types.POINTS_PREFIX),
                               {types.points_key("ego"): F((1296,))})  # fmt: skip
    with pytest.raises(ValueError, match="feature observation.state: shape"):
        ARM4RPolicy.fit_config(preset("arm4r-tiny", 3), {types.STATE: F((2, 3)), types.ACTION: F((A,))})


def test_joint_targets_are_the_next_k_normalised_actions(attach_fakes) -> None:
    policy = joint_policy(attach_fakes)
    cfg, norm = policy.config, policy.normalizer
    t, k = cfg.seq_len, cfg.horizon
    g = torch.Generator().manual_seed(1)
    pad = torch.zeros(2, t + k, dtype=torch.bool)
    pad[1, -2:] = True
    batch = {types.STATE: torch.randn(2, t + k, P, generator=g), types.ACTION: torch.randn(2, t + k, A, generator=g),
             types.PAD_MASK: pad, types.TASK: ["fold", "fold"]}  # fmt: skip
    for cam in ("front",):
        batch[types.image_tokens_key(cam)] = torch.randn(2, t + k, cfg.image_tokens, cfg.image_dim, generator=g)
    proprio, target, valid = policy.targets(batch)
    assert proprio.shape == (2, t, P) and target.shape == (2, t, k, A) and valid.shape == (2, t, k)
    for step in range(t):
        for j in range(k):
            expected = (batch[types.ACTION][:, step + j] - norm.action_mean) / norm.action_std
            torch.testing.assert_close(target[:, step, j], expected)
            assert valid[1, step, j] == (step + j < t + k - 2)
    torch.testing.assert_close(proprio, (batch[types.STATE][:, :t] - norm.state_mean) / norm.state_std)
    loss, _ = policy.compute_loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and policy.model.action_decoder.fc2.weight.grad is not None


def test_joint_chunks_come_back_in_the_dataset_units(attach_fakes) -> None:
    policy = joint_policy(attach_fakes).eval()
    io = policy.io()
    assert (io.state_kind, io.state_dim, io.action_kind, io.action_dim, io.chunk) == ("joint", P, "joint", A, 2)
    assert policy.data_spec().shapes == {types.STATE: (P,), types.ACTION: (A,)}
    obs = types.Observation(images={"front": np.zeros((32, 32, 3), np.uint8)}, state=np.ones(P, np.float32), task="t")
    first = policy.predict_action_chunk(obs)
    assert first.kind == types.ACTION_JOINT and first.actions.shape == (2, A)
    second = policy.predict_action_chunk(obs)  # its previous first row is now in the context
    policy.reset()
    np.testing.assert_allclose(policy.predict_action_chunk(obs).actions, first.actions, rtol=1e-5, atol=1e-6)
    assert not np.allclose(second.actions, first.actions)
    with pytest.raises(ValueError, match=rf"Observation.state: expected shape \({P},\), got \(8,\)"):
        policy.predict_action_chunk(replace(obs, state=np.ones(8, np.float32)))
    with pytest.raises(ValueError, match=r"stats of action: expected mean and std of shape \(5,\)"):
        policy.set_normalization({types.STATE: {"mean": np.zeros(P), "std": np.ones(P)}, types.ACTION: {}})


def test_points_stage_seeds_a_joint_control_stage(attach_fakes) -> None:
    stage2 = ARM4RPolicy(preset("arm4r-tiny", 2))
    joint = joint_policy(attach_fakes)
    state = apply_weight_map(saved_state(joint), saved_state(stage2), transfer_map(joint.config), source_name="s2")
    assert torch.equal(
        state["model.trunk.layers.0.attention.wq.weight"], stage2.model.trunk.layers[0].attention.wq.weight
    )
    assert torch.equal(state["normalizer.action_mean"], joint.normalizer.action_mean)  # the new dataset's stats
