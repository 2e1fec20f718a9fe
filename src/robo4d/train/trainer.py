"""The one trainer: runs a stage of any registered method through the Policy interface alone.

Flow of `run_stage`: open the data the policy's data_spec asks for -> build the policy (fresh, from
`init_from` through the weight map, or from the stage's own last checkpoint on resume) -> wrap it for the
parallel mode -> AdamW + warmup/cosine -> loop: batch -> compute_loss -> backward -> step, logging,
validating and checkpointing on rank 0. Precision (bf16 autocast on CUDA, fp32 on CPU) is applied here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from robo4d.config import config_from_dict, config_to_dict
from robo4d.methods.base import Policy, build_policy, method_entry
from robo4d.train import parallelize
from robo4d.train.camera_map import open_mapped
from robo4d.train.checkpoint import (
    CHECKPOINTS_DIR,
    LAST_FILE,
    MODEL_FILE,
    CheckpointError,
    frozen_sources,
    load_policy,
    load_saved_state,
    read_config,
    read_model,
    read_stats,
    read_training_state,
    resolve_checkpoint,
    saved_state,
    step_dir_name,
    write_checkpoint,
)
from robo4d.train.loader import (
    DataBackend,
    StageData,
    check_features,
    lerobot_backend,
    open_stage_data,
    train_loader,
    val_loader,
)
from robo4d.train.metrics_log import MetricsLog
from robo4d.train.optim import build_optimizer, build_scheduler
from robo4d.train.parallelize import DistInfo
from robo4d.train.stage import StageConfig
from robo4d.train.weight_map import apply_weight_map


@dataclass(frozen=True)
class StageResult:
    checkpoint: Path  # the stage's last checkpoint directory
    policy: Policy  # the trained policy (unwrapped, eval mode); under FSDP its parameters stay sharded


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left untouched."""


def stage_complete(run_dir: Path, stage: StageConfig) -> bool:
    """Whether the stage's last checkpoint already holds all its steps."""
    try:
        return read_config(resolve_checkpoint(Path(run_dir) / stage.name))["step"] >= stage.steps
    except CheckpointError:
        return False


def _plain(obj: Any) -> Any:
    """JSON round trip, so configs compare equal however tuples/lists were spelled."""
    return json.loads(json.dumps(obj))


def _saved_policy(saved: dict[str, Any], ckpt: Path) -> Any:
    """A checkpoint's policy config as this version spells it: fields added since it was saved take their
    defaults, so a run saved before a new (default-off) option existed still resumes."""
    cls = method_entry(saved["method"]).config_cls
    return _plain(config_to_dict(config_from_dict(cls, saved["policy_config"], where=f"{ckpt}:policy_config")))


def _source_checkpoint(stage: StageConfig, run_dir: Path) -> Path:
    assert stage.init_from is not None
    sibling = run_dir / stage.init_from
    if (sibling / LAST_FILE).is_file():
        ckpt = resolve_checkpoint(sibling)
        config = read_config(ckpt)
        if config["step"] < config["stage"]["steps"]:
            raise ValueError(
                f"stage {stage.name!r}: init_from stage {stage.init_from!r} is incomplete "
                f"({ckpt} is step {config['step']} of {config['stage']['steps']}); finish it first (--resume)"
            )
        return ckpt
    path = Path(stage.init_from)
    if not path.exists():
        raise FileNotFoundError(
            f"stage {stage.name!r}: init_from {stage.init_from!r} is neither a trained stage in {run_dir} "
            "nor an existing checkpoint path"
        )
    return resolve_checkpoint(path)


def _check_source(policy: Policy, stage: StageConfig, ckpt: Path) -> None:
    """The init_from checkpoint must suit the policy fitted to this stage's data (one line if not)."""
    config = read_config(ckpt)
    if config["method"] != stage.method:
        raise ValueError(
            f"stage {stage.name!r}: init_from {ckpt} is a {config['method']!r} checkpoint, not {stage.method!r}"
        )
    try:
        policy.check_init_from(config["policy_config"])
    except ValueError as e:
        raise ValueError(f"stage {stage.name!r} on {', '.join(stage.datasets)}: init_from {ckpt}: {e}") from None


