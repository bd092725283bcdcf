"""``infoflow report DIR``: write DIR/report.md and figures from a sweep folder.

Sweep folders (manifest kind "sweep"): tables of pass/fail and fitted rates
beside the expected exponents, and PNG figures (err vs ε, params vs 1/ε with
fits, err vs T at fixed ε, mutant outcomes). Training folders (manifest kind
"train") are handed to :func:`infoflow_jax.training.report.write_training_report`.

Exit status: 0 when the report was written, 2 on bad input.
"""

from __future__ import annotations

import argparse

NAME = "report"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME, help="write DIR/report.md (+ figures) from a sweep or training folder",
        description="Summarise a sweep folder (infoflow sweep --out DIR) into DIR/report.md with pass/fail "
                    "tables, fitted rates and expected exponents, and PNG figures. A training folder "
                    "(manifest kind 'train') gets the training report instead.")
    p.add_argument("dir", metavar="DIR", help="a folder written by infoflow sweep (or infoflow train)")
    p.add_argument("--no-figures", action="store_true", help="tables only")
    return p


def run(args) -> int:
    from infoflow_jax.sweep.report import write_report

    path = write_report(args.dir, figures=not args.no_figures)
    print(f"wrote {path}")
    return 0
