"""The training loop: optimizer steps over the loader, divergence checks, logging, checkpoints, preemption.

`Loop` holds everything the loop reads and updates (runner.py's `resume` builds it); `train(loop)` runs the
steps under signal handlers: SIGTERM or SIGUSR1 (SLURM's warning before the time limit) saves a checkpoint
at the end of the current step and stops with exit code 143, and a rerun resumes from it.
"""
from __future__ import annotations

import math
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from vlmlab import checkpoint, dist
from vlmlab.config import Config
from vlmlab.optim import diverged
from vlmlab.perf import PeakMemory
from vlmlab.tracking import Tracker


class Preempted(SystemExit):
    """SIGTERM arrived: a checkpoint was written and the run stops (exit code 143, as a killed job)."""


@dataclass
class Loop:
    """Everything the training loop reads and updates: built by `resume`, advanced by `train_loop`."""
    cfg: Config
    model: torch.nn.Module    # what the step calls: the VLM, or the VLM wrapped by dist.wrap (DDP / FSDP)
    vlm: torch.nn.Module      # the plain VLM
    opt: torch.optim.Optimizer
    sched: object
    loader: DataLoader
    state: checkpoint.TrainState
    tracker: Tracker
    run_dir: Path
    device: torch.device
    d: dist.Dist
    resumed: bool
    stop_signal: int | None = None  # SIGTERM (preemption) or SIGUSR1 (SLURM's warning before the time limit)


def train(loop: Loop) -> None:
    """The training loop under signal handlers that ask it to checkpoint and stop."""
    def ask_to_stop(signum, _frame):
        loop.stop_signal = signum

    previous = {sig: signal.signal(sig, ask_to_stop) for sig in (signal.SIGTERM, signal.SIGUSR1)}
    try:
        train_loop(loop)
    except Preempted:
        handler = previous.get(loop.stop_signal)
        if callable(handler):  # e.g. submitit's USR1 handler, which requeues the job
            handler(loop.stop_signal, None)
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def train_loop(loop: Loop) -> None:
    """Optimizer steps state.step+1 .. max_steps; stops early on divergence; checkpoints as configured."""
    cfg, state, d, device = loop.cfg, loop.state, loop.d, loop.device
    sharded = dist.is_fsdp(loop.model)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    trainable = [p for p in loop.vlm.parameters() if p.requires_grad]
    clip = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else math.inf
    memory = PeakMemory(device).start()  # this run's training peak (CPU: sampled RSS, not the process's life)
    loop.vlm.train()
    it = iter(loop.loader)
    bar = tqdm(range(state.step + 1, cfg.optim.max_steps + 1), desc=f"train {loop.run_dir.parent.name}",
               dynamic_ncols=True, disable=None, initial=state.step, total=cfg.optim.max_steps)
    for step in bar:
        t0 = time.perf_counter()
        loss_sum = 0.0
        for micro in range(cfg.optim.grad_accum):
            batch = {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v)
                     for k, v in next(it).items()}
            sync = dist.set_grad_sync(loop.model, micro == cfg.optim.grad_accum - 1)
            with amp, sync:
                loss, _ = loop.model(**batch, return_logits=False)  # LM head on supervised positions only
                if d.enabled:  # normalise by the global count of supervised tokens (DDP averages over ranks)
                    n_local = (batch["labels"][:, 1:] != -100).sum().float()
                    share = n_local * d.world / dist.global_sum(n_local, d)
                    loss = loss * share
                (loss / cfg.optim.grad_accum).backward()
            loss_sum += float(dist.global_sum(loss.detach(), d)) / d.world / cfg.optim.grad_accum
            state.samples += batch["input_ids"].shape[0] * d.world
            state.batches += 1
        grad_norm = dist.full_value(torch.nn.utils.clip_grad_norm_(trainable, clip))
        if math.isfinite(loss_sum):  # a non-finite step is recorded, never applied
            loop.opt.step()
        loop.sched.step()
        loop.opt.zero_grad(set_to_none=True)
        state.step = step
        state.losses.append(loss_sum)
        state.train_time_s += time.perf_counter() - t0
        bar.set_postfix(loss=f"{loss_sum:.3f}")
        if diverged(state.losses, cfg.optim):
            loop.tracker.log(step, {"train/loss": loss_sum, "train/diverged": 1})
            break
        if step % cfg.logger.every == 0 or step == cfg.optim.max_steps or step == 1:
            sps = cfg.optim.batch_size * cfg.optim.grad_accum / (time.perf_counter() - t0)
            loop.tracker.log(step, {"train/loss": loss_sum, "train/lr": loop.sched.get_last_lr()[0],
                                    "train/grad_norm": grad_norm, "perf/samples_per_s": sps})
        state.peak_memory_mb = max(state.peak_memory_mb, memory.read())
        if d.enabled:  # a signal seen by any rank stops every rank at the same step
            seen = float(dist.global_sum(torch.tensor(float(bool(loop.stop_signal)), device=device), d))
            loop.stop_signal = loop.stop_signal or (signal.SIGTERM if seen else None)
        if (d.main or sharded) and (loop.stop_signal or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0
                                                         and step < cfg.optim.max_steps)):
            checkpoint.save(loop.run_dir, loop.model, loop.opt, loop.sched, state, main=d.main)
        if loop.stop_signal:
            memory.stop()
            loop.tracker.finish()
            print(f"[vlmlab] signal {loop.stop_signal}: checkpoint of step {step} saved in {loop.run_dir}; rerun to "
                  "resume", file=sys.stderr)
            raise Preempted(143)
    state.peak_memory_mb = max(state.peak_memory_mb, memory.stop())
