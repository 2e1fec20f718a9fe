"""Checkpoint layout, round trip through load_policy, and clear errors for corrupted files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from train_toy import TOY_BACKEND, ToyConfig, ToyPolicy, toy_stage

from robo4d.config import config_to_dict
from robo4d.train.checkpoint import (
    CONFIG_FILE,
    MODEL_FILE,
    STATE_FILE,
    STATS_FILE,
    CheckpointError,
    frozen_sources,
    load_policy,
    read_training_state,
    resolve_checkpoint,
    saved_names,
    saved_state,
    write_checkpoint,
)
from robo4d.train.trainer import run_stage
from robo4d.types import STATE, Observation


@pytest.fixture
def trained(toy_root: Path, tmp_path: Path) -> Path:
    run_stage(toy_stage(toy_root, steps=4, keep_last=1), tmp_path / "run", backend=TOY_BACKEND, progress=False)
    return tmp_path / "run"


def test_layout_pointers_and_frozen_encoder_not_saved(trained: Path) -> None:
    ckpt = resolve_checkpoint(trained)  # run/last -> s1, s1/last -> checkpoints/step_0000004
    assert ckpt == trained / "s1" / "checkpoints" / "step_0000004"
    assert sorted(p.name for p in ckpt.iterdir()) == sorted([MODEL_FILE, CONFIG_FILE, STATS_FILE, STATE_FILE])
    assert [p.name for p in (trained / "s1" / "checkpoints").iterdir()] == ["step_0000004"]  # keep_last=1
    config = json.loads((ckpt / CONFIG_FILE).read_text())
    assert config["format_version"] == 1 and config["method"] == "toy" and config["step"] == 4
    assert config["stage"]["name"] == "s1" and config["datasets"][0]["num_episodes"] == 6
    names = saved_names(ToyPolicy(toy_stage(Path()).policy))
    assert "state_mean" in names and "blocks.0.weight" in names
    assert not any(n.startswith("encoder.") for n in names)  # weights and BatchNorm buffers of the frozen encoder
    state = read_training_state(ckpt)
    assert state["step"] == 4 and set(state) >= {"optimizer", "scheduler", "rng", "epoch", "batch_in_epoch"}


def test_load_policy_round_trip(trained: Path) -> None:
    policy = load_policy(trained / "s1")
    again = load_policy(resolve_checkpoint(trained))
    assert not policy.training
    for (name, a), b in zip(policy.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    stats = json.loads((resolve_checkpoint(trained) / STATS_FILE).read_text())
    assert np.allclose(policy.state_mean.numpy(), stats[STATE]["mean"])
    obs = Observation(images={}, state=np.ones(8, np.float32), task="t")
    assert policy.predict_action_chunk(obs).actions.shape == (1, 2)


@pytest.mark.parametrize(
    ("file", "corrupt", "match"),
    [
        (MODEL_FILE, lambda p: p.write_bytes(p.read_bytes()[:40]), "cannot read the weights"),
        (CONFIG_FILE, lambda p: p.write_text("{not json"), "cannot read the checkpoint config"),
        (CONFIG_FILE, lambda p: p.write_text(json.dumps({"format_version": 99})), "format_version is 99"),
        (STATS_FILE, lambda p: p.write_text("[1, 2"), "cannot read the normalisation stats"),
    ],
)
def test_corrupted_checkpoint_names_the_file(trained: Path, file: str, corrupt, match: str) -> None:
    path = resolve_checkpoint(trained) / file
    corrupt(path)
    with pytest.raises(CheckpointError, match=match) as e:
        load_policy(trained)
    assert str(path) in str(e.value)


def test_truncated_training_state_names_the_file(trained: Path) -> None:
    path = resolve_checkpoint(trained) / STATE_FILE
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="cannot read the training state") as e:
        read_training_state(path.parent)
    assert str(path) in str(e.value)


def test_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_policy(tmp_path)


def test_frozen_learned_module_is_saved_and_restored(tmp_path: Path) -> None:
    # A frozen module with no named weight source (e.g. a latent action model trained in an earlier stage)
    # must come back with its weights, not as a fresh random init.
    stage = toy_stage(tmp_path, policy=ToyConfig(frozen_learned=True))
    policy = ToyPolicy(stage.policy)
    with torch.no_grad():
        policy.labeller.weight.fill_(0.25)
    assert "labeller.weight" in saved_names(policy) and not any(n.startswith("encoder.") for n in saved_names(policy))
    config = {
        "method": "toy", "policy_config": config_to_dict(stage.policy), "stage": config_to_dict(stage), "step": 1,
        "frozen_sources": frozen_sources(policy),
    }  # fmt: skip
    ckpt = write_checkpoint(
        tmp_path / "run" / "s1", 1, model_state=saved_state(policy), config=config, training_state={},
        stats={STATE: {"mean": np.zeros(3), "std": np.ones(3)}},
        keep_last=1,
    )  # fmt: skip
    assert torch.equal(load_policy(ckpt).labeller.weight, torch.full((8, 3), 0.25))


def test_frozen_source_mismatch_is_refused(trained: Path) -> None:
    ckpt = resolve_checkpoint(trained)
    config = json.loads((ckpt / CONFIG_FILE).read_text())
    assert config["frozen_sources"] == {"encoder": "toy encoder (fixed init, seed 1234)"}
    config["frozen_sources"] = {}
    (ckpt / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="frozen modules were saved as rebuilt from"):
        load_policy(ckpt)


def test_config_records_io_and_camera_map(trained: Path) -> None:
    config = json.loads((resolve_checkpoint(trained) / CONFIG_FILE).read_text())
    assert config["camera_map"] == {}
    assert config["io"] == {
        "cameras": ["toy"], "image_size": [1, 1], "state_kind": "joint", "state_dim": 3, "action_kind": "toy",
        "action_dim": 2, "chunk": 1,
    }  # fmt: skip
