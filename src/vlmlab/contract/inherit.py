"""What one ablation file takes from another (contract/ablation.py's loader calls these).

  scale_fields  a scale file (ablations/<scale>/<name>.yaml, `scale_of:`): its base file's fields, with its own
                seeds, plan, cut and findings_run, an optional cut of the grid and subset of the checks; restating
                anything else is an error, so the two scales cannot drift apart (issue 18's scale transfer). A
                follow-up at a scale is a scale file too (`scale_of:` the base, `follow_up_of:` the scale file)
  follow        a follow-up (`follow_up_of:`): the look it follows, validated (same finding, grid and fixed; new
                seeds) and inherited (checks, question, paper, and metrics unless it lists its own)
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from vlmlab.contract.errors import ConfigError
from vlmlab.contract.plugins import plugin_path

if TYPE_CHECKING:
    from vlmlab.contract.ablation import Ablation

# the fields a scale file states itself; every other one comes from its base
SCALE_OWN = ("scale_of", "scale", "seeds", "plan", "cut", "findings_run", "grid", "checks", "name", "follow_up_of")


def scale_fields(raw: dict, path: Path, where: str) -> tuple[dict, str]:
    """A scale file's fields: its base's (the folder above), with its own seeds, plan, cut and an optional cut of the
    grid and subset of the checks. Returns (the merged raw mapping, the scale)."""
    from vlmlab.config import SCALES

    base_name, scale = raw.get("scale_of"), raw.get("scale")
    if not base_name or not scale:
        raise ConfigError(f"{where}: a scale file names both `scale_of:` (its base file) and `scale:` (a world scale)")
    if scale not in SCALES or scale == "base":
        raise ConfigError(f"{where}: scale={scale!r} is not allowed; allowed: {', '.join(s for s in SCALES if s != 'base')}")
    if str(raw.get("name") or path.stem) != str(base_name) and not raw.get("follow_up_of"):
        raise ConfigError(f"{where}: a scale file is named as its base ({base_name}.yaml), so the two scales' reports "
                          f"pair file by file (a follow-up at this scale, `follow_up_of:` the scale file, is named "
                          f"freely: its seeds join its first look's)")
    restated = sorted(k for k in raw if k not in SCALE_OWN)
    if restated:
        raise ConfigError(f"{where}: a scale file inherits {', '.join(restated)} from {base_name}; state them there")
    base_path = path.parent.parent / f"{base_name}.yaml"
    if not base_path.is_file():
        raise ConfigError(f"{where}: scale_of={base_name!r}: no such ablation file in {path.parent.parent}")
    base = yaml.safe_load(base_path.read_text()) or {}
    if base.get("scale_of") or base.get("follow_up_of"):
        raise ConfigError(f"{where}: scale_of={base_name!r} must name a first look at the base scale")
    merged = {k: v for k, v in base.items() if k not in ("seeds", "plan", "cut", "findings_run", "name")}
    merged["plugins"] = [plugin_path(str(p), base_path.parent) for p in base.get("plugins") or []]
    base_grid = {str(k): [x.strip() for x in str(v).split(",")] for k, v in (base.get("grid") or {}).items()}
    own_grid = raw.get("grid")
    if own_grid is not None:
        if not isinstance(own_grid, dict) or set(map(str, own_grid)) != set(base_grid) or any(
                not set(x.strip() for x in str(v).split(",")) <= set(base_grid[str(k)]) for k, v in own_grid.items()):
            raise ConfigError(f"{where}: grid={own_grid!r} is not a cut of {base_name}'s grid ({base.get('grid')!r}): "
                              f"the same keys, each with a subset of its values")
    own_checks = raw.get("checks")
    if own_checks is not None and (not isinstance(own_checks, list)
                                   or any(c not in (base.get("checks") or []) for c in own_checks)):
        raise ConfigError(f"{where}: checks must be a subset of {base_name}'s (as written there), or left out")
    merged.update({k: v for k, v in raw.items() if k not in ("scale_of", "scale")})
    merged["scale_of"] = str(base_name)
    return merged, str(scale)


def follow(out: "Ablation", parent: "Ablation", own_checks: bool, own_metrics: bool, where: str) -> None:
    """Validate a follow-up against the look it follows and inherit what it does not restate."""
    for key in ("finding", "grid", "fixed"):
        if getattr(out, key) != getattr(parent, key):
            raise ConfigError(f"{where}: a follow-up keeps the {key} of {parent.name} ({getattr(parent, key)!r}), "
                              f"got {getattr(out, key)!r}")
    if own_checks and out.checks != parent.checks:
        raise ConfigError(f"{where}: a follow-up tests the checks of {parent.name}; list none to inherit them")
    earlier = {s for _, seeds in parent.looks for s in seeds}
    reused = sorted(earlier & set(out.seeds))
    if reused:
        raise ConfigError(f"{where}: seeds {reused} were already used by an earlier look; a follow-up takes new seeds")
    out.follow_up_of, out.checks = parent.name, parent.checks
    out.metrics = out.metrics if own_metrics else parent.metrics
    out.paper, out.question = parent.paper, parent.question
    out.looks = [*parent.looks, (out.name, out.seeds)]
