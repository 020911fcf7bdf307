"""The world v3 script pre-studies: the page generator's scripts and targets, the checks' logic, and the committed
report regenerating from the committed run logs."""

import importlib.util
import random

import numpy as np
import pytest

from vlmlab import script_study as S
from vlmlab.paths import repo_root


@pytest.fixture(scope="module")
def legibility():
    path = repo_root() / "calibration" / "experiments" / "script_legibility.py"
    spec = importlib.util.spec_from_file_location("script_legibility", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_binary_script_is_balanced_and_distinct(legibility):
    glyphs = legibility.binary_glyphs()
    assert sorted(glyphs) == legibility.LETTERS and len(glyphs) == 25
    inked = [(g >= 0).astype(int) for g in glyphs.values()]
    for a in inked:  # two inked cells per row, column and quadrant: uniform at the scale of two cells
        assert (a.sum(0) == 2).all() and (a.sum(1) == 2).all()
        assert all(a[i:i + 2, j:j + 2].sum() == 2 for i in (0, 2) for j in (0, 2))
    dists = [int((a != b).sum()) for i, a in enumerate(inked) for b in inked[i + 1:]]
    assert min(dists) >= 4  # no two letters closer than two swapped pairs of cells


@pytest.mark.parametrize("script", ["grey2x2", "binary4x4"])
def test_page_targets_follow_the_glyphs(legibility, script):
    """One word, large cells: the letters under the patch centres run left to right in the word's order, the word
    head's target names the word on the patches its box covers, and the ink is where the targets say."""
    px, tg, words = legibility.page(random.Random(3), script, 3.45, one_word=True)
    (w, mask), = words
    word = legibility.kb.WORDS[w]
    assert tg.shape == (2, 144) and px.shape == (3, 96, 96)
    assert set(tg[1][mask].tolist()) <= {w + 1, 0} and (tg[1][mask] == w + 1).any() and (tg[1][~mask] == 0).all()
    letters = tg[0].reshape(12, 12)
    seen = [legibility.LETTERS[v - 1] for row in letters.tolist() for v in row if v > 0]
    assert set(seen) <= set(word) and len(set(seen)) >= 2
    grid = letters.numpy()
    first_col = {legibility.LETTERS[v - 1]: c for r in range(12) for c, v in enumerate(grid[r]) if v > 0}
    order = [ch for ch in dict.fromkeys(word) if ch in first_col]
    assert [first_col[ch] for ch in order] == sorted(first_col[ch] for ch in order)
    ink = px.float().mean(0).reshape(12, 8, 12, 8).mean((1, 3)).reshape(-1)  # mean grey per patch
    assert ink[mask].min() < ink[~mask].min()  # the darkest patches are over the word


def test_sparse_pages_hold_words_at_small_cells(legibility):
    _, tg, words = legibility.page(random.Random(0), "binary4x4", 0.43, canvas=480, max_words=40)
    assert 10 <= len(words) <= 40 and (tg[1] > 0).sum() > 0


def test_pair_verdicts_and_margins():
    check, plan = {"base_at_most": 20, "split_at_least": 80}, {"pairs": [[0.5, 1.0], [1.0, 2.0]], "unresolved_within": 3}
    assert S.pair_verdict(10, 90, check, 3) == "met"
    assert S.pair_verdict(25, 90, check, 3) == "missed"
    assert S.pair_verdict(10, 76, check, 3) == "missed"
    assert S.pair_verdict(19, 90, check, 3) == "unresolved"  # within 3 points of the base threshold
    assert S.pair_verdict(10, 82, check, 3) == "unresolved"
    assert S.verdict({"0.5": 5, "1.0": 30, "2.0": 95}, plan, check)[0] == "missed"
    assert S.verdict({"0.5": 5, "1.0": 19, "2.0": 95}, plan, check)[0] == "unresolved"
    assert S.verdict({"0.5": 5, "1.0": 90, "2.0": 95}, plan, check)[0] == "met"
    assert S.verdict(None, plan, check) == ("not run", [])


def test_final_values_take_the_plans_last_step():
    rows = [{"step": 500, "letter % by cell px": {"1.0": 50}}, {"step": 3000, "letter % by cell px": {"1.0": 90}},
            {"step": 3000, "event": "glyph", "glyph % by cell px": {"1.0": 70}}]
    assert S.final_values(rows, "letter", 3000) == {"1.0": 90}
    assert S.final_values(rows, "glyph", 3000) == {"1.0": 70}
    assert S.final_values(rows, "letter", 4000) is None


def test_committed_report_regenerates_from_its_logs():
    results = repo_root() / "results" / "script_study"
    assert (results / "STUDY.md").read_text() == S.build(results)


def test_grain_changes_pixels_not_targets(legibility):
    clean = legibility.page(random.Random(1), "binary4x4", 0.86, canvas=480, max_words=40)
    again = legibility.page(random.Random(1), "binary4x4", 0.86, canvas=480, max_words=40, noise=0.0)
    grainy = legibility.page(random.Random(1), "binary4x4", 0.86, canvas=480, max_words=40, noise=16.0)
    assert (clean[0] == again[0]).all()  # no grain: the page studies 1 and 2 measured
    assert (clean[1] == grainy[1]).all() and [w for w, _ in clean[2]] == [w for w, _ in grainy[2]]
    diff = grainy[0].float() - clean[0].float()
    assert 10 < float(diff.std()) < 17 and abs(float(diff.mean())) < 2  # SD 16, a little less where 255 clips it


def test_plans_with_grain_levels_name_a_run_per_level():
    plan = {"scripts": ["binary4x4"], "noise_levels": {"_noise8": 8, "_noise16": 16}}
    assert S.runs_of("any.yaml", plan) == [("binary4x4, grain 8", "binary4x4_noise8.jsonl"),
                                           ("binary4x4, grain 16", "binary4x4_noise16.jsonl")]
    assert S.runs_of("calibration/script_study_small.yaml", {"scripts": ["grey2x2"]}) == [
        ("grey2x2", "grey2x2_small.jsonl")]
