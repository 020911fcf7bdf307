"""How the report is written out: number formats, and the document's blocks as Markdown and as one
self-contained HTML page (report/templates/report.html.j2). render.py builds the blocks; calibrate.py and
plan.py write their own documents with the same functions.

A block is (kind, a, b): ("h1".."h4", text, None), ("p", text, None), ("table", head, rows),
("img", caption, path), ("verdicts", [(finding, verdict)], None), ("open"/"close", ...) for HTML sections.
"""
from __future__ import annotations

import base64
import math
from pathlib import Path

CSS = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
       "table{border-collapse:collapse;margin:.6em 0;font-size:.85em}td,th{border:1px solid #ccc;padding:3px 7px;"
       "vertical-align:top}th{background:#f3f3f3}img{max-width:100%;display:block;margin:.3em 0}"
       "section.finding{border-top:2px solid #888;margin-top:2em}figure{margin:1em 0}figcaption{font-size:.85em}"
       "ul.verdicts{font-size:1.05em}.verdict{font-weight:600}.reproduced{color:#2a9d4b}.contradicted{color:#c0392b}"
       ".inconclusive,.mixed,.partly-reproduced{color:#7f6c00}.untestable-here{color:#b8860b}")


def fmt(x, ci=None, digits: int = 2) -> str:
    """'12.34 ± 0.56', '12.34' without a finite CI, '–' without a value."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if abs(x) >= 1e4:  # parameter counts and the like: whole numbers with separators
        digits = 0
    s = f"{x:,.{digits}f}"
    return s + (f" ± {ci:,.{digits}f}" if isinstance(ci, (int, float)) and math.isfinite(ci) else "")


def fmt_count(n) -> str:
    if n is None or (isinstance(n, float) and not math.isfinite(n)):
        return "–"
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else f"{n:.0f}"


def fmt_time(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h {s % 3600 // 60:02d}m {s % 60:02d}s"


def _clean(v):
    """Numbers as read through pandas come back as floats (5.0): show whole ones as ints; tuples element-wise."""
    if isinstance(v, tuple):
        return tuple(_clean(x) for x in v)
    return int(v) if isinstance(v, float) and v.is_integer() else v


def uniq(values, f=str) -> str:
    vals = {_clean(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))}
    return ", ".join(f(v) for v in sorted(vals, key=str)) or "–"


def fmt_p(p) -> str:
    return "–" if p is None or not isinstance(p, (int, float)) or not math.isfinite(p) else \
        ("< 0.001" if p < 0.001 else f"{p:.3f}")


def to_markdown(blocks: list, out: Path) -> str:
    cell = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = []
    for kind, a, b in blocks:
        if kind in ("h1", "h2", "h3", "h4"):
            lines += ["#" * int(kind[1]) + " " + a, ""]
        elif kind == "p":
            lines += [a, ""]
        elif kind == "table":
            lines += ["| " + " | ".join(map(cell, a)) + " |", "|" + "---|" * len(a)]
            lines += ["| " + " | ".join(map(cell, r)) + " |" for r in b] + [""]
        elif kind == "img":
            lines += [f"![{a}]({Path(b).relative_to(out).as_posix()})", f"*{a}*", ""]
        elif kind == "verdicts":
            lines += [f"- **{f}**: {v}" for f, v in a] + [""]
        elif kind in ("open", "close"):
            continue
    return "\n".join(lines)


def to_html(blocks: list, title: str) -> str:
    """The report as one self-contained page (figures inlined), from templates/report.html.j2 (Jinja2,
    autoescaped)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                             autoescape=True, keep_trailing_newline=True)
    items = []
    for kind, a, b in blocks:
        if kind == "table":
            items.append({"kind": kind, "head": [str(h) for h in a], "rows": [[str(c) for c in r] for r in b]})
        elif kind == "img":
            items.append({"kind": kind, "text": a, "data": base64.b64encode(Path(b).read_bytes()).decode(),
                          "id": "forest" if Path(b).name == "forest.png" else ""})
        elif kind == "verdicts":
            items.append({"kind": kind, "rows": a})
        else:
            items.append({"kind": kind, "text": a})
    return env.get_template("report.html.j2").render(title=title, css=CSS, blocks=items)
