"""The HTML report renders in a real browser: headless Chromium loads it, the forest plot and every other
figure decode, and every finding has its section and its one-line verdict."""
import re
import shutil
import subprocess

import pytest
from test_report_render import fabricate

from vlmlab.report.render import build

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium on this machine (Debian: apt install chromium)")
def test_report_page_renders_the_forest_plot_and_every_finding_in_chromium(tmp_path):
    fabricate(tmp_path)
    res = build(tmp_path / "runs", tmp_path / "ablations", tmp_path / "results")
    page = res["html"]
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                          "--dump-dom", page.resolve().as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert "<figure id=\"forest\">" in dom
    loaded = re.search(r'data-figures="(\d+)/(\d+)"', dom)
    assert loaded, dom[:500]
    done, total = map(int, loaded.groups())
    assert total >= 1 + 3 and done == total  # the forest plot and each ablation's figures decoded
    for finding, verdict in zip(res["findings"]["finding"], res["findings"]["verdict"]):
        assert f'<section class="finding" id="{finding}">' in dom
        assert re.search(rf'<a href="#{finding}">{finding}</a>: <span class="verdict [^"]*">{verdict}</span>', dom)
    assert dom.index('id="forest"') < dom.index('class="verdicts"') < dom.index('class="finding"')  # figure first
