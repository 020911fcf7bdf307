"""The findings report: results/REPORT.md and a self-contained results/report.html, from the run folders.

`build(runs, ablations, out)` regenerates everything without training: per ablation
results/<name>/{seeds,cells,verdicts}.csv and its PNGs, then results/findings.csv, REPORT.md and
report.html (PNGs embedded as base64 data URIs; inline CSS only, no scripts). The document is first
built as a list of blocks (heading, paragraph, table, image) and then written as Markdown and as
HTML, so both say the same thing. Every number comes from the run folders; the paper's claim and
numbers are quoted from the ablation files. All writes are atomic (write_atomic).
"""
from __future__ import annotations

import math
import os
import platform
from pathlib import Path

import pandas as pd

from vlmlab.contract.ablation import finding_key, first_look, load_all
from vlmlab.perf import cpu_name
from vlmlab.report import aggregate, long_tables, plots, stats, unimodal, verdicts
from vlmlab.report import calibration as cal
from vlmlab.report.looks import looks_text, merged_looks
from vlmlab.report.markup import fmt, fmt_count, fmt_p, fmt_time, to_html, to_markdown, uniq

def scale_rows(seeds: pd.DataFrame, sweeps: pd.DataFrame | None = None) -> list[list[str]]:
    """The 'run at what scale' table: backbones, steps, batch, data, machine, wall time."""
    done = seeds[seeds["status"].isin(["finished", "diverged"])] if not seeds.empty else seeds
    if done.empty:
        return [["runs", "none yet"], ["report machine", f"{cpu_name()}, {os.cpu_count()} cores"]]
    backbone = lambda n, p: uniq(zip(done[n], done[p]), lambda t: f"{t[0]} ({fmt_count(t[1])} params)")  # noqa: E731
    counts = seeds["status"].value_counts()
    own = aggregate.own_runs(done)
    rows = [["vision backbones", backbone("vision_name", "vision_params")],
            ["language backbones", backbone("llm_name", "llm_params")],
            ["debug profile", uniq(done["debug"])],
            ["optimizer steps", uniq(done["max_steps"])],
            ["batch (samples per step)", uniq(zip(done["batch_size"], done["grad_accum"].fillna(1)),
                                                lambda t: f"{t[0]} x {t[1]} accumulation")],
            ["training data", uniq(zip(done["train_size"], done["n_tasks"]), lambda t: f"{t[0]} per task x {t[1]} tasks")],
            ["evaluation data", uniq(zip(done["eval_split"], done["eval_max_samples"]),
                                      lambda t: f"{t[0]}, up to {t[1]} per task")],
            ["evaluation protocol", uniq(done["eval_shots"] if "eval_shots" in done.columns else pd.Series([0]),
                                          lambda k: f"{int(k)}-shot") + " (the paper's scores are 4-shot: its "
                                                                        "numbers and ours compare in direction, not size)"],
            ["seeds by status", ", ".join(f"{int(counts.get(s, 0))} {s}" for s in aggregate.STATUSES)],
            ["runs trained / reused", f"{len(own)} trained; {len(done) - len(own)} identical to a finished run "
                                      "elsewhere (another ablation's shared baseline, or an earlier sweep), whose "
                                      "results they reuse (`reused_from`)"],
            ["run devices", uniq(zip(done["device"], done["torch_threads"]), lambda t: f"{t[0]} ({t[1]} threads)")],
            ["run machines", uniq(done["machine"]) if "machine" in done.columns else "–"],
            ["report machine", f"{cpu_name()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"],
            ["summed run time", f"{fmt_time(own['wall_time_s'].fillna(0).sum())} (sum over the {len(own)} trained runs)"]]
    fin = done[done["status"] == "finished"]
    if "avg" in fin.columns and len(fin):
        sd = fin.groupby(["ablation", "cell"])["avg"].std(ddof=1).dropna()  # every seed a check pairs, reused too
        if len(sd):
            rows.append(["seed-to-seed noise of avg", f"std over seeds: median {sd.median():.2f} points, range "
                                                      f"{sd.min():.2f}-{sd.max():.2f} over {len(sd)} cells (the "
                                                      "seeds the checks use)"])
    if sweeps is not None and not sweeps.empty:
        rows.append(["sweep wall time", f"{fmt_time(sweeps['wall_time_s'].sum())} over {len(sweeps)} sweeps "
                                        f"({', '.join(dict.fromkeys(sweeps['ablation']))}) on {uniq(sweeps['machine'])}"])
    return rows + [["code", uniq(done["git_commit"])]]


