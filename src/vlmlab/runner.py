"""One VLM run, phase by phase: setup -> model -> data -> resume -> loop (loop.py) -> evaluate -> summary.

train.py is its command line and a sweep's task; this file holds the work and the imports it needs (torch,
transformers, datasets: ~6 s), which a sweep's parent process and a config mistake on the command line never pay.

A run is finished exactly when its summary.json exists; running a finished cell again does nothing. A run
interrupted at any point (SIGTERM saves a checkpoint first; SIGKILL loses at most checkpoint_every steps)
resumes from its latest checkpoint and ends with the same metrics as an uninterrupted run. A mistake in the
config or the files (contract.errors.UserError) ends the run with one line naming it, and no summary.json.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import datasets
import torch
import transformers
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from vlmlab import checkpoint, compute, dist, reuse
from vlmlab.loop import Loop, train
from vlmlab.config import Config, repo_root
from vlmlab.contract.errors import ConfigError
from vlmlab.contract.run import CONFIG, FAILED, METRICS, PREDICTIONS, SUMMARY
from vlmlab.contract.summary import Perf, Summary
from vlmlab.data import EpochBatches, Processor, TaskDataset, collate
from vlmlab.evaluate import evaluate
from vlmlab.images import build_image_processor, visual_tokens_per_image
from vlmlab.view_store import ViewStore, picture_size, undecoded
from vlmlab.model.build import build_vlm
from vlmlab.model.trainable import format_table, parameter_table
from vlmlab.optim import diverged, make_optimizer, make_schedule
from vlmlab.paths import cache_root, git_commit
from vlmlab.world.config import world_id
from vlmlab.perf import PeakMemory, machine_name, software
from vlmlab.tracking import Tracker, truncate_log, write_json_atomic, write_text_atomic
from vlmlab.world.tasks import load_mixture


@dataclass
class Setup:
    d: dist.Dist              # this process's place among the torchrun ranks
    device: torch.device
    t_start: float            # wall clock at the start of the run
    config: dict              # the resolved config, as written to config.yaml


@dataclass
class Data:
    images: object            # images.ImageProcessor
    processor: Processor
    train_set: TaskDataset


def pick_device(name: str) -> torch.device:
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else "cpu" if name == "auto" else name)


def mean_visual_tokens(samples, images, tokens_per_view, n: int = 256) -> float:
    """Visual tokens per image at inference, averaged over the first n training pictures: with preserved aspect
    ratios (and no pooling) it depends on each picture's shape, so it is measured, not assumed."""
    pictures = samples.select_columns(["image"]).select(range(min(n, len(samples))))["image"]
    counts = [visual_tokens_per_image(images.cfg, images.patch_size, image_size=picture_size(p),
                                      tokens_per_view=tokens_per_view) for p in pictures]
    return sum(counts) / len(counts)


