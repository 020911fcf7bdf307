"""The backbone zoo: build, cache and locate the toy world's pretrained backbones.

    python -m vlmlab.world.zoo build [--mini] [--only lm vision] [--jobs 2] [--scale large]   # `make backbones`

One pretraining run per kind (a tiny Llama, a tiny SigLIP), each snapshotted at fixed steps along the way: the
checkpoints of a run have identical architectures (equal parameter counts) and each carries its unimodal scores.
  lm       held-out perplexity, fact recall (8 candidate values per fact; chance 1/8): the MMLU of the toy world;
           and reading (questions about a scene told in words), the skill a frozen LM needs to use visual tokens
  vision   the calibration's linear probes (world/probes.py) and zero-shot retrieval: its ImageNet
Each score is also given as `unimodal`, a share of the way from chance (0) to perfect (1): lm from fact recall,
vision the mean over the probes colour, shape, count, position and glyph (split). The scoring and the choice of
pairs are in world/zoo_quality.py.

Named backbones (`zoo:lm_weak` ...) are the paper's pairs: strong is the last checkpoint; weak is the checkpoint
whose unimodal gap to strong comes closest to the paper's gap (../shared/PAPER.md, chosen here once, before any
finding runs): the LM swap was a large step, MMLU 35.1 -> 60.1, a third of the way from chance (25) to perfect;
the vision swap a small one, ImageNet 78.0 -> 83.2, 5.2% of the way. `zoo:lm@300` names any checkpoint.

Two world scales (issue 18's scale transfer): the base zoo, and a large one (wider, deeper backbones, a 128-px
encoder, larger canvases; the specs are in world/zoo_specs.py) named with a prefix, `zoo:large/lm_strong`, under
zoo_large/ (`make backbones-large`).
Layout under $VLMLAB_CACHE/zoo/ (the mini zoo, tiny budgets for tests and smoke runs, under zoo_mini/):
  tokenizer/                 the world's BPE tokenizer
  lm/step-000300/ ...        checkpoints (save_pretrained, safetensors) with manifest.json
  lm/manifest.json           the run: spec, every checkpoint's scores (a run is finished exactly when it exists)
  lm.tmp/train_state.pt      a stopped run's training state, saved every SAVE_EVERY steps: the next build resumes
                             it and ends byte-identical to a run that never stopped (resume.py)
  lm_weak/, lm_strong/ ...   copies of the chosen checkpoints; manifest.json says which and why
  manifest.json              every checkpoint's scores, the chosen pairs and their gaps beside the paper's
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import shutil
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerFast, SiglipImageProcessor

from vlmlab.perf import software
from vlmlab.world.config import GENERATOR_VERSION, cache_root, generator_version
from vlmlab.world.corpus import build_corpus
from vlmlab.world.lm import train_lm
from vlmlab.world.resume import saved_seconds
from vlmlab.world.tokenizer import train_tokenizer
from vlmlab.world.vision import train_siglip
from vlmlab.world.zoo_quality import PAPER_GAP, choose_pair, lm_scores, vision_scores
from vlmlab.world.zoo_specs import SPECS, ZooSpec

KINDS = ("lm", "vision")
NAMES = ("lm_weak", "lm_strong", "vision_weak", "vision_strong")
CHECKPOINT = re.compile(r"^(lm|vision)@(\d+)$")
SCALES = ("base", "large")  # world scales (issue 18's scale transfer): `zoo:large/lm_strong` names the large zoo's backbones


def zoo_dir(mini: bool = False, scale: str = "base") -> Path:
    if scale not in SCALES:
        raise ValueError(f"unknown zoo scale {scale!r}; choose from {SCALES}")
    return cache_root() / (("zoo_mini" if mini else "zoo") + ("" if scale == "base" else f"_{scale}"))


def split_scale(name: str) -> tuple[str, str]:
    """'large/lm_strong' -> ('large', 'lm_strong'); a name without a scale is the base zoo's."""
    scale, _, rest = name.rpartition("/")
    return scale or "base", rest


def _use_mini(mini: bool | None) -> bool:
    return os.environ.get("VLMLAB_ZOO_MINI", "0") == "1" if mini is None else mini


def finished(path: Path, version: str = GENERATOR_VERSION) -> bool:
    """A run, checkpoint or named backbone at path is built, by the generator `version` (a scale's: generator_version)."""
    man = path / "manifest.json"
    return man.exists() and json.loads(man.read_text()).get("generator_version") == version


def step_dir(kind: str, step: int) -> str:
    return f"{kind}/step-{step:06d}"


def _tokenizer(spec: ZooSpec, root: Path) -> PreTrainedTokenizerFast:
    path = root / "tokenizer"
    if not (path / "tokenizer.json").exists():
        tmp = root / "tokenizer.tmp"
        train_tokenizer(build_corpus(spec.tokenizer_corpus)).save_pretrained(str(tmp))
        shutil.rmtree(path, ignore_errors=True)
        tmp.rename(path)
    return PreTrainedTokenizerFast.from_pretrained(str(path))


