"""Run identity: which keys name a cell, which make two runs the same experiment, where a run is filed.

A run folder is a pure function of (runs_root, ablation name, cell, seed):
    <runs_root>/<name>/<cell>/seed<seed>/{config.yaml, metrics.jsonl, predictions.json, summary.json | failed.json}
The cell is named by the command line's overrides, sorted, joined with "," ("connector=mlp,image=split"), with
"/" made "_" and "baseline" for none, leaving out the keys in NOT_A_CELL (the seed, and what only decides
where, how fast or how loudly a run is made). Two runs are the same experiment when their configs agree on
every key but FILING_KEYS (run reuse, reuse.py). An ablation file may set any recipe key except those that
would make its cells incomparable (`refusal`).
"""
from __future__ import annotations

import itertools
import re
from pathlib import Path

SUMMARY, FAILED, CONFIG, METRICS, PREDICTIONS = "summary.json", "failed.json", "config.yaml", "metrics.jsonl", \
    "predictions.json"

# keys (and groups) that never name a cell: the seed, where a run is filed, how it is executed or logged
NOT_A_CELL = ("seed", "name", "debug", "experiment", "scale", "runs_root", "reuse_finished", "threads", "device", "plugins",
              "vision.feature_store_mb",  # a cache's size: the features it serves are the tower's, bit for bit
              "vision.view_store_mb",  # the same for the image pipeline's views
              "logger", "logger.kind", "logger.mode", "logger.project", "hydra.launcher", "hydra/launcher")
# keys that only say where a run is filed: two configs equal but for these are the same experiment
FILING_KEYS = ("name", "run_dir", "runs_root", "reuse_finished")

# what an ablation file may not set at all (the runner's own keys), and why (a prefix covers its sub-keys)
_RUNNER_KEYS = {
    "seed": "seeds are the file's `seeds:` list; a per-cell seed would unpair the cells' seeds",
    "name": "the runner files every cell under the ablation's name",
    "runs_root": "the runner files every cell under one runs_root",
    "run_dir": "the runner files every cell itself",
    "reuse_finished": "the runner decides run reuse for the whole sweep",
    "debug": "a debug profile applies to a whole sweep: pass it on the command line (ARGS=debug=smoke)",
    "experiment": "a preset applies to a whole sweep: pass it on the command line (ARGS=experiment=...)",
    "scale": "a world scale applies to a whole sweep: pass it on the command line (ARGS=scale=large), then compare "
             "the two scales' reports with python -m vlmlab.report.scale",
    "hydra": "launching is not an axis: pass hydra options on the command line",
    "logger": "logging is not an axis",
    "plugins": "plugins belong in the file's `plugins:` list, loaded for every cell",
}
# what a grid may not vary (a `fixed:` override may set it, as it is the same for every cell), and why
_INCOMPARABLE = {
    "eval": "cells scored on different evaluation data or protocols are not comparable",
    "data.seed": "a different world seed gives every cell a different test split",
    "data.tasks": "cells evaluated on different tasks are not comparable",
    "data.validation_size": "cells evaluated on different validation splits are not comparable",
    "data.test_size": "cells evaluated on different test splits are not comparable",
    "data.long_side_min": "the scene generator's settings change the test split",
    "data.long_side_max": "the scene generator's settings change the test split",
    "data.max_aspect": "the scene generator's settings change the test split",
    "data.min_objects": "the scene generator's settings change the test split",
    "data.max_objects": "the scene generator's settings change the test split",
    "data.word_prob": "the scene generator's settings change the test split",
    "data.word_height": "the scene generator's settings change the test split",
    "data.script": "the scene generator's settings change the test split",
    "data.grain": "the world's grain changes every view of the test split (and the zoo was pretrained under it)",
}
_ALLOWED_UNDER_REFUSED = ("eval.batch_size",)  # generation batch size: a speed knob, scores are the same


def refusal(key: str, swept: bool = True) -> str | None:
    """Why an ablation file may not set `key` (an override key; "+a.b" and "group/opt" forms allowed) in its grid
    (swept=True) or in its `fixed:` list (swept=False), or None when it may."""
    key = key.lstrip("+~").replace("/", ".")
    if key in _ALLOWED_UNDER_REFUSED:
        return None
    for prefix, why in (_RUNNER_KEYS | (_INCOMPARABLE if swept else {})).items():
        if key == prefix or key.startswith(prefix + "."):
            return why
    return None


def override_key(override: str) -> str:
    """'+a.b=1' -> 'a.b'; 'hydra/launcher=local' -> 'hydra/launcher'."""
    return override.split("=", 1)[0].lstrip("+~")


def cell_name(overrides) -> str:
    """The cell a command line's overrides name (Hydra's override_dirname rule, with NOT_A_CELL left out)."""
    kept = sorted(str(o) for o in overrides if override_key(str(o)) not in NOT_A_CELL)
    return ",".join(kept).replace("/", "_") or "baseline"


_KEY_START = re.compile(r",(?=[+~]*[A-Za-z_][\w.\-@/]*=)")  # a comma that starts the next key=value


def parse_cell(cell: str) -> dict[str, str]:
    """'fusion=cross_attention,trainable=lora' -> {'fusion': 'cross_attention', 'trainable': 'lora'}."""
    if cell in ("", "baseline"):
        return {}
    return dict(part.split("=", 1) for part in _KEY_START.split(cell) if "=" in part)


def grid_cells(grid: dict) -> list[str]:
    """The cell names a sweep makes of a grid {key: "v1,v2"}: every combination, named by `cell_name`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    axes = []
    for key, values in grid.items():
        o = parser.parse_overrides([f"{key}={values}"])[0]
        axes.append([f"{key}={v}" for v in (o.sweep_string_iterator() if o.is_sweep_override() else [o.value()])])
    return [cell_name(combo) for combo in itertools.product(*axes)]


def seed_dir(seed: int) -> str:
    return f"seed{seed}"


def seed_of(path: Path) -> int | None:
    m = re.fullmatch(r"seed(\d+)", Path(path).name)
    return int(m.group(1)) if m else None


def run_dir(runs_root: str | Path, name: str, cell: str, seed: int) -> Path:
    return Path(runs_root) / name / cell / seed_dir(seed)


def identity(config: dict) -> dict:
    """What makes two runs the same experiment: the whole config except where the run is filed."""
    import json

    return json.loads(json.dumps({k: v for k, v in config.items() if k not in FILING_KEYS}))
