"""Where a check's seed noise comes from: training, or the sample of test questions.

A score is a mean over n questions, so two seeds of one recipe differ for two reasons: the trained models differ
(initialisation and data order: training noise), and each model gets different questions right (question noise,
which shrinks as 1/n). More seeds average both; more questions only the second. Which one dominates decides what
a follow-up should buy.

From the committed answers tables (every run's answer to every question, report/long_tables.py), for one check's
paired differences d[u, i] = score(better cell, i) - score(worse cell, i) of unit u (a cell pair at one seed, the
units of the paired t test in verdicts.py) on question i, or for one cell's scores:
  a two-way ANOVA with units and questions as crossed factors (no replication, so the residual is the
  unit-by-question interaction: question noise; its mean squares equal statsmodels' anova_lm, in closed form). By the expected mean squares,
    var(mean of d over questions) = var_training + ms_residual / n,
  so var_training = (ms_units - ms_residual) / n (set to 0 when negative), and the seed SD with k x n questions is
  sqrt(var_training + ms_residual / (k n)). The F test of the unit effect asks whether there is training noise at
  all beyond the questions'. avg (the mean of the task scores) adds the tasks' question variances divided by T^2
  (different tasks share no questions) and takes the rest of its observed variance as training noise.
The projection assumes more questions drawn like these (true of the toy world's generator; for a real benchmark,
the benchmark's own distribution). Per-question scores come from the task registry's `item_scores` (VQA accuracy
per question; per-image CIDEr-D, whose IDF is the evaluated set's, so the projection is approximate there).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from vlmlab.contract.metrics import metric as metric_info
from vlmlab.contract.tasks import tasks
from vlmlab.report.stats import seeds_for_power
from vlmlab.report.verdicts import _label, cell_pairs, direction

SCALES = (2, 4)  # question multiples the table projects to


def runs_of(answers: pd.DataFrame) -> dict[str, dict[int, str]]:
    """cell -> {seed: column} of an answers table (columns <cell>/seed<k>)."""
    out: dict[str, dict[int, str]] = {}
    for col in answers.columns:
        if "/seed" in col:
            cell, seed = col.rsplit("/seed", 1)
            out.setdefault(cell, {})[int(seed)] = col
    return out


class QuestionScores:
    """Per-question scores of an answers table's runs, computed once per (task, run column)."""

    def __init__(self, answers: pd.DataFrame):
        self.answers, self._memo = answers, {}
        self.tasks = [t for t in tasks() if t in set(answers["task"])]

    def run(self, task: str, column: str) -> np.ndarray | None:
        if (task, column) not in self._memo:
            spec = tasks()[task]
            rows = self.answers[self.answers["task"] == task]
            if spec.item_scores is None or rows.empty or rows[column].isna().any() or (rows[column] == "").all():
                self._memo[task, column] = None  # no per-question score, or this run did not answer these questions
            else:
                gold = [str(a).split(" | ") for a in rows["answers"]]
                self._memo[task, column] = np.asarray(spec.item_scores(list(rows[column].astype(str)), gold), float)
        return self._memo[task, column]

    def matrix(self, task: str, columns: list[str]) -> np.ndarray | None:
        """(runs x questions) of one task; None when a run lacks them."""
        got = [self.run(task, c) for c in columns]
        return None if any(g is None for g in got) else np.vstack(got)


def components(d: np.ndarray) -> dict:
    """The two-way decomposition of a (units x questions) matrix: observed variance of the unit means, its training
    and question parts, and the F test's p for the unit effect (scipy's F distribution). The mean squares are the
    balanced two-way ANOVA's without replication, as statsmodels' anova_lm gives them (tests/report/test_noise.py
    holds the two equal); computed here in closed form, since a formula with one dummy per question takes ~0.5 s a
    fit and the table makes hundreds."""
    from scipy import stats

    units, n = d.shape
    obs = float(np.var(d.mean(axis=1), ddof=1)) if units > 1 else math.nan
    if units < 2 or n < 2:
        return {"var_obs": obs, "var_questions": math.nan, "var_training": math.nan, "p_training": math.nan, "n": n}
    resid = d - d.mean(axis=1, keepdims=True) - d.mean(axis=0, keepdims=True) + d.mean()
    df_units, df_res = units - 1, (units - 1) * (n - 1)
    ms_units, ms_res = n * obs, float((resid ** 2).sum()) / df_res
    p = float(stats.f.sf(ms_units / ms_res, df_units, df_res)) if ms_res > 0 else math.nan
    return {"var_obs": obs, "var_questions": ms_res / n, "var_training": max(0.0, obs - ms_res / n),
            "p_training": p, "n": n}


