"""Results side of the ablations: run folders -> tables (aggregate), verdicts, plots, REPORT.md / report.html.

    python -m vlmlab.report [--runs runs] [--ablations ablations] [--out results]
"""
