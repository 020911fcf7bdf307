# Diagnostic (docs/world.md, world v2): does any VLM recipe use the rc1 encoder's visual tokens? Trains variants of the
# baseline recipe (each a list of Hydra overrides) with one thread, on the validation split, then prints accuracy per
# vqa question type and per task beside the blind control. Runs go under runs/diag/<name>/; finished runs are
# skipped, so the script resumes.
#   python calibration/experiments/vlm_recipes.py NAME=override,override ... [--seeds 0,1] [--jobs 2] [--jsonl F --label L]
# Scores per vqa question type are exact-match accuracy (%) of the normalised prediction; caption's is not computed
# here: caption_score is its CIDEr from the run's summary.json, as every <task>_score is the task's own metric.
import argparse, collections, gzip, json, os, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BASE = ["eval.split=validation", "data.validation_size=300", "eval.max_samples=300", "threads=1", "logger=none",
        "name=r"]


def run_dir(name: str, seed: int, root: str = "runs/diag") -> Path | None:
    found = sorted(Path(root, name).glob(f"r/*/seed{seed}/summary.json"))
    return found[0].parent if found else None


def train(name: str, overrides: list[str], seed: int, root: str = "runs/diag") -> None:
    """One run of the recipe with `overrides` under root/name/ (skipped when it has finished; resumes otherwise)."""
    if run_dir(name, seed, root):
        return
    Path(root, name).mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "vlmlab.train", *BASE, f"runs_root={root}/{name}", f"seed={seed}", *overrides]
    with open(Path(root, name, f"stdout{seed}.log"), "a") as log:
        subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "WANDB_MODE": "disabled"})


def predictions(folder: Path) -> dict:
    """A run's predictions: predictions.json as the run wrote it, or .json.gz as vlmlab.carry keeps it in results/."""
    gz = folder / "predictions.json.gz"
    return json.loads(gzip.open(gz).read() if gz.exists() else (folder / "predictions.json").read_text())


def per_type(name: str, seed: int) -> dict:
    out = run_dir(name, seed)
    if out is None:
        return {"failed": True}
    preds = predictions(out)
    summary = json.loads((out / "summary.json").read_text())
    row = {"train_s": round(summary["wall_time_s"]), **{f"{k}_score": round(v, 2) for k, v in summary["metrics"].items()
                                                         if k in ("vqa", "textvqa", "okvqa", "caption", "avg")}}
    for task, items in preds.items():
        by = collections.defaultdict(list)
        for it in items:
            qtype = it["id"].rsplit("-", 1)[1] if task == "vqa" else task
            by[qtype].append(it["normalized"] in [a.lower() for a in it["answers"]] or it["prediction"] in it["answers"])
        for k, v in by.items():
            row[k] = 100 * sum(v) / len(v)
        if task == "caption":
            row.pop("caption", None)
        else:
            top = collections.Counter(it["normalized"] for it in items).most_common(3)
            row[f"{task}_top"] = top
    return row


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("variants", nargs="+", help="NAME=override,override (NAME= alone: the baseline recipe)")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--jsonl", help="append one row per run here (with --label), e.g. results/calibration/vlm_experiments.jsonl")
    ap.add_argument("--label", default="", help="what the rows are about, e.g. the zoo they ran on")
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    variants = {v.split("=", 1)[0]: [o for o in v.split("=", 1)[1].split(",") if o] for v in a.variants}
    jobs = [(n, o, s) for n, o in variants.items() for s in seeds]
    with ThreadPoolExecutor(a.jobs) as ex:
        list(ex.map(lambda j: train(*j), jobs))
    for n, o, s in jobs:
        row = per_type(n, s)
        print(n, s, json.dumps(row), flush=True)
        if a.jsonl:
            with open(a.jsonl, "a") as f:
                f.write(json.dumps({"label": a.label, "run": n, "overrides": o, "seed": s, **row}) + "\n")
