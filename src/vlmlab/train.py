"""Train and evaluate one VLM: setup -> model -> trainable -> data -> loop -> evaluate -> summary.

    python -m vlmlab.train [group=option ...] [key=value ...]     one run, folder runs/<name>/<cell>/seed<seed>
    python -m vlmlab.train -m connector=mlp,perceiver seed=0,1,2  a Hydra multirun sweep

A run is finished exactly when its summary.json exists; running a finished cell again does nothing.
"""
from __future__ import annotations

import math
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
from transformers import get_cosine_with_min_lr_schedule_with_warmup

from vlmlab.config import Config, ConfigError, check_command_line, repo_root, to_config
from vlmlab.data import Processor, TaskDataset, collate
from vlmlab.evaluate import evaluate
from vlmlab.images import ImageProcessor, visual_tokens_per_image
from vlmlab.model.build import build_vlm
from vlmlab.model.trainable import format_table, parameter_table
from vlmlab.paths import git_commit
from vlmlab.perf import PeakMemory
from vlmlab.tracking import Tracker, write_json_atomic
from vlmlab.world.tasks import load_mixture, load_split


def pick_device(name: str) -> torch.device:
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else "cpu" if name == "auto" else name)


def make_optimizer(vlm, cfg) -> torch.optim.Optimizer:
    params = [p for p in vlm.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), fused=False)


def diverged(losses: list[float], cfg) -> bool:
    """NaN / inf, or a spike over spike_factor x the mean of the previous spike_window losses."""
    last = losses[-1]
    if not math.isfinite(last):
        return True
    prev = losses[-cfg.spike_window - 1:-1]
    return cfg.spike_factor > 0 and len(prev) == cfg.spike_window and last > cfg.spike_factor * sum(prev) / len(prev)


def batches(loader: DataLoader):
    """Endless iterator over epochs; the loader's seeded generator makes the order a function of the seed."""
    while True:
        yield from loader


def run(cfg: Config) -> dict:
    run_dir = Path(cfg.run_dir)
    if (run_dir / "summary.json").exists():
        print(f"[vlmlab] {run_dir} is finished (summary.json exists): skipping")
        import json

        return json.loads((run_dir / "summary.json").read_text())
    # ---- setup
    t_start = time.time()
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    device = pick_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "failed.json").unlink(missing_ok=True)  # an earlier crash of this cell is being retried
    (run_dir / "metrics.jsonl").unlink(missing_ok=True)  # a restart logs afresh (resume: issue 6)
    config_dict = asdict(cfg)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(config_dict)))
    # ---- model and what trains
    vlm, tokenizer = build_vlm(cfg, seed=cfg.seed)
    vlm.to(device)
    params = parameter_table(vlm)
    print(format_table(params))
    # ---- data
    images = ImageProcessor(cfg.image, vlm.vision.patch_size)
    max_len = getattr(vlm.llm.config, "max_position_embeddings", 2048)
    processor = Processor(tokenizer, vlm.ids, images, vlm.visual_tokens_per_view, cfg.fusion.kind, max_len)
    train_set = TaskDataset(load_mixture(cfg.data, "train"), processor, train=True, with_answer=True)
    g = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(train_set, batch_size=cfg.optim.batch_size, shuffle=True, generator=g, drop_last=True,
                        collate_fn=lambda items: collate(items, vlm.ids.pad, images.patch_size))
    eval_splits = {t: load_split(cfg.data, t, cfg.eval.split) for t in cfg.data.tasks}
    # ---- optimisation
    opt = make_optimizer(vlm, cfg.optim)
    sched = get_cosine_with_min_lr_schedule_with_warmup(opt, cfg.optim.warmup_steps, cfg.optim.max_steps,
                                                        min_lr_rate=cfg.optim.min_lr_ratio)
    cell = run_dir.parent.name
    tracker = Tracker(run_dir, cfg.logger, config_dict, run_name=f"{cell}/seed{cfg.seed}", group=cfg.name) \
        if cfg.logger.kind != "none" else Tracker(run_dir, cfg.logger, config_dict, "", "")
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    vlm.train()
    memory = PeakMemory(device).start()  # peak of this run's training and evaluation
    it = batches(loader)
    losses: list[float] = []
    t_train, n_samples = time.perf_counter(), 0
    bar = tqdm(range(1, cfg.optim.max_steps + 1), desc=f"train {cell}", dynamic_ncols=True, disable=None)
    for step in bar:
        t0 = time.perf_counter()
        loss_sum = 0.0
        for _ in range(cfg.optim.grad_accum):
            batch = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in next(it).items()}
            with amp:
                loss, _ = vlm(**batch)
            (loss / cfg.optim.grad_accum).backward()
            loss_sum += loss.item() / cfg.optim.grad_accum
            n_samples += batch["input_ids"].shape[0]
        trainable = [p for p in vlm.parameters() if p.requires_grad]
        clip = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else math.inf
        grad_norm = float(torch.nn.utils.clip_grad_norm_(trainable, clip))
        if math.isfinite(loss_sum):  # a non-finite step is recorded, never applied
            opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss_sum)
        bar.set_postfix(loss=f"{loss_sum:.3f}")
        if diverged(losses, cfg.optim):
            tracker.log(step, {"train/loss": loss_sum, "train/diverged": 1})
            break
        if step % cfg.logger.every == 0 or step == cfg.optim.max_steps or step == 1:
            sps = cfg.optim.batch_size * cfg.optim.grad_accum / (time.perf_counter() - t0)
            tracker.log(step, {"train/loss": loss_sum, "train/lr": sched.get_last_lr()[0],
                               "train/grad_norm": grad_norm, "perf/samples_per_s": sps})
    train_time = time.perf_counter() - t_train
    # ---- evaluation and summary (a diverged run is a result: recorded, not evaluated)
    status = "diverged" if diverged(losses, cfg.optim) else "finished"
    metrics = {}
    if status == "finished":
        metrics, predictions = evaluate(vlm, processor, eval_splits, cfg.eval, device)
        tracker.log(step, {f"eval/{k}": v for k, v in metrics.items()})
        write_json_atomic(run_dir / "predictions.json", predictions)
    memory.stop()
    summary = {
        "status": status,
        "metrics": metrics,
        "final_train_loss": losses[-1],
        "first_losses": losses[:5],
        "loss_history": losses,
        "diverged_at_step": step if status == "diverged" else None,
        "steps_done": step,
        "params": params,
        "visual_tokens_per_image": visual_tokens_per_image(cfg.image, images.patch_size,
                                                           tokens_per_view=vlm.visual_tokens_per_view),
        "perf": {"train_samples_per_s": n_samples / train_time, "train_time_s": train_time,
                 "peak_memory_mb": memory.peak_mb, "eval_latency_ms": metrics.get("eval_latency_ms")},
        "wall_time_s": time.time() - t_start,
        "device": str(device), "torch_threads": torch.get_num_threads(),
        "git_commit": git_commit(repo_root()),
        "config": config_dict,
    }
    tracker.finish({f"eval/{k}": v for k, v in metrics.items()})
    write_json_atomic(run_dir / "summary.json", summary)  # written last: its existence means "finished"
    print(f"[vlmlab] {run_dir}: " + (f"diverged at step {step} (loss {losses[-1]:.3g})" if not metrics else
          f"avg {metrics['avg']:.2f} | " + " ".join(f"{t} {metrics[t]:.1f}" for t in cfg.data.tasks)))
    return summary


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
