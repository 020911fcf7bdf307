"""Extending vlmlab from outside the package: a plugin registers a new task and a new connector, and an ablation
file in a temporary folder runs through the sweep runner in smoke mode into the report. Nothing under src/ is
edited; the plugin is a file next to the ablation file, named by its `plugins:` list."""
import json
import subprocess
import sys

import pandas as pd

from vlmlab.config import repo_root

PLUGIN = '''
"""A counting task and a mean-pooling connector, registered from outside vlmlab."""
import torch
import torch.nn as nn

from vlmlab.contract.tasks import Task, register_task
from vlmlab.metrics import normalize_answer
from vlmlab.model.connector import register_connector
from vlmlab.tasks import vqa_score
from vlmlab.world.questions import Sample, random_scene


def make_count(rng, cfg, sample_id, split):
    n = rng.randint(1, 3)
    scene = random_scene(rng, cfg, n)
    return Sample(f"{sample_id}-count", "countq", scene, "How many shapes?", [str(n)], "count")


register_task(Task("countq", make_count, vqa_score, normalize=normalize_answer,
                   description="count the shapes (a plugin's task)"))


class MeanPool(nn.Module):
    """Masked mean of contiguous patch groups: `tokens` visual tokens per view, then a linear map."""

    def __init__(self, vision_dim, lm_dim, tokens):
        super().__init__()
        self.out_dim, self.tokens = lm_dim, tokens
        self.proj = nn.Linear(vision_dim, lm_dim)

    def num_tokens(self, num_patches):
        return self.tokens

    def forward(self, features, mask=None):
        N, P, _ = features.shape
        mask = torch.ones(N, P, dtype=torch.bool, device=features.device) if mask is None else mask.bool()
        group = torch.arange(P, device=features.device) * self.tokens // P           # (P,)
        onehot = torch.nn.functional.one_hot(group, self.tokens).float()             # (P, k)
        weights = onehot[None] * mask[..., None].float()                             # (N, P, k)
        pooled = torch.einsum("npk,npd->nkd", weights, features) / weights.sum(1).clamp(min=1)[..., None]
        return self.proj(pooled)                                                     # (N, k, Dl)


register_connector("meanpool", lambda cfg, dv, dl: MeanPool(dv, dl, int(cfg.options.get("tokens", 2))))
'''

ABLATION = '''# F99: does mean pooling count as well as the perceiver? make ablation NAME=f99_meanpool
finding: F99
question: Does a mean-pooling connector count shapes as well as the perceiver?
paper: {claim: "a plugin's claim", numbers: "none (a test)"}
plugins: [counting.py]
grid:
  connector.kind: meanpool,perceiver
fixed: ["data.tasks=[vqa,countq]"]
seeds: [0, 1]
checks:
  - {better: {connector.kind: meanpool}, worse: {connector.kind: perceiver}, metric: countq}
  - {better: {connector.kind: meanpool}, worse: {connector.kind: perceiver}, metric: visual_tokens_per_image}
'''


def test_a_plugin_task_and_connector_run_through_the_runner_into_the_report(tmp_path):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "counting.py").write_text(PLUGIN)
    (folder / "f99_meanpool.yaml").write_text(ABLATION)
    runs = tmp_path / "runs"
    out = subprocess.run([sys.executable, "-m", "vlmlab.ablate", str(folder / "f99_meanpool.yaml"), "debug=smoke",
                          f"runs_root={runs}", "threads=1", "hydra/launcher=basic"],
                         capture_output=True, text=True, timeout=900, cwd=repo_root())
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    summaries = sorted((runs / "f99_meanpool").rglob("summary.json"))
    cells = ["connector.kind=meanpool,data.tasks=[vqa,countq]", "connector.kind=perceiver,data.tasks=[vqa,countq]"]
    assert [p.parent.parent.name for p in summaries] == [cells[0]] * 2 + [cells[1]] * 2  # fixed keys name cells too
    first = json.loads(summaries[0].read_text())
    assert set(first["metrics"]) >= {"vqa", "countq", "avg"} and first["visual_tokens_per_image"] == 2
    assert first["config"]["plugins"] == [str(folder / "counting.py")]
    results = runs / "results"
    md = (results / "REPORT.md").read_text()
    assert "## F99: " in md and "f99_meanpool: Does a mean-pooling connector count" in md
    cells = pd.read_csv(results / "f99_meanpool" / "cells.csv")
    assert "countq_mean" in cells.columns and len(cells) == 2
    v = pd.read_csv(results / "f99_meanpool" / "verdicts.csv")
    assert list(v["metric"]) == ["countq", "visual_tokens_per_image"] and list(v["n_pairs"]) == [2, 2]
    assert v["verdict"].iloc[1] == "fact: holds"  # 2 tokens per view against the smoke perceiver's 4: a fact, not a test


def test_the_registries_list_what_plugins_add(tmp_path):
    """In-process: registering adds the task to the registry, its score to the metrics, the connector to the
    allowed connector kinds (the config accepts them), and the registries are what the tests enumerate."""
    from vlmlab.config import compose
    from vlmlab.contract.metrics import metric
    from vlmlab.contract.tasks import task_names
    from vlmlab.model.connector import CONNECTORS

    (tmp_path / "counting2.py").write_text(PLUGIN.replace('"countq"', '"countq2"').replace('"meanpool"', '"meanpool2"'))
    cfg = compose([f"plugins=[{tmp_path / 'counting2.py'}]", "connector.kind=meanpool2", "data.tasks=[countq2]"])
    assert cfg.connector.kind == "meanpool2" and "countq2" in task_names() and "meanpool2" in CONNECTORS
    assert metric("countq2").kind == "quality" and metric("latency_ms/countq2").direction == -1
