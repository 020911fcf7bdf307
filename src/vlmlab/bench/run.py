"""Runs the benchmark: each group (ours, then the reference) built side by side, measured interleaved, one table.

Timed repetitions alternate the order (ABC CBA ...) so that load from other processes on a shared machine
falls on every model alike; medians are reported. Rows go to results/bench.csv (atomic write).
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import statistics
import time
from dataclasses import asdict
from pathlib import Path

import torch
import transformers

from vlmlab.bench import measure
from vlmlab.bench.models import GROUPS, PARAM_NOTES, SIZE_NAMES, SIZES, Dims, dims_for, param_counts
from vlmlab.perf import cpu_name
from vlmlab.tracking import write_text_atomic


def _order(r: int, n: int) -> list[int]:
    return list(range(n)) if r % 2 == 0 else list(range(n))[::-1]  # ABC CBA: a drift in load falls on all alike


def measure_group(fusion: str, d: Dims, trainable: str, device: torch.device, reps: int, warmup: int,
                  gen_reps: int) -> list[dict]:
    """Builds ours and the reference for one fusion, then measures them all; returns one row per model."""
    rows, trainers = [], []
    for build in GROUPS[fusion]:
        measure.release_memory()
        base = measure.memory_level(device)  # the group's models built before stay in the baseline
        subject = build(d, trainable, device=device)
        tr = measure.Trainer(subject)
        for _ in range(warmup):
            tr.step()
        total, train = param_counts(subject.model)
        peak = measure.step_peak_memory(tr, device) - base
        rows.append({"model": subject.name, "fusion": fusion, "params": total, "trainable_params": train,
                     "peak_mem_mb": round(peak, 1), "flops_per_step": measure.step_flops(tr),
                     "note": PARAM_NOTES[subject.name]})
        trainers.append(tr)
    n = len(trainers)
    times, gen = [[] for _ in range(n)], [[] for _ in range(n)]  # per model: [(wall, cpu)] seconds
    for r in range(reps):
        for i in _order(r, n):
            times[i].append(measure.timed(trainers[i].step, device))
    for tr in trainers:
        measure.generation_time(tr.subject, device)  # warm-up
    for r in range(gen_reps):
        for i in _order(r, n):
            t, rows[i]["gen_new_tokens"] = measure.generation_time(trainers[i].subject, device)
            gen[i].append(t)
    for i, row in enumerate(rows):
        wall, cpu = (statistics.median(t) for t in zip(*times[i]))
        gen_wall, gen_cpu = (statistics.median(t) for t in zip(*gen[i]))
        row.update(step_ms=round(1000 * wall, 2), step_ms_cpu=round(1000 * cpu, 2),
                   samples_per_s=round(d.batch / wall, 2), samples_per_s_cpu=round(d.batch / cpu, 2),
                   achieved_gflops=round(row["flops_per_step"] / wall / 1e9, 3),
                   achieved_gflops_cpu=round(row["flops_per_step"] / cpu / 1e9, 3),
                   gen_ms_per_sample=round(1000 * gen_wall / d.batch, 3),
                   gen_ms_per_sample_cpu=round(1000 * gen_cpu / d.batch, 3))
    del trainers
    measure.release_memory()
    return rows


def warm_process(device: torch.device) -> None:
    """One step and one generation of every model at the tiny size: lazy initialisation (kernels, thread
    pools, transformers' caches) happens here, not inside the first measured model's memory or time."""
    for build in (b for group in GROUPS.values() for b in group):
        subject = build(SIZES["tiny"], device=device)
        measure.Trainer(subject).step()
        measure.generation_time(subject, device)
    measure.release_memory()


def run_bench(size: str = "toy", trainable: str = "frozen", device: str = "cpu", reps: int = 24, warmup: int = 3,
              gen_reps: int = 5, fusions=tuple(GROUPS), dims: Dims | None = None,
              peak_sizes: tuple[int, ...] = (1024, 2048)) -> dict:
    """Returns {"peak": matmul peak, "rows": per-model rows (with the shared columns), "ratios": each of ours
    against its group's reference, by model name}."""
    dev = torch.device(device)
    d = dims or dims_for(size)
    load0 = os.getloadavg()[0]
    t0 = time.time()
    measure.allocator_for_speed()
    warm_process(dev)
    peak = measure.matmul_peak(dev, peak_sizes)
    rows = []
    for fusion in fusions:
        rows += measure_group(fusion, d, trainable, dev, reps, warmup, gen_reps)
    peak_after = measure.matmul_peak(dev, peak_sizes)  # measured again: the peak is the better of the two
    if peak_after["gflops_cpu"] > peak["gflops_cpu"]:
        peak = peak_after
    shared = {"size": size, "batch": d.batch, "trainable": trainable,
              "device": device,
              "machine": cpu_name() if dev.type == "cpu" else torch.cuda.get_device_name(dev),
              "threads": torch.get_num_threads(), "matmul_peak_gflops": round(peak["gflops"], 2),
              "matmul_peak_gflops_cpu": round(peak["gflops_cpu"], 2),
              "matmul_n": peak["n"], "load_avg_start": round(load0, 2), "load_avg_end": round(os.getloadavg()[0], 2),
              "torch": torch.__version__, "transformers": transformers.__version__,
              "date": time.strftime("%Y-%m-%d %H:%M"), "bench_seconds": round(time.time() - t0, 1)}
    for row in rows:
        capability = peak["gflops_cpu"] * torch.get_num_threads()  # each thread on a core of its own
        row["pct_of_matmul_peak"] = round(100 * row["achieved_gflops"] / capability, 1)
        row["pct_of_matmul_peak_cpu"] = round(100 * row["achieved_gflops_cpu"] / peak["gflops_cpu"], 1)
        row.update(shared)
    ratios = {}
    for fusion in fusions:
        *mine, ref = [r for r in rows if r["fusion"] == fusion]
        for ours in mine:
            ratios[ours["model"]] = {"fusion": fusion, "reference": ref["model"], "speed": ours["samples_per_s"] / ref["samples_per_s"],
                                     "speed_cpu": ours["samples_per_s_cpu"] / ref["samples_per_s_cpu"],
                                     "memory": ours["peak_mem_mb"] / max(ref["peak_mem_mb"], 1e-9),
                                     "gen_latency": ours["gen_ms_per_sample"] / ref["gen_ms_per_sample"],
                                     "gen_latency_cpu": ours["gen_ms_per_sample_cpu"] / ref["gen_ms_per_sample_cpu"],
                                     "params": ours["params"] / ref["params"], "flops": ours["flops_per_step"] /
                                     ref["flops_per_step"]}
    return {"peak": peak, "rows": rows, "ratios": ratios, "dims": asdict(d), "shared": shared}


COLUMNS = [("model", "{:<17}", "model"), ("params", "{:>10,}", "params"),
           ("trainable_params", "{:>10,}", "trainable"), ("samples_per_s", "{:>7.1f}", "smp/s"),
           ("samples_per_s_cpu", "{:>7.1f}", "smp/cpu"), ("peak_mem_mb", "{:>7.1f}", "MiB"),
           ("flops_per_step", "{:>8.2e}", "FLOP/st"), ("pct_of_matmul_peak", "{:>6.1f}", "%pk"),
           ("pct_of_matmul_peak_cpu", "{:>6.1f}", "%pkcpu"), ("gen_ms_per_sample", "{:>7.2f}", "gen ms"),
           ("gen_ms_per_sample_cpu", "{:>7.2f}", "gen cpu")]
LEGEND = """\
smp/s, %pk, gen ms: wall clock (what a user waits; as noisy as the machine's load).
smp/cpu, %pkcpu, gen cpu: per second of this process's CPU time (1 thread: far less load-sensitive).
%pk, %pkcpu: model FLOP/s (wall, CPU) as a share of the fp32 matmul peak per CPU second (x threads for
  wall), i.e. of the cores' capability, which the wall-clock peak understates under load.
MiB: peak rise of the RSS (CPU) / allocated memory (CUDA) during one step, model and optimizer included.
FLOP/st: forward + backward as executed (FlopCounterMode). gen: greedy KV-cache generation, ms per sample."""


def format_table(result: dict) -> str:
    s = result["shared"]
    lines = [f"vlmlab bench: size={s['size']} batch={s['batch']} trainable={s['trainable']} device={s['device']} "
             f"({s['machine']}, {s['threads']} thread(s))",
             f"fp32 matmul peak: {s['matmul_peak_gflops']:.1f} GFLOP/s wall, {s['matmul_peak_gflops_cpu']:.1f} per "
             f"CPU second (n={s['matmul_n']}); load average {s['load_avg_start']} -> {s['load_avg_end']}", ""]
    widths = [len(f.format("x" if "<" in f else 0)) for _, f, _ in COLUMNS]
    lines.append(" ".join(h.rjust(w) if i else h.ljust(w) for i, ((_, _, h), w) in enumerate(zip(COLUMNS, widths))))
    for fusion in dict.fromkeys(r["fusion"] for r in result["rows"]):
        for row in (x for x in result["rows"] if x["fusion"] == fusion):
            lines.append(" ".join(f.format(row[k]) for k, f, _ in COLUMNS))
        for model, r in ((m, r) for m, r in result["ratios"].items() if r["fusion"] == fusion):
            lines.append(f"  {model}/{r['reference']}: speed x{r['speed']:.2f} (cpu x{r['speed_cpu']:.2f})  "
                         f"memory x{r['memory']:.2f}  gen latency x{r['gen_latency']:.2f} "
                         f"(cpu x{r['gen_latency_cpu']:.2f})  params x{r['params']:.3f}  FLOPs x{r['flops']:.3f}")
    return "\n".join(lines + ["", LEGEND])


def write_csv(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def _table(rows: list[dict], fmt, out: str, name: str) -> None:
    """Prints the rows and writes them beside --out as `name` (unless --out is '')."""
    print(fmt(rows))
    if out:
        path = Path(out).with_name(name)
        write_csv(rows, path)
        print(f"[bench] wrote {path}")


def main(argv: list[str] | None = None) -> None:
    from vlmlab.paths import repo_root

    ap = argparse.ArgumentParser(prog="python -m vlmlab.bench", description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=SIZE_NAMES, default="toy",
                    help="toy: the default recipe's dims (zoo backbones, conf/); tiny: for tests; big: models.py")
    ap.add_argument("--trainable", choices=["frozen", "full"], default="frozen",
                    help="frozen: backbones frozen, new modules train (the baseline recipe); full: everything")
    ap.add_argument("--fusion", choices=list(GROUPS), nargs="+", default=list(GROUPS))
    ap.add_argument("--reps", type=int, default=24, help="timed training steps per model (median reported)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--gen-reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (0 = torch's default). 1 by default: on a shared 2-core machine two OpenMP "
                         "threads stall whenever another process holds a core (tiny step: 20 ms -> 0.2-1.2 s)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(repo_root() / "results" / "bench.csv"), help="'' to skip the CSV")
    ap.add_argument("--profile", action="store_true",
                    help="instead: where each model's training step spends its time (profile.py)")
    ap.add_argument("--encoder", action="store_true",
                    help="instead: encoder time, square vs aspect-ratio preserving images (encoder.py)")
    ap.add_argument("--views", action="store_true",
                    help="instead: the image pipeline's cost per sample with and without the view store (views.py)")
    ap.add_argument("--sweep", action="store_true",
                    help="instead: the findings grid's cost with and without the feature store and reuse (sweep.py)")
    ap.add_argument("--ablations", default=str(repo_root() / "ablations"), help="--sweep: the ablation files")
    ap.add_argument("overrides", nargs="*", help="--sweep: overrides for every cell (e.g. debug=smoke)")
    ap.add_argument("--vision", default="toy_strong", help="--encoder: the vision config (conf/vision/)")
    ap.add_argument("--sizes", default="64,128,192", help="--encoder: image sides S (square S x S; preserve long side S)")
    ap.add_argument("--images", type=int, default=16, help="--encoder: world pictures per batch; --views: samples")
    args = ap.parse_args(argv)
    transformers.utils.logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.profile:
        from vlmlab.bench.profile import profile_step

        print(profile_step(dims_for(args.size), args.trainable, torch.device(args.device), fusions=args.fusion))
        return
    if args.sweep:
        from vlmlab.bench.sweep import format_cost, sweep_cost

        res = sweep_cost(args.ablations, args.overrides, reps=min(args.reps, 8), warmup=args.warmup)
        print(format_cost(res))
        if args.out:
            out = Path(args.out).with_name("bench_sweep.csv")
            write_csv([{**c, **{f"total_{k}_s": round(v, 1) for k, v in res["totals"].items()}}
                       for c in res["cells"]], out)
            print(f"[bench] wrote {out}")
        return
    if args.views:
        from vlmlab.bench.views import format_rows, view_rows

        _table(view_rows(args.images, min(args.reps, 8)), format_rows, args.out, "bench_views.csv")
        return
    if args.encoder:
        from vlmlab.bench.encoder import encoder_rows, format_rows

        rows = encoder_rows(args.vision, tuple(int(s) for s in args.sizes.split(",")), args.images, args.reps,
                            args.warmup)
        _table(rows, format_rows, args.out, "bench_encoder.csv")
        return
    result = run_bench(args.size, args.trainable, args.device, args.reps, args.warmup, args.gen_reps, args.fusion)
    print(format_table(result))
    if args.out:
        write_csv(result["rows"], Path(args.out))
        print(f"[bench] wrote {args.out}")
