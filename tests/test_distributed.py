"""torchrun with 2 CPU processes (gloo): the loss trajectory matches one process at the same global batch,
and only rank 0 writes the run folder."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ARGS = ["vision=tiny", "llm=tiny", "debug=smoke", "optim.max_steps=5", "optim.batch_size=8", "trainable=lora",
        "threads=1"]


def test_two_processes_match_one_at_the_same_global_batch(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    one = subprocess.run([sys.executable, "-m", "vlmlab.train", *ARGS, f"hydra.run.dir={tmp_path}/one"],
                         capture_output=True, text=True, timeout=600, env=env)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                          "29533", "-m", "vlmlab.train", *ARGS, f"hydra.run.dir={tmp_path}/two"],
                         capture_output=True, text=True, timeout=600, env=env)
    assert two.returncode == 0, two.stderr[-3000:]
    a = json.loads((tmp_path / "one" / "summary.json").read_text())
    b = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert len(a["loss_history"]) == len(b["loss_history"]) == 5
    for x, y in zip(a["loss_history"], b["loss_history"]):
        assert abs(x - y) <= 1e-4 * abs(x), (a["loss_history"], b["loss_history"])
    # rank 0 alone logged: one line per logged step, no duplicates
    steps = [json.loads(line)["step"] for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert len(steps) == len(set(steps)) + 1  # the final eval line repeats the last step once


def _torchrun(run_dir, port, *extra, popen=False):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
           "-m", "vlmlab.train", *ARGS, "parallel=fsdp", *extra, f"hydra.run.dir={run_dir}"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if popen:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


def _pids_running(marker: str) -> list[int]:
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker in cmdline.read_bytes().decode(errors="replace"):
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue
    return pids


@pytest.mark.slow
def test_fsdp_matches_one_process_and_resumes_after_a_kill(tmp_path):
    import signal
    import time

    from vlmlab.config import compose
    from vlmlab.runner import run

    long = ["optim.max_steps=24", "checkpoint_every=3"]
    cfg = compose([*ARGS, *long])
    cfg.run_dir = str(tmp_path / "one")
    one = run(cfg)
    # killed after its first checkpoint (gathered to rank 0), then resumed by every rank: the trajectory of one
    # uninterrupted process (one FSDP run serves both checks: test time)
    d = tmp_path / "killed"
    proc = _torchrun(d, 29562, *long, popen=True)
    t0 = time.time()
    while not (d / "checkpoint" / "state.pt").exists():
        assert proc.poll() is None and time.time() - t0 < 300, "the run ended before it could be interrupted"
        time.sleep(0.005)
    for pid in _pids_running(str(d)):  # torchrun and its workers (each in a process group of its own)
        os.kill(pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)
    assert not (d / "summary.json").exists()
    out = _torchrun(d, 29563, *long)
    assert out.returncode == 0, out.stderr[-3000:]
    resumed = json.loads((d / "summary.json").read_text())
    assert resumed["resumed"] is True, out.stdout[-3000:]
    for x, y in zip(one["loss_history"], resumed["loss_history"], strict=True):
        assert abs(x - y) <= 1e-4 * abs(x), (one["loss_history"], resumed["loss_history"])
    # rank 0 evaluates an unsharded copy of the gathered weights: the same answers as one process
    assert json.loads((tmp_path / "one" / "predictions.json").read_text()) == json.loads(
        (d / "predictions.json").read_text())
