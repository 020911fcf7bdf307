"""A finding's table holds the runs of one toy world: a rerun on a new world never pools with the old world's seeds."""
import json

import pandas as pd
from report_fakes import make_run

from vlmlab.report import aggregate, calibration
from vlmlab.report.render import build
from vlmlab.world.config import GENERATOR_VERSION

ABLATION = """# test
finding: F4
question: q?
paper: {claim: c, numbers: n}
grid: {connector: "mlp,perceiver"}
seeds: [0, 1, 2]
checks:
  - {better: {connector: perceiver}, worse: {connector: mlp}, metric: avg, primary: true}
"""


def _world(d, world):
    summary = json.loads((d / "summary.json").read_text())
    (d / "summary.json").write_text(json.dumps({**summary, "world_version": world}))


def test_runs_of_an_older_world_are_left_out_and_said(tmp_path):
    abl, runs, out = tmp_path / "ablations", tmp_path / "runs", tmp_path / "results"
    abl.mkdir()
    (abl / "f4_x.yaml").write_text(ABLATION)
    for conn, new, old in (("mlp", 40.0, 90.0), ("perceiver", 50.0, 10.0)):
        for seed in (0, 1):  # today's world: perceiver better
            _world(make_run(runs, "f4_x", f"connector={conn}", seed, avg=new + seed), GENERATOR_VERSION)
        make_run(runs, "f4_x", f"connector={conn}", 2, avg=old)  # a v1 run (no world_version): the other way round
    seeds = aggregate.seeds_table(runs, "f4_x", {"grid": {"connector": "mlp,perceiver"}, "seeds": [0, 1, 2]})
    kept, note = calibration.one_world(seeds)
    assert len(kept) == 4 and set(kept["seed"]) == {0, 1} and (kept["world_version"] == GENERATOR_VERSION).all()
    assert note.startswith("Runs of another world left out (2 of world-v1)") and GENERATOR_VERSION in note
    assert calibration.one_world(kept) == (kept, "")  # one world: nothing to say
    md = build(runs, abl, out)["report"].read_text()
    assert "Runs of another world left out (2 of world-v1)" in md
    cells = {r["cell"]: r for r in pd.read_csv(out / "f4_x" / "cells.csv").to_dict("records")}
    assert cells["connector=perceiver"]["avg_mean"] == 50.5 and cells["connector=mlp"]["avg_mean"] == 40.5