def _row(c: dict) -> dict:
    """A metric's components as table columns: SDs of a unit's mean over the questions, now and at more questions."""
    share = c["var_questions"] / c["var_obs"] if c["var_obs"] > 0 else math.nan
    row = {"questions": c["n"], "sd": math.sqrt(c["var_obs"]), "sd_training": math.sqrt(c["var_training"]),
           "sd_questions": math.sqrt(c["var_questions"]), "questions_share": min(1.0, share),
           "p_training": c["p_training"]}
    for k in SCALES:
        row[f"sd_{k}x"] = math.sqrt(c["var_training"] + c["var_questions"] / k)
    return row


def metric_noise(scores: QuestionScores, units: list[tuple[str, str | None]], metric: str) -> dict | None:
    """Noise of `metric` over units (better column, worse column or None): a check's paired differences, or one
    cell's scores. None when the metric is not a task score or avg, or a task lacks per-question scores."""
    names = scores.tasks if metric == "avg" else [metric]
    if metric not in scores.tasks and metric != "avg":
        return None
    mats = []
    for t in names:
        better = scores.matrix(t, [b for b, _ in units])
        worse = scores.matrix(t, [w for _, w in units]) if units[0][1] else 0.0
        if better is None or worse is None:
            return None
        mats.append(better - worse)
    if len(mats) == 1:
        c = components(mats[0])
    else:  # avg: the tasks' question noises are independent (no shared questions); the rest is training noise
        parts = [components(m) for m in mats]
        c = {"var_obs": float(np.var(np.mean([m.mean(axis=1) for m in mats], axis=0), ddof=1)),
             "var_questions": sum(p["var_questions"] for p in parts) / len(parts) ** 2,
             "p_training": math.nan, "n": sum(p["n"] for p in parts)}
        c["var_training"] = max(0.0, c["var_obs"] - c["var_questions"])
    return {"units": len(units), "mean": float(np.mean([m.mean() for m in mats])), **_row(c)}


def noise_table(answers: pd.DataFrame, abl) -> pd.DataFrame:
    """One row per quality check on a score (cell pairs matched as the verdicts match them) and one per cell and
    task metric: the observed SD across units, its training and question parts, the SD at 2x and 4x questions,
    and for a check the paired seeds a decision needs now and with 4x questions (stats.seeds_for_power)."""
    runs = runs_of(answers)
    cells, scores = list(runs), QuestionScores(answers)
    rows = []
    for check in abl.checks:
        if metric_info(check.metric).kind != "quality":
            continue
        pairs = cell_pairs(cells, check.better, check.worse)
        units = [(runs[b][s], runs[w][s]) for b, w in pairs for s in sorted(set(runs[b]) & set(runs[w]))]
        if len(units) < 2:
            continue
        got = metric_noise(scores, units, check.metric)
        if got is None:
            continue
        bound = -abs(check.margin) if check.kind == "not_worse" else 0.0
        distance = abs(direction(check.metric) * got["mean"] - bound)
        # a check pooling k cell pairs gets k units a seed (as plan.py counts them)
        now = seeds_for_power(got["sd"], distance) / len(pairs) if got["sd"] > 0 else math.nan
        more = seeds_for_power(got["sd_4x"], distance) / len(pairs) if got["sd_4x"] > 0 else math.nan
        rows.append({"ablation": abl.name, "kind": "check", "name": f"{_label(check.better)} vs {_label(check.worse)}",
                     "metric": check.metric, "primary": check.primary, **got,
                     "seeds_to_decide": now, "seeds_to_decide_4x": more})
    for cell, seeds in runs.items():
        units = [(seeds[s], None) for s in sorted(seeds)]
        if len(units) < 2:
            continue
        for t in scores.tasks:
            got = metric_noise(scores, units, t)
            if got is not None:
                rows.append({"ablation": abl.name, "kind": "cell", "name": cell, "metric": t, "primary": False,
                             **got, "seeds_to_decide": math.nan, "seeds_to_decide_4x": math.nan})
    return pd.DataFrame(rows)


def merge_answers(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Answers tables of several looks at one question (their runs are other seeds of the same cells), joined on the
    questions."""
    tables = [t for t in tables if not t.empty]
    if not tables:
        return pd.DataFrame()
    out = tables[0]
    for t in tables[1:]:
        out = out.merge(t.drop(columns=["answers"]), on=["task", "id"], how="outer")
    return out

