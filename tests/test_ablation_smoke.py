"""Every ablation file runs end to end in smoke mode and reports (its own file, so that a parallel test run can
put it on a worker of its own: `make test` distributes whole files)."""
import json
import subprocess
import sys

import pytest

from vlmlab import ablate
from vlmlab.config import repo_root
from vlmlab.contract.ablation import first_looks

NAMES = first_looks(ablate.ABLATIONS)


@pytest.mark.parametrize("name", NAMES)
def test_every_ablation_runs_in_smoke_mode_and_reports(name, tmp_path):
    # one seed per cell (the file's own count is for real runs): the pipeline end to end at the least test time
    out = subprocess.run([sys.executable, "-m", "vlmlab.ablate", name, "--seeds", "0", "debug=smoke",
                          f"runs_root={tmp_path}", "threads=1", "hydra/launcher=basic"], capture_output=True, text=True,
                         timeout=900, cwd=repo_root())
    assert out.returncode == 0, out.stderr[-3000:]
    abl = ablate.load(name)
    n_cells = 1
    for values in abl.grid.values():
        n_cells *= len(values.split(","))
    done = list((tmp_path / name).rglob("summary.json"))
    assert len(done) == n_cells, sorted(str(p) for p in done)
    assert not list((tmp_path / name).rglob("failed.json"))
    assert (tmp_path / "results" / "REPORT.md").exists() and (tmp_path / "results" / name / "verdicts.csv").exists()
    sweep = [json.loads(line) for line in (tmp_path / "sweeps.jsonl").read_text().splitlines()]
    assert [s["ablation"] for s in sweep] == [name] and sweep[0]["wall_time_s"] > 0 and sweep[0]["exit_code"] == 0
    # results/runs holds each run's small files: the report regenerates from it alone
    snap = tmp_path / "results" / "runs"
    assert sorted(p.relative_to(snap) for p in snap.rglob("summary.json")) == sorted(
        p.relative_to(tmp_path) for p in done)
    assert not list(snap.rglob("predictions.json")) and (snap / "sweeps.jsonl").exists()
