"""The checks behind the script pre-studies' verdicts (script_study.py, script_study_zoo.py): a (base, split) pair
against its thresholds, a pair replicated in fresh seeds, a probe's move replicated in fresh seeds, two towers'
probes on the same test scenes (McNemar's exact test, Holm-corrected: report/stats.py), and a t interval (scipy)."""

from __future__ import annotations


def pair_verdict(base: float, split: float, check: dict, margin: float) -> str:
    lo, hi = check["base_at_most"], check["split_at_least"]
    if base <= lo - margin and split >= hi + margin:
        return "met"
    if base > lo + margin or split < hi - margin:
        return "missed"
    return "unresolved"


def replication(fresh: list[tuple[float, float]], check: dict, margin: float) -> str:
    """A pair replicated in fresh seeds, each (base %, split %): met when every seed meets both thresholds, missed
    when the seeds' mean is past either by more than `margin`, else unresolved."""
    if not fresh:
        return "not run"
    lo, hi = check["base_at_most"], check["split_at_least"]
    if all(b <= lo and s >= hi for b, s in fresh):
        return "met"
    mb, ms = (sum(v) / len(fresh) for v in zip(*fresh))
    return "missed" if mb > lo + margin or ms < hi - margin else "unresolved"


def t_interval(values: list[float]) -> tuple[float, float, float, float]:
    """(mean, SD, low, high) of a 95% t interval (scipy); SD and bounds nan under two values."""
    import numpy as np
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return float(x.mean()), float("nan"), float("nan"), float("nan")
    sd = float(x.std(ddof=1))
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=sd / np.sqrt(len(x))) if sd > 0 else (x.mean(),) * 2
    return float(x.mean()), sd, float(lo), float(hi)


def pair_tests(arm: dict, control: dict, probes: list[str]) -> dict[str, tuple[float, int, int, float, float]]:
    """Two towers' probes on the same test scenes: {probe: (arm - control accuracy, scenes only the arm reads, scenes
    only the control reads, McNemar's exact p, that p Holm-corrected over `probes`)}."""
    from vlmlab.report.stats import holm, mcnemar_exact

    tests = [mcnemar_exact(arm["probes"][p]["correct"], control["probes"][p]["correct"]) for p in probes]
    return {p: (arm["probes"][p]["accuracy"] - control["probes"][p]["accuracy"], *t, ph)
            for p, t, ph in zip(probes, tests, holm([t[-1] for t in tests]))}


def cost_found(arm_row: dict, ctl_row: dict, arm: str, ctl: str, cost: dict) -> tuple[str, str]:
    """A tower's probes against its control's (pair_tests): which probes it loses ("cost") or gains at a corrected p
    under cost["alpha"], and each probe's line of figures."""
    rows, kinds = [], {"cost": [], "gain": []}
    for p, (d, only_arm, only_ctl, pv, ph) in pair_tests(arm_row, ctl_row, cost["probes"]).items():
        if ph < cost["alpha"]:
            kinds["cost" if d < 0 else "gain"].append(p)
        rows.append(f"{p} {d:+.1f} ({only_arm} scenes only {arm} reads, {only_ctl} only {ctl}; "
                    f"p {pv:.3g}, Holm {ph:.3g})")
    return "; ".join(f"{k}: {', '.join(v)}" for k, v in kinds.items() if v) or "no difference found", ", ".join(rows)


def replicates(fresh: list[tuple[float, float]], direction: int, alpha: float, within: float) -> str:
    """A probe's move in fresh seeds, each (difference, corrected p), against seed 0's direction (+1 / -1)."""
    if not fresh:
        return "not run"
    if all(d * direction > 0 and p < alpha for d, p in fresh):
        return "replicates"
    if all(d * direction < 0 or abs(d) < within for d, _ in fresh):
        return "fails"
    return "mixed"
