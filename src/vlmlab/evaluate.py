"""Held-out evaluation: batched greedy generation with the KV cache, scored per task, plus the plain mean.

Each task is scored by its registry entry (vlmlab/tasks.py: VQA accuracy in % for vqa / textvqa / okvqa, CIDEr x100
for caption, as the paper's COCO column). The headline `avg` is the plain mean over the run's tasks, as in the
paper; per-task numbers sit beside it.
Prompts can carry k in-context examples (`eval.shots`; the paper's protocol is 4-shot), drawn per query
by `benchmarks.few_shot`; the benchmark is the toy world's held-out split or the real datasets.
"""
from __future__ import annotations

import time

import torch
from torch.utils.data import DataLoader, Dataset

from vlmlab import benchmarks
from vlmlab.contract.tasks import get_task
from vlmlab.data import Processor, collate
from vlmlab.world.tasks import load_split


class PromptSet(Dataset):
    """Few-shot prompts (k=0: the query alone) encoded on access."""

    def __init__(self, prompts, processor: Processor):
        self.prompts, self.processor = prompts, processor

    def __len__(self) -> int:
        return len(self.prompts)

    def __getitem__(self, i):
        return benchmarks.encode_few_shot(self.processor, self.prompts[i])


def eval_prompts(cfg, world_cfg, task: str):
    """The prompts of one task: the world's held-out split (shots from its train split) or a real benchmark."""
    if cfg.benchmark == "real":
        over = {"path": cfg.benchmark_paths[task]} if task in cfg.benchmark_paths else {}
        return benchmarks.load_few_shot(task, k=cfg.shots, seed=cfg.shot_seed, limit=cfg.max_samples, **over)
    queries = load_split(world_cfg, task, cfg.split)
    if cfg.max_samples:
        queries = queries.select(range(min(cfg.max_samples, len(queries))))
    support = load_split(world_cfg, task, "train") if cfg.shots else queries
    return benchmarks.few_shot(queries, support, k=cfg.shots, seed=cfg.shot_seed)


@torch.no_grad()
def evaluate_task(vlm, processor: Processor, prompts, task: str, cfg, device) -> dict:
    """Returns {task: score, f'latency_ms/{task}': per-sample generation latency, 'predictions': [...]}"""
    if processor.images.store is not None:
        prompts = prompts.undecoded()  # the view store keys on the pictures' file bytes
    loader = DataLoader(PromptSet(prompts, processor), batch_size=cfg.batch_size,
                        collate_fn=lambda items: collate(items, processor.ids.pad, processor.images.patch_size,
                                                         left_pad=True))
    preds: list[str] = []
    elapsed = 0.0
    for batch in loader:
        batch = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
        t0 = time.perf_counter()
        out = vlm.generate(batch["input_ids"], batch["attention_mask"], batch["pixel_values"], batch["patch_mask"],
                           batch["view_to_sample"], batch["view_to_image"], max_new_tokens=cfg.max_new_tokens)
        elapsed += time.perf_counter() - t0
        preds += [benchmarks.clean_prediction(processor.tok.decode(ids, skip_special_tokens=True)) for ids in out]
    answers, ids = prompts.queries["answers"], prompts.queries["id"]
    spec = get_task(task)
    return {task: spec.score(preds, answers), f"latency_ms/{task}": 1000.0 * elapsed / max(1, len(preds)),
            "predictions": [{"id": i, "prediction": p, "normalized": spec.normalize(p), "answers": a}
                            for i, p, a in zip(ids, preds, answers)]}


def evaluate(vlm, processor: Processor, world_cfg, cfg, device) -> tuple[dict, dict]:
    """Evaluates every task of the world config. Returns (metrics, predictions per task)."""
    was_training = vlm.training
    vlm.eval()
    metrics, predictions = {}, {}
    tasks = list(world_cfg.tasks)
    for task in tasks:
        out = evaluate_task(vlm, processor, eval_prompts(cfg, world_cfg, task), task, cfg, device)
        predictions[task] = out.pop("predictions")
        metrics.update(out)
    metrics["avg"] = sum(metrics[t] for t in tasks) / len(tasks)
    metrics["eval_latency_ms"] = sum(metrics[f"latency_ms/{t}"] for t in tasks) / len(tasks)
    vlm.train(was_training)
    return metrics, predictions
