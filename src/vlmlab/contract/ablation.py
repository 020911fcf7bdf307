"""Ablation files: the schema and its one loader, shared by the sweep runner and the report.

An ablation file (ablations/<name>.yaml) holds one question:
    # first line: the question and `make ablation NAME=<name>`
    finding: F4                          # the finding it tests (F<number>); several files may share one
    question: "..."                      # one sentence
    paper: {claim: "...", numbers: "..."}  # the source's claim and numbers, quoted
    grid: {connector: "mlp,perceiver"}   # Hydra sweep values per key (any recipe key but those `refusal` names)
    fixed: ["image=square"]              # optional overrides common to every cell (data.tasks, eval.* allowed)
    plugins: [my_tasks]                  # optional modules (or .py files, relative to this file) to import first
    seeds: [0, 1, 2]
    metrics: [avg, vqa, ...]             # optional: the columns plotted (default avg and every task)
    checks:                              # orderings the verdicts test, each on paired seeds (the runner needs one)
      - {better: {connector: perceiver}, worse: {connector: mlp}, metric: avg, primary: true}
      - {kind: not_worse, better: {...}, worse: {...}, metric: avg, margin: 2.0}
    decompose: [connector, connector.visual_tokens]  # optional: grid keys whose shares of the score's variance
                                         # the report estimates, with bootstrap intervals (which axis matters more)
    follow_up_of: f1_backbones           # optional: a pre-registered follow-up (a later look) of another file
    plan: "..."                          # optional: why this many seeds (e.g. the power figure of the first look)
    cut: "..."                           # optional: what the grid leaves out to fit the run's budget, and why
                                         # (shown in the report beside the plan)
    findings_run: false                  # optional: the whole file is cut from `make ablation NAME=all` (say why
                                         # in cut:); it is run by naming it
    unimodal: {llm: {manifest: lm, paper_gain: 5.1}}  # optional: report each axis's upgrade per unit of its
                                         # unimodal gain (the zoo manifest's), beside the paper's (report/unimodal.py)
    A `primary: true` check states the source's headline claim: the finding's verdict comes from its primary
    checks; the others are shown, not counted. A file that marks none counts every check that is not a
    deterministic fact. A check's claim is "quality" (scores, divergence) or "efficiency" (timing, compute),
    from its metric's kind.
A scale file (ablations/<scale>/<name>.yaml) is the same question at another world scale (issue 18's scale transfer):
    scale_of: f3_unfreezing              # the base file, in the folder above; the scale file keeps its name
    scale: large                         # a world scale (conf/scale/): every cell runs with scale=<scale>, filed
                                         # under that scale's runs_root (runs/large)
    seeds: [...]                         # its own, pre-registered from its own pilot; plan:, cut:, findings_run: too
    grid: {...}                          # optional: a cut of the base's grid (each key's values a subset)
    checks: [...]                        # optional: a subset of the base's checks (default: all of them)
It inherits everything else (finding, question, paper, fixed, plugins, metrics, decompose, unimodal); restating one
is an error, so the two scales cannot drift apart.
A follow-up is a second (third, ...) look at a finished file's question with new seeds, fixed in its own file and
committed before its runs: same finding, grid and fixed overrides, the same checks (inherited when it lists none),
seeds disjoint from every earlier look. Its runs are filed under its own name; the report merges every look's
seeds into the first file's section and discloses the number of looks and what they cost in false positives.
`make ablation NAME=all` runs first looks only: a follow-up is run by naming it.
Errors name the file and the culprit in one line (ConfigError).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from vlmlab.contract.errors import ConfigError
from vlmlab.contract.inherit import follow, scale_fields
from vlmlab.contract.plugins import load_plugins, plugin_path
from vlmlab.contract.run import grid_cells, override_key, refusal

CHECK_KINDS = ("better", "not_worse")
_FIELDS = ("finding", "question", "paper", "grid", "fixed", "plugins", "seeds", "metrics", "checks", "decompose",
           "follow_up_of", "plan", "cut", "findings_run", "unimodal", "scale_of", "scale", "name")


@dataclass
class Check:
    better: dict                 # key=value pairs naming the cells expected to be better
    worse: dict                  # ... and worse
    metric: str = "avg"          # a registered metric (contract/metrics.py)
    kind: str = "better"         # better | not_worse (better - worse > -margin)
    margin: float = 0.0          # not_worse: the tolerated loss, in the metric's unit
    primary: bool = False        # the source's headline claim: the finding's verdict comes from these

    @classmethod
    def parse(cls, raw, where: str = "check") -> "Check":
        if isinstance(raw, Check):
            return raw
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: a check is a mapping {{better, worse, metric[, kind, margin]}}, got {raw!r}")
        unknown = set(raw) - {"better", "worse", "metric", "kind", "margin", "primary"}
        if unknown:
            raise ConfigError(f"{where}: unknown check key(s) {sorted(unknown)}; allowed: better, worse, metric, kind, "
                              "margin, primary")
        if not isinstance(raw.get("primary", False), bool):
            raise ConfigError(f"{where}: primary={raw.get('primary')!r} must be true or false")
        kind = str(raw.get("kind", "better"))
        if kind not in CHECK_KINDS:
            raise ConfigError(f"{where}: check kind {kind!r} is not allowed; allowed: {', '.join(CHECK_KINDS)}")
        try:
            margin = float(raw.get("margin", 0.0))
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: margin={raw.get('margin')!r} is not a number") from None
        sides = {s: {str(k): str(v) for k, v in (raw.get(s) or {}).items()} for s in ("better", "worse")}
        return cls(better=sides["better"], worse=sides["worse"], metric=str(raw.get("metric", "avg")), kind=kind,
                   margin=margin if kind == "not_worse" else math.nan, primary=bool(raw.get("primary", False)))


@dataclass
class Ablation:
    name: str                                    # the file stem; runs are filed under <runs_root>/<name>/
    finding: str
    question: str
    paper: dict
    grid: dict[str, str]
    seeds: list[int]
    checks: list[Check]
    metrics: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)
    plugins: list[str] = field(default_factory=list)
    path: Path | None = None
    follow_up_of: str | None = None              # the file this one is a later look of
    plan: str = ""                               # why this many seeds
    cut: str = ""                                # what the grid leaves out to fit a run's budget, and why
    findings_run: bool = True                    # false: not part of `make ablation NAME=all` (run it by name)
    unimodal: dict = field(default_factory=dict)  # {grid key: {manifest: zoo run, paper_gain: float}} (report/unimodal.py)
    decompose: list[str] = field(default_factory=list)  # grid keys whose variance shares the report estimates
    looks: list[tuple[str, list[int]]] = field(default_factory=list)  # (file, seeds) of every look up to this one
    scale: str = "base"                          # the world scale its cells run at (a scale file's `scale:`)
    scale_of: str | None = None                  # a scale file: the base file whose question it asks at `scale`

    def get(self, key: str, default=None):
        """Mapping-style read access (the report reads specs and plain dicts alike)."""
        return getattr(self, key, default)

    def __getitem__(self, key: str):
        return getattr(self, key)

    def overrides(self) -> list[str]:
        """The multirun's overrides: fixed ones, then one swept key per grid entry, then the seeds."""
        plugins = [f"plugins=[{','.join(repr(p) for p in self.plugins)}]"] if self.plugins else []
        return ([f"name={self.name}", *plugins, *self.fixed] + [f"{k}={v}" for k, v in self.grid.items()]
                + [f"seed={','.join(map(str, self.seeds))}"])

    def cells(self) -> list[str]:
        return grid_cells(self.grid) if self.grid else ["baseline"]

    def finding_number(self) -> tuple:
        return finding_key(self.finding)


