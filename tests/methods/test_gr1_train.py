"""GR-1 through the real trainer: the two-stage recipe on small synthetic datasets (packaged EfficientNet-Lite0
and MiniLM encoders, feature cache in a temporary directory); both stages' losses must fall and the fine-tuned
checkpoint must act."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from robo4d import types
from robo4d.data.features import Feature
from robo4d.data.writer import DatasetWriter
from robo4d.methods.gr1.recipes import gr1_stages, transfer_map
from robo4d.nn.feature_cache import CACHE_DIR_ENV
from robo4d.train.checkpoint import load_policy
from robo4d.train.metrics_log import METRICS_FILE, read_records
from robo4d.train.optim import OptimConfig
from robo4d.train.recipes import RecipeInputs, baseline_recipe, recipe, recipes_of
from robo4d.train.trainer import run_stages
from robo4d.train.weight_map import resolve

SIDE, LENGTH, EPISODES = 48, 14, 4
VIDEO = Feature(dtype="video", shape=(SIDE, SIDE, 3), names=("height", "width", "channels"))
# Small sizes on the tiny preset's encoders: 64 px Lite0 input (2 x 2 tokens), 32 px predicted frames.
SMALL = {"seq_len": 4, "dim": 64, "n_layers": 2, "n_heads": 2, "resampler_depth": 1, "image_size": 64}
SMALL |= {"image_tokens": 4, "frame_size": 32, "patch_size": 8, "dropout": 0.0}


def scene(t: int, ep: int) -> np.ndarray:
    """(SIDE, SIDE, 3) uint8: a bright square moving right over a gradient, a different row per episode."""
    yy, xx = np.mgrid[0:SIDE, 0:SIDE]
    img = np.stack([2 * xx + 40, 3 * yy + 20, np.full_like(xx, 90 + 20 * ep)], axis=-1).astype(np.float32)
    y, x = 8 + 8 * ep, 4 + 2 * t
    img[y : y + 10, x : x + 10] = (240, 220, 40)
    return img.clip(0, 255).astype(np.uint8)


def write(root: Path, cams: tuple[str, ...], *, robot: bool) -> str:
    features = {types.image_key(cam): VIDEO for cam in cams}
    if robot:
        features |= {
            types.STATE: Feature(dtype="float32", shape=(types.STATE_DIM,)),
            types.ACTION: Feature(dtype="float32", shape=(types.METAWORLD_ACTION_DIM,)),
        }
    writer = DatasetWriter(root, fps=10, features=features, robot_type="sawyer" if robot else None)
    for ep in range(EPISODES):
        video = np.stack([scene(t, ep) for t in range(LENGTH)])  # (T, H, W, 3)
        frames = {types.image_key(cam): video if i == 0 else video[:, ::-1].copy() for i, cam in enumerate(cams)}
        if robot:
            t = np.arange(LENGTH, dtype=np.float32)
            state = np.zeros((LENGTH, types.STATE_DIM), np.float32)
            state[:, 0], state[:, 1], state[:, 2] = 0.01 * t, 0.1 * ep, 0.2
            state[:, 3] = 1.0  # identity orientation (w = 1)
            state[:, 7] = (t < LENGTH // 2).astype(np.float32)  # open, then closed
            frames[types.STATE] = state
            frames[types.ACTION] = np.zeros((LENGTH, types.METAWORLD_ACTION_DIM), np.float32)
        writer.add_episode(frames, task="push the block" if ep % 2 else "reach the goal")
    writer.finalize({"world": "synthetic"})
    return str(root)


def test_transfer_maps_cover_the_finetune_policy() -> None:
    """Every finetune tensor is loaded or re-initialised by exactly one rule, with and without the video loss."""
    from robo4d.methods.gr1 import GR1Policy, preset

    for video in (True, False):
        with torch.device("meta"):
            names = sorted(GR1Policy(preset("gr1-tiny", "finetune", video_loss=video)).state_dict())
        actions = resolve(transfer_map(video), names)
        loaded = {n for n, a in actions.items() if a == "load"}
        assert "model.trunk.h.0.attn.c_attn.weight" in loaded and "model.embed_img.0.weight" in loaded
        assert "model.embed_img.1.weight" not in loaded and "model.action_head.arm.weight" not in loaded
        assert ("model.decoder.decoder_pred.weight" in loaded) == video


def test_recipes_are_registered() -> None:
    assert set(recipes_of("gr1")) == {"gr1-2stage", "gr1-scratch", "gr1-no-video", "gr1-scratch-no-video"}
    assert baseline_recipe("gr1") == "gr1-scratch"
    inputs = RecipeInputs(human=("h",), robot=("r",))
    stages = recipe("gr1-2stage").stages(inputs, name="gr1-2stage")
    assert [s.name for s in stages] == ["pretrain", "finetune"] and stages[1].init_from == "pretrain"
    assert stages[0].policy.cameras == ("ego",) and stages[1].policy.video_loss
    ablation = recipe("gr1-scratch-no-video").stages(RecipeInputs(robot=("r",)), name="x")
    assert [s.name for s in ablation] == ["finetune"] and not ablation[0].policy.video_loss
    with pytest.raises(ValueError, match="needs --human"):
        recipe("gr1-no-video").stages(RecipeInputs(robot=("r",)), name="gr1-no-video")
    with pytest.raises(ValueError, match="belongs to method 'arm4r'"):
        recipe("gr1-2stage").stages(RecipeInputs(preset="arm4r-tiny", human=("h",), robot=("r",)), name="gr1-2stage")


def _falls(stage_dir: Path, key: str | None = None) -> tuple[float, float]:
    records = read_records(stage_dir / METRICS_FILE)
    values = [r["loss"] if key is None else r["metrics"][key] for r in records]
    return float(np.mean(values[:3])), float(np.mean(values[-3:]))


@pytest.mark.parametrize("video_loss", [True, pytest.param(False, marks=pytest.mark.slow)], ids=["2stage", "no-video"])
def test_two_stage_run_losses_fall(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, video_loss: bool) -> None:
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    torch.manual_seed(0)
    human = write(tmp_path / "human", (types.CAM_EGO,), robot=False)
    robot = write(tmp_path / "robot", (types.CAM_FRONT, types.CAM_WRIST), robot=True)
    common = {"steps": 24, "batch_size": 8, "log_every": 1, "eval_every": 24, "num_workers": 0, "val_fraction": 0.0}
    stages = gr1_stages(
        "gr1-tiny",
        human=(human,),
        robot=(robot,),
        video_loss=video_loss,
        pretrain={**common, "optim": OptimConfig(lr=2e-3, warmup_fraction=0.1)},
        finetune={**common, "optim": OptimConfig(lr=2e-3, warmup_fraction=0.1)},
    )
    stages = tuple(replace(s, policy=replace(s.policy, **SMALL)) for s in stages)
    run = tmp_path / "run"
    run_stages(stages, run, progress=False)
    first, last = _falls(run / "pretrain")
    assert last < 0.8 * first, f"pretrain video loss {first:.3f} -> {last:.3f}"
    first, last = _falls(run / "finetune", "arm_smooth_l1")
    assert last < 0.8 * first, f"finetune arm loss {first:.3f} -> {last:.3f}"
    policy = load_policy(run / "finetune")
    assert policy.io().action_kind == types.ACTION_EEF_POSE and policy.io().cameras == ("front", "wrist")
    policy.reset()
    obs = types.Observation(
        images={"front": scene(0, 0), "wrist": scene(0, 0)[:, ::-1].copy()},
        state=np.array([0, 0, 0.2, 1, 0, 0, 0, 1], np.float32),
        task="reach the goal",
    )
    chunk = policy.predict_action_chunk(obs)
    assert chunk.actions.shape == (1, 8) and np.isfinite(chunk.actions).all()
