"""torchrun with 2 CPU processes (gloo): the loss trajectory matches one process at the same global batch,
and only rank 0 writes the run folder."""
import json
import os
import subprocess
import sys

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
