"""``infoflow certify``: a sound global certificate per configuration, by branch-and-bound.

    infoflow certify NAME ... [--T 2] [--eps 1e-1] [--k 2] [--mutant all|none|NAME]
                     [--json] [--budget-seconds S] [--seed S] [--quick]

One row per construction × T × ε × k (and mutant): the verifier's estimate (``err_estimate``),
then the branch-and-bound of :mod:`infoflow_jax.verification.certify`: ``certified`` (a sound
upper bound ≤ claimed bound ≤ ε), ``refuted`` (an evaluated input exceeds the bound; the
witness is in the record) or ``open`` (the time budget ran out, or the task has no interval
extension). Default grid: T = 2, k = 2, ε = 1e-1 — where the certificate is feasible on a
2-core CPU (docs/certify.md). Exit status 0 iff every real row is certified and no mutant
row is; 1 otherwise; 2 on bad input.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

from infoflow_jax.cli.table import Column, Table, fmt_g, fmt_int, fmt_sci, fmt_seconds
from infoflow_jax.cli.verify import (parse_floats, parse_ints, plan_rows, prefer_fast_compilation, select_specs,
                                     steps_cell)
from infoflow_jax.core.errors import InputError

NAME = "certify"
DEFAULT_T, DEFAULT_K, DEFAULT_EPS = 2, 2, 1e-1
PROGRESS_EVERY = 10.0  # seconds between progress lines on stderr


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME, help="a sound upper bound on the sup error, by branch-and-bound over input boxes",
        description="For each construction (and mutant) at each grid point: estimate the sup error as "
                    "'infoflow verify' does, then bound it soundly by branch-and-bound over input boxes. "
                    "certified: sound upper <= claimed bound <= eps; refuted: an evaluated input exceeds the "
                    "bound; open: the time budget ran out. Exit status 0 iff every real row is certified "
                    "and no mutant row is, 1 otherwise, 2 on bad input.")
    p.add_argument("names", nargs="+", metavar="NAME",
                   help="construction names (see 'infoflow verify --list'), or references path/to/file.py:SPEC "
                        "or package.module:SPEC")
    p.add_argument("--T", dest="T", metavar="T,...", help=f"sequence lengths (default {DEFAULT_T})")
    p.add_argument("--eps", metavar="EPS,...", help=f"target precisions, 0 < eps < 1 (default {DEFAULT_EPS:g})")
    p.add_argument("--k", metavar="K,...", help=f"k values for constructions that use k (default {DEFAULT_K})")
    p.add_argument("--mutant", metavar="NAME|all|none", help="mutant rows: all, none or one name (default: all)")
    p.add_argument("--json", action="store_true", help="one JSON record per line instead of a table")
    p.add_argument("--budget-seconds", dest="budget_seconds", default="120", metavar="S",
                   help="time budget of each row's branch-and-bound, > 0 (default 120)")
    p.add_argument("--seed", default="0", metavar="S", help="PRNG seed of the estimate (default 0)")
    p.add_argument("--quick", action="store_true", help="small estimator budget for the estimate")
    return p


def _cert_cell(r):
    return r.get("certificate") or "-"


COLUMNS = [
    Column("name", "name", 13, "<"),
    Column("task", "task", 4, "<"),
    Column("T", "T", 3, ">", fmt_int),
    Column("k", "k", 2, ">", fmt_int),
    Column("eps", "eps", 6, ">", lambda x: fmt_g(x, 2)),
    Column("bound", "bound", 9, ">", fmt_sci),
    Column("err_estimate", "estimate", 9, ">", fmt_sci),
    Column("certified_upper", "sound upper", 11, ">", fmt_sci),
    Column("certificate", "certificate", 11, "<", cell=_cert_cell),
    Column("boxes", "boxes", 9, ">", fmt_int),
    Column("mutant", "mutant", 18, "<"),
    Column("steps", "steps", 12, "<", cell=steps_cell),
    Column("expected", "expected", 10, "<", lambda x: "ok" if x else "UNEXPECTED"),
    Column("seconds", "sec", 6, ">", fmt_seconds),
]
TABLE = Table(COLUMNS)


def _budget_seconds(text) -> float:
    try:
        x = float(text)
    except (TypeError, ValueError):
        raise InputError("budget-seconds", text, "a finite number > 0") from None
    if not math.isfinite(x) or x <= 0:
        raise InputError("budget-seconds", text, "a finite number > 0")
    return x


def _progress(row_name: str):
    def report(p):
        print(f"infoflow certify: {row_name}: {p['boxes']} boxes bounded, {p['queued']} queued, "
              f"upper {p['upper']:.3e}, lower {p['lower']:.3e}, {p['seconds']:.0f} s", file=sys.stderr, flush=True)
    return report


def run(args) -> int:
    prefer_fast_compilation()
    from infoflow_jax.core.precision import use_float64
    from infoflow_jax.verification.construction import LemmaCheckSpec

    use_float64()
    budget_seconds = _budget_seconds(args.budget_seconds)
    seeds = parse_ints("seed", args.seed)
    if len(seeds) != 1 or seeds[0] < 0:
        raise InputError("seed", args.seed, "one integer >= 0")
    specs = select_specs(args.names)
    for spec in specs:
        if isinstance(spec, LemmaCheckSpec):
            raise InputError("name", spec.name, "a construction (lemma checks have no certificate)")
    Ts = parse_ints("T", args.T) or [DEFAULT_T]
    epss = parse_floats("eps", args.eps) or [DEFAULT_EPS]
    ks = parse_ints("k", args.k) or [DEFAULT_K]
    rows = plan_rows(specs, T=Ts, eps=epss, k=ks, mutant=args.mutant or "all")

    from infoflow_jax.verification.certify import certify_construction
    from infoflow_jax.verification.estimators import DEFAULT_BUDGET, QUICK_BUDGET
    from infoflow_jax.verification.records import expected_outcome
    from infoflow_jax.verification.store import dumps

    budget = QUICK_BUDGET if args.quick else DEFAULT_BUDGET
    n_cert = n_caught = n_unexpected = 0
    t_start = time.perf_counter()
    if not args.json:
        print(TABLE.header(), flush=True)
    for row in rows:
        label = f"{row.spec.name} T={row.T} eps={row.eps:g}" + (f" k={row.k}" if row.k else "") + \
                (f" {row.mutant}" if row.mutant else "")
        rec = certify_construction(row.spec, T=row.T, eps=row.eps, k=row.k, mutant=row.mutant,
                                   budget_seconds=budget_seconds, seed=seeds[0], budget=budget,
                                   progress=_progress(label))
        print(dumps(rec) if args.json else TABLE.row(rec), flush=True)
        n_cert += rec.mutant is None and rec.certificate == "certified"
        n_caught += rec.mutant is not None and rec.certificate != "certified"
        n_unexpected += not expected_outcome(rec)
    summary = (f"{len(rows)} rows: {n_cert} certified, {n_caught} mutants not certified, {n_unexpected} unexpected "
               f"({time.perf_counter() - t_start:.1f} s)")
    print(summary, file=sys.stderr if args.json else sys.stdout, flush=True)
    return 0 if n_unexpected == 0 else 1