def cell_rows(cells: pd.DataFrame, tasks: list[str]) -> tuple[list[str], list[list[str]]]:
    head = ["cell", "seeds fin/div/fail/miss", *tasks, "params total / trainable", "visual tokens",
            "train samples/s", "peak memory MB", "eval latency ms"]
    rows = []
    for r in cells.to_dict("records"):
        seeds = "/".join(str(r[f"n_{s}"]) for s in aggregate.STATUSES)
        rows.append([r["cell"], seeds, *[fmt(r.get(f"{t}_mean"), r.get(f"{t}_ci95")) for t in tasks],
                     f"{fmt_count(r.get('total_params'))} / {fmt_count(r.get('trainable_params'))}",
                     fmt(r.get("visual_tokens_per_image"), digits=0),
                     *[fmt(r.get(f"{m}_mean"), r.get(f"{m}_ci95"), 1) for m in aggregate.SPREAD]])
    return head, rows


def verdict_rows(v: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    head = ["check", "role", "metric", "kind", "test", "pairs", "better", "worse", "better − worse (95% CI)", "p",
            "p (Holm)", "verdict", "seeds for 80% power", "note"]
    rows = [[r["check"], ("PRIMARY" if r.get("primary") else "secondary") + f", {r.get('claim', '')}",
             f"{r['metric']} ({r['direction']} is better)",
             r["kind"] + (f" (margin {r['margin']:g})" if r["kind"] == "not_worse" else ""), r.get("test", ""),
             str(r["n_pairs"]), fmt(r["better_mean"]), fmt(r["worse_mean"]),
             f"{fmt(r['diff_mean'], r['diff_ci95'])}  [{fmt(r['diff_lo'])}; {fmt(r['diff_hi'])}]",
             fmt_p(r.get("p")), fmt_p(r.get("p_holm")),
             r["verdict"].upper() if r["verdict"] in ("reproduced", "contradicted") else r["verdict"],
             to_decide_text(r), r["note"]]
            for r in v.to_dict("records")]
    return head, rows


def ablation_blocks(spec: dict, seeds: pd.DataFrame, cells: pd.DataFrame, v: pd.DataFrame, figs,
                    calibration: Path | None = None) -> list:
    """The report's section of one ablation file; `calibration`: the controls.csv of the world its runs ran in
    (cal.calibration_for), whose blind controls are shown as a floor."""
    name, paper = spec["name"], spec["paper"]
    blocks = [("h3", f"{name}: {spec.get('question', '')}", None)]
    if spec.get("plan"):  # the pre-registration: how many seeds and why, fixed before the runs
        blocks.append(("p", f"Seed plan: {spec['plan'].strip()}", None))
    if spec.get("cut"):
        blocks.append(("p", f"Cut to fit the run's budget: {spec['cut'].strip()}", None))
    if seeds.empty or not seeds["status"].ne("missing").any():
        size = f" ({len(cells)} cells x {len(spec['seeds'])} seeds)" if len(cells) else ""
        if not spec.get("findings_run", True):
            return blocks + [("p", f"Not in the findings run (cut, above); run it by name: `make ablation NAME={name}`"
                                   f"{size}.", None)]
        return blocks + [("p", f"Not run yet: `make ablation NAME={name}`{size}.", None)]
    ours_claim = "no checks in the ablation file"
    if not v.empty:
        counts = ", ".join(f"{int((v['verdict'] == k).sum())} {k}" for k in ("reproduced", "contradicted", "inconclusive"))
        ours_claim = f"{verdicts.finding_verdict(list(v['verdict']))} ({counts} of {len(v)} checks)"
    ours_numbers = "; ".join(
        f"{r['cell']}: avg {fmt(r.get('avg_mean'), r.get('avg_ci95'))}"
        + (f" ({r['n_diverged']}/{r['n_seeds']} seeds diverged)" if r["n_diverged"] else "") for r in cells.to_dict("records"))
    blocks.append(("table", ["", "the paper", "ours (this run)"],
                   [["claim", str(paper.get("claim", "–")), ours_claim],
                    ["numbers", str(paper.get("numbers", "–")), ours_numbers]]))
    if not v.empty:
        blocks += [("h4", "Verdicts (paired seeds)", None), ("table", *verdict_rows(v))]
        blocks += unimodal.blocks(unimodal.unimodal_table(spec, v, unimodal.manifest_beside(calibration)), fmt)
    tasks = aggregate.task_columns(seeds, spec)
    head, rows = cell_rows(cells, tasks)
    prior = aggregate.prior_row(seeds)
    if prior:  # the floor every score is read against
        rows.append(["prior baseline (no image, no model)", "–", *[fmt(prior.get(t)) for t in tasks],
                     *["–"] * (len(head) - 2 - len(tasks))])
    blind = cal.blind_controls(calibration)
    blind = {t: blind[t] for t in tasks if t in blind}
    scored = [t for t in tasks if t != "avg"]
    if blind and "avg" in tasks and all(t in blind for t in scored):
        blind["avg"] = sum(blind[t] for t in scored) / len(scored)  # avg is the plain mean of the task scores
    if blind:  # the trained floor: the same recipe on blank pictures
        rows.append(["blind control (baseline recipe, blank pictures; calibration)", "–",
                     *[fmt(blind.get(t)) for t in tasks], *["–"] * (len(head) - 2 - len(tasks))])
    blocks += [("h4", "Cells (mean ± 95% CI over finished seeds)", None), ("table", head, rows)]
    if blind:
        where = Path(calibration).parent.name
        blocks.append(("p", "Blind control: the baseline recipe trained and evaluated with every picture blank "
                            f"(`image.blind=true`), from the world's calibration (results/{where}; its validation "
                            "split, mean over seeds). A cell at this level does not use the image.", None))
    if prior:
        blocks.append(("p", "Prior baseline: every question answered with the most common training answer of its "
                            "question type (`python -m vlmlab.prior`). A score at this level does not measure "
                            "vision; the blind control (`image.blind=true`, the same recipe on blank pictures) "
                            "is the trained counterpart.", None))
    blocks += decompose_blocks(spec, seeds)
    blocks += timing_blocks(Path(seeds["run_dir"].iloc[0]).parents[1] / "timing_summary.csv")  # <runs>/<name>/
    failed = seeds[seeds["status"] == "failed"]
    if not failed.empty:
        blocks.append(("p", "Failed seeds: " + "; ".join(f"{r.cell}/seed{r.seed}: {r.error}"
                                                          for r in failed.itertuples()), None))
    return blocks + [("img", caption, path) for caption, path in figs]


def decompose_blocks(spec: dict, seeds: pd.DataFrame) -> list:
    """`decompose:` in the ablation file: each axis's share of the score's variance, with bootstrap intervals."""
    axes = list(spec.get("decompose") or [])
    metric = "avg" if "avg" in seeds else (spec.get("metrics") or [None])[0]
    if not axes or metric not in seeds or not all(a in seeds for a in axes):
        return []
    done = seeds[pd.to_numeric(seeds[metric], errors="coerce").notna()]
    if done["seed"].nunique() < 2 or any(done[a].nunique() < 2 for a in axes):
        return []
    table = stats.variance_shares(done, axes, metric)
    rows = [[r["term"], fmt(100 * r["share"], digits=1), f"[{fmt(100 * r['lo'], digits=1)}, {fmt(100 * r['hi'], digits=1)}]"]
            for r in table.to_dict("records")]
    return [("h4", f"Which axis explains {metric} (share of its variance, %)", None),
            ("table", ["term", "share", "95% interval"], rows),
            ("p", f"An ANOVA of the per-seed {metric} on {', '.join(axes)}, their interaction and the seed as a block "
                  "(type II sums of squares; the seed's own share left out); intervals from a cluster bootstrap over "
                  f"seeds ({done['seed'].nunique()} seeds, so they are coarse). A difference row whose interval "
                  "excludes 0 says one axis explains more than the other.", None)]


def timing_blocks(path: Path) -> list:
    """The isolated timing of the cells (timing.py), with its A/A noise, when it was measured."""
    if not path.exists():
        return []
    t = pd.read_csv(path)
    aa, half = float(t["aa_diff_ms"].iloc[0]), float(t["aa_ci95_ms"].iloc[0])
    cpu = "median_cpu_ms" if "median_cpu_ms" in t.columns else "median_step_ms"  # older files: wall clock only
    median = float(t[cpu].iloc[0])
    rows = [[r["cell"], fmt(r[cpu]), fmt(r["median_step_ms"]), fmt(r["samples_per_s"], digits=1), str(int(r["reps"]))]
            for r in t.to_dict("records")]
    return [("h4", "Isolated timing (one process, one thread, cells interleaved; python -m vlmlab.timing)", None),
            ("p", f"A/A control: the first cell built twice differs by {fmt(aa, half)} CPU ms per step (95% CI; its "
                  f"step takes {fmt(median)} ms). A timing difference between cells inside that is noise. Checks "
                  "use the CPU time (one thread: the compute the step received); the wall clock is shown beside.",
             None),
            ("table", ["cell", "median step CPU ms", "median step wall ms", "samples/s (wall)", "reps"], rows)]


def to_decide_text(r: dict) -> str:
    """'' for a decided check; else the paired seeds with 80% power at the estimated effect and noise, and
    whether that is the count to reproduce or to contradict the paper's direction."""
    if r["verdict"] != "inconclusive" or r["n_pairs"] < 2 or not r.get("power_for"):
        return ""
    n = r.get("seeds_to_decide", math.nan)
    way = f" to {r['power_for']}"
    if isinstance(n, (int, float)) and math.isfinite(n):
        return f"~{int(n)}{way}"
    if isinstance(n, (int, float)) and math.isnan(n):
        return ""  # no spread to plan with (identical differences: the sign test decides with more seeds)
    zero = verdicts.bound_distance(r["diff_mean"], 1 if r["direction"] == "higher" else -1, r["kind"], r["margin"]) == 0
    return "none (a zero effect)" if zero else f"over 200{way}"


def effect_text(r: dict) -> str:
    """One check as 'better vs worse: metric +1.23 ± 0.45 (verdict)', with '; ~N seeds for 80% power' if inconclusive."""
    tag = "PRIMARY " if r.get("primary") else ""
    if r["verdict"] == "not run yet" or not math.isfinite(r["diff_mean"]):
        return f"{tag}{r['check']}: {r['metric']} – ({r['verdict']})"
    more = to_decide_text(r)
    more = "; a zero effect, which no seed count decides" if more.startswith("none") else \
        f"; {more.replace(' to ', ' seeds for 80% power to ', 1)}" if more else ""
    p = f", p(Holm) {fmt_p(r.get('p_holm'))}" if isinstance(r.get("p_holm"), float) and math.isfinite(r["p_holm"]) else ""
    return f"{tag}{r['check']}: {r['metric']} {'+' if r['diff_mean'] >= 0 else ''}{fmt(r['diff_mean'], r['diff_ci95'])} " \
           f"({r['verdict']}{p}{more})"


def glance_row(finding: str, items: list, fv: dict) -> list[str]:
    """The results-table row of one finding: the paper's numbers, each check's effect, the verdict."""
    paper = " / ".join(str(spec["paper"].get("numbers", "–")) for spec, *_ in items)
    effects = "; ".join(effect_text(r) for _, _, _, v, _ in items for r in v.to_dict("records"))
    return [finding, paper, effects or "no checks", fv.get(finding, "not run yet")]


def build(runs="runs", ablations="ablations", out="results", calibrations=None) -> dict:
    """Regenerate every table, figure and the report; returns {'findings': DataFrame, 'report': Path}.
    `calibrations`: the folder holding the worlds' calibration*/ folders (default `out`; an archived report, e.g.
    results/v1, is judged by the calibrations under results/)."""
    runs, out = Path(runs), Path(out)
    calibrations = Path(calibrations) if calibrations else out
    specs = load_all(ablations) if Path(ablations).exists() else {}  # a folder, or one file (contract/ablation.py)
    for name in specs:  # each run's answers, per question (predictions.json stays out of results/runs)
        answers = long_tables.answers_table(runs, name)
        if not answers.empty:
            (out / name).mkdir(parents=True, exist_ok=True)
            answers.to_csv(out / name / "answers.csv.gz", index=False, compression={"method": "gzip", "mtime": 0})
    if (out / "runs").resolve() != runs.resolve():  # results/runs: the per-run files the report is built from
        aggregate.snapshot(runs, out / "runs", specs)  # merged in: committed runs stay unless rerun
        runs = out / "runs"
    per, all_seeds, all_v, calibration, mixed = {}, [], [], {}, {}
    chains = {name: [n for n in specs if first_look(specs[n], specs) == name] for name in specs
              if not specs[name].get("follow_up_of")}
    for name, chain in chains.items():
        spec = specs[name]
        seeds = merged_looks(runs, [specs[n] for n in sorted(chain, key=lambda n: len(specs[n].looks))])
        seeds, mixed[name] = cal.one_world(seeds)
        isolated = aggregate.isolated_table(runs / name)
        # judged against the calibration of the world the runs ran in (a v1 run by v1's, ...), at their step budget
        calibration[name] = (cal.calibration_for(cal.runs_world(seeds), calibrations, cal.runs_steps(seeds))
                             if not seeds.empty else None)
        untestable = cal.blind_level_tasks(calibration[name])
        v = verdicts.verdicts_table(seeds, spec, isolated, untestable) if not seeds.empty else pd.DataFrame()
        per[name] = (spec, seeds, aggregate.cells_table(seeds, spec), v, [])
        all_seeds.append(seeds)
        all_v.append(v)
    v_all = verdicts.adjust(pd.concat([v for v in all_v if not v.empty] or [pd.DataFrame()], ignore_index=True))
    for name, (spec, seeds, cells, v, _) in per.items():
        v = v_all[v_all["ablation"] == name].reset_index(drop=True) if not v.empty else v
        figs = []
        if not seeds.empty and seeds["status"].ne("missing").any():
            aggregate.write_tables(seeds, cells, out / name)
            verdicts.write_verdicts(v, out / name / "verdicts.csv")
            figs = plots.plot_ablation(cells, long_tables.loss_curves(seeds), spec["metrics"], out / name)
        else:  # no runs (any more): drop what an earlier report wrote for it
            for stale in ("seeds.csv", "cells.csv", "verdicts.csv", "bars.png", "loss.png", "tradeoff.png"):
                (out / name / stale).unlink(missing_ok=True)
        per[name] = (spec, seeds, cells, v, figs)
    seeds_all = pd.concat([s for s in all_seeds if not s.empty] or [pd.DataFrame(columns=["status"])], ignore_index=True)
    findings = verdicts.findings_table(v_all)
    order = sorted(dict.fromkeys(str(item[0]["finding"]) for item in per.values()), key=finding_key)
    def ran(n: str) -> bool:
        return not per[n][1].empty and bool(per[n][1]["status"].ne("missing").any())
    cut = []
    for f in order:  # a finding without runs whose every file is cut from the findings run says so
        files = [n for n, item in per.items() if str(item[0]["finding"]) == f]
        if not any(per[n][0].get("findings_run", True) or ran(n) for n in files):
            cut.append({"finding": f, "ablations": " ".join(files), "verdict": "cut from this run"})
    if cut:
        kept = findings[~findings["finding"].isin([c["finding"] for c in cut])] if not findings.empty else findings
        findings = pd.concat([kept, pd.DataFrame(cut)], ignore_index=True)
        findings = findings.sort_values("finding", key=lambda c: c.map(finding_key)).reset_index(drop=True)
    aggregate.write_atomic(out / "findings.csv", findings.to_csv(index=False))
    forest = plots.forest(v_all, out / "forest.png", order) if not v_all.empty else None
    fv0 = dict(zip(findings["finding"], findings["verdict"])) if not findings.empty else {}
    blocks = [("h1", "vlmlab: what matters when building vision-language models, reproduced", None)]
    if forest:
        blocks.append(("img", "Every primary check: the effect in the paper's direction with its 95% interval, "
                              "coloured by verdict (Holm-adjusted)", forest))
    blocks += [("verdicts", [(f, fv0.get(f, "not run yet")) for f in order], None),
               ("p", f"Generated by `python -m vlmlab.report` from the run folders under {runs}/ and the ablation "
                    f"files under {ablations}/; every number comes from those files.", None),
              ("h2", "Scale this report was run at", None), ("table", ["", "value"], scale_rows(seeds_all, aggregate.read_sweeps(runs)))]
    debug = {d for d in seeds_all.get("debug", pd.Series(dtype=object)).dropna() if d != "none"}
    if debug:
        blocks.append(("p", f"Warning: some runs used a debug profile ({', '.join(sorted(debug))}): tiny models and a "
                            "couple of steps, which test the pipeline, not the paper's claims.", None))
    by_finding = {}
    for name, item in per.items():
        by_finding.setdefault(str(item[0]["finding"]), []).append(name)
    order = sorted(by_finding, key=finding_key)  # the findings the ablation files test: F0, F1, ..., F10
    fv = fv0
    blocks += [("h2", "Findings at a glance", None),
               ("p", "Each of our effects is a check of the ablation file: the mean paired difference better - worse "
                     "over seeds, ± the half-width of its 95% t interval, and the check's verdict. An inconclusive "
                     "check also says how many paired seeds would give it 80% power if its mean and seed-to-seed spread "
                     "held (a planning figure from few seeds; choose the number once, as adding seeds after each "
                     "look inflates false positives).", None),
               ("table", ["finding", "the paper", "our effects (paired, 95% CI)", "verdict"],
                [glance_row(f, [per[n] for n in by_finding.get(f, [])], fv) for f in order])]
    for f in order:
        blocks += [("open", f, None), ("h2", f"{f}: {fv.get(f, 'not run yet')}", None)]
        for name in by_finding[f]:
            section = ablation_blocks(*per[name], calibration=calibration[name])
            disclosure = looks_text(per[name][1], [specs[n] for n in chains[name]])
            notes = [("p", text, None) for text in (disclosure, mixed[name]) if text]
            blocks += section[:1] + notes + section[1:]
        blocks.append(("close", f, None))
    report = out / "REPORT.md"
    aggregate.write_atomic(report, to_markdown(blocks, out))
    aggregate.write_atomic(out / "report.html", to_html(blocks, "vlmlab findings report"))
    return {"findings": findings, "report": report, "html": out / "report.html"}
