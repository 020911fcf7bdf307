"""Every ablation file runs end to end in smoke mode and reports. The paper's findings here, the later studies' in
test_ablation_smoke_beyond.py: files of their own, so that `make test` (which distributes whole files) can put
them on its two workers."""
import json

import pytest

from vlmlab import ablate
from vlmlab.contract.ablation import first_looks

NAMES = first_looks(ablate.ABLATIONS)
BEYOND = ("f0_blind", "f7_pixel_shuffle", "f8_tokens_vs_connector", "f9_tile_tags")  # ../shared/BEYOND.md's


PAPER = [n for n in NAMES if n not in BEYOND]
PAPER_LATE = [n for n in PAPER if n >= "f4"]  # F4-F6 in test_ablation_smoke_paper_late.py: `make test` hands out
                                              # whole files, so three files balance its two workers better than two


TIMED = "f7_pixel_shuffle"  # the one smoke sweep that also runs the isolated timing of its cells end to end; the
                             # other files with a timing check skip it (~10 s each: a process that imports torch
                             # again); tests/test_timing.py tests the timing command itself


@pytest.mark.parametrize("name", [n for n in PAPER if n not in PAPER_LATE])
def test_every_paper_ablation_runs_in_smoke_mode_and_reports(name, tmp_path, monkeypatch):
    smoke_ablation(name, tmp_path, monkeypatch)


def smoke_ablation(name: str, tmp_path, monkeypatch) -> None:
    # one seed per cell (the file's own count is for real runs): the pipeline end to end at the least test time. The
    # runner in this process (`python -m vlmlab.ablate` is its main; a fresh one imports torch again), its sweep
    # and report as in real use
    if name != TIMED:
        sweep = ablate.run_ablation
        monkeypatch.setattr(ablate, "run_ablation", lambda abl, args, timing=True: sweep(abl, args, timing=False))
    code = ablate.main([name, "--seeds", "0", "debug=smoke", f"runs_root={tmp_path}", "threads=1",
                        "hydra/launcher=basic"])
    assert code == 0
    abl = ablate.load(name)
    n_cells = 1
    for values in abl.grid.values():
        n_cells *= len(values.split(","))
    done = list((tmp_path / name).rglob("summary.json"))
    assert len(done) == n_cells, sorted(str(p) for p in done)
    assert {p.parent.name for p in done} == {"seed0"} and abl.seeds != [0]  # --seeds ran the seed named, no other
    assert not list((tmp_path / name).rglob("failed.json"))
    assert (tmp_path / "results" / "REPORT.md").exists() and (tmp_path / "results" / name / "verdicts.csv").exists()
    sweep = [json.loads(line) for line in (tmp_path / "sweeps.jsonl").read_text().splitlines()]
    assert [s["ablation"] for s in sweep] == [name] and sweep[0]["wall_time_s"] > 0 and sweep[0]["exit_code"] == 0
    # results/runs holds each run's small files: the report regenerates from it alone
    snap = tmp_path / "results" / "runs"
    assert sorted(p.relative_to(snap) for p in snap.rglob("summary.json")) == sorted(
        p.relative_to(tmp_path) for p in done)
    assert not list(snap.rglob("predictions.json")) and (snap / "sweeps.jsonl").exists()
    if name == TIMED:  # every cell timed in one process, as a real sweep with a timing check does
        assert list((tmp_path / name).glob("timing*.csv")), sorted(p.name for p in (tmp_path / name).iterdir())


def test_the_timed_smoke_sweep_has_a_timing_check():
    from vlmlab.contract.metrics import metric
    assert TIMED in BEYOND and any(metric(c.metric).kind == "timing" for c in ablate.load(TIMED).checks)