def _init_from(policy: Policy, stage: StageConfig, ckpt: Path) -> None:
    assert stage.weight_map is not None
    source = str(ckpt / MODEL_FILE)
    state = apply_weight_map(saved_state(policy), read_model(ckpt), stage.weight_map, source_name=source)
    load_saved_state(policy, state, source=source)


def fit_stage(stage: StageConfig, backend: DataBackend) -> tuple[list[tuple[Path, Any]], Any]:
    """The stage's datasets opened (metadata only) under the policy's camera names, and its policy config
    fitted to the first of them (number of points, state and action widths: Policy.fit_config)."""
    datasets = open_mapped(stage.datasets, stage.camera_map, backend.open_dataset)
    root, first = datasets[0]
    try:
        config = method_entry(stage.method).policy_cls.fit_config(stage.policy, first.features)
    except ValueError as e:
        raise ValueError(f"{root}: {e}") from None
    return datasets, config


# --- RNG state ----------------------------------------------------------------------------------------------


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state(legacy=False)
    state = {
        "python": random.getstate(),
        "numpy": {**np_state, "state": {**np_state["state"], "key": np_state["state"]["key"].tolist()}},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate((state["python"][0], tuple(state["python"][1]), state["python"][2]))
    np_state = state["numpy"]
    key = np.asarray(np_state["state"]["key"], dtype=np.uint32)
    np.random.set_state({**np_state, "state": {**np_state["state"], "key": key}})
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


# --- the loop -----------------------------------------------------------------------------------------------


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def _autocast(device: torch.device) -> contextlib.AbstractContextManager:
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()  # fp32 eager on CPU: bf16 CPU kernels are slow and change the numerics


def _validate(policy: Policy, loader: Any, info: DistInfo) -> float:
    """Mean validation loss over ranks. RNG state is restored afterwards so validating (or not, e.g. after a
    resume) never shifts the training run's random stream."""
    policy.eval()
    devices = [info.device] if info.device.type == "cuda" else []
    with torch.no_grad(), torch.random.fork_rng(devices=devices), _autocast(info.device):
        losses = [policy.compute_loss(_to_device(b, info.device))[0].float() for b in loader]
    policy.train()
    return float(parallelize.all_mean(torch.stack(losses).mean(), info))


def _existing(stage_dir: Path, resume: bool) -> Path | None:
    if not (stage_dir / LAST_FILE).is_file():
        return None
    if not resume:
        raise FileExistsError(
            f"{stage_dir} already holds checkpoints; pass --resume to continue it or pick another --out"
        )
    return resolve_checkpoint(stage_dir)


def run_stage(
    stage: StageConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    parallel: str = "none",
    stop_at: int | None = None,
    progress: bool = True,
    backend: DataBackend | None = None,
) -> StageResult:
    """Train one stage into `run_dir/stage.name`; return its last checkpoint and the trained policy.

    resume: continue from the stage's last checkpoint (exactly: same batches, RNG and optimiser state);
        without it an existing stage directory is an error. A complete stage is returned as is.
    parallel: "none", "ddp" or "fsdp" (effective under torchrun only).
    stop_at: end this invocation after this step with a checkpoint (e.g. to fit a job's time limit); the lr
        schedule still spans `stage.steps`.
    backend: how datasets are opened and windowed (default: the project's LeRobot reader).
    """
    run_dir = Path(run_dir)
    stage_dir = run_dir / stage.name
    info = parallelize.init_distributed()
    if stage.batch_size % info.world_size:
        raise ValueError(
            f"stage {stage.name!r}: batch_size {stage.batch_size} is not divisible by {info.world_size} ranks"
        )
    backend = backend or lerobot_backend()
    datasets, policy_config = fit_stage(stage, backend)
    resume_from = _existing(stage_dir, resume)
    if resume_from is not None:
        saved = read_config(resume_from)
        wanted = _plain(config_to_dict(policy_config))
        if saved["method"] != stage.method or _saved_policy(saved, resume_from) != wanted:
            raise ValueError(f"{resume_from}: was trained with another method or policy config; cannot resume it")
        if saved["step"] >= stage.steps:
            return StageResult(resume_from, load_policy(resume_from))
    end = stage.steps if stop_at is None else min(stop_at, stage.steps)

    torch.manual_seed(stage.seed)  # identical initial weights on every rank and in every rerun
    policy = build_policy(stage.method, policy_config)
    policy.to(info.device)  # first, so frozen encoders building feature caches run on the training device
    spec = policy.data_spec()
    for root, dataset in datasets:  # everything cheap is checked before a frame source encodes anything
        check_features(root, dataset, spec)
    source = _source_checkpoint(stage, run_dir) if stage.init_from is not None and resume_from is None else None
    if source is not None:
        _check_source(policy, stage, source)
    # Rank 0 opens the data first (building any feature cache once); the others wait, then find it built.
    if not info.is_main:
        parallelize.barrier(info)
    data = open_stage_data(datasets, policy, spec, val_fraction=stage.val_fraction, seed=stage.seed, backend=backend)
    if info.is_main:
        parallelize.barrier(info)
    if resume_from is not None:
        policy.set_normalization(read_stats(resume_from))
        load_saved_state(policy, read_model(resume_from), source=str(resume_from / MODEL_FILE))
        state = read_training_state(resume_from)
        start = int(state["step"])
    else:
        policy.set_normalization(data.stats)
        if source is not None:
            _init_from(policy, stage, source)
        state, start, saved = None, 0, {"init_from": str(source) if source is not None else None}
    policy.to(info.device).train()
    model = parallelize.wrap(policy, parallel, info)
    optimizer = build_optimizer(policy, stage.optim)
    scheduler = build_scheduler(optimizer, stage.optim, stage.steps)
    if state is not None:
        parallelize.load_optimizer_state(policy, optimizer, state["optimizer"], parallel)
        scheduler.load_state_dict(state["scheduler"])
        rngs = state["rng"]
        if len(rngs) == info.world_size:
            _set_rng_state(rngs[info.rank])
        else:  # a different process count: the batch stream is unchanged, only per-rank randomness restarts
            _seed_everything(stage.seed * 1000 + start * 100 + info.rank)
    else:
        _seed_everything(stage.seed * 1000 + info.rank)

    loader, sampler = train_loader(
        data.train, stage.batch_size, seed=stage.seed, start=start, rank=info.rank, world=info.world_size,
        num_workers=stage.num_workers,
    )  # fmt: skip
    val = None
    if data.val is not None and len(data.val) >= info.world_size:
        val = val_loader(
            data.val, stage.batch_size, max_batches=stage.val_batches, rank=info.rank, world=info.world_size
        )
    log = MetricsLog(stage_dir, stage.name, resume_step=start, enabled=info.is_main)
    meta = {
        "method": stage.method,
        "policy_config": config_to_dict(policy_config),  # fitted to the data: what load_policy rebuilds
        "stage": config_to_dict(stage),
        "datasets": data.identities,
        "init_from": saved["init_from"],  # the source checkpoint this stage's weights started from
        "parallel": parallel,
        "world_size": info.world_size,
        "io": dataclasses.asdict(policy.io()),  # what eval and serve feed the policy and get back
        "camera_map": dict(stage.camera_map),  # dataset camera -> policy camera
        "frozen_sources": frozen_sources(policy),  # left-out modules and the weights they are rebuilt from
    }

    def save(step: int) -> Path:
        # Every rank takes part (FSDP gathers shards, RNG states are collected); rank 0 writes.
        model_state = parallelize.full_tensors(saved_state(policy))
        epoch, batch_in_epoch = sampler.position(step)
        training_state = {
            "step": step,
            "epoch": epoch,
            "batch_in_epoch": batch_in_epoch,
            "optimizer": parallelize.optimizer_state(policy, optimizer, parallel),
            "scheduler": scheduler.state_dict(),
            "rng": parallelize.all_gather_objects(_rng_state(), info),
        }
        path = stage_dir / CHECKPOINTS_DIR / step_dir_name(step)
        if info.is_main:
            path = write_checkpoint(
                stage_dir, step, model_state=model_state, config={**meta, "step": step}, stats=data.stats,
                training_state=training_state, keep_last=stage.keep_last,
            )  # fmt: skip
        parallelize.barrier(info)
        return path

    bar = tqdm(total=stage.steps, initial=start, desc=stage.name, disable=not (progress and info.is_main))
    sums: dict[str, float] = {}
    count, tick, step, last = 0, time.perf_counter(), start, None
    batches = iter(loader)
    try:
        while step < end:
            batch = _to_device(next(batches), info.device)
            lr = scheduler.get_last_lr()[0]
            with _autocast(info.device):
                loss, metrics = model(batch)
            finite = parallelize.all_mean(torch.isfinite(loss.detach()).float().reshape(1), info)
            if finite.item() < 1:
                last_good = resolve_checkpoint(stage_dir) if (stage_dir / LAST_FILE).is_file() else None
                raise TrainingDiverged(
                    f"stage {stage.name!r}: loss is {loss.item()} at step {step + 1}; stopped. Last good checkpoint: "
                    f"{last_good if last_good is not None else 'none (diverged before the first save)'}"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if stage.optim.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(policy.parameters(), stage.optim.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            count += 1
            bar.update(1)
            validate = val is not None and (step % stage.eval_every == 0 or step == stage.steps)
            if step % stage.log_every == 0 or step == end or validate:
                keys = sorted(sums)
                means = parallelize.all_mean(torch.tensor([sums[k] / count for k in keys], dtype=torch.float64), info)
                means = dict(zip(keys, means.tolist(), strict=True))
                now = time.perf_counter()
                record = {
                    "step": step,
                    "loss": means.pop("loss"),
                    "lr": lr,
                    "metrics": means,
                    "samples_per_s": count * stage.batch_size / max(now - tick, 1e-9),
                    "val_loss": _validate(policy, val, info) if validate else None,
                }
                log.write(record)
                bar.set_postfix(loss=f"{record['loss']:.4g}", lr=f"{lr:.2e}", sps=f"{record['samples_per_s']:.1f}")
                sums, count, tick = {}, 0, time.perf_counter()
            if step % stage.save_every == 0 or step == end:
                last = save(step)
    finally:
        bar.close()
        log.close()
    return StageResult(last if last is not None else resolve_checkpoint(stage_dir), policy.eval())


def run_stages(
    stages: tuple[StageConfig, ...] | list[StageConfig],
    run_dir: str | Path,
    *,
    resume: bool = False,
    parallel: str = "none",
    progress: bool = True,
    backend: DataBackend | None = None,
) -> list[StageResult]:
    """Run stages in order into one run directory; complete stages are skipped (so a re-run picks up where
    the last one stopped), an incomplete one needs `resume`."""
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise ValueError(f"stage names must be unique within a run, got {names}")
    return [
        run_stage(s, run_dir, resume=resume or stage_complete(Path(run_dir), s), parallel=parallel,
                  progress=progress, backend=backend)
        for s in stages
    ]  # fmt: skip


def stage_data_for(stage: StageConfig, backend: DataBackend | None = None) -> tuple[Policy, StageData]:
    """The freshly built policy and its opened data for a stage (benchmarks and inspection use this)."""
    backend = backend or lerobot_backend()
    datasets, policy_config = fit_stage(stage, backend)
    torch.manual_seed(stage.seed)
    policy = build_policy(stage.method, policy_config)
    spec = policy.data_spec()
    for root, dataset in datasets:
        check_features(root, dataset, spec)
    data = open_stage_data(datasets, policy, spec, val_fraction=stage.val_fraction, seed=stage.seed, backend=backend)
    policy.set_normalization(data.stats)
    return policy, data