def finding_key(finding: str) -> tuple:
    """Sort key of a finding id: F0 < F2 < F10 < anything else."""
    m = re.fullmatch(r"F(\d+)", str(finding))
    return (0, int(m.group(1)), "") if m else (1, 0, str(finding))


def load_ablation(path: str | Path) -> Ablation:
    """Read and validate one ablation file (ConfigError names the file and the culprit)."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise ConfigError(f"{where}: no such ablation file")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{where}: not valid YAML{at}: {getattr(e, 'problem', None) or e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: an ablation file is a mapping of {', '.join(_FIELDS[:-1])}")
    unknown = set(raw) - set(_FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {', '.join(_FIELDS[:-1])}")
    scale, stated = "base", set(raw)  # stated: before a scale file takes its base's fields
    if raw.get("scale_of") is not None or raw.get("scale") is not None:
        raw, scale = scale_fields(raw, path, where)
    for key in ("finding", "question", "seeds"):
        if key not in raw:
            raise ConfigError(f"{where}: missing `{key}:`")
    grid = raw.get("grid") or {}
    fixed = raw.get("fixed") or []
    if not isinstance(grid, dict) or not isinstance(fixed, list):
        raise ConfigError(f"{where}: `grid:` is a mapping key -> 'v1,v2' and `fixed:` a list of key=value")
    seeds = raw["seeds"]
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise ConfigError(f"{where}: seeds={seeds!r} is not allowed; allowed: a non-empty list of integers >= 0")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{where}: seeds={seeds!r} lists a seed twice")
    for key, swept in [*((k, True) for k in grid), *((override_key(str(o)), False) for o in fixed)]:
        why = refusal(key, swept)
        if why:
            raise ConfigError(f"{where} {'sweeps' if swept else 'sets'} {key!r}, which it may not: {why}")
    if not isinstance(raw.get("checks") or [], list):
        raise ConfigError(f"{where}: `checks:` is a list of checks")
    checks = [Check.parse(c, f"{where}: check {i + 1}") for i, c in enumerate(raw.get("checks") or [])]
    from vlmlab.contract.metrics import metric
    from vlmlab.contract.tasks import task_names

    plugins = [plugin_path(str(p), path.parent) for p in raw.get("plugins") or []]
    load_plugins(plugins)  # the tasks and metrics they register may be named below

    for i, c in enumerate(checks):
        try:
            metric(c.metric)
        except ConfigError as e:
            raise ConfigError(f"{where}: check {i + 1}: {e}") from None
        for side in (c.better, c.worse):
            for k, v in side.items():
                if k not in grid:
                    raise ConfigError(f"{where}: check {i + 1} names {k!r}, which is not a key of the grid "
                                      f"({', '.join(grid) or 'empty'})")
                if v not in [x.strip() for x in str(grid[k]).split(",")]:
                    raise ConfigError(f"{where}: check {i + 1} names {k}={v}, which the grid does not run "
                                      f"({k}: {grid[k]})" + (" (cut at this scale: list the checks the cut keeps)"
                                                               if raw.get("scale_of") else ""))
    decompose = raw.get("decompose") or []
    if decompose and (not isinstance(decompose, list) or len(decompose) < 2 or any(str(k) not in grid for k in decompose)):
        raise ConfigError(f"{where}: decompose={decompose!r} is not allowed; allowed: a list of two or more keys "
                              f"of the grid ({', '.join(grid) or 'empty'})")
    unimodal = raw.get("unimodal") or {}
    if not isinstance(unimodal, dict) or any(
            str(k) not in grid or not isinstance(v, dict) or set(v) != {"manifest", "paper_gain"}
            or not isinstance(v["paper_gain"], (int, float)) for k, v in unimodal.items()):
        raise ConfigError(f"{where}: unimodal={unimodal!r} is not allowed; allowed: {{grid key: {{manifest: <zoo run>, "
                          f"paper_gain: <number>}}}} for keys of the grid ({', '.join(grid) or 'empty'})")
    metrics = [str(m) for m in (raw.get("metrics") or ["avg", *task_names()])]
    paper = raw.get("paper") or {}
    out = Ablation(name=str(raw.get("name") or path.stem), finding=str(raw["finding"]), question=str(raw["question"]),
                   paper=paper if isinstance(paper, dict) else {"claim": str(paper)},
                   grid={str(k): str(v) for k, v in grid.items()}, seeds=list(seeds), checks=checks,
                   metrics=metrics, fixed=[str(o) for o in fixed] + ([f"scale={scale}"] if scale != "base" else []),
                   plugins=plugins, path=path, scale=scale, scale_of=raw.get("scale_of"),
                   plan=str(raw.get("plan") or ""), cut=str(raw.get("cut") or ""),
                   findings_run=_flag(raw.get("findings_run", True), "findings_run", where),
                   unimodal={str(k): {"manifest": str(v["manifest"]), "paper_gain": float(v["paper_gain"])}
                             for k, v in unimodal.items()},
                   decompose=[str(k) for k in decompose])
    out.looks = [(out.name, out.seeds)]
    if raw.get("follow_up_of"):
        parent = str(raw["follow_up_of"])
        parent_path = path.parent / f"{parent}.yaml"
        if not parent_path.is_file():
            raise ConfigError(f"{where}: follow_up_of={parent!r}: no such ablation file next to it")
        follow(out, load_ablation(parent_path), "checks" in stated, "metrics" in stated, where)
    return out


def first_look(spec: Ablation, specs: dict[str, "Ablation"]) -> str:
    """The name of the file whose question a (follow-up) file asks: the first look of its chain."""
    while spec.follow_up_of:
        spec = specs[spec.follow_up_of]
    return spec.name


def ablation_files(folder: str | Path) -> list[Path]:
    """The ablation files of a folder (its *.yaml), or the one file named (a folder that also holds other plans, as
    calibration/ does, is read one file at a time)."""
    path = Path(folder)
    return [path] if path.is_file() else sorted(path.glob("*.yaml"))


def available(folder: str | Path) -> list[str]:
    """The ablation names in a folder (file stems, sorted)."""
    return [p.stem for p in ablation_files(folder)]


def _flag(value, key: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: {key}={value!r} must be true or false")
    return value


def first_looks(folder: str | Path) -> list[str]:
    """The names of the files that are not follow-ups."""
    return [n for n, spec in load_all(folder).items() if not spec.follow_up_of]


def findings_run(folder: str | Path) -> list[str]:
    """What `NAME=all` runs: the first looks but those cut from the findings run (`findings_run: false`)."""
    specs = load_all(folder)
    return [n for n in first_looks(folder) if specs[n].findings_run]


def load_all(folder: str | Path) -> dict[str, Ablation]:
    """Every ablation file of a folder, by name, sorted."""
    return {p.stem: load_ablation(p) for p in ablation_files(folder)}


def findings(folder: str | Path) -> list[str]:
    """The findings the folder's files test, in order (F0, F1, ..., F10, then others)."""
    specs = sorted(load_all(folder).values(), key=Ablation.finding_number)
    return list(dict.fromkeys(a.finding for a in specs))
