"""The training loop on the toy method: exact resume, NaN stop, stage chaining, data errors."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from unittest.mock import patch

import pytest
import torch
from train_toy import TOY_BACKEND, ToyConfig, ToyDataset, ToyPolicy, ToyWindows, toy_stage

from robo4d.train.checkpoint import load_policy, read_config, resolve_checkpoint
from robo4d.train.loader import DataBackend, MissingFeaturesError
from robo4d.train.metrics_log import read_records
from robo4d.train.trainer import TrainingDiverged, run_stage, stage_complete
from robo4d.train.weight_map import INIT, WeightMap, WeightMapError, WeightRule, keep_except, load_all


def _losses(stage_dir: Path) -> list[float]:
    return [r["loss"] for r in read_records(stage_dir / "metrics.jsonl")]


def test_resume_continues_exactly(toy_root: Path, tmp_path: Path) -> None:
    # Noise in compute_loss draws from torch's RNG and 6 steps of batch 4 cross an epoch boundary, so this
    # checks that weights, optimiser, scheduler, RNG and the data position all come back.
    stage = toy_stage(toy_root, steps=12, save_every=3, eval_every=5, policy=ToyConfig(noise=0.1))
    run_stage(stage, tmp_path / "full", backend=TOY_BACKEND, progress=False)
    run_stage(stage, tmp_path / "split", backend=TOY_BACKEND, progress=False, stop_at=6)
    assert len(_losses(tmp_path / "split" / "s1")) == 6 and not stage_complete(tmp_path / "split", stage)
    run_stage(stage, tmp_path / "split", backend=TOY_BACKEND, progress=False, resume=True)
    full, split = _losses(tmp_path / "full" / "s1"), _losses(tmp_path / "split" / "s1")
    assert len(full) == 12 and split == full  # bitwise: float32 losses compare exactly
    vals = [r["val_loss"] for r in read_records(tmp_path / "split" / "s1" / "metrics.jsonl")]
    assert vals == [r["val_loss"] for r in read_records(tmp_path / "full" / "s1" / "metrics.jsonl")]
    a, b = load_policy(tmp_path / "full"), load_policy(tmp_path / "split")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    # A complete stage is returned untouched on a re-run with --resume.
    done = run_stage(stage, tmp_path / "full", backend=TOY_BACKEND, resume=True)
    assert done.checkpoint == resolve_checkpoint(tmp_path / "full" / "s1")
    resumed = done.policy.state_dict()
    assert all(torch.equal(x, resumed[k]) for k, x in a.state_dict().items())


def test_existing_stage_without_resume_is_an_error(toy_root: Path, tmp_path: Path) -> None:
    stage = toy_stage(toy_root, steps=2)
    run_stage(stage, tmp_path, backend=TOY_BACKEND, progress=False)
    with pytest.raises(FileExistsError, match="--resume"):
        run_stage(stage, tmp_path, backend=TOY_BACKEND, progress=False)
    with pytest.raises(ValueError, match="another method or policy config"):
        run_stage(replace(stage, policy=ToyConfig(hidden=8)), tmp_path, backend=TOY_BACKEND, resume=True)


def test_a_run_saved_before_a_defaulted_option_existed_still_resumes(toy_root: Path, tmp_path: Path) -> None:
    stage = toy_stage(toy_root, steps=2)
    run_stage(stage, tmp_path, backend=TOY_BACKEND, progress=False)
    config_file = resolve_checkpoint(tmp_path / "s1") / "config.json"
    saved = json.loads(config_file.read_text())
    del saved["policy_config"]["noise"]  # as written by a version without the option (default 0.0)
    config_file.write_text(json.dumps(saved))
    done = run_stage(stage, tmp_path, backend=TOY_BACKEND, progress=False, resume=True)
    assert done.checkpoint == resolve_checkpoint(tmp_path / "s1")
    with pytest.raises(ValueError, match="another method or policy config"):  # a non-default value still differs
        run_stage(replace(stage, policy=ToyConfig(noise=0.1)), tmp_path, backend=TOY_BACKEND, resume=True)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(toy_root: Path, tmp_path: Path) -> None:
    stage = toy_stage(toy_root, steps=10, save_every=4, policy=ToyConfig(nan_at_call=6))
    with pytest.raises(TrainingDiverged, match=r"loss is nan at step 6; .*step_0000004"):
        run_stage(stage, tmp_path, backend=TOY_BACKEND, progress=False)
    assert read_config(resolve_checkpoint(tmp_path / "s1"))["step"] == 4
    assert [r["step"] for r in read_records(tmp_path / "s1" / "metrics.jsonl")] == [1, 2, 3, 4, 5]


def test_missing_features_name_the_producing_command(toy_root: Path, tmp_path: Path) -> None:
    policy = ToyConfig(keys=("observation.state", "observation.points.ego", "observation.depth.ego"))
    with pytest.raises(MissingFeaturesError) as e:
        run_stage(toy_stage(toy_root, policy=policy), tmp_path, backend=TOY_BACKEND, progress=False)
    msg = str(e.value)
    assert str(toy_root) in msg
    assert "lacks feature observation.points.ego (produced by `robo4d extract tracks`)" in msg
    assert "lacks feature observation.depth.ego" in msg and "observation.state" not in msg
    assert "\n" not in msg


def test_stage_chain_with_weight_map(toy_root: Path, tmp_path: Path) -> None:
    s1 = toy_stage(toy_root, steps=4)
    run_stage(s1, tmp_path, backend=TOY_BACKEND, progress=False)
    first = load_policy(tmp_path / "s1")
    # Stage 2 changes the decoder's shape: it, the proprio encoder and the normalisation are re-initialised.
    wm = WeightMap(
        rules=(
            *keep_except(("image_norm", "blocks"), ("proprio_encoder", "action_decoder")).rules,
            WeightRule(pattern="state_*", action=INIT),
        )
    )
    s2 = toy_stage(toy_root, name="s2", steps=1, policy=ToyConfig(out_scale=2), init_from="s1", weight_map=wm)
    run_stage(replace(s2, optim=replace(s2.optim, lr=1e-12)), tmp_path, backend=TOY_BACKEND, progress=False)
    second = load_policy(tmp_path / "s2")
    assert torch.allclose(second.blocks[0].weight, first.blocks[0].weight, atol=1e-9)
    assert second.action_decoder.weight.shape == (4, 24)
    assert read_config(resolve_checkpoint(tmp_path / "s2"))["init_from"] == str(resolve_checkpoint(tmp_path / "s1"))
    # Loading everything into the wider decoder is refused, naming the mismatched tensors.
    bad = replace(s2, name="s3", weight_map=load_all())
    with pytest.raises(WeightMapError, match=r"action_decoder.weight: checkpoint \(2, 24\) vs policy \(4, 24\)"):
        run_stage(bad, tmp_path, backend=TOY_BACKEND, progress=False)


def test_init_from_incomplete_stage_is_refused(toy_root: Path, tmp_path: Path) -> None:
    run_stage(toy_stage(toy_root, steps=4), tmp_path, backend=TOY_BACKEND, progress=False, stop_at=2)
    s2 = toy_stage(toy_root, name="s2", init_from="s1", weight_map=load_all())
    with pytest.raises(ValueError, match="incomplete"):
        run_stage(s2, tmp_path, backend=TOY_BACKEND, progress=False)
    with pytest.raises(FileNotFoundError, match="neither a trained stage"):
        run_stage(replace(s2, init_from="nope"), tmp_path, backend=TOY_BACKEND, progress=False)


def test_metrics_records(toy_root: Path, tmp_path: Path) -> None:
    run_stage(toy_stage(toy_root, steps=4, log_every=2, eval_every=2), tmp_path, backend=TOY_BACKEND, progress=False)
    records = [json.loads(line) for line in (tmp_path / "s1" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    assert set(records[0]) >= {"step", "stage", "loss", "lr", "metrics", "samples_per_s", "val_loss"}
    assert all(r["val_loss"] is not None and r["stage"] == "s1" for r in records)


def test_frame_source_keys_are_not_read_from_the_dataset(toy_root: Path, tmp_path: Path) -> None:
    # A key the policy gets from frame_sources (e.g. cached image tokens) counts as present, and the window
    # dataset is asked only for the remaining dataset keys.
    seen: list[tuple[str, ...]] = []

    def windows(dataset, *, keys, frame_sources, **kw):  # noqa: ANN001, ANN003, ANN202
        seen.append(keys)
        assert set(frame_sources) == {"frozen.image_tokens.ego"}
        return ToyWindows(dataset, keys=keys, frame_sources=frame_sources, **kw)

    policy = ToyConfig(keys=("observation.state", "action", "frozen.image_tokens.ego"))
    backend = DataBackend(open_dataset=ToyDataset, make_windows=windows)
    with patch.object(ToyPolicy, "frame_sources", lambda self, ds: {"frozen.image_tokens.ego": lambda idx: idx}):
        run_stage(toy_stage(toy_root, steps=1, policy=policy), tmp_path, backend=backend, progress=False)
    assert seen and all(keys == ("observation.state", "action") for keys in seen)
