"""The processes that only compose, launch or report import no torch-heavy library at the top.

Every sweep starts `python -m vlmlab.ablate`, then `python -m vlmlab.train -m` (the parent only composes and
launches its cells), and a report; transformers, peft and datasets cost ~6 s to import (torch ~2 s more), paid
once per process. The process that trains imports them through runner.py (test_train.py runs it).
"""
import json
import subprocess
import sys

HEAVY = ["transformers", "peft", "datasets"]

# one fresh process imports the modules from the lightest up and lists, after each, the heavy libraries loaded so far
CODE = """
import importlib, json, sys
out = {}
for m in ("vlmlab.report.render", "vlmlab.noise", "vlmlab.config", "vlmlab.ablate", "vlmlab.train"):
    importlib.import_module(m)
    out[m] = [h for h in %r if h in sys.modules]
print(json.dumps(out))
""" % (HEAVY + ["torch"])


def test_reports_the_command_line_and_the_sweep_runner_leave_the_heavy_libraries_to_the_process_that_trains():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded["vlmlab.report.render"] == [] and loaded["vlmlab.noise"] == []  # no torch either
    assert "torch" in loaded["vlmlab.config"]  # the check can fail: the config's parts (images.py, ...) use torch
    for module in ("vlmlab.config", "vlmlab.ablate", "vlmlab.train"):
        assert not set(loaded[module]) & set(HEAVY), (module, loaded[module])
