"""Data parallelism applied from outside the model: the policy stays single-device code.

Under `torchrun` (WORLD_SIZE > 1) the trainer initialises a process group (nccl on CUDA, gloo on CPU) and
wraps the policy here: "ddp" replicates it and averages gradients; "fsdp" shards parameters, gradients and
optimiser state with FSDP2 (`fully_shard`), one unit per block of every ModuleList (transformer layers,
attention pools) plus the root. Without torchrun both modes fall back to a single process.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from robo4d.methods.base import Policy

PARALLEL_MODES = ("none", "ddp", "fsdp")


@dataclass(frozen=True, kw_only=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int  # global rank (0 writes logs and checkpoints)
    world_size: int  # number of processes
    local_rank: int  # rank on this machine (selects the CUDA device)
    device: torch.device  # where the policy and batches live

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed() -> DistInfo:
    """Read torchrun's environment; join (or reuse) the process group when there is more than one process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if cuda else "gloo", rank=rank, world_size=world_size, timeout=datetime.timedelta(minutes=30)
        )
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


class _LossForward(nn.Module):
    """DDP synchronises gradients through hooks on `forward`; the policy's entry point is `compute_loss`."""

    def __init__(self, policy: Policy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        return self.policy.compute_loss(batch)


def wrap(policy: Policy, mode: str, info: DistInfo) -> nn.Module:
    """A module whose forward(batch) returns compute_loss(batch), parallelised per `mode`. Call after the
    policy holds its initial weights and sits on `info.device`, and before building the optimiser."""
    if mode not in PARALLEL_MODES:
        raise ValueError(f"parallel mode must be one of {PARALLEL_MODES}, got {mode!r}")
    if not info.distributed or mode == "none":
        return _LossForward(policy)
    if mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [info.device.index] if info.device.type == "cuda" else None
        # find_unused_parameters: a stage may leave some trainable module out of its loss (e.g. the action
        # encoder when the objective has no previous action); DDP would otherwise wait for its gradients forever.
        return DistributedDataParallel(_LossForward(policy), device_ids=device_ids, find_unused_parameters=True)
    from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

    for module in list(policy.modules()):
        if isinstance(module, nn.ModuleList):
            for block in module:
                if any(p.requires_grad for p in block.parameters()):
                    fully_shard(block)
    fully_shard(policy)
    register_fsdp_forward_method(policy, "compute_loss")
    return _LossForward(policy)


def full_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Unshard FSDP2 DTensors (a collective: every rank calls it); plain tensors pass through."""
    return {k: (v.full_tensor() if hasattr(v, "full_tensor") else v) for k, v in state.items()}


def optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, mode: str) -> dict[str, Any]:
    """The optimiser state as a full (unsharded) dict; collective under FSDP."""
    if mode != "fsdp" or not dist.is_initialized():
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any], mode: str) -> None:
    if mode != "fsdp" or not dist.is_initialized():
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))


def all_mean(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean over ranks of a float tensor (identity on one process)."""
    if info.distributed:
        values = values.clone()
        dist.all_reduce(values)
        values /= info.world_size
    return values


def all_gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()
