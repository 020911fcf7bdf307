"""The report from synthetic runs, through the CLI: tables, figures, REPORT.md, a self-contained
report.html that headless Chromium renders (every finding section and every figure), atomic writes."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from report_fakes import make_run, write_ablation

from vlmlab import tracking
from vlmlab.report import aggregate

P, M = {"connector": "perceiver"}, {"connector": "mlp"}
CHECK_JS = """<script>
window.addEventListener('load', function () {
  var out = [];
  document.querySelectorAll('img').forEach(function (im, i) {
    var r = im.getBoundingClientRect();
    var ok = im.complete && im.naturalWidth > 0 && r.width > 0 && r.height > 0;
    out.push('img ' + i + ' ' + (ok ? 'ok' : 'broken') + ' ' + im.naturalWidth + 'x' + im.naturalHeight);
  });
  document.querySelectorAll('section.finding').forEach(function (s) {
    var r = s.getBoundingClientRect();
    out.push('section ' + s.id + ' ' + (r.height > 0 && s.querySelector('h2') ? 'ok' : 'empty'));
  });
  var pre = document.createElement('pre'); pre.id = 'render-check'; pre.textContent = out.join('\\n');
  document.body.appendChild(pre);
});
</script>"""


def fabricate(root: Path) -> None:
    """F4 run (reproduced, contradicted, inconclusive checks, a failed cell), F3 run (diverged seeds),
    F1 with an ablation file but no runs. The report's findings are those the ablation files test."""
    runs, abl = root / "runs", root / "ablations"
    write_ablation(abl, "f4_connector", "F4", {"connector": "mlp,perceiver,linear"},
                   [{"better": P, "worse": M, "metric": "avg"}, {"better": P, "worse": M, "metric": "eval_latency_ms"},
                    {"better": P, "worse": M, "metric": "vqa"}], claim="perceiver wins", numbers="51.8 -> 60.3")
    for s in range(3):
        make_run(runs, "f4_connector", "connector=perceiver", s, sps=20 + s, vtok=64, latency=6 + s / 10,
                 tasks={"vqa": [50, 60, 40][s], "textvqa": 80, "okvqa": 80, "caption": 80})
        make_run(runs, "f4_connector", "connector=mlp", s, sps=8, vtok=729, latency=4 + s / 5,
                 tasks={"vqa": [55, 45, 52][s], "textvqa": 50, "okvqa": 50, "caption": 50}, losses=(3, 2.5, 2.2, 2.0))
    make_run(runs, "f4_connector", "connector=linear", 0, status="failed")
    write_ablation(abl, "f3_stability", "F3", {"trainable": "full,lora"},
                   [{"better": {"trainable": "lora"}, "worse": {"trainable": "full"}, "metric": "diverged"}])
    for s in range(3):
        make_run(runs, "f3_stability", "trainable=lora", s, avg=55 + s)
        make_run(runs, "f3_stability", "trainable=full", s, status="diverged", losses=(3, 5, 40, 1e4, float("inf")))
    write_ablation(abl, "f1_backbones", "F1", {"llm": "toy_weak,toy_strong"},
                   [{"better": {"llm": "toy_strong"}, "worse": {"llm": "toy_weak"}, "metric": "avg"}])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    fabricate(root)
    r = subprocess.run([sys.executable, "-m", "vlmlab.report", "--runs", str(root / "runs"),
                        "--ablations", str(root / "ablations"), "--out", str(root / "results")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return root / "results", r.stdout


def test_cli_writes_tables_figures_and_finding_verdicts(built):
    out, stdout = built
    for name in ("f4_connector", "f3_stability"):
        for f in ("seeds.csv", "cells.csv", "verdicts.csv", "bars.png", "loss.png", "tradeoff.png"):
            assert (out / name / f).stat().st_size > 0, f"{name}/{f}"
    assert not (out / "f1_backbones").exists()
    v = pd.read_csv(out / "f4_connector" / "verdicts.csv")
    assert list(v["verdict"]) == ["reproduced", "contradicted", "inconclusive"]
    findings = dict(pd.read_csv(out / "findings.csv")[["finding", "verdict"]].values)
    # F3: 0/3 against 3/3 diverged is p = 0.10 by Fisher's exact test: not enough seeds to call it
    assert findings == {"F1": "not run yet", "F3": "inconclusive", "F4": "mixed"}
    assert "F4: mixed" in stdout and "REPORT.md" in stdout


def test_report_md_has_every_finding_the_paper_and_the_scale(built):
    out, _ = built
    md = (out / "REPORT.md").read_text()
    assert re.findall(r"^## (F\d+): ", md, re.M) == ["F1", "F3", "F4"]  # in finding order, from the files
    assert "Not run yet: `make ablation NAME=f1_backbones` (2 cells x 3 seeds)" in md
    assert "| claim | perceiver wins | mixed (1 reproduced, 1 contradicted, 1 inconclusive of 3 checks) |" in md
    assert "51.8 -> 60.3" in md and "connector=perceiver: avg 72.50 ± 6.21" in md
    assert "| trainable=full | 0/3/0/0 |" in md and "(3/3 seeds diverged)" in md
    assert "Failed seeds: connector=linear/seed0: RuntimeError: boom" in md
    for row in ("| optimizer steps | 5 |", "| batch (samples per step) | 4 x 1 accumulation |",
                "| training data | 40 per task x 4 tasks |", "| vision backbones | zoo:vision_strong (500.0k params) |",
                "| summed run time | 0h 00m 24s (sum over the 12 trained runs) |", "| seeds by status | 9 finished, 3 diverged"):
        assert row in md, row
    assert re.search(r"\| seed-to-seed noise of avg \| std over seeds: median \d+\.\d\d points", md)
    for img in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (out / img).exists(), img
    assert len(re.findall(r"!\[", md)) == 7  # the forest plot first, then 2 x 3 per ablation


def test_html_is_self_contained(built):
    out, _ = built
    page = (out / "report.html").read_text()
    assert not re.search(r"<script|<link|@import|url\(|(src|href)=['\"]?(https?:|//)", page, re.I)
    srcs = re.findall(r"<img [^>]*src=\"([^\"]*)\"", page)
    assert len(srcs) == len(list(out.glob("*/*.png"))) + len(list(out.glob("forest.png"))) == 7
    assert all(s.startswith("data:image/png;base64,") and len(s) > 1000 for s in srcs)
    assert page.count('<section class="finding"') == 3


@pytest.fixture(scope="session")
def chromium():
    """Debian's chromium; installed with apt-get when missing (as root), skipped where that is impossible."""
    exe = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if exe is None:
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            pytest.skip("chromium is missing and cannot be installed here (needs root and apt-get)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        r = subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], capture_output=True, text=True, env=env)
        if r.returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env)
            r = subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], capture_output=True, text=True, env=env)
        assert r.returncode == 0, f"apt-get install chromium failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
        exe = "/usr/bin/chromium"
    return exe


