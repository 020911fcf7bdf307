# Study 17 (calibration/word_path.yaml, pre-registered): where is the written word lost between the v3 encoder and
# textvqa's answer? Trains the plan's VLM arms (vlm_recipes.train: the baseline recipe with each arm's overrides, one
# thread, under runs/word_path/<arm>/, resumable) and runs the word reader (word_probe.py) on each reader's tower, two
# jobs at a time, then scores the checks from the runs' files: textvqa per question (the task's own item scores),
# McNemar's exact test on the 300 paired questions (statsmodels), Holm over the secondary pair.
#   python calibration/experiments/word_path.py calibration/word_path.yaml --out results/calibration_v3/word_path
#   (--no-train: score what has finished)
import argparse, gzip, json, os, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

sys.path.insert(0, str(Path(__file__).parent))
from vlm_recipes import run_dir, train  # noqa: E402

from vlmlab.tasks import vqa_items  # noqa: E402

ROOT = "runs/word_path"


def reader(name: str, tower: str, spec: dict) -> None:
    out = Path(ROOT, name, "reader.json")
    if out.exists():
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(Path(__file__).parent / "word_probe.py"), tower, str(spec["n_train"]),
           str(spec["epochs"]), str(out)]
    with open(out.parent / "stdout.log", "a") as log:
        subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "WANDB_MODE": "disabled"})


def predictions(folder: Path) -> dict:
    """A run's predictions: predictions.json as the run wrote it, or .json.gz as results/ keeps it."""
    gz = folder / "predictions.json.gz"
    return json.loads(gzip.open(gz).read() if gz.exists() else (folder / "predictions.json").read_text())


def textvqa(folder: Path) -> tuple[list[float], dict]:
    """Per-question textvqa scores in [0, 1] (the task's VQA accuracy; ordered by question id) and the run's summary."""
    items = sorted(predictions(folder)["textvqa"], key=lambda r: r["id"])
    per = vqa_items([r["prediction"] for r in items], [r["answers"] for r in items])
    return [v / 100 for v in per], json.loads((folder / "summary.json").read_text())


def paired(a: list[float], b: list[float]) -> dict:
    """a against b on the same questions: the difference in points and McNemar's exact p (two-sided)."""
    assert len(a) == len(b)
    n01 = sum(1 for x, y in zip(a, b) if x < 0.5 <= y)
    n10 = sum(1 for x, y in zip(a, b) if y < 0.5 <= x)
    table = [[0, n10], [n01, 0]]
    return {"diff": round(100 * (sum(a) - sum(b)) / len(a), 2), "only_a": n10, "only_b": n01,
            "p": float(mcnemar(table, exact=True).pvalue)}


