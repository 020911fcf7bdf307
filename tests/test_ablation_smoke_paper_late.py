"""The paper's F4-F6 ablation files run end to end in smoke mode and report (F1-F3 in test_ablation_smoke.py; a file
of their own so that `make test`'s two workers, which take whole files, share the smoke runs evenly)."""
import pytest
from test_ablation_smoke import BEYOND, NAMES, PAPER, PAPER_LATE, smoke_ablation


def test_every_ablation_file_is_smoke_tested_in_one_of_the_three_files():
    assert set(PAPER) | set(BEYOND) == set(NAMES) and set(PAPER_LATE) < set(PAPER)


@pytest.mark.parametrize("name", PAPER_LATE)
def test_every_late_paper_ablation_runs_in_smoke_mode_and_reports(name, tmp_path, monkeypatch):
    smoke_ablation(name, tmp_path, monkeypatch)
