"""The world v3 script pre-studies: the page generator's scripts and targets, the checks' logic, and the committed
report regenerating from the committed run logs."""

import random

import numpy as np
import pytest

from vlmlab import script_checks as C
from vlmlab import script_study as S
from vlmlab import script_study_zoo as Z
from vlmlab.paths import repo_root


@pytest.fixture(scope="module")
def legibility(load_script):
    return load_script(repo_root() / "calibration" / "experiments" / "script_legibility.py")


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
    assert C.pair_verdict(10, 90, check, 3) == "met"
    assert C.pair_verdict(25, 90, check, 3) == "missed"
    assert C.pair_verdict(10, 76, check, 3) == "missed"
    assert C.pair_verdict(19, 90, check, 3) == "unresolved"  # within 3 points of the base threshold
    assert C.pair_verdict(10, 82, check, 3) == "unresolved"
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


def test_replication_needs_every_fresh_seed_and_misses_on_the_mean():
    check = {"base_at_most": 20, "split_at_least": 80}
    assert C.replication([(12, 83), (15, 81)], check, 3) == "met"
    assert C.replication([(12, 83), (15, 79)], check, 3) == "unresolved"  # one seed under 80, the mean 81
    assert C.replication([(12, 76), (15, 77)], check, 3) == "missed"  # mean 76.5: more than 3 under 80
    assert C.replication([(24, 90), (23, 90)], check, 3) == "missed"  # mean 23.5 at the base cell
    assert C.replication([], check, 3) == "not run"


def test_t_interval_is_scipys():
    m, sd, lo, hi = C.t_interval([80.0, 82.0, 84.0])
    assert (m, sd) == (82.0, 2.0)
    assert abs(hi - m - 4.303 * 2 / 3 ** 0.5) < 0.01 and abs(m - lo - (hi - m)) < 1e-9
    assert C.t_interval([5.0])[1] != C.t_interval([5.0])[1]  # nan SD from one value


def _seeds_plan():
    return {"scripts": ["binary4x4"], "noise": 8, "seed_runs": {"_a": 0, "_b": 1, "_c": 2}, "fresh_seeds": [1, 2],
            "steps": 10, "eval_cells": [0.43, 0.86], "pair": [0.43, 0.86], "unresolved_within": 3,
            "primary": {"measure": "glyph", "base_at_most": 20, "split_at_least": 80}}


def test_seeds_section_reads_the_fresh_seeds_only(tmp_path):
    import json

    for tag, (b, s) in {"_a": (30, 60), "_b": (12, 84), "_c": (14, 82)}.items():  # seed 0 far off: not counted
        (tmp_path / f"binary4x4{tag}.jsonl").write_text(
            json.dumps({"step": 10, "event": "glyph", "glyph % by cell px": {"0.43": b, "0.86": s}}) + "\n")
    text = "\n".join(S.seeds_section(_seeds_plan(), tmp_path))
    assert "**met**; 12.0/84.0, 14.0/82.0" in text and "| 1 (fresh) | 12.0 | 84.0 |" in text
    assert "mean of 3 (SD" in text
    (tmp_path / "binary4x4_c.jsonl").write_text("")  # a fresh seed still running
    assert "**not run**" in "\n".join(S.seeds_section(_seeds_plan(), tmp_path))


def test_zoo_section_finds_a_cost_by_mcnemar(tmp_path):
    import json

    n = 400
    plan = {"arms": {"control": "c.json", "pages": "p.json"}, "steps": 5, "noise": 8, "cells": [0.43, 0.86],
            "reading": {"arm": "pages", "measure": "glyph", "pair": [0.43, 0.86], "base_at_most": 20,
                        "split_at_least": 80},
            "cost": {"probes": ["colour", "shape"], "alpha": 0.05}, "unresolved_within": 3}

    def arm(glyph, shape_right, name):
        probes = {"colour": [1] * n, "shape": [1] * shape_right + [0] * (n - shape_right)}
        return {"arm": name, "git": "abcdef0123", "train seconds": 1, "glyph % by cell px": glyph,
                "probes": {p: {"accuracy": 100 * sum(c) / n, "C": 1.0, "correct": c} for p, c in probes.items()}}

    (tmp_path / "c.json").write_text(json.dumps(arm({"0.43": 2.0, "0.86": 3.0}, 320, "control")))
    (tmp_path / "p.json").write_text(json.dumps(arm({"0.43": 10.0, "0.86": 90.0}, 280, "pages")))
    text = "\n".join(Z.zoo_section(plan, tmp_path))
    assert "reading" in text and "**met**; 10.0/90.0" in text
    assert "**cost: shape**" in text and "shape -10.0 (0 scenes only pages reads, 40 only control" in text
    (tmp_path / "p.json").write_text(json.dumps(arm({"0.43": 10.0, "0.86": 70.0}, 318, "pages")))
    text = "\n".join(Z.zoo_section(plan, tmp_path))
    assert "**missed**" in text and "**no difference found**" in text
    (tmp_path / "p.json").unlink()
    assert Z.zoo_section(plan, tmp_path)[0].startswith("Not run")


