"""Held-out evaluation: batched greedy generation with the KV cache, scored per task, plus the plain mean.

vqa / textvqa / okvqa use VQA accuracy (%); caption uses CIDEr (x100), as the paper's COCO column.
The headline `avg` is the plain mean of the four, as in the paper; per-task numbers sit beside it.
"""
from __future__ import annotations

import time

import torch
from torch.utils.data import DataLoader

from vlmlab.data import Processor, TaskDataset, collate
from vlmlab.metrics import cider, vqa_accuracy


def _to(batch: dict, device) -> dict:
    return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


@torch.no_grad()
def evaluate_task(vlm, processor: Processor, samples, task: str, cfg, device) -> dict:
    """Returns {task: score, f'{task}/latency_ms': per-sample generation latency, 'predictions': [...]}"""
    loader = DataLoader(TaskDataset(samples, processor, train=False, with_answer=False), batch_size=cfg.batch_size,
                        collate_fn=lambda items: collate(items, processor.ids.pad, processor.images.patch_size,
                                                         left_pad=True))
    preds: list[str] = []
    elapsed = 0.0
    for batch in loader:
        batch = _to(batch, device)
        t0 = time.perf_counter()
        out = vlm.generate(batch["input_ids"], batch["attention_mask"], batch["pixel_values"], batch["patch_mask"],
                           batch["view_to_sample"], max_new_tokens=cfg.max_new_tokens)
        elapsed += time.perf_counter() - t0
        preds += [processor.tok.decode(ids, skip_special_tokens=True).strip() for ids in out]
    answers = samples["answers"]
    if task == "caption":
        ids = [str(i) for i in range(len(preds))]
        score, _ = cider(dict(zip(ids, preds)), dict(zip(ids, answers)))
    else:
        score = 100.0 * sum(vqa_accuracy(p, a) for p, a in zip(preds, answers)) / max(1, len(preds))
    return {task: score, f"latency_ms/{task}": 1000.0 * elapsed / max(1, len(preds)),
            "predictions": [{"id": i, "prediction": p, "answers": a}
                            for i, p, a in zip(samples["id"], preds, answers)]}


def evaluate(vlm, processor: Processor, splits: dict, cfg, device) -> tuple[dict, dict]:
    """splits: {task: datasets.Dataset}. Returns (metrics, predictions per task)."""
    was_training = vlm.training
    vlm.eval()
    metrics, predictions = {}, {}
    for task, ds in splits.items():
        if cfg.max_samples:
            ds = ds.select(range(min(cfg.max_samples, len(ds))))
        out = evaluate_task(vlm, processor, ds, task, cfg, device)
        predictions[task] = out.pop("predictions")
        metrics.update(out)
    scores = [metrics[t] for t in splits]
    metrics["avg"] = sum(scores) / len(scores)
    lat = [metrics[f"latency_ms/{t}"] for t in splits]
    metrics["eval_latency_ms"] = sum(lat) / len(lat)
    vlm.train(was_training)
    return metrics, predictions
