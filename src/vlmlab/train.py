"""Train and evaluate one VLM: setup -> model -> trainable -> data -> loop -> evaluate -> summary.

    python -m vlmlab.train [group=option ...] [key=value ...]     one run, folder runs/<name>/<cell>/seed<seed>
    python -m vlmlab.train -m connector=mlp,perceiver seed=0,1,2  a Hydra multirun sweep

A run is finished exactly when its summary.json exists; running a finished cell again does nothing. A run
interrupted at any point (SIGTERM saves a checkpoint first; SIGKILL loses at most checkpoint_every steps)
resumes from its latest checkpoint and ends with the same metrics as an uninterrupted run.
"""
from __future__ import annotations

import math
import signal
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path

import datasets
import torch
import transformers
from omegaconf import OmegaConf, open_dict
from torch.utils.data import DataLoader
from tqdm import tqdm

from vlmlab import checkpoint, dist, reuse
from vlmlab.config import Config, ConfigError, check_command_line, repo_root, to_config
from vlmlab.data import EpochBatches, Processor, TaskDataset, collate
from vlmlab.evaluate import evaluate
from vlmlab.images import visual_tokens_per_image
from vlmlab.model.build import build_image_processor, build_vlm
from vlmlab.model.trainable import format_table, parameter_table
from vlmlab.optim import diverged, make_optimizer, make_schedule
from vlmlab.paths import git_commit
from vlmlab.perf import PeakMemory, machine_name
from vlmlab.tracking import Tracker, truncate_log, write_json_atomic, write_text_atomic
from vlmlab.world.tasks import load_mixture


class Preempted(SystemExit):
    """SIGTERM arrived: a checkpoint was written and the run stops (exit code 143, as a killed job)."""


def pick_device(name: str) -> torch.device:
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else "cpu" if name == "auto" else name)


def mean_visual_tokens(samples, images, tokens_per_view, n: int = 256) -> float:
    """Visual tokens per image at inference, averaged over the first n training pictures: with preserved aspect
    ratios (and no pooling) it depends on each picture's shape, so it is measured, not assumed."""
    pictures = samples.select_columns(["image"]).select(range(min(n, len(samples))))["image"]
    counts = [visual_tokens_per_image(images.cfg, images.patch_size, image_size=p.size, tokens_per_view=tokens_per_view)
              for p in pictures]
    return sum(counts) / len(counts)