def test_mcnemar_exact_counts_the_discordant_items():
    from vlmlab.report.stats import mcnemar_exact

    a, b = [1, 1, 0, 0, 1] * 20, [1, 0, 1, 0, 0] * 20
    only_a, only_b, p = mcnemar_exact(a, b)
    assert (only_a, only_b) == (40, 20) and 0.01 < p < 0.02  # binomial(60, 0.5), two-sided, at 20
    assert mcnemar_exact([1, 0], [1, 0])[2] == 1.0
    with pytest.raises(ValueError):
        mcnemar_exact([1], [1, 0])


def test_replicates_needs_every_fresh_seed_in_seed_zeros_direction():
    assert C.replicates([(+12.0, 0.001), (+8.0, 0.02)], +1, 0.05, 3) == "replicates"
    assert C.replicates([(+12.0, 0.001), (+8.0, 0.2)], +1, 0.05, 3) == "mixed"  # one pair not significant
    assert C.replicates([(-4.0, 0.03), (+2.0, 0.6)], +1, 0.05, 3) == "fails"  # the other way, or under 3 points
    assert C.replicates([(-9.0, 0.001), (-6.0, 0.01)], -1, 0.05, 3) == "replicates"  # a cost replicates too
    assert C.replicates([], +1, 0.05, 3) == "not run"


def test_zoo_seeds_section_pairs_each_seeds_towers(tmp_path):
    import json

    n = 400
    plan = {"arms": {"control": "c", "pages": "p"}, "seed_zero": 0, "fresh_seeds": [1, 2], "probes": ["shape"],
            "seed_zero_direction": {"shape": 1}, "alpha": 0.05, "fails_within": 3, "cells": [0.43, 0.86]}

    def write(name, right):
        c = [1] * right + [0] * (n - right)
        glyph = {"0.43": 5.0, "0.86": 50.0}
        probes = {"shape": {"accuracy": 100 * right / n, "correct": c}}
        (tmp_path / f"{name}.json").write_text(json.dumps({"glyph % by cell px": glyph, "probes": probes}))

    for name, right in {"c": 300, "p": 380, "c_seed1": 300, "p_seed1": 360}.items():
        write(name, right)
    text = "\n".join(Z.zoo_seeds_section(plan, tmp_path))
    assert "| 0 | +20.0" in text and "| 1 (fresh) | +15.0" in text and "**not run**" in text  # seed 2 missing
    write("c_seed2", 300)
    write("p_seed2", 304)  # +1 point: neither a replication nor a reversal
    text = "\n".join(Z.zoo_seeds_section(plan, tmp_path))
    assert "**mixed**" in text and "mean of 3 (95% t interval) | +12.0" in text
    write("p_seed2", 340)
    assert "**replicates**" in "\n".join(Z.zoo_seeds_section(plan, tmp_path))


def test_page_loss_averages_ink_and_paper_apart(legibility):
    """Uniform heads: each head's loss is log(classes) on the ink patches plus log(classes) on the paper ones,
    however few ink patches there are; a missing word head adds nothing."""
    import math

    import torch

    letter, word = torch.nn.Linear(8, 26), torch.nn.Linear(8, 49)
    for h in (letter, word):
        torch.nn.init.zeros_(h.weight), torch.nn.init.zeros_(h.bias)
    targets = torch.zeros(2, 2, 144, dtype=torch.long)
    targets[0, 0, :3], targets[1, 1, :1] = 5, 7  # 3 letter patches of 288, one word patch
    f = torch.randn(2, 144, 8)
    with torch.no_grad():
        alone = float(legibility.page_loss((letter, None), f, targets))
        both = float(legibility.page_loss((letter, word), f, targets))
    assert abs(alone - 2 * math.log(26)) < 1e-5
    assert abs(both - 2 * math.log(26) - 2 * math.log(49)) < 1e-5


