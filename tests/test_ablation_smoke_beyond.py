"""The later studies' ablation files (F0, F7-F9) run end to end in smoke mode and report (test_ablation_smoke.py
has the paper's; a file of their own so that the two halves can run on `make test`'s two workers)."""
import pytest
from test_ablation_smoke import BEYOND, NAMES, smoke_ablation


def test_every_ablation_file_is_smoke_tested_in_one_of_the_two_files():
    assert set(BEYOND) <= set(NAMES)


@pytest.mark.parametrize("name", BEYOND)
def test_every_later_study_ablation_runs_in_smoke_mode_and_reports(name, tmp_path, monkeypatch):
    smoke_ablation(name, tmp_path, monkeypatch)