def prepare_run_dir(run_dir: Path, config_text: str) -> None:
    """Creates the folder and its config.yaml; a resumable run must have been started by the same config."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / FAILED).unlink(missing_ok=True)  # an earlier crash of this cell is being retried
    old = run_dir / CONFIG
    if checkpoint.find(run_dir) and old.exists() and old.read_text() != config_text:
        raise ConfigError(f"{run_dir} holds a checkpoint of another config; delete the folder to start over")
    write_text_atomic(old, config_text)


# ---- the phases of a run ------------------------------------------------------------------------------
def setup(cfg: Config) -> Setup:
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    t_start = time.time()
    d = dist.init(pick_device(cfg.device).type)
    device = dist.device_for(d, pick_device(cfg.device))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    config = asdict(cfg)
    if d.main:
        prepare_run_dir(Path(cfg.run_dir), OmegaConf.to_yaml(OmegaConf.create(config)))
    return Setup(d, device, t_start, config)


def build_model(cfg: Config, device: torch.device):
    """The VLM with its trainable policy applied, its tokenizer, and the parameter table."""
    torch.manual_seed(cfg.seed)
    vlm, tokenizer = build_vlm(cfg, seed=cfg.seed)
    vlm.to(device)
    params = parameter_table(vlm)
    print(format_table(params))
    return vlm, tokenizer, params


def build_data(cfg: Config, vlm, tokenizer) -> Data:
    store = ViewStore(cache_root() / "views.sqlite", cfg.vision.view_store_mb) if cfg.vision.view_store_mb > 0 else None
    images = build_image_processor(cfg.image, vlm.vision, cfg.vision.mean, cfg.vision.std, cfg.data.grain, store)
    max_len = getattr(vlm.llm.config, "max_position_embeddings", 2048)
    processor = Processor(tokenizer, vlm.ids, images, vlm.visual_tokens_per_view, cfg.fusion.kind, max_len)
    samples = load_mixture(cfg.data, "train")
    train_set = TaskDataset(undecoded(samples) if store is not None else samples, processor, train=True,
                            with_answer=True, bad_samples=cfg.bad_samples)
    return Data(images, processor, train_set)


def resume(cfg: Config, env: Setup, vlm, data: Data) -> Loop:
    """Optimizer, schedule and data cursor, restored from the latest checkpoint if there is one."""
    run_dir, d = Path(cfg.run_dir), env.d
    model = dist.wrap(vlm, cfg.parallel, d)  # DDP / FSDP under torchrun; FSDP shards in place, before the optimizer
    opt = make_optimizer(vlm, cfg.optim)
    sched = make_schedule(opt, cfg.optim)
    ckpt = checkpoint.find(run_dir)
    state = checkpoint.load(ckpt, vlm, opt, sched) if ckpt else checkpoint.TrainState()
    if ckpt:
        print(f"[vlmlab] resuming {run_dir} from step {state.step}")
    if d.main and ckpt:
        truncate_log(run_dir / METRICS, state.step)
    elif d.main:
        (run_dir / METRICS).unlink(missing_ok=True)
    batches = EpochBatches(len(data.train_set), cfg.optim.batch_size, cfg.seed, start=state.batches)
    patch = data.images.patch_size
    loader = DataLoader(data.train_set, batch_sampler=dist.RankSlice(batches, d) if d.enabled else batches,
                        collate_fn=lambda items: collate(items, vlm.ids.pad, patch),
                        num_workers=cfg.workers, persistent_workers=cfg.workers > 0,
                        pin_memory=env.device.type == "cuda",
                        generator=torch.Generator().manual_seed(cfg.seed))  # keeps the global RNG untouched
    tracker = Tracker(run_dir, cfg.logger, env.config, run_name=f"{run_dir.parent.name}/seed{cfg.seed}",
                      group=cfg.name, enabled=d.main)
    return Loop(cfg, model, vlm, opt, sched, loader, state, tracker, run_dir, env.device, d, resumed=bool(ckpt))


def evaluation_model(cfg: Config, loop: Loop):
    """The VLM rank 0 evaluates: under FSDP an unsharded copy holding the gathered weights."""
    if not dist.is_fsdp(loop.model):
        return loop.vlm
    full = dist.full_state_dict(loop.model)
    if not loop.d.main:
        return None
    vlm, _ = build_vlm(cfg, seed=cfg.seed)
    vlm.load_state_dict(full)
    return vlm.to(loop.device)


def evaluate_and_summarise(cfg: Config, env: Setup, loop: Loop, vlm, data: Data, params: dict) -> Summary:
    """Evaluation (a diverged run is a result: recorded, not evaluated), then the summary, written last."""
    state, run_dir = loop.state, loop.run_dir
    status = "diverged" if diverged(state.losses, cfg.optim) else "finished"
    memory = PeakMemory(loop.device).start()
    metrics = {}
    if status == "finished":
        metrics, predictions = evaluate(vlm, data.processor, cfg.data, cfg.eval, loop.device)
        loop.tracker.log(state.step, {f"eval/{k}": v for k, v in metrics.items()})
        write_json_atomic(run_dir / PREDICTIONS, predictions)
    summary = Summary(
        status=status, metrics=metrics, final_train_loss=state.losses[-1], first_losses=state.losses[:5],
        loss_history=state.losses, diverged_at_step=state.step if status == "diverged" else None,
        steps_done=state.step, params=params,
        visual_tokens_per_image=mean_visual_tokens(data.train_set.samples, data.images, vlm.visual_tokens_per_view),
        compute=compute.profile(vlm, data.train_set, cfg.optim.batch_size, loop.device),
        perf=Perf(train_samples_per_s=state.samples / max(state.train_time_s, 1e-9), train_time_s=state.train_time_s,
                  peak_memory_mb=max(state.peak_memory_mb, memory.stop()),
                  eval_latency_ms=metrics.get("eval_latency_ms")),
        skipped_samples=data.train_set.skipped,
        feature_store=vlm.feature_store.stats() if vlm.feature_store is not None else None,
        view_store=data.images.store.stats() if data.images.store is not None else None,
        resumed=loop.resumed, wall_time_s=time.time() - env.t_start, device=str(loop.device),
        torch_threads=torch.get_num_threads(), machine=machine_name(loop.device), software=software(), git_commit=git_commit(repo_root()),
        world_version=world_id(cfg.scale) if cfg.eval.benchmark == "toy" else None, config=env.config)
    loop.tracker.finish({f"eval/{k}": v for k, v in metrics.items()})
    summary.save(run_dir / SUMMARY)  # written last: its existence means "finished"
    checkpoint.remove(run_dir)
    return summary


def run(cfg: Config) -> dict:
    """One run, phase by phase; returns its summary (that of the finished or reused run if there is one)."""
    done = reuse.finished_or_reused(cfg)  # this folder's own summary, or an identical run's results
    if done is not None:
        return done
    env = setup(cfg)
    vlm, tokenizer, params = build_model(cfg, env.device)
    data = build_data(cfg, vlm, tokenizer)
    loop = resume(cfg, env, vlm, data)
    train(loop)
    vlm = evaluation_model(cfg, loop)
    if not env.d.main:  # rank 0 evaluates and writes the summary
        dist.barrier(env.d)
        dist.shutdown(env.d)
        return {}
    summary = evaluate_and_summarise(cfg, env, loop, vlm, data, params)
    dist.barrier(env.d)
    dist.shutdown(env.d)
    m = summary.metrics
    print(f"[vlmlab] {cfg.run_dir}: " + (f"diverged at step {summary.steps_done} (loss {summary.final_train_loss:.3g})"
          if not m else f"avg {m['avg']:.2f} | " + " ".join(f"{t} {m[t]:.1f}" for t in cfg.data.tasks)))
    return summary.to_dict()
