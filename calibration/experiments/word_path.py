# Study 17 (calibration/word_path.yaml, pre-registered): where is the written word lost between the v3 encoder and
# textvqa's answer? Trains the plan's VLM arms (vlm_recipes.train: the baseline recipe with each arm's overrides, one
# thread, under runs/word_path/<arm>/, resumable) and runs the word reader (word_probe.py) on each reader's tower, two
# jobs at a time, then scores the checks from the runs' files: textvqa per question (the task's own item scores),
# McNemar's exact test on the 300 paired questions (statsmodels), Holm over the secondary pair.
#   python calibration/experiments/word_path.py calibration/word_path.yaml --out results/calibration_v3/word_path
#   (the finished runs are saved under OUT/runs by vlmlab.carry; --no-train: score what has finished; --runs results/calibration_v3/word_path/runs: from the committed copies)
import argparse, json, os, shutil, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

sys.path.insert(0, str(Path(__file__).parent))
from vlm_recipes import predictions, run_dir, train  # noqa: E402

from vlmlab import carry  # noqa: E402
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


def references(plan: dict) -> dict[str, Path]:
    """Finished runs a plan compares with but does not rerun: study 17's `reference` (the mixed recipe), or a
    follow-up's `references` ({name: run folder})."""
    refs = {"reference (mixed recipe)": plan["reference"]} if "reference" in plan else {}
    return {n: Path(f) for n, f in {**refs, **plan.get("references", {})}.items()}


def late_loss(folder: Path, last: int = 10) -> float:
    """The mean training loss of a run's last `last` logged steps: beside a held-out score it tells learning from
    memorising the training pictures."""
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    losses = [r["train/loss"] for r in rows if "train/loss" in r][-last:]
    return round(sum(losses) / len(losses), 3)


def score(plan: dict) -> dict:
    root = plan.get("runs", ROOT)
    runs = {arm: run_dir(arm, plan["seed"], root) for arm in plan["arms"]}
    runs = {**{a: d for a, d in runs.items() if d}, **references(plan)}
    scores = {arm: textvqa(d) for arm, d in runs.items()}
    readers = {n: json.loads(p.read_text()) for n in plan.get("readers", {})
               if (p := Path(root, n, "reader.json")).exists()}
    out = {"arms": {a: {"textvqa": round(100 * sum(s) / len(s), 2), "n": len(s),
                        "train_s": round(m.get("wall_time_s", 0)), "visual_tokens": m.get("visual_tokens_per_image"),
                        "late_train_loss": late_loss(runs[a]), "top": top_answers(runs[a])}
                    for a, (s, m) in scores.items()},
           "readers": readers, "checks": {}}
    for name, c in plan["primary"].items():
        if "reader" in c and c["reader"] in readers:
            v = readers[c["reader"]][f"word reader ({c['view']})"]
            out["checks"][name] = {"compare": f"{c['reader']} {c['view']}", "reading": v, "met": v >= c["at_least"]}
        elif "better" in c and c["better"] in scores and c["worse"] in scores:
            t = paired(scores[c["better"]][0], scores[c["worse"]][0])
            t["met"] = t["diff"] >= c["points"] and t["p"] < c["alpha"]
            out["checks"][name] = {"compare": f"{c['better']} vs {c['worse']}", **t}
    sec = plan["secondary"]
    pairs = [(a, b) for a, b in sec.get("holm", []) if a in scores and b in scores]
    if pairs:
        tests = [paired(scores[a][0], scores[b][0]) for a, b in pairs]
        adj = multipletests([t["p"] for t in tests], alpha=plan["alpha"], method="holm")[1]
        for (a, b), t, q in zip(pairs, tests, adj):
            out["checks"][f"{a} vs {b}"] = {**t, "p_holm": float(q)}
    reported = [(a, plan["primary"]["P1"]["worse"]) for a in sec.get("against_blind", [])]
    reported += [(a, "reference (mixed recipe)") for a in sec.get("reference", [])] + sec.get("pairs", [])
    for a, b in reported:
        if a in scores and b in scores:
            out["checks"][f"{a} vs {b}"] = paired(scores[a][0], scores[b][0])
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
    lines = [f"# {plan.get('study', 'Study 17')}: {plan['question']}", "",
             f"Made by calibration/experiments/word_path.py from the plan {plan.get('plan', 'calibration/word_path.yaml')} "
             "(pre-registered; its header states the arms, predictions and decisions) and the runs' files. Seed "
             f"{plan['seed']}, the calibration's 300 validation textvqa questions (48 words, chance ~2 %). The late "
             "train loss is the mean of the last 10 logged steps (all training pictures, split or not).", "",
             "| arm | textvqa (%) | top answers | late train loss | visual tokens / image | train s |",
             "|---|---|---|---|---|---|"]
    for a, r in res["arms"].items():
        top = ", ".join(f"{w} {c}" for w, c in r["top"])
        lines.append(f"| {a} | {r['textvqa']:.2f} | {top} | {r['late_train_loss']} | {r['visual_tokens']} | "
                     f"{r['train_s']} |")
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
    ap.add_argument("--runs", help="the runs' root (default: the plan's `runs`, else runs/word_path); with --no-train "
                                   "e.g. results/calibration_v3/word_path/runs, the committed copies")
    a = ap.parse_args()
    plan = yaml.safe_load(Path(a.plan).read_text())
    if a.runs:
        plan["runs"] = a.runs
    if not a.no_train:
        root = plan.get("runs", ROOT)
        jobs = [lambda arm=arm, o=o: train(arm, [*plan["base"], *o], plan["seed"], root)
                for arm, o in list(plan["arms"].items())[:2]]
        jobs += [lambda n=n, t=t: reader(n, t, plan["reader"]) for n, t in plan.get("readers", {}).items()]
        jobs += [lambda arm=arm, o=o: train(arm, [*plan["base"], *o], plan["seed"], root)
                 for arm, o in list(plan["arms"].items())[2:]]
        with ThreadPoolExecutor(a.jobs) as ex:
            list(ex.map(lambda f: f(), jobs))
        for arm in plan["arms"]:  # the committed copies, as vlmlab.carry keeps runs (predictions gzipped)
            carry.save(Path(root, arm), Path(a.out, "runs", arm))
        for n in plan.get("readers", {}):
            if Path(root, n, "reader.json").exists():
                Path(a.out, "runs", n).mkdir(parents=True, exist_ok=True)
                shutil.copy(Path(root, n, "reader.json"), Path(a.out, "runs", n, "reader.json"))
    res = score(plan)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    Path(a.out, "study.json").write_text(json.dumps(res, indent=1) + "\n")
    Path(a.out, "STUDY.md").write_text(markdown(plan, res))
    print(markdown(plan, res))