def _tower(folder, name, glyph86, shape_right, batch=32, weight=None, steps=5, n=400):
    """A text_pages.py json: glyph 5.0 at 0.43 px, `shape_right` of the n test scenes read, in order."""
    import json

    c = [1] * shape_right + [0] * (n - shape_right)
    row = {"git": "abcdef0123", "train seconds": 1, "steps": steps, "pages batch": batch,
           "glyph % by cell px": {"0.43": 5.0, "0.86": glyph86},
           "probes": {"shape": {"accuracy": 100 * shape_right / n, "C": 1.0, "correct": c}}}
    if weight is not None:
        row["page weight"] = weight  # study 5's rows predate the key
    (folder / f"{name}.json").write_text(json.dumps(row))


def test_budget_section_checks_each_variant_beside_the_pages_arm(tmp_path):
    plan = {"control": "c.json", "reference": "p.json", "variants": {"w3": "w3.json", "b64": "b64.json"}, "steps": 5,
            "noise": 8, "cells": [0.43, 0.86], "unresolved_within": 3,
            "reading": {"measure": "glyph", "pair": [0.43, 0.86], "base_at_most": 20, "split_at_least": 80},
            "cost": {"probes": ["shape"], "alpha": 0.05},
            "seed_spread": {"plan": "calibration/script_study_zoo_seeds.yaml", "arm": "p", "seeds": [0, 1, 2]}}

    def write(name, glyph86, shape_right, batch=32, weight=None):
        _tower(tmp_path, name, glyph86, shape_right, batch, weight)

    write("c", 2.0, 300, batch=0)
    write("p", 45.0, 380)
    write("w3", 85.0, 300, weight=3)
    text = "\n".join(Z.budget_section(plan, tmp_path))
    assert "| 0 / 0 | 32 / 1 | 32 / 3 |" in text  # the table's columns: control, study 5's pages arm, w3
    assert "w3 reading (glyph <= 20 at 0.43 px, >= 80 at 0.86 px): **met**; 5.0/85.0" in text
    assert "against pages (study 5) at 0.86 px: +40.0 (45.0)" in text and "seeds" not in text  # no spread yet
    assert "no difference found; shape +0.0" in text  # w3 reads shape as the control does
    assert "b64 reading (glyph <= 20 at 0.43 px, >= 80 at 0.86 px): **not run**" in text
    write("b64", 78.0, 250, batch=64)
    write("p_seed1", 41.0, 380)
    write("p_seed2", 49.0, 380)
    text = "\n".join(Z.budget_section(plan, tmp_path))
    assert "b64 reading (glyph <= 20 at 0.43 px, >= 80 at 0.86 px): **unresolved**; 5.0/78.0" in text
    assert "over 3 seeds (calibration/script_study_zoo_seeds.yaml): mean 45.0, SD 4.0" in text
    assert "cost: shape; shape -12.5" in text
    write("b64", 60.0, 300, batch=64)
    assert "**missed**; 5.0/60.0" in "\n".join(Z.budget_section(plan, tmp_path))
    assert "grain on every view" not in text  # text_pages.py's towers have no such key
    import json
    v3 = json.loads((tmp_path / "w3.json").read_text())
    (tmp_path / "w3.json").write_text(json.dumps({**v3, "grain": 8.0, "dense weight": 2.0}))  # v3_tower.py's keys
    assert "| grain on every view / scenes' dense weight | 0 / 1 | 0 / 1 | 8 / 2 | 0 / 1 |" in "\n".join(
        Z.budget_section(plan, tmp_path))


