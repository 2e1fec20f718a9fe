"""DDP (and an FSDP2 smoke run) with 2 CPU processes over gloo, against a single-process run."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from train_toy import TOY_BACKEND_NO_PAD, ToyPolicy, toy_stage

from robo4d.nn.feature_cache import FeatureCache
from robo4d.train.checkpoint import load_policy
from robo4d.train.metrics_log import read_records
from robo4d.train.parallelize import full_tensors
from robo4d.train.trainer import run_stage


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, root: str, out: str, parallel: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world))  # fmt: skip
    torch.set_num_threads(1)
    try:
        result = run_stage(_stage(Path(root)), out, parallel=parallel, backend=TOY_BACKEND_NO_PAD, progress=False)
        torch.save(full_tensors(result.policy.state_dict()), Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


class _Frames:
    """A FrameSource of 12 constant frames (one episode)."""

    identity, num_frames = "ddp-test", 12

    def episodes(self):  # noqa: ANN201
        yield np.arange(12), np.zeros((12, 4, 4, 3), np.uint8)


class _LoggingEncoder:
    """Appends "<rank> start|end" to a shared log around each encode call (slowly, so a race would show)."""

    name, num_tokens, dim = "logging", 2, 3

    def __init__(self, log: Path, rank: int) -> None:
        self.log, self.rank = log, rank

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        with self.log.open("a") as f:
            f.write(f"{self.rank} start\n")
        time.sleep(0.5)
        with self.log.open("a") as f:
            f.write(f"{self.rank} end\n")
        return torch.zeros(len(images), 2, 3)


def _cache_worker(rank: int, world: int, port: int, root: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world))  # fmt: skip
    torch.set_num_threads(1)
    encoder = _LoggingEncoder(Path(out) / "encode.log", rank)

    def frame_sources(self, dataset):  # noqa: ANN001, ANN202
        return {"frozen.image_tokens.ego": FeatureCache(Path(out) / "cache").lookup(_Frames(), "ego", encoder)}

    try:
        with patch.object(ToyPolicy, "frame_sources", frame_sources):
            run_stage(_stage(Path(root), steps=1), Path(out) / "run", parallel="ddp", backend=TOY_BACKEND_NO_PAD,
                      progress=False)  # fmt: skip
    finally:
        dist.destroy_process_group()


def test_feature_cache_is_built_once_by_rank_0(toy_root: Path, tmp_path: Path) -> None:
    mp.spawn(_cache_worker, args=(2, _free_port(), str(toy_root), str(tmp_path)), nprocs=2, join=True)
    assert (tmp_path / "encode.log").read_text().split("\n") == ["0 start", "0 end", ""]  # rank 1 found it built


def _stage(root: Path, steps: int = 4):
    return toy_stage(root, steps=steps, batch_size=4, save_every=2, eval_every=2, val_fraction=0.2)


@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_processes_match_one(parallel: str, toy_root: Path, tmp_path: Path) -> None:
    single = tmp_path / "single"
    reference = run_stage(_stage(toy_root), single, backend=TOY_BACKEND_NO_PAD, progress=False).policy.state_dict()
    multi = tmp_path / parallel
    mp.spawn(_worker, args=(2, _free_port(), str(toy_root), str(multi), parallel), nprocs=2, join=True)
    ranks = [torch.load(multi / f"rank{r}.pt") for r in range(2)]
    for name, ref in reference.items():
        assert torch.equal(ranks[0][name], ranks[1][name]), name  # replicas never drift apart
        assert torch.allclose(ranks[0][name], ref, atol=1e-6), name  # same global batch -> same updates
    losses = [[r["loss"] for r in read_records(d / "s1" / "metrics.jsonl")] for d in (single, multi)]
    assert losses[1] == pytest.approx(losses[0], abs=1e-6)
    saved = load_policy(multi).state_dict()  # rank 0 wrote full (unsharded) tensors
    assert all(torch.allclose(saved[k], v, atol=1e-6) for k, v in reference.items())