def prepare_run_dir(run_dir: Path, config_text: str) -> None:
    """Creates the folder and its config.yaml; a resumable run must have been started by the same config."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "failed.json").unlink(missing_ok=True)  # an earlier crash of this cell is being retried
    old = run_dir / "config.yaml"
    if checkpoint.find(run_dir) and old.exists() and old.read_text() != config_text:
        raise ConfigError(f"{run_dir} holds a checkpoint of another config; delete the folder to start over")
    write_text_atomic(old, config_text)


def run(cfg: Config) -> dict:
    run_dir = Path(cfg.run_dir)
    done = reuse.finished_or_reused(cfg)  # this folder's own summary, or an identical run's results
    if done is not None:
        return done
    # ---- setup
    t_start = time.time()
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    d = dist.init(pick_device(cfg.device).type)
    device = dist.device_for(d, pick_device(cfg.device))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    config_dict = asdict(cfg)
    if d.main:
        prepare_run_dir(run_dir, OmegaConf.to_yaml(OmegaConf.create(config_dict)))
    # ---- model and what trains
    torch.manual_seed(cfg.seed)
    vlm, tokenizer = build_vlm(cfg, seed=cfg.seed)
    vlm.to(device)
    params = parameter_table(vlm)
    print(format_table(params))
    # ---- data
    images = build_image_processor(cfg, vlm)
    max_len = getattr(vlm.llm.config, "max_position_embeddings", 2048)
    processor = Processor(tokenizer, vlm.ids, images, vlm.visual_tokens_per_view, cfg.fusion.kind, max_len)
    train_set = TaskDataset(load_mixture(cfg.data, "train"), processor, train=True, with_answer=True,
                            bad_samples=cfg.bad_samples)
    # ---- optimisation, resumed from the latest checkpoint if there is one
    model = dist.wrap(vlm, cfg.parallel, d)  # DDP / FSDP under torchrun; FSDP shards in place, before the optimizer
    opt = make_optimizer(vlm, cfg.optim)
    sched = make_schedule(opt, cfg.optim)
    ckpt = checkpoint.find(run_dir)
    state = checkpoint.load(ckpt, vlm, opt, sched) if ckpt else checkpoint.TrainState()
    if ckpt:
        print(f"[vlmlab] resuming {run_dir} from step {state.step}")
    if d.main and ckpt:
        truncate_log(run_dir / "metrics.jsonl", state.step)
    elif d.main:
        (run_dir / "metrics.jsonl").unlink(missing_ok=True)
    batches = EpochBatches(len(train_set), cfg.optim.batch_size, cfg.seed, start=state.batches)
    loader = DataLoader(train_set, batch_sampler=dist.RankSlice(batches, d) if d.enabled else batches,
                        collate_fn=lambda items: collate(items, vlm.ids.pad, images.patch_size),
                        num_workers=cfg.workers, persistent_workers=cfg.workers > 0, pin_memory=device.type == "cuda",
                        generator=torch.Generator().manual_seed(cfg.seed))  # keeps the global RNG untouched
    cell = run_dir.parent.name
    tracker = Tracker(run_dir, cfg.logger, config_dict, run_name=f"{cell}/seed{cfg.seed}", group=cfg.name,
                      enabled=d.main)
    stop = {"signal": None}  # SIGTERM (preemption) or SIGUSR1 (SLURM's warning before the time limit)
    previous = {sig: signal.signal(sig, lambda signum, _: stop.update(signal=signum))
                for sig in (signal.SIGTERM, signal.SIGUSR1)}
    try:
        train_loop(cfg, model, vlm, opt, sched, loader, state, tracker, run_dir, device, stop, d)
    except Preempted:
        handler = previous.get(stop["signal"])
        if callable(handler):  # e.g. submitit's USR1 handler, which requeues the job
            handler(stop["signal"], None)
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if dist.is_fsdp(model):  # rank 0 evaluates alone: on an unsharded copy holding the gathered weights
        full = dist.full_state_dict(model)
        if d.main:
            vlm, _ = build_vlm(cfg, seed=cfg.seed)
            vlm.load_state_dict(full)
            vlm.to(device)
    if not d.main:  # rank 0 evaluates and writes the summary
        dist.barrier(d)
        dist.shutdown(d)
        return {}
    # ---- evaluation and summary (a diverged run is a result: recorded, not evaluated)
    status = "diverged" if diverged(state.losses, cfg.optim) else "finished"
    memory = PeakMemory(device).start()
    metrics = {}
    if status == "finished":
        metrics, predictions = evaluate(vlm, processor, cfg.data, cfg.eval, device)
        tracker.log(state.step, {f"eval/{k}": v for k, v in metrics.items()})
        write_json_atomic(run_dir / "predictions.json", predictions)
    summary = {
        "status": status,
        "metrics": metrics,
        "final_train_loss": state.losses[-1],
        "first_losses": state.losses[:5],
        "loss_history": state.losses,
        "diverged_at_step": state.step if status == "diverged" else None,
        "steps_done": state.step,
        "params": params,
        "visual_tokens_per_image": mean_visual_tokens(train_set.samples, images, vlm.visual_tokens_per_view),
        "perf": {"train_samples_per_s": state.samples / max(state.train_time_s, 1e-9),
                 "train_time_s": state.train_time_s,
                 "peak_memory_mb": max(state.peak_memory_mb, memory.stop()),
                 "eval_latency_ms": metrics.get("eval_latency_ms")},
        "skipped_samples": train_set.skipped,
        "feature_cache": vlm.feature_cache.stats() if vlm.feature_cache is not None else None,
        "resumed": bool(ckpt),
        "wall_time_s": time.time() - t_start,
        "device": str(device), "torch_threads": torch.get_num_threads(),
        "machine": machine_name(device),
        "git_commit": git_commit(repo_root()),
        "config": config_dict,
    }
    tracker.finish({f"eval/{k}": v for k, v in metrics.items()})
    write_json_atomic(run_dir / "summary.json", summary)  # written last: its existence means "finished"
    checkpoint.remove(run_dir)
    dist.barrier(d)
    dist.shutdown(d)
    print(f"[vlmlab] {run_dir}: " + (f"diverged at step {state.step} (loss {state.losses[-1]:.3g})" if not metrics
          else f"avg {metrics['avg']:.2f} | " + " ".join(f"{t} {metrics[t]:.1f}" for t in cfg.data.tasks)))
    return summary


def train_loop(cfg: Config, model, vlm, opt, sched, loader, state: checkpoint.TrainState, tracker, run_dir: Path,
               device: torch.device, stop: dict, d: dist.Dist) -> None:
    """Optimizer steps state.step+1 .. max_steps; stops early on divergence; checkpoints as configured.
    `model` is what the step calls (vlm itself, or wrapped by dist.wrap); `vlm` the plain module."""
    sharded = dist.is_fsdp(model)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    trainable = [p for p in vlm.parameters() if p.requires_grad]
    clip = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else math.inf
    memory = PeakMemory(device).start()  # this run's training peak (CPU: sampled RSS, not the process's life)
    vlm.train()
    it = iter(loader)
    bar = tqdm(range(state.step + 1, cfg.optim.max_steps + 1), desc=f"train {run_dir.parent.name}",
               dynamic_ncols=True, disable=None, initial=state.step, total=cfg.optim.max_steps)
    for step in bar:
        t0 = time.perf_counter()
        loss_sum = 0.0
        for micro in range(cfg.optim.grad_accum):
            batch = {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v)
                     for k, v in next(it).items()}
            sync = dist.set_grad_sync(model, micro == cfg.optim.grad_accum - 1)
            with amp, sync:
                loss, _ = model(**batch, return_logits=False)  # LM head on supervised positions only
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
            opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        state.step = step
        state.losses.append(loss_sum)
        state.train_time_s += time.perf_counter() - t0
        bar.set_postfix(loss=f"{loss_sum:.3f}")
        if diverged(state.losses, cfg.optim):
            tracker.log(step, {"train/loss": loss_sum, "train/diverged": 1})
            break
        if step % cfg.logger.every == 0 or step == cfg.optim.max_steps or step == 1:
            sps = cfg.optim.batch_size * cfg.optim.grad_accum / (time.perf_counter() - t0)
            tracker.log(step, {"train/loss": loss_sum, "train/lr": sched.get_last_lr()[0],
                               "train/grad_norm": grad_norm, "perf/samples_per_s": sps})
        state.peak_memory_mb = max(state.peak_memory_mb, memory.read())
        if d.enabled:  # a signal seen by any rank stops every rank at the same step
            seen = float(dist.global_sum(torch.tensor(float(bool(stop["signal"])), device=device), d))
            stop["signal"] = stop["signal"] or (signal.SIGTERM if seen else None)
        if (d.main or sharded) and (stop["signal"] or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0
                                                       and step < cfg.optim.max_steps)):
            checkpoint.save(run_dir, model, opt, sched, state, main=d.main)
        if stop["signal"]:
            memory.stop()
            tracker.finish()
            print(f"[vlmlab] signal {stop['signal']}: checkpoint of step {step} saved in {run_dir}; rerun to resume",
                  file=sys.stderr)
            raise Preempted(143)
    state.peak_memory_mb = max(state.peak_memory_mb, memory.stop())


def _hydra_entry():
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    @hydra.main(config_path=str(repo_root() / "conf"), config_name="config", version_base="1.3")
    def _main(raw) -> None:
        with open_dict(raw):
            raw.run_dir = HydraConfig.get().runtime.output_dir
        try:
            cfg = to_config(raw)
        except ConfigError as e:
            out = Path(raw.run_dir)
            if out.is_dir() and not any(out.iterdir()):
                out.rmdir()
            sys.exit(f"config error: {e}")
        try:
            run(cfg)
        except Exception as e:  # a crashed cell is recorded; a sweep goes on, a single run fails
            write_json_atomic(Path(cfg.run_dir) / "failed.json",
                              {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()})
            print(f"[vlmlab] {cfg.run_dir} FAILED: {type(e).__name__}: {e}", file=sys.stderr)
            if HydraConfig.get().mode != RunMode.MULTIRUN:
                raise

    _main()


def main() -> None:
    try:
        check_command_line(sys.argv[1:])
    except ConfigError as e:
        sys.exit(f"config error: {e}")
    _hydra_entry()


if __name__ == "__main__":
    main()
