"""The world's calibration runs end to end from one command: probes, blind controls, learning curve, targets."""
import subprocess
import sys

import pandas as pd

from vlmlab.config import repo_root


def test_calibration_command_writes_probes_controls_curve_and_targets(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "vlmlab.calibrate", "--runs", str(tmp_path / "runs"), "--out", str(out),
           "--seeds", "0,1", "--visions", "tiny", "--probe-scenes", "120,80", "vision=tiny", "llm=tiny", "debug=smoke"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=repo_root())
    assert run.returncode == 0, run.stderr[-3000:]
    probes = pd.read_csv(out / "probes.csv")
    assert list(probes["probe"]) == ["colour", "shape", "count", "position", "glyph (base)", "glyph (split)"]
    assert probes["accuracy"].between(0, 100).all() and (probes["vision"] == "tiny").all()
    controls = pd.read_csv(out / "controls.csv")
    assert sorted(set(controls["split"])) == [0, 2] and len(controls) == 8  # 4 tasks x without/with splitting
    assert (controls["seeds"] == "2/2").all() and controls["prior"].notna().all()
    curve = pd.read_csv(out / "curve.csv")
    assert len(curve) == 1  # the smoke profile sets max_steps: the curve's axis collapses to it
    md = (out / "CALIBRATION.md").read_text()
    for target in ("vqa beats blind by >= 5 seed SDs", "textvqa with splitting beats blind",
                   "no task above 90", "probe glyph (split) (tiny)"):
        assert target in md
    again = subprocess.run(cmd + ["--no-train"], capture_output=True, text=True, timeout=600, cwd=repo_root())
    assert again.returncode == 0 and (out / "CALIBRATION.md").read_text().split("## Probes")[1:] != []
