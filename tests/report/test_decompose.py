"""decompose: the report estimates which grid axis explains more of the score, with bootstrap intervals."""
import numpy as np
import pandas as pd
import pytest
from report_fakes import make_run

from vlmlab.contract.errors import ConfigError
from vlmlab.contract.ablation import load_ablation
from vlmlab.report.render import build
from vlmlab.report.stats import variance_shares

ABLATION = """# test
finding: F8
question: q?
paper: {claim: c, numbers: n}
grid: {connector: "avgpool,perceiver,pixel_shuffle", connector.visual_tokens: "16,4"}
decompose: [connector, connector.visual_tokens]
seeds: [0, 1, 2, 3]
checks:
  - {better: {connector.visual_tokens: "16"}, worse: {connector.visual_tokens: "4"}, metric: avg, primary: true}
"""
EFFECT = {"avgpool": 0.0, "perceiver": 0.6, "pixel_shuffle": 0.3}


def scores(tokens_gain: float, noise: float = 0.3, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"connector": c, "tok": t, "seed": s, "avg": 40 + EFFECT[c] + (tokens_gain if t == "16" else 0)
             + 0.5 * s + rng.normal(0, noise)} for c in EFFECT for t in ("16", "4") for s in range(4)]


def test_the_axis_that_moves_the_score_gets_the_share():
    big = variance_shares(pd.DataFrame(scores(5.0)), ["connector", "tok"], "avg")
    share = dict(zip(big["term"], big["share"]))
    assert share["tok"] > 0.8 > 0.2 > share["connector"]  # tokens move the score 5 points, connectors <= 0.6
    diff = big[big["term"] == "connector - tok"].iloc[0]
    assert diff["hi"] < 0  # the interval excludes 0: tokens explain more
    assert abs(sum(share[k] for k in ("connector", "tok", "interaction", "residual (seeds)")) - 1) < 1e-9
    flat = variance_shares(pd.DataFrame(scores(0.0)), ["connector", "tok"], "avg")
    assert dict(zip(flat["term"], flat["share"]))["tok"] < 0.2  # no token effect: no token share
    lo, hi = flat[flat["term"] == "tok"][["lo", "hi"]].iloc[0]
    assert lo <= dict(zip(flat["term"], flat["share"]))["tok"] <= hi


def test_report_shows_the_shares(tmp_path):
    abl, runs, out = tmp_path / "ablations", tmp_path / "runs", tmp_path / "results"
    abl.mkdir()
    (abl / "f8_x.yaml").write_text(ABLATION)
    for r in scores(5.0):
        make_run(runs, "f8_x", f"connector.visual_tokens={r['tok']},connector={r['connector']}", r["seed"], avg=r["avg"])
    md = build(runs, abl, out)["report"].read_text()
    assert "Which axis explains avg" in md
    row = next(line for line in md.splitlines() if line.startswith("| connector.visual_tokens |"))
    assert float(row.split("|")[2]) > 80


def test_decompose_names_grid_keys(tmp_path):
    (tmp_path / "bad.yaml").write_text(ABLATION.replace("decompose: [connector, connector.visual_tokens]",
                                                        "decompose: [connector, image.size]"))
    with pytest.raises(ConfigError, match="decompose"):
        load_ablation(tmp_path / "bad.yaml")
