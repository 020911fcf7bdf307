"""Questions looked at more than once (a follow-up file after a first look): their seeds merged under the first
file's name, and the disclosure the report prints beside them (which seeds each look added, and the false-positive
rate that repeated looks carry; stats.looks_false_positive).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from vlmlab.report import aggregate, stats


def merged_looks(runs: Path, looks: list) -> pd.DataFrame:
    """The seeds of every look at one question (the first file, then its follow-ups), filed under the first's name."""
    parts = []
    for i, spec in enumerate(looks, start=1):
        t = aggregate.seeds_table(runs, spec["name"], spec)
        if not t.empty:
            parts.append(t.assign(ablation=looks[0]["name"], look=i, look_file=spec["name"]))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def looks_text(seeds: pd.DataFrame, chain: list) -> str:
    """The disclosure of a question looked at more than once: which seeds each look added, and the chance that a
    check with no true effect comes out reproduced at one of these looks (stats.looks_false_positive)."""
    if seeds.empty or "look" not in seeds or len(chain) < 2:
        return ""
    ran = seeds[seeds["status"].isin(["finished", "diverged"])]
    done = sorted(ran["look"].unique().tolist())
    if len(done) < 2:
        return ""
    by_look = {int(k): g for k, g in ran.groupby("look")}
    parts = []
    for k in done:
        spec = sorted(chain, key=lambda s: len(s.looks))[k - 1]
        seeds_k = sorted(int(x) for x in by_look[k]["seed"].unique())
        plan = f" ({spec.plan.strip().rstrip('.')})" if spec.plan else ""
        parts.append(f"look {k}: {spec.name}, seeds {_seed_span(seeds_k)}{plan}")
    rate = stats.looks_false_positive([len(by_look[k]["seed"].unique()) for k in done])
    return (f"Looked at {len(done)} times, each look a file of its own: {'; '.join(parts)}. Every check "
            f"here pools the seeds of all looks. With {len(done)} looks, a check with no true effect comes out "
            f"reproduced at one of them with probability {100 * rate:.1f}% (simulated; one look: 2.5%): read its "
            "p-values with that in mind.")


def _seed_span(seeds: list[int]) -> str:
    return f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)) \
        else ", ".join(map(str, seeds))