def render_check(chromium: str, page: Path, tmp: Path) -> list[str]:
    """Open page (plus CHECK_JS) in headless Chromium; return the lines the script wrote into the DOM."""
    probe = tmp / page.name
    probe.write_text(page.read_text().replace("</body>", CHECK_JS + "</body>"))
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp / 'profile'}",
           "--dump-dom", probe.resolve().as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=90).stdout
    found = re.search(r'<pre id="render-check">(.*?)</pre>', dom, re.S)
    assert found, f"the check script did not run; DOM starts: {dom[:300]!r}"
    return found.group(1).strip().splitlines()


def test_html_renders_every_section_and_figure_in_chromium(built, chromium, tmp_path):
    out, _ = built
    lines = render_check(chromium, out / "report.html", tmp_path)
    imgs = [ln for ln in lines if ln.startswith("img ")]
    sections = [ln.split()[1:3] for ln in lines if ln.startswith("section ")]
    assert len(imgs) == 7 and all(" ok " in ln for ln in imgs), lines  # the forest plot and 2 x 3 per ablation
    assert sections == [[f, "ok"] for f in ("F1", "F3", "F4")], lines
    page = (out / "report.html").read_text()
    # one figure first, then one verdict line per finding, then the rest
    assert page.index('<figure id="forest">') < page.index('<ul class="verdicts">') < page.index('class="finding"')
    for finding, verdict in (("F1", "not run yet"), ("F3", "inconclusive"), ("F4", "mixed")):
        assert re.search(rf'<a href="#{finding}">{finding}</a>: <span class="verdict [^"]*">{verdict}</span>', page)
    # the probe itself must see a broken figure
    broken = tmp_path / "broken" / "report.html"
    broken.parent.mkdir()
    broken.write_text(re.sub(r"base64,[^']{50}", "base64,AAAA", (out / "report.html").read_text(), count=1))
    assert any(" broken " in ln for ln in render_check(chromium, broken, tmp_path / "broken"))