def test_budget_section_shows_other_towers_and_reports_contrasts(tmp_path):
    """Study 8's plan: a control at the variant's steps, the 1,200-step towers as a labelled reference and an `others`
    column, and contrasts between any two towers reported as the cost is (not checks)."""
    plan = {"control": "c2.json", "reference": "p1.json", "reference_label": "pages, 5 steps",
            "others": {"control, 5 steps": "c1.json"}, "variants": {"p10": "p2.json"}, "steps": 10, "noise": 8,
            "cells": [0.43, 0.86], "unresolved_within": 3, "cost": {"probes": ["shape"], "alpha": 0.05},
            "reading": {"measure": "glyph", "pair": [0.43, 0.86], "base_at_most": 20, "split_at_least": 80},
            "contrasts": [["control", "control, 5 steps"], ["p10", "pages, 5 steps"]]}
    _tower(tmp_path, "c1", 2.0, 300, batch=0, steps=5)
    _tower(tmp_path, "p1", 45.0, 380, steps=5)
    _tower(tmp_path, "c2", 3.0, 340, batch=0, steps=10)
    text = "\n".join(Z.budget_section(plan, tmp_path))
    assert "| measure | control | pages, 5 steps | control, 5 steps |" in text and "| steps | 10 | 5 | 5 |" in text
    assert "p10 reading" in text and "**not run**" in text and "- p10 against" not in text  # no variant, no contrast
    assert "- control against control, 5 steps (McNemar exact, Holm over 1, not a check): gain: shape; shape +10.0" in text
    _tower(tmp_path, "p2", 70.0, 381, steps=10)
    text = "\n".join(Z.budget_section(plan, tmp_path))
    assert "**missed**; 5.0/70.0" in text and "against pages, 5 steps at 0.86 px: +25.0 (45.0)" in text
    assert "- p10 against pages, 5 steps (McNemar exact, Holm over 1, not a check): no difference found; shape +0.2" in text
    assert text.rstrip().endswith("script glyph at 0.86 px +25.0")
    plan["probe_targets"] = {"shape": 95}
    assert "- secondary, p10 shape (>= 95): **met**; 95.2" in "\n".join(Z.budget_section(plan, tmp_path))
    plan["probe_targets"] = {"shape": 96}
    assert "- secondary, p10 shape (>= 96): **missed**; 95.2" in "\n".join(Z.budget_section(plan, tmp_path))


def test_budget_section_reports_the_arms_mean_against_their_references(tmp_path):
    """Study 16's plan: `mean_of` gives the arms' mean of each target probe, met or missed, and its difference from
    the references' mean, once every tower it names exists; a tower with region order heads shows their weight."""
    import json

    plan = {"control": "c.json", "reference": "r0.json", "reference_label": "ref0", "others": {"ref1": "r1.json"},
            "variants": {"a0": "a0.json", "a1": "a1.json"}, "steps": 5, "noise": 8, "cells": [0.43, 0.86],
            "unresolved_within": 3, "cost": {"probes": ["shape"], "alpha": 0.05}, "probe_targets": {"shape": 80},
            "reading": {"measure": "glyph", "pair": [0.43, 0.86], "base_at_most": 20, "split_at_least": 80},
            "mean_of": {"arms": ["a0", "a1"], "against": ["ref0", "ref1"]}}
    for name, right in (("c", 300), ("r0", 300), ("r1", 296), ("a0", 330)):
        _tower(tmp_path, name, 81.0, right)
    text = "\n".join(Z.budget_section(plan, tmp_path))
    assert "- mean of" not in text and "order heads" not in text  # a1 not run yet
    _tower(tmp_path, "a1", 81.0, 318)
    a1 = json.loads((tmp_path / "a1.json").read_text())
    (tmp_path / "a1.json").write_text(json.dumps({**a1, "grain": 8.0, "dense weight": 2.0, "order weight": 1.0}))
    text = "\n".join(Z.budget_section(plan, tmp_path))
    assert "- mean of a0, a1, shape (>= 80): **met**; 81.0; +6.5 against the mean of ref0, ref1 (74.5)" in text
    assert "| region order heads' weight | 0 | 0 | 0 | 0 | 1 |" in text
    _tower(tmp_path, "a0", 81.0, 300)
    assert "- mean of a0, a1, shape (>= 80): **missed**; 77.2" in "\n".join(Z.budget_section(plan, tmp_path))


