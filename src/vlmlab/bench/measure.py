"""Measurements: the fp32 matmul peak, training steps (time, peak memory, FLOPs), generation latency.

A training step is what a run (runner.py, loop.py) does per optimizer step: forward, loss.item(), backward,
grad-norm clip, AdamW step (vlmlab.optim.make_optimizer), zero_grad. Every timing is taken twice: wall clock,
what a user waits, as noisy as the machine's load; and this process's CPU time, which with one torch thread (the
default) is the compute the step received, far less sensitive to other processes (not immune: they still
share caches and memory bandwidth, expect ~10-20% drift between a quiet and a busy machine).

Peak memory on CPU is the rise of the resident set over its level before the model was built (after gc
and malloc_trim, so freed memory of earlier models is not counted), sampled every millisecond during one
untimed step (vlmlab.perf.PeakMemory) in which glibc mmaps every block over 64 KiB, so the RSS follows the
live tensors. That setting costs ~50% more time in page faults, so every timed step runs with the
thresholds glibc settles on in a training loop (allocator_for_speed).
"""
from __future__ import annotations

import ctypes
import gc
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from vlmlab.config import OptimConfig
from vlmlab.optim import make_optimizer
from vlmlab.perf import PeakMemory, rss_mb


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _mallopt(mmap_threshold: int, trim_threshold: int) -> None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, mmap_threshold)  # M_MMAP_THRESHOLD (fixed from now on: glibc stops adjusting it)
        libc.mallopt(-1, trim_threshold)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def allocator_for_speed() -> None:
    """Where glibc's dynamic thresholds settle in a training loop (mmap 32 MiB, trim 64 MiB): as fast as the
    default allocator (measured), unlike the memory measurement's 64 KiB (+50% step time in page faults)."""
    _mallopt(32 * 2**20, 64 * 2**20)


def release_memory() -> None:
    """gc, then malloc_trim: glibc hands every free page back to the OS, so the RSS is the live memory."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def memory_level(device: torch.device) -> float:
    """MiB in use now: CUDA allocated, or the process's RSS."""
    return torch.cuda.memory_allocated(device) / 2**20 if device.type == "cuda" else rss_mb()


def matmul_peak(device: torch.device, sizes=(1024, 2048), reps: int = 5) -> dict:
    """Best over sizes of the median GFLOP/s of an n x n fp32 torch.matmul (2 n^3 FLOPs), by wall and CPU time."""
    allocator_for_speed()
    best = {"gflops": 0.0, "gflops_cpu": 0.0, "n": 0}
    for n in sizes:
        a, b = (torch.randn(n, n, device=device) for _ in range(2))
        torch.matmul(a, b)  # warm-up (threads, caches)
        times = [timed(lambda: torch.matmul(a, b), device) for _ in range(reps)]
        wall, cpu = (statistics.median(t) for t in zip(*times))
        if 2 * n**3 / cpu / 1e9 > best["gflops_cpu"]:
            best = {"gflops": 2 * n**3 / wall / 1e9, "gflops_cpu": 2 * n**3 / cpu / 1e9, "n": n}
    return best


class Trainer:
    """One subject's optimizer (a run's: vlmlab.optim.make_optimizer with the default optim config) and
    its train step; the same for ours and the reference."""

    def __init__(self, subject):
        self.subject = subject
        self.params = [p for p in subject.model.parameters() if p.requires_grad]
        self.opt = make_optimizer(subject.model, OptimConfig())
        subject.model.train()

    def step(self) -> float:
        loss = self.subject.loss()
        value = loss.item()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return value


def timed(fn, device: torch.device) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of fn()."""
    _sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    _sync(device)
    return time.perf_counter() - t0, time.process_time() - c0


def flop_counter() -> FlopCounterMode:
    """FlopCounterMode that also counts the CPU flash-attention kernels (torch 2.13 maps only the CUDA ones,
    so SDPA on CPU would count 0 while an einsum attention counts its bmm FLOPs)."""
    aten = torch.ops.aten
    return FlopCounterMode(display=False, custom_mapping={  # arguments arrive as shapes
        aten._scaled_dot_product_flash_attention_for_cpu: lambda q, k, v, *a, **kw: sdpa_flop_count(q, k, v),
        aten._scaled_dot_product_flash_attention_for_cpu_backward:
            lambda g, q, k, v, *a, **kw: sdpa_backward_flop_count(g, q, k, v)})


def step_flops(trainer: Trainer) -> int:
    """FLOPs of one forward + backward as executed (matmuls, convolutions, attention; frozen weights get no
    weight-gradient matmuls, so this is the model FLOPs of *this* trainable set)."""
    with flop_counter() as counter:
        loss = trainer.subject.loss()
        loss.backward()
    trainer.opt.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def step_peak_memory(trainer: Trainer, device: torch.device) -> float:
    """Peak MiB (CPU RSS or CUDA allocated) during one training step. On CPU every block over 64 KiB is
    mmapped for this step and unmapped when freed, so the RSS follows the live tensors."""
    _mallopt(64 * 1024, 128 * 1024)
    release_memory()
    try:
        pm = PeakMemory(device, interval_s=0.001).start()
        trainer.step()
        return pm.stop()
    finally:
        allocator_for_speed()


@torch.no_grad()
def generation_time(subject, device: torch.device) -> tuple[tuple[float, float], int]:
    """((wall, cpu) seconds, new tokens per sample) of one batched greedy generation."""
    subject.model.eval()
    n = [0]
    t = timed(lambda: n.__setitem__(0, subject.generate()), device)
    subject.model.train()
    return t, n[0]
