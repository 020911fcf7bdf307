"""Reliability: SIGKILL + resume gives the uninterrupted result, SIGTERM checkpoints, NaN is a result,
bad samples are named or skipped."""
import io
import json
import signal
import subprocess
import sys
import time

import datasets
import pytest
import torch

from vlmlab.config import compose, repo_root
from vlmlab.data import BadSample, Processor, TaskDataset
from vlmlab.view_store import ViewStore, undecoded
from vlmlab.images import build_image_processor
from vlmlab.model.build import build_vlm
from vlmlab.runner import run

ARGS = ["vision=tiny", "llm=tiny", "debug=smoke", "optim.max_steps=40", "checkpoint_every=4", "logger.every=1",
        "trainable=lora", "trainable.lora.dropout=0.1"]  # LoRA + dropout: frozen, adapted and random parts resume


def train_cmd(run_dir):
    return [sys.executable, "-m", "vlmlab.train", *ARGS, f"hydra.run.dir={run_dir}"]


def wait_for(path, proc, timeout=240):
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert time.time() - t0 < timeout
        time.sleep(0.005)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref") / "run"
    out = subprocess.run(train_cmd(d), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads((d / "summary.json").read_text())


def test_sigkill_then_resume_ends_with_the_uninterrupted_metrics(tmp_path, reference):
    d = tmp_path / "run"
    proc = subprocess.Popen(train_cmd(d), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(d / "checkpoint" / "state.pt", proc)
    time.sleep(0.05)  # somewhere after the first checkpoint, mid-step or mid-write
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (d / "summary.json").exists()
    out = subprocess.run(train_cmd(d), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "resuming" in out.stdout
    summary = json.loads((d / "summary.json").read_text())
    assert summary["resumed"] is True
    assert summary["loss_history"] == reference["loss_history"]
    assert summary["metrics"]["avg"] == reference["metrics"]["avg"]
    for task in summary["config"]["data"]["tasks"]:
        assert summary["metrics"][task] == reference["metrics"][task]
    steps = [json.loads(x)["step"] for x in (d / "metrics.jsonl").read_text().splitlines()]
    train_steps = steps[:-1]
    assert train_steps == sorted(set(train_steps))  # no step logged twice after the resume
    assert not (d / "checkpoint").exists()  # removed once the run is finished


def test_sigterm_writes_a_checkpoint_and_stops(tmp_path, reference):
    d = tmp_path / "run"
    proc = subprocess.Popen(train_cmd(d), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(d / "metrics.jsonl", proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert (d / "checkpoint" / "state.pt").exists() and not (d / "summary.json").exists()
    state = torch.load(d / "checkpoint" / "state.pt", weights_only=True)
    assert 1 <= state["train"]["step"] < 40
    out = subprocess.run(train_cmd(d), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0
    assert json.loads((d / "summary.json").read_text())["loss_history"] == reference["loss_history"]


def test_injected_nan_gives_diverged(tmp_path, monkeypatch):
    from vlmlab.model.vlm import VLM

    forward = VLM.forward
    calls = {"n": 0}

    def nan_at_third(self, *a, **k):
        loss, logits = forward(self, *a, **k)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] == 3 else loss), logits

    monkeypatch.setattr(VLM, "forward", nan_at_third)
    cfg = compose(["vision=tiny", "llm=tiny", "debug=smoke", "optim.max_steps=6"])
    cfg.run_dir = str(tmp_path / "nan")
    summary = run(cfg)
    assert summary["status"] == "diverged" and summary["diverged_at_step"] == 3
    assert len(summary["loss_history"]) == 3 and summary["metrics"] == {}
    assert json.loads((tmp_path / "nan" / "summary.json").read_text())["status"] == "diverged"


def test_a_diverged_cell_does_not_stop_the_sweep(tmp_path):
    # a spike test so strict that the first rise counts: one cell diverges, the other keeps the default
    cmd = [sys.executable, "-m", "vlmlab.train", "-m", "name=div", "debug=smoke", f"runs_root={tmp_path}",
           "optim.max_steps=6", "optim.spike_window=1", "optim.spike_factor=0.5,0"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=repo_root())
    assert out.returncode == 0, out.stderr[-2000:]
    statuses = {p.parent.parent.name: json.loads(p.read_text())["status"] for p in (tmp_path / "div").rglob("summary.json")}
    assert sorted(statuses.values()) == ["diverged", "finished"], statuses


def _bad_dataset():
    good = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (40, 30), "red").save(good, format="PNG")
    feats = datasets.Features({"id": datasets.Value("string"), "task": datasets.Value("string"),
                               "image": datasets.Image(), "question": datasets.Value("string"),
                               "answers": datasets.Sequence(datasets.Value("string"))})
    rows = {"id": ["ok-0", "broken-1", "empty-2"], "task": ["vqa"] * 3,
            "image": [{"bytes": good.getvalue(), "path": None}, {"bytes": b"\x89PNG not really", "path": None},
                      {"bytes": good.getvalue(), "path": None}],
            "question": ["q?"] * 3, "answers": [["red"], ["red"], [""]]}
    return datasets.Dataset.from_dict(rows, features=feats)


@pytest.mark.parametrize("stored", [False, True])
def test_bad_samples_are_named_or_skipped_and_counted(stored, tmp_path):
    """The same with the view store, which reads the pictures undecoded: a broken file is named all the same."""
    cfg = compose(["vision=tiny", "llm=tiny", "debug=smoke"])
    vlm, tok = build_vlm(cfg)
    store = ViewStore(tmp_path / "views.sqlite", 16) if stored else None
    proc = Processor(tok, vlm.ids, build_image_processor(cfg.image, vlm.vision, cfg.vision.mean, cfg.vision.std,
                                                         store=store), vlm.visual_tokens_per_view, "autoregressive", 512)
    data = (lambda: undecoded(_bad_dataset())) if stored else _bad_dataset
    strict = TaskDataset(data(), proc, train=True, with_answer=True)
    assert strict[0] is not None
    with pytest.raises(BadSample, match="broken-1"):
        strict[1]
    with pytest.raises(BadSample, match="empty-2.*empty answer"):
        strict[2]
    lenient = TaskDataset(data(), proc, train=True, with_answer=True, bad_samples="skip")
    assert [lenient[i] is None for i in range(3)] == [False, True, True]
    assert len(lenient.skipped) == 2 and "broken-1" in lenient.skipped[0]


def test_too_long_text_is_named():
    cfg = compose(["vision=tiny", "llm=tiny", "debug=smoke"])
    vlm, tok = build_vlm(cfg)
    proc = Processor(tok, vlm.ids, build_image_processor(cfg.image, vlm.vision, cfg.vision.mean, cfg.vision.std), vlm.visual_tokens_per_view,
                     "autoregressive", 8)
    with pytest.raises(BadSample, match="ok-0.*exceed the LM context"):
        TaskDataset(_bad_dataset(), proc, train=True, with_answer=True)[0]


def test_no_unsafe_loading_in_the_code():
    for f in (repo_root() / "src").rglob("*.py"):
        text = f.read_text()
        for line in text.splitlines():
            if "torch.load(" in line:
                assert "weights_only=True" in line, (f, line)
            assert "trust_remote_code=True" not in line, (f, line)
