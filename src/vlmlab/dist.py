"""Several processes, one run: torchrun starts them, DistributedDataParallel keeps them in step.

    torchrun --nproc_per_node 2 -m vlmlab.train [overrides]     # gloo on CPU, nccl on CUDA
    hydra/launcher=slurm hydra.launcher.tasks_per_node=8        # SLURM: submitit's environment is exported

    torchrun --nproc_per_node 8 -m vlmlab.train parallel=fsdp    # a model too big to replicate: FSDP2

`parallel=fsdp` shards every transformer block (each entry of an nn.ModuleList: LM decoder layers,
vision encoder layers, perceiver and cross-attention blocks) and then the rest of the model with
FSDP2's `fully_shard`; checkpoints gather the full trainable state to rank 0, which writes the same
files as a single process; for evaluation rank 0 loads the gathered full state into an unsharded copy.

`optim.batch_size` is the global batch: each rank takes its slice of every batch, and the loss is
normalised by the global count of supervised tokens, so the gradient equals one process's on the
whole batch and the loss trajectory matches a single process at the same global batch. Only rank 0
writes files (run folder, checkpoints, summary) and evaluates.
"""
from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as td


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init(device_type: str) -> Dist:
    """Joins the process group when launched by torchrun (WORLD_SIZE > 1); a no-op otherwise."""
    if "WORLD_SIZE" not in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        import submitit  # a SLURM job of several tasks (hydra/launcher=slurm): export RANK, WORLD_SIZE, ...

        submitit.helpers.TorchDistributedEnvironment().export()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not td.is_initialized():
        td.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    d = Dist(rank=td.get_rank(), world=td.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    if device_type == "cuda":
        torch.cuda.set_device(d.local_rank)
    return d


def device_for(d: Dist, device: torch.device) -> torch.device:
    return torch.device("cuda", d.local_rank) if device.type == "cuda" else device


class RankSlice:
    """Wraps a batch sampler of global batches: rank r of w gets items r, r+w, r+2w, ... of each batch."""

    def __init__(self, batch_sampler, d: Dist):
        self.inner, self.d = batch_sampler, d

    def __iter__(self):
        for batch in self.inner:
            yield batch[self.d.rank::self.d.world]


def wrap(model: torch.nn.Module, kind: str, d: Dist) -> torch.nn.Module:
    """The model as the training step calls it: itself (one process), DDP, or FSDP2-sharded in place.
    FSDP replaces parameters by sharded DTensors, so the optimizer must be made after this."""
    if not d.enabled:
        return model
    if kind == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model)
    from torch.distributed.fsdp import fully_shard

    for block in [b for m in model.modules() if isinstance(m, torch.nn.ModuleList) for b in m]:
        if any(p.numel() for p in block.parameters()):
            fully_shard(block)
    fully_shard(model)
    return model


def is_fsdp(model: torch.nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def set_grad_sync(model: torch.nn.Module, sync: bool):
    """Gradient accumulation: skip the cross-rank gradient reduction on all but the last micro-batch."""
    if is_fsdp(model):
        model.set_requires_gradient_sync(sync)
        return nullcontext()
    if isinstance(model, torch.nn.parallel.DistributedDataParallel) and not sync:
        return model.no_sync()
    return nullcontext()


def full_state_dict(model: torch.nn.Module) -> dict:
    """FSDP: the whole model's state as full CPU tensors on rank 0 (empty elsewhere); every rank must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def full_value(x):
    """A float from a tensor that may be a sharded DTensor (e.g. the gradient norm under FSDP)."""
    return float(x.full_tensor() if hasattr(x, "full_tensor") else x)


def global_sum(value: torch.Tensor, d: Dist) -> torch.Tensor:
    if d.enabled:
        value = value.clone()
        td.all_reduce(value)
    return value


def barrier(d: Dist) -> None:
    if d.enabled:
        td.barrier()


def shutdown(d: Dist) -> None:
    if d.enabled and td.is_initialized():
        td.destroy_process_group()
