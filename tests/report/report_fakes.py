"""Fabricates run folders and ablation files with chosen numbers, in the layout of docs/INTERFACES.md.

make_run(runs, "f4", "connector=mlp", seed=0, avg=50.0) writes config.yaml, metrics.jsonl and a
summary.json (status finished / diverged), a failed.json (failed), or only config.yaml (missing:
a run that was interrupted before it finished).
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

TASKS = ("vqa", "textvqa", "okvqa", "caption")


def config(**over) -> dict:
    cfg = {"name": "x", "seed": 0, "debug": "none",
           "vision": {"name_or_path": "zoo:vision_strong"}, "llm": {"name_or_path": "zoo:lm_strong"},
           "optim": {"max_steps": 5, "batch_size": 4, "grad_accum": 1, "lr": 1e-3},
           "data": {"tasks": list(TASKS), "train_size": 40, "validation_size": 8, "test_size": 8},
           "eval": {"split": "validation", "max_samples": 8}}
    for dotted, value in over.items():
        *parents, last = dotted.split(".")
        node = cfg
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return cfg


def make_run(runs, ablation: str, cell: str, seed: int, status: str = "finished", avg: float = 50.0,
             tasks: dict | None = None, sps: float = 10.0, mem: float = 500.0, latency: float = 5.0,
             vtok: int = 64, params: tuple[int, int] = (1_000_000, 200_000), losses=(3.0, 2.5, 2.0, 1.5, 1.2),
             wall: float = 2.0, cfg: dict | None = None) -> Path:
    """One seed folder. Task scores default to avg for every task (so avg is their plain mean)."""
    d = Path(runs) / ablation / cell / f"seed{seed}"
    d.mkdir(parents=True, exist_ok=True)
    cfg = cfg or config(seed=seed, name=ablation)
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    if status == "missing":
        return d
    with open(d / "metrics.jsonl", "w") as f:
        for step, loss in enumerate(losses, start=1):
            f.write(json.dumps({"step": step, "train/loss": loss, "train/lr": 1e-3, "perf/samples_per_s": sps}) + "\n")
    if status == "failed":
        (d / "failed.json").write_text(json.dumps({"error": "RuntimeError: boom\nmore", "traceback": "..."}))
        return d
    scores = dict(tasks) if tasks else {t: avg for t in TASKS}
    metrics = {}
    if status == "finished":
        metrics = {**scores, "avg": sum(scores.values()) / len(scores), "eval_latency_ms": latency,
                   **{f"latency_ms/{t}": latency for t in scores}}
        with open(d / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"step": len(losses), **{f"eval/{k}": v for k, v in metrics.items()}}) + "\n")
    total, trainable = params
    summary = {"status": status, "metrics": metrics, "final_train_loss": losses[-1], "first_losses": list(losses),
               "params": {"vision": {"total": total // 2, "trainable": 0}, "connector": {"total": trainable, "trainable": trainable},
                          "llm": {"total": total - total // 2 - trainable, "trainable": 0},
                          "all": {"total": total, "trainable": trainable}},
               "visual_tokens_per_image": vtok,
               "perf": {"train_samples_per_s": sps, "train_time_s": wall / 2, "peak_memory_mb": mem,
                        "eval_latency_ms": latency if status == "finished" else None},
               "wall_time_s": wall, "device": "cpu", "torch_threads": 2, "git_commit": "abc123", "config": cfg}
    if status == "diverged":
        summary.update(diverged_at_step=3, loss_history=list(losses))
    (d / "summary.json").write_text(json.dumps(summary))
    return d


def write_ablation(folder, name: str, finding: str, grid: dict, checks: list, seeds=(0, 1, 2),
                   metrics=("avg", *TASKS), claim: str = "a claim", numbers: str = "1 -> 2") -> Path:
    path = Path(folder) / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = {"finding": finding, "question": f"question of {name}?", "paper": {"claim": claim, "numbers": numbers},
            "grid": grid, "seeds": list(seeds), "metrics": list(metrics), "checks": checks}
    path.write_text(f"# {name}: make ablation NAME={name}\n" + yaml.safe_dump(spec, sort_keys=False))
    return path