def test_interrupted_write_leaves_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "REPORT.md"
    aggregate.write_atomic(target, "old report")

    def crash(fd):
        raise KeyboardInterrupt  # Ctrl-C between writing and renaming

    monkeypatch.setattr(tracking.os, "fsync", crash)
    with pytest.raises(KeyboardInterrupt):
        aggregate.write_atomic(target, "new report, half written")
    assert target.read_text() == "old report" and [p.name for p in tmp_path.iterdir()] == ["REPORT.md"]


def test_rebuild_keeps_results_whose_runs_are_gone_and_drops_only_what_results_runs_lost(built, tmp_path):
    from vlmlab.report.render import build

    out, _ = built
    root = tmp_path / "copy"
    shutil.copytree(out.parent, root)
    shutil.rmtree(root / "runs" / "f3_stability")  # a fresh clone, or a cleaned runs/: the results stay
    build(root / "runs", root / "ablations", root / "results")
    assert (root / "results" / "f3_stability" / "verdicts.csv").exists()
    assert "## F3: not run yet" not in (root / "results" / "REPORT.md").read_text()
    shutil.rmtree(root / "results" / "runs" / "f3_stability")  # withdrawn from the results on purpose
    build(root / "runs", root / "ablations", root / "results")
    assert not any((root / "results" / "f3_stability").iterdir())
    md = (root / "results" / "REPORT.md").read_text()
    assert "## F3: not run yet" in md and "Not run yet: `make ablation NAME=f3_stability` (2 cells x 3 seeds)." in md, md[:3000]
    assert (root / "results" / "f4_connector" / "bars.png").exists()


def test_a_files_seed_plan_and_cut_are_shown_in_its_section(tmp_path):
    """The pre-registration is read where the verdicts are: the file's `plan:` and `cut:` head its section."""
    from vlmlab.report.render import build

    runs, abl = tmp_path / "runs", tmp_path / "ablations"
    path = write_ablation(abl, "f4", "F4", {"connector": "mlp,perceiver"},
                          [{"better": {"connector": "perceiver"}, "worse": {"connector": "mlp"}, "metric": "avg",
                            "primary": True}])
    path.write_text(path.read_text() + 'plan: "5 seeds: the pilot\'s figure"\ncut: "the linear cell, a secondary\'s"\n')
    for seed in range(3):
        make_run(runs, "f4", "connector=perceiver", seed, avg=50.0 + seed)
        make_run(runs, "f4", "connector=mlp", seed, avg=48.0)
    md = build(runs, abl, tmp_path / "out")["report"].read_text()
    assert "Seed plan: 5 seeds: the pilot's figure" in md and "Cut to fit the run's budget: the linear cell" in md


