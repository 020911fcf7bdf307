"""Several processes, one run: torchrun starts them, DistributedDataParallel keeps them in step.

    torchrun --nproc_per_node 2 -m vlmlab.train [overrides]     # gloo on CPU, nccl on CUDA
    hydra/launcher=slurm hydra.launcher.tasks_per_node=8        # SLURM: submitit's environment is exported

`optim.batch_size` is the global batch: each rank takes its slice of every batch, and the loss is
normalised by the global count of supervised tokens, so the gradient equals one process's on the
whole batch and the loss trajectory matches a single process at the same global batch. Only rank 0
writes files (run folder, checkpoints, summary) and evaluates.
"""
from __future__ import annotations

import os
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