def score(plan: dict) -> dict:
    runs = {arm: run_dir(arm, plan["seed"], ROOT) for arm in plan["arms"]}
    scores = {arm: textvqa(d) for arm, d in runs.items() if d}
    scores["reference (mixed recipe)"] = textvqa(Path(plan["reference"]))
    readers = {n: json.loads(p.read_text()) for n in plan["readers"] if (p := Path(ROOT, n, "reader.json")).exists()}
    out = {"arms": {a: {"textvqa": round(100 * sum(s) / len(s), 2), "n": len(s),
                        "train_s": round(m.get("wall_time_s", 0)), "visual_tokens": m.get("visual_tokens_per_image"),
                        "top": top_answers(runs.get(a) or Path(plan["reference"]))}
                    for a, (s, m) in scores.items()},
           "readers": readers, "checks": {}}
    p1 = plan["primary"]["P1"]
    if p1["better"] in scores and p1["worse"] in scores:
        c = paired(scores[p1["better"]][0], scores[p1["worse"]][0])
        c["met"] = c["diff"] >= p1["points"] and c["p"] < p1["alpha"]
        out["checks"]["P1"] = {"compare": f"{p1['better']} vs {p1['worse']}", **c}
    p2 = plan["primary"]["P2"]
    if p2["reader"] in readers:
        v = readers[p2["reader"]][f"word reader ({p2['view']})"]
        out["checks"]["P2"] = {"compare": f"{p2['reader']} {p2['view']}", "reading": v, "met": v >= p2["at_least"]}
    sec = plan["secondary"]
    pairs = [(a, b) for a, b in sec["holm"] if a in scores and b in scores]
    if pairs:
        tests = [paired(scores[a][0], scores[b][0]) for a, b in pairs]
        adj = multipletests([t["p"] for t in tests], alpha=plan["alpha"], method="holm")[1]
        for (a, b), t, q in zip(pairs, tests, adj):
            out["checks"][f"{a} vs {b}"] = {**t, "p_holm": float(q)}
    blind = plan["primary"]["P1"]["worse"]
    for a in sec["against_blind"]:
        if a in scores and blind in scores:
            out["checks"][f"{a} vs {blind}"] = paired(scores[a][0], scores[blind][0])
    for a in sec["reference"]:
        if a in scores:
            out["checks"][f"{a} vs reference (mixed recipe)"] = paired(scores[a][0],
                                                                       scores["reference (mixed recipe)"][0])
    for n, r in readers.items():
        out["checks"][f"{n} base <= {sec['reader_base_at_most']}"] = {
            "reading": r["word reader (base)"], "met": r["word reader (base)"] <= sec["reader_base_at_most"]}
    return out


def top_answers(folder: Path, k: int = 3) -> list:
    items = predictions(folder)["textvqa"]
    counts: dict[str, int] = {}
    for r in items:
        counts[r["normalized"]] = counts.get(r["normalized"], 0) + 1
    return sorted(counts.items(), key=lambda kv: -kv[1])[:k]


def markdown(plan: dict, res: dict) -> str:
    lines = [f"# Study 17: {plan['question']}", "",
             "Made by calibration/experiments/word_path.py from the plan calibration/word_path.yaml (pre-registered; "
             "its header states the arms, predictions and decisions) and the runs' files. Seed "
             f"{plan['seed']}, the calibration's 300 validation textvqa questions (48 words, chance ~2 %).", "",
             "| arm | textvqa (%) | top answers | visual tokens / image | train s |", "|---|---|---|---|---|"]
    for a, r in res["arms"].items():
        top = ", ".join(f"{w} {c}" for w, c in r["top"])
        lines.append(f"| {a} | {r['textvqa']:.2f} | {top} | {r['visual_tokens']} | {r['train_s']} |")
    lines += ["", "| word reader | base (%) | split (%) | seconds |", "|---|---|---|---|"]
    for n, r in res["readers"].items():
        lines.append(f"| {n} ({r['tower']}) | {r['word reader (base)']} | {r['word reader (split)']} | {r['seconds']} |")
    lines += ["", "| check | result |", "|---|---|"]
    for k, c in res["checks"].items():
        lines.append(f"| {k} | {json.dumps(c)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("plan")
    ap.add_argument("--out", required=True)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-train", action="store_true")
    a = ap.parse_args()
    plan = yaml.safe_load(Path(a.plan).read_text())
    if not a.no_train:
        jobs = [lambda arm=arm, o=o: train(arm, [*plan["base"], *o], plan["seed"], ROOT)
                for arm, o in list(plan["arms"].items())[:2]]
        jobs += [lambda n=n, t=t: reader(n, t, plan["reader"]) for n, t in plan["readers"].items()]
        jobs += [lambda arm=arm, o=o: train(arm, [*plan["base"], *o], plan["seed"], ROOT)
                 for arm, o in list(plan["arms"].items())[2:]]
        with ThreadPoolExecutor(a.jobs) as ex:
            list(ex.map(lambda f: f(), jobs))
    res = score(plan)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    Path(a.out, "study.json").write_text(json.dumps(res, indent=1) + "\n")
    Path(a.out, "STUDY.md").write_text(markdown(plan, res))
    print(markdown(plan, res))
