"""``infoflow separation``: the sweep that shows the separation (see infoflow_jax.sweep.separation).

Writes DIR/separation.jsonl (every row; formula rows have "measured": false; fit
rows have "fit": true), DIR/depth_separation.{png,pdf}, DIR/coupled_vs_decoupled.{png,pdf},
DIR/soft_top_k.{png,pdf},
and prints the table of fitted slopes with 95% intervals. Exit 0 iff every measured
row passes and every slope is within tolerance of its prediction.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("separation", help="parameter-exponent sweep: depth separation and coupled vs decoupled decode",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="separation_out", metavar="DIR", help="output folder (default: separation_out)")
    p.add_argument("--quick", action="store_true", help="fewer T and ε (still ≥ 4 ε per line)")
    return p


def run(args) -> int:
    from infoflow_jax.sweep.separation import all_ok, run_separation, table

    print(f"infoflow separation → {args.out}{' (quick)' if args.quick else ''}")
    rows, fits = run_separation(Path(args.out), quick=args.quick)
    print(table(fits))
    print(f"wrote {Path(args.out) / 'separation.jsonl'}, depth_separation.png/pdf, coupled_vs_decoupled.png/pdf, soft_top_k.png/pdf")
    return 0 if all_ok(fits) else 1