def test_text_pages_heads_are_drawn_from_the_seed(load_script):
    """A pages arm's two reading heads start from its seed, whatever torch's global generator holds (studies 5-8's
    heads came from the unseeded default generator, so their pages arms are not reproducible bit for bit)."""

    import torch

    mod = load_script(repo_root() / "calibration" / "experiments" / "text_pages.py")
    torch.manual_seed(123)
    a = mod.TextPages(16, pool=2, batch=1, noise=8.0, seed=0)
    torch.rand(7)  # the global generator moves on
    b = mod.TextPages(16, pool=2, batch=1, noise=8.0, seed=0)
    c = mod.TextPages(16, pool=2, batch=1, noise=8.0, seed=1)
    assert torch.equal(a.letter.weight, b.letter.weight) and torch.equal(a.word.bias, b.word.bias)
    assert not torch.equal(a.letter.weight, c.letter.weight)
    state = torch.get_rng_state()
    mod.TextPages(16, pool=2, batch=1, noise=8.0, seed=0)
    assert torch.equal(torch.get_rng_state(), state)  # and leave the global generator where it was


def test_canvas_grain_is_averaged_down_by_the_resize_and_view_grain_is_unchanged(legibility):
    """Study 10's placements: grain on the view is the studies' path (the clean view, then grain drawn from the seed
    the page's generator gives after its layout; the same pixels as fee2ab0's code, checked by hash when the option
    came in); grain on the canvas reaches the view smaller, and less so from a 240-px crop than from a 480-px canvas."""
    from PIL import Image

    kw = {"canvas": 480, "max_words": 40}
    rng = random.Random(1)
    clean = legibility.page(rng, "binary4x4", 0.86, **kw)[0]
    expected = legibility.add_grain(Image.fromarray(clean.permute(1, 2, 0).numpy()), 8.0, rng.getrandbits(32))
    view = legibility.page(random.Random(1), "binary4x4", 0.86, noise=8.0, grain_at="view", **kw)
    canvas = legibility.page(random.Random(1), "binary4x4", 0.86, noise=8.0, grain_at="canvas", **kw)
    assert (view[0] == legibility.torch.from_numpy(np.array(expected)).permute(2, 0, 1)).all()
    assert not (view[0] == canvas[0]).all()
    assert (view[1] == canvas[1]).all()  # the targets do not see the grain
    base, split = legibility.grain_in_view(48.0, 480, n=4), legibility.grain_in_view(48.0, 240, n=4)
    assert 6.5 < base < 9.0 and 13.5 < split < 17.0  # ~48/6.1 and ~48/3.1
    assert legibility.grain_in_view(0.0, 480, n=2) == 0.0


def _grain_tower(path, name, glyph, run=(10.0, 70.0)):
    import json

    (path / f"grain_{name}.json").write_text(json.dumps({
        "run": f"text_pages_{name}.json", "git": "abc1234", "restored from step": 2350,
        "grain SD in the view": {"480-px canvas": {"48": 7.8}, "240-px canvas": {"48": 15.5}},
        "glyph": {"run": {"base": run[0], "split": run[1]}, **glyph}}))
    (path / f"text_pages_{name}.json").write_text(json.dumps({"glyph % by cell px": {"0.43": 10.0, "0.86": 70.0}}))


def test_grain_section_gates_on_the_restored_tower_and_checks_each_placement(tmp_path):
    from vlmlab.script_study_grain import grain_section

    plan = {"runs": {"a": "text_pages_a.json", "b": "text_pages_b.json"},
            "towers": {"a": "grain_a.json", "b": "grain_b.json"}, "run_cells": [0.43, 0.86], "reference": "view",
            "placements": ["canvas 12", "canvas 48"], "keeps_within": 3,
            "reading": {"base_at_most": 20, "split_at_least": 80}, "unresolved_within": 3}
    ref = {"base": 10.0, "split": 72.0}
    _grain_tower(tmp_path, "a", {"view": ref, "canvas 12": {"base": 12.5, "split": 84.0},
                                 "canvas 48": {"base": 9.0, "split": 50.0}})
    assert grain_section(plan, tmp_path)[0].startswith("Not run")
    _grain_tower(tmp_path, "b", {"view": ref, "canvas 12": {"base": 30.0, "split": 85.0},
                                 "canvas 48": {"base": 11.0, "split": 70.0}})
    text = "\n".join(grain_section(plan, tmp_path))
    assert "a repeats, b repeats" in text
    assert "canvas 12 against view (within 3): **lost**; b: base +20.0" in text  # a keeps it (+2.5), b does not
    assert "canvas 48 against view (within 3): **kept**" not in text
    assert "canvas 48 against view (within 3): **lost**; a: split -22.0" in text  # b's -2.0 is within
    assert "secondary, canvas 12 (<= 20 base, >= 80 split): a **met**, b **missed**" in text
    assert "reference - run): a +2.0, b +2.0" in text
    _grain_tower(tmp_path, "b", {"view": ref, "canvas 12": {"base": 11.0, "split": 71.0},
                                 "canvas 48": {"base": 11.0, "split": 70.0}}, run=(10.0, 70.5))
    text = "\n".join(grain_section(plan, tmp_path))
    assert "a repeats, b DIFFERS: left out" in text  # b's tower is not its run's: only a is checked
    assert "canvas 12 against view (within 3): **kept**" in text and "b **" not in text