def test_a_file_cut_from_the_findings_run_is_not_run_by_all_and_its_finding_says_so(tmp_path, monkeypatch):
    from vlmlab import ablate
    from vlmlab.report.render import build

    runs, abl = tmp_path / "runs", tmp_path / "ablations"
    check = [{"better": {"connector": "perceiver"}, "worse": {"connector": "mlp"}, "metric": "avg", "primary": True}]
    write_ablation(abl, "f4", "F4", {"connector": "mlp,perceiver"}, check)
    path = write_ablation(abl, "f9", "F9", {"connector": "mlp,perceiver"}, check)
    path.write_text(path.read_text() + 'findings_run: false\ncut: "every primary check is untestable here"\n')
    ran = []
    monkeypatch.setattr(ablate, "run_ablation", lambda a, args, timing=True: ran.append(a.name) or 0)
    monkeypatch.setattr(ablate, "regenerate_report", lambda args, folder, scale="base": None)
    assert ablate.main(["all", "--ablations", str(abl)]) == 0 and ran == ["f4"]
    for seed in range(3):
        make_run(runs, "f4", "connector=perceiver", seed, avg=50.0 + seed)
        make_run(runs, "f4", "connector=mlp", seed, avg=48.0)
    res = build(runs, abl, tmp_path / "out")
    assert res["findings"].set_index("finding")["verdict"]["F9"] == "cut from this run"
    md = res["report"].read_text()
    assert "## F9: cut from this run" in md and "Not in the findings run (cut, above)" in md
    assert pd.read_csv(tmp_path / "out" / "findings.csv")["finding"].tolist() == ["F4", "F9"]


def test_f1_reports_each_upgrade_per_unit_of_its_unimodal_gain(tmp_path):
    """The LM upgrade (+4 avg over a unimodal gap of 0.4) and the encoder's (+1 over 0.05), against the manifest."""
    import json

    from vlmlab.report import unimodal
    from vlmlab.report.render import build

    runs, abl, out = tmp_path / "runs", tmp_path / "ablations", tmp_path / "out"
    path = write_ablation(abl, "f1", "F1", {"llm": "toy_weak,toy_strong", "vision": "toy_weak,toy_strong"},
                          [{"better": {"llm": "toy_strong", "vision": "toy_weak"},
                            "worse": {"llm": "toy_weak", "vision": "toy_weak"}, "metric": "avg"},
                           {"better": {"llm": "toy_weak", "vision": "toy_strong"},
                            "worse": {"llm": "toy_weak", "vision": "toy_weak"}, "metric": "avg"}])
    path.write_text(path.read_text() + "unimodal:\n  llm: {manifest: lm, paper_gain: 5.1}\n"
                    "  vision: {manifest: vision, paper_gain: 3.2}\n")
    for seed, jitter in enumerate((0.0, 0.5, -0.5)):
        for llm, vision, avg in (("toy_weak", "toy_weak", 40), ("toy_strong", "toy_weak", 44),
                                 ("toy_weak", "toy_strong", 41), ("toy_strong", "toy_strong", 45)):
            make_run(runs, "f1", f"llm={llm},vision={vision}", seed, avg=avg + jitter * (llm == "toy_strong"))
    cal = out / "calibration_x"
    cal.mkdir(parents=True)
    pd.DataFrame([{"split": 0, "task": "vqa", "trained": 50, "trained_sd": 1, "blind": 30, "blind_sd": 1, "prior": 20,
                   "margin": 20, "margin_in_sd": 20, "seeds": "3/3"}]).to_csv(cal / "controls.csv",
                                                                                                index=False)
    (cal / "zoo_manifest.json").write_text(json.dumps({"strong_minus_weak": {
        "lm": {"unimodal": 0.4, "paper_unimodal_gap": 1 / 3}, "vision": {"unimodal": 0.05, "paper_unimodal_gap": 0.052}}}))
    res = build(runs, abl, out)
    v = pd.read_csv(out / "f1" / "verdicts.csv")
    t = unimodal.unimodal_table({"unimodal": {"llm": {"manifest": "lm", "paper_gain": 5.1},
                                              "vision": {"manifest": "vision", "paper_gain": 3.2}}},
                                v, json.loads((cal / "zoo_manifest.json").read_text())).set_index("axis")
    assert t.loc["llm", "per_unit"] == pytest.approx(4.0 / 0.4) and t.loc["vision", "per_unit"] == pytest.approx(20.0)
    assert t.loc["llm", "at_paper_gap"] == pytest.approx(10.0 / 3) and t.loc["llm", "paper_per_unit"] == pytest.approx(15.3)
    assert t.loc["llm", "per_unit_lo"] < 10.0 < t.loc["llm", "per_unit_hi"]
    md = res["report"].read_text()
    assert "The upgrades in unimodal units" in md and "| vision |" in md
