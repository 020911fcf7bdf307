"""Isolated timing of an ablation's cells: every cell's model timed in one process, one thread, interleaved.

    python -m vlmlab.timing NAME [--runs runs] [--ablations ablations] [--reps 16] [--warmup 3]

A sweep's own samples/s comes from two jobs sharing the cores, so it measures the neighbour as well (in the
committed 17-seed F1 runs, four cells of identical compute differ by 4-6 samples/s). Here each cell's model is
rebuilt from its finished seed-0 run's config, on a fixed batch (the first batch_size training samples), and
its training step (forward, backward, clip, AdamW: bench/measure.py's Trainer, as a run) is timed rep after
rep, the order alternating ABC CBA so that drift in the machine's load falls on every cell alike. The feature
store is off here: the step includes the frozen tower, as the model's cost does.

Checks use each rep's process CPU time (cpu_ms): with one thread it is the compute the step received, and
another process on the machine (a test worker, a sweep) does not inflate it as it inflates the wall clock
(step_ms, kept beside it). The A/A control: the first cell is built a second time and timed as a cell of its own ("<cell> (A/A)"). Its
paired per-rep difference from the first, with a 95% t interval, is the timing noise of this measurement;
the report states it beside the cells. Writes <runs>/<name>/timing.csv (one row per cell and rep) and
<runs>/<name>/timing_summary.csv (per cell: median step ms, samples/s, and the A/A row).
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import pandas as pd
import torch
import yaml

from vlmlab.bench.measure import Trainer, timed
from vlmlab.config import Config, to_config
from vlmlab.contract.ablation import load_ablation
from vlmlab.contract.errors import UserError
from vlmlab.contract.run import CONFIG, seed_dir
from vlmlab.data import collate
from vlmlab.model.build import build_vlm
from vlmlab.report.stats import mean_ci
from vlmlab.tracking import write_atomic
from vlmlab.runner import build_data

AA = " (A/A)"


class CellStep:
    """A cell's VLM and its fixed batch, shaped as bench/measure.py's Trainer expects (model, loss())."""

    def __init__(self, cfg: Config, store: bool = False):
        torch.manual_seed(cfg.seed)
        self.model, tok = build_vlm(cfg, seed=cfg.seed)
        if not store:
            self.model.feature_store = None  # time the model's step, frozen tower included
        data = build_data(cfg, self.model, tok)  # runner.py's data phase
        self.batch = collate([data.train_set[i] for i in range(cfg.optim.batch_size)], self.model.ids.pad,
                             data.images.patch_size)
        self.samples = cfg.optim.batch_size

    def loss(self):
        return self.model(**self.batch, return_logits=False)[0]


def measure_cells(configs: dict[str, Config], reps: int = 16, warmup: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Times every cell's training step (and an A/A twin of the first) interleaved; returns (per rep, summary)."""
    torch.set_num_threads(1)
    first = next(iter(configs))
    names = [*configs, first + AA]
    trainers = [Trainer(CellStep(configs[n.removesuffix(AA)])) for n in names]
    for tr in trainers:
        for _ in range(warmup):
            tr.step()
    rows = []
    for r in range(reps):
        for i in (range(len(names)) if r % 2 == 0 else reversed(range(len(names)))):
            wall, cpu = timed(trainers[i].step, torch.device("cpu"))
            rows.append({"cell": names[i], "rep": r, "step_ms": 1000 * wall, "cpu_ms": 1000 * cpu})
    per_rep = pd.DataFrame(rows)
    summary = []
    for name, tr in zip(names, trainers):
        ms = per_rep.loc[per_rep["cell"] == name, "step_ms"]
        cpu = per_rep.loc[per_rep["cell"] == name, "cpu_ms"]
        summary.append({"cell": name, "median_step_ms": statistics.median(ms), "median_cpu_ms": statistics.median(cpu),
                        "samples_per_s": 1000 * tr.subject.samples / statistics.median(ms), "reps": len(ms)})
    a = per_rep[per_rep["cell"] == first].set_index("rep")["cpu_ms"]
    b = per_rep[per_rep["cell"] == first + AA].set_index("rep")["cpu_ms"]
    mean, half, n = mean_ci(b - a)
    out = pd.DataFrame(summary)
    out["aa_diff_ms"], out["aa_ci95_ms"] = mean, half  # the A/A noise, the same on every row
    return per_rep, out


def configs_of(runs: Path, name: str) -> dict[str, Config]:
    """Each cell's config, from its finished seed-0 run (or the lowest seed that finished)."""
    out = {}
    for cell in sorted(p for p in (runs / name).iterdir() if p.is_dir()) if (runs / name).is_dir() else []:
        done = sorted(cell.glob(f"seed*/{CONFIG}"), key=lambda p: (p.parent.name != seed_dir(0), p.parent.name))
        done = [p for p in done if (p.parent / "summary.json").exists()]
        if done:
            raw = yaml.safe_load(done[0].read_text())
            raw["run_dir"] = str(done[0].parent)
            out[cell.name] = to_config(raw)
    if not out:
        raise UserError(f"{runs / name}: no finished runs to time; run the ablation first")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vlmlab.timing", description=__doc__.splitlines()[0])
    ap.add_argument("name", help="the ablation (its runs are under <runs>/<name>/)")
    ap.add_argument("--runs", default="runs")
    ap.add_argument("--ablations", default="ablations")
    ap.add_argument("--reps", type=int, default=16)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args(argv)
    try:
        path = Path(args.ablations) / f"{args.name}.yaml"
        if path.exists():
            load_ablation(path)  # its plugins register what the cells' configs name
        per_rep, summary = measure_cells(configs_of(Path(args.runs), args.name), args.reps, args.warmup)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    folder = Path(args.runs) / args.name
    write_atomic(folder / "timing.csv", per_rep.to_csv(index=False))
    write_atomic(folder / "timing_summary.csv", summary.to_csv(index=False))
    print(summary.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
