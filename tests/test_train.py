"""The training run end to end on tiny models: summary contents, metrics log, determinism, skip-finished."""
import json
import subprocess
import sys

import torch

from vlmlab.config import compose
from vlmlab.runner import run

TINY = ["vision=tiny", "llm=tiny", "debug=smoke", "optim.max_steps=3"]


def cfg_at(tmp_path, name, extra=()):
    cfg = compose(TINY + list(extra))
    cfg.run_dir = str(tmp_path / name)
    return cfg


def test_run_writes_a_complete_summary_and_metrics(tmp_path):
    summary = run(cfg_at(tmp_path, "a"))
    folder = tmp_path / "a"
    on_disk = json.loads((folder / "summary.json").read_text())
    assert on_disk["status"] == "finished" and on_disk == json.loads(json.dumps(summary, default=str))
    m = on_disk["metrics"]
    for task in [*on_disk["config"]["data"]["tasks"], "avg"]:
        assert 0.0 <= m[task] <= 1000.0
    assert on_disk["params"]["all"]["total"] > on_disk["params"]["all"]["trainable"] > 0
    for comp in ("vision", "connector", "llm"):
        assert on_disk["params"][comp]["total"] > 0
    assert on_disk["visual_tokens_per_image"] == 4
    assert on_disk["perf"]["train_samples_per_s"] > 0 and on_disk["wall_time_s"] > 0
    assert on_disk["config"]["optim"]["max_steps"] == 3 and "git_commit" in on_disk
    assert on_disk["software"]["torch"] == torch.__version__ and {"transformers", "pillow", "cpu_capability"} <= set(on_disk["software"])
    logs = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    train_keys = {"train/loss", "train/lr", "train/grad_norm", "perf/samples_per_s"}
    assert any(train_keys <= set(r) for r in logs)
    assert any("eval/avg" in r for r in logs)
    assert (folder / "config.yaml").exists() and (folder / "predictions.json").exists()


def test_same_seed_same_first_losses_other_seed_differs(tmp_path):
    a = run(cfg_at(tmp_path, "s0a"))["first_losses"]
    b = run(cfg_at(tmp_path, "s0b"))["first_losses"]
    c = run(cfg_at(tmp_path, "s1", ["seed=1"]))["first_losses"]
    assert a == b
    assert a != c


def test_a_finished_run_is_skipped(tmp_path):
    cfg = cfg_at(tmp_path, "done")
    first = run(cfg)
    mtime = (tmp_path / "done" / "summary.json").stat().st_mtime
    again = run(cfg)
    assert again["wall_time_s"] == first["wall_time_s"]
    assert (tmp_path / "done" / "summary.json").stat().st_mtime == mtime


def test_cli_run_lands_in_a_deterministic_folder(tmp_path):
    out = subprocess.run([sys.executable, "-m", "vlmlab.train", *TINY, "name=clitest", "logger=wandb",
                          f"hydra.run.dir={tmp_path}/cli/seed0"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "cli" / "seed0" / "summary.json").exists()


def test_real_benchmarks_few_shot_evaluation_end_to_end(tmp_path, assets):
    folders = {"vqa": "vqav2", "textvqa": "textvqa", "okvqa": "okvqa", "caption": "coco"}
    paths = [f"+eval.benchmark_paths.{t}={assets / 'benchmarks' / f}" for t, f in folders.items()]
    cfg = cfg_at(tmp_path, "real", ["eval=real", "eval.shots=2", "eval.max_samples=3", "eval.batch_size=2",
                                    "eval.max_new_tokens=3", *paths])
    summary = run(cfg)
    preds = json.loads((tmp_path / "real" / "predictions.json").read_text())
    assert set(preds) == set(folders) and all(len(v) == 3 for v in preds.values())
    assert summary["status"] == "finished" and 0 <= summary["metrics"]["avg"]


def test_toy_world_few_shot_prompts(tmp_path):
    summary = run(cfg_at(tmp_path, "toyshots", ["eval.shots=2"]))
    assert summary["status"] == "finished" and set(summary["metrics"]) >= {"vqa", "caption", "avg"}


def test_cross_attention_few_shot_reads_each_shots_own_image(tmp_path):
    summary = run(cfg_at(tmp_path, "xshots", ["eval.shots=2", "fusion=cross_attention"]))
    assert summary["status"] == "finished"


def test_an_identical_finished_run_elsewhere_is_reused_not_retrained(tmp_path, monkeypatch):
    from vlmlab import reuse, runner

    def commit(sha):  # the code version a summary records, and the one reuse compares it with
        for module in (runner, reuse):
            monkeypatch.setattr(module, "git_commit", lambda *_: sha)

    def filed(name, extra=()):
        cfg = compose(TINY + [f"runs_root={tmp_path}", f"name={name}", *extra])
        cfg.run_dir = str(tmp_path / name / "cell" / f"seed{cfg.seed}")
        return cfg

    commit("0123abc")
    first = run(filed("f1_x"))
    twin = run(filed("f4_y"))
    assert twin["reused_from"] == "../../../f1_x/cell/seed0" and twin["metrics"] == first["metrics"]
    assert twin["config"]["name"] == "f4_y" and twin["wall_time_s"] == first["wall_time_s"]
    folder = tmp_path / "f4_y" / "cell" / "seed0"
    assert (folder / "metrics.jsonl").read_text() == (tmp_path / "f1_x" / "cell" / "seed0" / "metrics.jsonl").read_text()
    assert "name: f4_y" in (folder / "config.yaml").read_text()
    assert reuse.find_twin(filed("f7_t")) == tmp_path / "f1_x" / "cell" / "seed0"
    monkeypatch.setenv("WORLD_SIZE", "2")  # under torchrun every rank would copy at once: no reuse
    assert reuse.find_twin(filed("f7_t")) is None
    monkeypatch.delenv("WORLD_SIZE")
    # another config, another seed, uncommitted code, or reuse switched off: trained, not reused
    assert "reused_from" not in run(filed("f5_z", ["optim.lr=0.002"]))
    assert "reused_from" not in run(filed("f6_w", ["seed=1"]))
    commit("0123abc-dirty")
    assert "reused_from" not in run(filed("f2_v"))
    commit("0123abc")
    assert "reused_from" not in run(filed("f3_u", ["reuse_finished=false"]))
    # a reused run met again with reuse off is trained after all (timings must come from its own sweep)
    retrained = run(filed("f4_y", ["reuse_finished=false"]))
    scores = lambda m: {k: v for k, v in m.items() if "latency" not in k}  # noqa: E731 -- timings differ
    assert "reused_from" not in retrained and scores(retrained["metrics"]) == scores(first["metrics"])