def test_budget_section_replicates_a_variant_in_fresh_seeds(tmp_path):
    """Study 11's plan: fresh seeds of the reference as variants; the pair replicated is the primary (not run until
    every seed has run), each seed's own pair a check labelled per seed."""
    plan = {"control": "c.json", "reference": "p.json", "reference_label": "w3, seed 0",
            "variants": {"s1": "s1.json", "s2": "s2.json"}, "variant_check": "per seed", "replication": ["s1", "s2"],
            "steps": 5, "noise": 8, "cells": [0.43, 0.86], "unresolved_within": 3,
            "reading": {"measure": "glyph", "pair": [0.43, 0.86], "base_at_most": 20, "split_at_least": 80},
            "cost": {"probes": ["shape"], "alpha": 0.05}}
    _tower(tmp_path, "c", 2.0, 300, 0, None)
    _tower(tmp_path, "p", 85.0, 380, 32, 3)
    _tower(tmp_path, "s1", 84.0, 380, 32, 3)
    text = "\n".join(Z.budget_section(plan, tmp_path))
    assert "- primary, replication in s1, s2 (every seed glyph <= 20 at 0.43 px and >= 80 at 0.86 px): **not run**" in text
    assert "- per seed, s1 reading (glyph <= 20 at 0.43 px, >= 80 at 0.86 px): **met**; 5.0/84.0" in text
    assert "- per seed, s2 reading" in text and "**not run**" in text
    _tower(tmp_path, "s2", 78.0, 380, 32, 3)
    text = "\n".join(Z.budget_section(plan, tmp_path))
    assert "**unresolved**; 5.0/84.0, 5.0/78.0" in text  # s2 misses 80, the mean (81.0) is within 3
    _tower(tmp_path, "s2", 68.0, 380, 32, 3)
    assert "**missed**; 5.0/84.0, 5.0/68.0" in "\n".join(Z.budget_section(plan, tmp_path))  # mean 76.0: past by 4
    _tower(tmp_path, "s2", 81.0, 380, 32, 3)
    assert "replication in s1, s2 (every seed glyph <= 20 at 0.43 px and >= 80 at 0.86 px): **met**" in "\n".join(
        Z.budget_section(plan, tmp_path))


def _sharp_tower(path, name, glyph, run=(10.0, 80.0), costs=None):
    import json

    cost = costs or {"crop 480": 40.0, "ss 8": 400.0, "canvas 720": 70.0, "canvas 960": 130.0}
    (path / f"sharp_{name}.json").write_text(json.dumps({
        "run": f"text_pages_{name}.json", "git": "abc1234", "tower": "saved tower",
        "glyph": {"run": {"base": run[0], "split": run[1]}, **glyph},
        "cost": {g: {"render ms": ms, "views ms": 10.0, "png KB": 12.0, "canvas": [480, 480]} for g, ms in cost.items()}}))


