"""Every cells table carries the blind control beside the task scores, from the world's calibration."""
import pandas as pd
from report_fakes import make_run

from vlmlab.report.render import build

ABLATION = """# test
finding: F4
question: q?
paper: {claim: c, numbers: n}
grid: {connector: "mlp,perceiver"}
seeds: [0, 1]
checks:
  - {better: {connector: perceiver}, worse: {connector: mlp}, metric: avg, primary: true}
"""


def test_cells_table_has_the_blind_control_row(tmp_path):
    abl, runs, out = tmp_path / "ablations", tmp_path / "runs", tmp_path / "results"
    abl.mkdir()
    (abl / "f4_x.yaml").write_text(ABLATION)
    for seed in (0, 1):
        for conn in ("mlp", "perceiver"):
            make_run(runs, "f4_x", f"connector={conn}", seed, avg=40.0)
    (out / "calibration").mkdir(parents=True)
    rows = [{"split": s, "task": t, "trained": 40.0, "trained_sd": 1.0, "blind": b + s, "blind_sd": 0.5, "prior": 1.0,
             "margin": 1.0, "margin_in_sd": 1.0, "seeds": "3/3"}
            for s in (0, 2) for t, b in (("vqa", 30.0), ("textvqa", 2.0), ("okvqa", 10.0), ("caption", 20.0))]
    pd.DataFrame(rows).to_csv(out / "calibration" / "controls.csv", index=False)
    md = build(runs, abl, out)["report"].read_text()
    row = next(line for line in md.splitlines() if line.startswith("| blind control"))
    assert "| 30.00 | 2.00 | 10.00 | 20.00 | 15.50 |" in row  # without splitting; avg = the tasks' mean