SAVE_EVERY = {"lm": 250, "vision": 50}  # steps between saved training states (~2-4 min of one thread at base scale)


def _build_run(kind: str, spec: ZooSpec, root: Path, version: str = GENERATOR_VERSION) -> dict:
    """Train one kind's run, saving and scoring every checkpoint; returns the run manifest."""
    tok = _tokenizer(spec, root)
    tmp = root / f"{kind}.tmp"
    state = tmp / "train_state.pt"  # a stopped build's training state (resume.py): continue it, bit-identical
    if not state.exists():
        shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True, exist_ok=True)
    t0 = time.time() - saved_seconds(state)
    done = int(torch.load(state, map_location="cpu", weights_only=True)["step"]) if state.exists() else 0
    run_spec = spec.lm if kind == "lm" else spec.vision
    checkpoints = []  # those saved before the state was: kept; any saved after it is made again
    for path in sorted(tmp.glob("step-*")):
        entry = json.loads((path / "manifest.json").read_text()) if (path / "manifest.json").exists() else None
        if entry and entry["step"] <= done:
            checkpoints.append(entry)
        else:
            shutil.rmtree(path)

    def save(step: int, model) -> None:
        out = tmp / f"step-{step:06d}"
        quality = lm_scores(model, tok, spec) if kind == "lm" else vision_scores(model, tok, spec)
        model.save_pretrained(str(out))
        tok.save_pretrained(str(out))
        if kind == "vision":
            SiglipImageProcessor(size={"height": run_spec.image_size, "width": run_spec.image_size},
                                 image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(str(out))
        entry = {"name": f"{kind}@{step}", "step": step, "generator_version": version,
                 "architecture": type(model).__name__, "parameters": sum(p.numel() for p in model.parameters()),
                 "quality": quality, "seconds_into_build": round(time.time() - t0, 1)}
        (out / "manifest.json").write_text(json.dumps(entry, indent=2))
        checkpoints.append(entry)
        print(f"[zoo] {kind}@{step}: unimodal {quality['unimodal']:.3f}")

    if kind == "lm":
        train_lm(tok, build_corpus(spec.corpus), run_spec, desc=kind, on_checkpoint=save, state_path=state,
                 save_every=SAVE_EVERY[kind])
    else:
        train_siglip(tok, run_spec, desc=kind, on_checkpoint=save, state_path=state, save_every=SAVE_EVERY[kind])
    manifest = {"kind": kind, "generator_version": version, "train": asdict(run_spec),
                "checkpoints": checkpoints, "build_seconds": round(time.time() - t0, 1), "software": software()}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    shutil.rmtree(root / kind, ignore_errors=True)
    tmp.rename(root / kind)
    return manifest


def _alias(name: str, checkpoint: str, pair: dict, root: Path) -> None:
    kind, step = CHECKPOINT.match(checkpoint).groups()
    src, tmp = root / step_dir(kind, int(step)), root / f"{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    man = json.loads((tmp / "manifest.json").read_text())
    (tmp / "manifest.json").write_text(json.dumps({**man, "name": name, "checkpoint": checkpoint, "pair": pair}, indent=2))
    shutil.rmtree(root / name, ignore_errors=True)
    tmp.rename(root / name)


def summarise(root: Path, version: str = GENERATOR_VERSION) -> dict:
    """Gather the runs' checkpoints, the chosen pairs and their margins into root/manifest.json."""
    runs = {k: json.loads((root / k / "manifest.json").read_text()) for k in KINDS if finished(root / k, version)}
    named = {n: json.loads((root / n / "manifest.json").read_text()) for n in NAMES if finished(root / n, version)}
    margins = {}
    for kind in KINDS:
        weak, strong = named.get(f"{kind}_weak"), named.get(f"{kind}_strong")
        if weak and strong:
            margins[kind] = {k: strong["quality"][k] - weak["quality"][k] for k in strong["quality"] if "chance" not in k}
            margins[kind]["same_parameter_count"] = weak["parameters"] == strong["parameters"]
            margins[kind]["paper_unimodal_gap"] = PAPER_GAP[kind]
    summary = {"generator_version": version,
               "models": {n: m["quality"] for n, m in named.items()},
               "aliases": {n: m["checkpoint"] for n, m in named.items()},
               "checkpoints": {k: {c["name"]: c["quality"] for c in r["checkpoints"]} for k, r in runs.items()},
               "parameters": {n: m["parameters"] for n, m in named.items()},
               "strong_minus_weak": margins, "build_seconds": {k: r["build_seconds"] for k, r in runs.items()},
               "software": {k: r.get("software") for k, r in runs.items()}}
    (root / "manifest.json").write_text(json.dumps(summary, indent=2))
    return summary


def exit_with_parent(poll_s: float = 2.0) -> threading.Thread:
    """In a worker process: end it when the process that started it ends. A `build --jobs 2` whose parent is killed
    (kill PID, not Ctrl-C's process group) otherwise left its two training workers running, and a rebuild
    started next wrote into the same <kind>.tmp folders."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    t = threading.Thread(target=watch, daemon=True, name="exit-with-parent")
    t.start()
    return t


def _build_in_process(kind: str, mini: bool, threads: int, scale: str = "base") -> None:
    exit_with_parent()
    torch.set_num_threads(threads)
    _build_run(kind, SPECS[scale, mini], zoo_dir(mini, scale), generator_version(scale))


def build(kinds: tuple[str, ...] = KINDS, mini: bool = False, threads: int = 1, jobs: int = 1,
          scale: str = "base") -> dict:
    """Build the missing runs of the named kinds and their weak/strong pairs (deterministic; finished ones skipped).

    One thread per run by default: on a 2-core machine shared with other jobs, two busy-waiting OpenMP
    threads ran ~3x slower per step than one; pass threads=2 on an idle machine. jobs=2 trains the missing
    runs side by side in their own processes (the LM beside the vision tower), each with `threads` threads."""
    torch.set_num_threads(threads)
    root, version = zoo_dir(mini, scale), generator_version(scale)
    spec = SPECS[scale, mini]
    root.mkdir(parents=True, exist_ok=True)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown backbone run {unknown[0]!r}; choose from {KINDS}")
    missing = [k for k in kinds if not finished(root / k, version)]
    if jobs > 1 and len(missing) > 1:
        _tokenizer(spec, root)  # once, before the runs that share it
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(jobs, len(missing)), mp_context=ctx) as pool:
            for done in [pool.submit(_build_in_process, k, mini, threads, scale) for k in missing]:
                done.result()
    for kind in kinds:
        if not finished(root / kind, version):
            _build_run(kind, spec, root, version)
        if not all(finished(root / f"{kind}_{q}", version) for q in ("weak", "strong")):
            pair = choose_pair(kind, json.loads((root / kind / "manifest.json").read_text())["checkpoints"])
            for q in ("weak", "strong"):
                _alias(f"{kind}_{q}", pair[q], pair, root)
    return summarise(root, version)


def ensure(name: str, build_if_missing: bool = True, mini: bool | None = None) -> Path:
    """Directory of a zoo backbone (a name of NAMES or a checkpoint `lm@300`, either after a scale: `large/lm_strong`),
    building it if missing or built by another generator version than its scale's (mini=None reads $VLMLAB_ZOO_MINI=1); with
    build_if_missing=False or $VLMLAB_ZOO_NO_BUILD=1 it raises instead, so a diagnostic pointed at an older cache
    cannot start a rebuild of it."""
    full_name = name
    scale, name = split_scale(name)
    match = CHECKPOINT.match(name)
    if scale not in SCALES or (name not in NAMES and not match):
        raise ValueError(f"unknown zoo backbone {full_name!r}; choose from {NAMES} or a checkpoint such as lm@300, "
                         f"optionally after a scale ({', '.join(f'{s}/' for s in SCALES)})")
    mini = _use_mini(mini)
    root, version = zoo_dir(mini, scale), generator_version(scale)
    path = root / (step_dir(match.group(1), int(match.group(2))) if match else name)
    kind = match.group(1) if match else name.split("_")[0]
    if not finished(path, version):
        man = path / "manifest.json"
        stale = json.loads(man.read_text()).get("generator_version") if man.exists() else None
        why = f"was built by {stale!r}, not this code's {version!r}" if stale else "is not built"
        if not build_if_missing or os.environ.get("VLMLAB_ZOO_NO_BUILD", "0") == "1":
            raise FileNotFoundError(f"zoo backbone {full_name!r} at {path} {why}; run `make backbones` "
                                    f"(python -m vlmlab.world.zoo build{' --mini' if mini else ''}"
                                    f"{'' if scale == 'base' else f' --scale {scale}'}), or point $VLMLAB_CACHE "
                                    f"at a zoo of this world")
        print(f"[zoo] backbone {full_name} at {path} {why}: building it (VLMLAB_ZOO_NO_BUILD=1 refuses)")
        build((kind,), mini, scale=scale)
        if not finished(path, version):
            steps = json.loads((root / kind / "manifest.json").read_text())["train"]["checkpoints"]
            raise ValueError(f"zoo backbone {name!r}: the {kind} run has no such checkpoint; its steps: {steps}")
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m vlmlab.world.zoo", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build every missing backbone run and its weak/strong pair")
    b.add_argument("--mini", action="store_true", help="tiny budgets, into zoo_mini/ (seconds)")
    b.add_argument("--only", nargs="+", choices=KINDS, default=list(KINDS))
    b.add_argument("--threads", type=int, default=1, help="torch threads per run (1 is fastest on a busy 2-core machine)")
    b.add_argument("--jobs", type=int, default=2, help="runs trained side by side, each in its own process")
    b.add_argument("--scale", choices=SCALES, default="base", help="the world scale (large: `make backbones-large`)")
    args = ap.parse_args(argv)
    t0 = time.time()
    summary = build(tuple(args.only), args.mini, args.threads, args.jobs, args.scale)
    print(json.dumps({k: summary[k] for k in ("aliases", "models", "strong_minus_weak")}, indent=2))
    print(f"[zoo] ready in {zoo_dir(args.mini, args.scale)} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