def test_sharp_section_gates_checks_each_geometry_and_picks_the_cheapest_sharp_one(tmp_path):
    import json

    from vlmlab.script_study_sharp import sharp_section

    plan = {"runs": {"a": "text_pages_a.json", "b": "text_pages_b.json", "c": "text_pages_c.json"},
            "towers": {"a": "sharp_a.json", "b": "sharp_b.json", "c": "sharp_c.json"}, "run_cells": [0.43, 0.86],
            "reference": "crop 480", "geometries": ["ss 8", "canvas 720", "canvas 960"], "sharp_within": 3,
            "reading": {"base_at_most": 20, "split_at_least": 80}, "unresolved_within": 3}
    assert sharp_section(plan, tmp_path)[0].startswith("Not run (no tower")
    for t in "ab":
        (tmp_path / f"text_pages_{t}.json").write_text(json.dumps({"glyph % by cell px": {"0.43": 10.0, "0.86": 80.0}}))
    geo = {"crop 480": {"base": 10.0, "split": 74.0}, "ss 8": {"base": 11.0, "split": 75.0},
           "canvas 720": {"base": 10.0, "split": 78.0}, "canvas 960": {"base": 12.0, "split": 80.0}}
    _sharp_tower(tmp_path, "a", geo)
    assert sharp_section(plan, tmp_path)[0].startswith("Not run yet")  # b's run exists, its json does not
    _sharp_tower(tmp_path, "b", {**geo, "canvas 960": {"base": 14.0, "split": 80.0}})
    text = "\n".join(sharp_section(plan, tmp_path))
    assert "not run (their text_pages.py runs never finished): c" in text
    assert "a repeats, b repeats" in text
    assert "reported, crop 480 against the run (within 3): **blurred**; a: split -6.0; b: split -6.0" in text
    assert "primary, ss 8 against the run (within 3): **blurred**" in text
    assert "primary, canvas 720 against the run (within 3): **sharp**" in text
    assert "primary, canvas 960 against the run (within 3): **blurred**; b: base +4.0" in text
    assert "secondary, canvas 960 (<= 20 base, >= 80 split): a **unresolved**, b **unresolved**" in text  # 80 is within 3
    assert "decision (the cheapest sharp geometry, render + views ms): **canvas 720**" in text
    _sharp_tower(tmp_path, "b", geo, run=(10.0, 80.5))  # not its run's tower: left out; 960 is sharp in a alone
    text = "\n".join(sharp_section(plan, tmp_path))
    assert "a repeats, b DIFFERS: left out" in text and "canvas 960 against the run (within 3): **sharp**" in text
    assert "**canvas 720**" in text  # cheaper than 960
    (tmp_path / "sharp_a.json").unlink()
    (tmp_path / "sharp_b.json").unlink()
    for t in "ab":
        _sharp_tower(tmp_path, t, {**geo, "canvas 720": {"base": 10.0, "split": 70.0}})
    assert "decision (the cheapest sharp geometry, render + views ms): **canvas 960**" in "\n".join(
        sharp_section(plan, tmp_path))


def test_pages_draw_finer_with_more_supersampling_and_the_default_is_unchanged(legibility):
    """split_sharpness.py's `ss 8`: page(supersample=k) draws the cells k times finer before the canvas shrink; the
    default is the world's (scenes.SUPERSAMPLE) and gives the pages as before; the targets do not change."""
    kw = {"canvas": 240, "max_words": 20, "noise": 8.0}
    before = legibility.page(random.Random(3), "binary4x4", 0.86, **kw)
    same = legibility.page(random.Random(3), "binary4x4", 0.86, supersample=legibility.SUPERSAMPLE, **kw)
    fine = legibility.page(random.Random(3), "binary4x4", 0.86, supersample=8, **kw)
    assert (before[0] == same[0]).all() and (before[1] == fine[1]).all()
    assert not (before[0] == fine[0]).all()


def test_position_halves_redraws_the_pairs_its_towers_were_probed_on(load_script, monkeypatch, capsys):
    """position_halves.py splits a tower's committed position answers by the pair's geometry, redrawing the probe's
    test pairs: in world v2's scenes, where the v3 towers were probed (today's WorldConfig() draws v3's, whose halves
    differ: 257 / 143 pairs where the committed table has 263 / 137). It regenerates its committed row."""
    mod = load_script(repo_root() / "calibration" / "experiments" / "position_halves.py")
    tower = repo_root() / "results" / "script_study" / "v3_tower_dw2.json"
    monkeypatch.setattr("sys.argv", ["position_halves.py", str(tower)])
    mod.main()
    row = capsys.readouterr().out.strip().splitlines()[-1]
    committed = (repo_root() / "results" / "script_study" / "position_halves.md").read_text().splitlines()
    assert row in committed
