"""The backbone zoo: build, cache and locate the toy world's pretrained backbones.

    python -m vlmlab.world.zoo build [--mini] [--only lm_weak ...]   # `make backbones`

Four backbones, weak and strong of each kind with identical architectures (so identical parameter
counts); strong gets 4x the training steps of weak, as Mistral-7B had a larger training budget than
Llama-1-7B. Each lands in $VLMLAB_CACHE/zoo/<name>/ (save_pretrained, safetensors) with a
manifest.json of its measured quality; $VLMLAB_CACHE/zoo/manifest.json gathers all four and the
strong-minus-weak margins. A directory is finished exactly when its manifest.json exists.
The mini zoo (tiny budgets, for tests and smoke runs) lives in $VLMLAB_CACHE/zoo_mini/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerFast, SiglipImageProcessor

from vlmlab.world.config import GENERATOR_VERSION, cache_root
from vlmlab.world.corpus import CorpusSpec, build_corpus, heldout_text
from vlmlab.world.lm import LMSpec, fact_recall, perplexity, train_lm
from vlmlab.world.tokenizer import train_tokenizer
from vlmlab.world.vision import VisionSpec, attribute_probe, retrieval_r1, train_siglip

NAMES = ("lm_weak", "lm_strong", "vision_weak", "vision_strong")
STRONG_OVER_WEAK = 4  # strong backbones train for 4x the weak ones' steps (same data, same architecture)


@dataclass
class ZooSpec:
    corpus: CorpusSpec = field(default_factory=CorpusSpec)
    lm: LMSpec = field(default_factory=LMSpec)  # steps = the strong LM's budget
    vision: VisionSpec = field(default_factory=VisionSpec)  # steps = the strong encoder's budget
    eval_lines: int = 1000  # held-out corpus lines for perplexity
    eval_scenes: int = 500  # held-out scenes for retrieval, in galleries of 50 (probes use 600 + 400)


FULL = ZooSpec()
MINI = ZooSpec(corpus=CorpusSpec(fact_repeats=1, scene_lines=200, misc_lines=100, qa_lines=100),
               lm=LMSpec(steps=8, batch=8), vision=VisionSpec(steps=8, batch=16, pool=64),
               eval_lines=50, eval_scenes=50)


def zoo_dir(mini: bool = False) -> Path:
    return cache_root() / ("zoo_mini" if mini else "zoo")


def _use_mini(mini: bool | None) -> bool:
    return os.environ.get("VLMLAB_ZOO_MINI", "0") == "1" if mini is None else mini


def _finished(path: Path) -> bool:
    man = path / "manifest.json"
    return man.exists() and json.loads(man.read_text()).get("generator_version") == GENERATOR_VERSION


def _tokenizer(spec: ZooSpec, root: Path) -> PreTrainedTokenizerFast:
    path = root / "tokenizer"
    if not (path / "tokenizer.json").exists():
        tmp = root / "tokenizer.tmp"
        train_tokenizer(build_corpus(spec.corpus)).save_pretrained(str(tmp))
        shutil.rmtree(path, ignore_errors=True)
        tmp.rename(path)
    return PreTrainedTokenizerFast.from_pretrained(str(path))


def _build_one(name: str, spec: ZooSpec, root: Path) -> dict:
    kind, quality = name.split("_")
    tok = _tokenizer(spec, root)
    t0 = time.time()
    tmp = root / f"{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    if kind == "lm":
        lm_spec = spec.lm if quality == "strong" else replace(spec.lm, steps=max(1, spec.lm.steps // STRONG_OVER_WEAK))
        model = train_lm(tok, build_corpus(spec.corpus), lm_spec, desc=name)
        quality_ = {"heldout_perplexity": perplexity(model, tok, heldout_text(spec.corpus, spec.eval_lines), lm_spec.seq),
                    "fact_recall": fact_recall(model, tok), "fact_recall_chance": 1 / 8}
        train = asdict(lm_spec)
    else:
        v_spec = spec.vision if quality == "strong" else replace(spec.vision, steps=max(1, spec.vision.steps // STRONG_OVER_WEAK))
        model = train_siglip(tok, v_spec, desc=name)
        probes = attribute_probe(model, v_spec, *((600, 400) if spec.eval_scenes >= 500 else (60, 40)))
        quality_ = {"retrieval_r1_at_50": retrieval_r1(model, tok, v_spec, spec.eval_scenes), "retrieval_chance": 1 / 50,
                    "probe_colour": probes["colour"], "probe_shape": probes["shape"], "probe_count": probes["count"],
                    "probe_mean": sum(probes.values()) / len(probes)}
        train = asdict(v_spec)
        SiglipImageProcessor(size={"height": v_spec.image_size, "width": v_spec.image_size},
                             image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(str(tmp))
    model.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    manifest = {"name": name, "generator_version": GENERATOR_VERSION, "architecture": type(model).__name__,
                "parameters": sum(p.numel() for p in model.parameters()), "train": train,
                "quality": quality_, "build_seconds": round(time.time() - t0, 1)}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    shutil.rmtree(root / name, ignore_errors=True)
    tmp.rename(root / name)
    return manifest


def summarise(root: Path) -> dict:
    """Gather the per-backbone manifests and the strong-minus-weak margins into root/manifest.json."""
    models = {n: json.loads((root / n / "manifest.json").read_text()) for n in NAMES if _finished(root / n)}
    margins = {}
    for kind in ("lm", "vision"):
        weak, strong = models.get(f"{kind}_weak"), models.get(f"{kind}_strong")
        if weak and strong:
            margins[kind] = {k: strong["quality"][k] - weak["quality"][k] for k in strong["quality"] if "chance" not in k}
            margins[kind]["same_parameter_count"] = weak["parameters"] == strong["parameters"]
    summary = {"generator_version": GENERATOR_VERSION, "models": {n: m["quality"] for n, m in models.items()},
               "parameters": {n: m["parameters"] for n, m in models.items()},
               "strong_minus_weak": margins, "build_seconds": {n: m["build_seconds"] for n, m in models.items()}}
    (root / "manifest.json").write_text(json.dumps(summary, indent=2))
    return summary


def build(names: tuple[str, ...] = NAMES, mini: bool = False, threads: int = 1) -> dict:
    """Build the named backbones that are missing (deterministic; finished ones are skipped).

    One thread by default: on a 2-core machine shared with other jobs, two busy-waiting OpenMP
    threads ran ~3x slower per step than one; pass threads=2 on an idle machine."""
    torch.set_num_threads(threads)
    spec, root = (MINI if mini else FULL), zoo_dir(mini)
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        if name not in NAMES:
            raise ValueError(f"unknown backbone {name!r}; choose from {NAMES}")
        if not _finished(root / name):
            _build_one(name, spec, root)
    return summarise(root)


def ensure(name: str, build_if_missing: bool = True, mini: bool | None = None) -> Path:
    """Directory of a zoo backbone, building it if missing (mini=None reads $VLMLAB_ZOO_MINI=1)."""
    if name not in NAMES:
        raise ValueError(f"unknown zoo backbone {name!r}; choose from {NAMES}")
    mini = _use_mini(mini)
    path = zoo_dir(mini) / name
    if not _finished(path):
        if not build_if_missing:
            raise FileNotFoundError(f"zoo backbone {name!r} is not built at {path}; run `make backbones` "
                                    f"(python -m vlmlab.world.zoo build{' --mini' if mini else ''})")
        print(f"[zoo] building missing backbone {name} into {path}")
        build((name,), mini)
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m vlmlab.world.zoo", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build every missing backbone")
    b.add_argument("--mini", action="store_true", help="tiny budgets, into zoo_mini/ (seconds)")
    b.add_argument("--only", nargs="+", choices=NAMES, default=list(NAMES))
    b.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core machine)")
    args = ap.parse_args(argv)
    t0 = time.time()
    summary = build(tuple(args.only), args.mini, args.threads)
    print(json.dumps({k: summary[k] for k in ("models", "strong_minus_weak")}, indent=2))
    print(f"[zoo] ready in {zoo_dir(args.mini)} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
