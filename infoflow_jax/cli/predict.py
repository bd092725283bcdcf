"""``infoflow predict``: InfoFlow exponent predictions over a grid, or ``--against`` results.

Usage::

    infoflow predict TASK [--L 1,2,3] [--h 1,2] [--T 4,16] [--d 1]
                          [--k 2,3] [--r 2] [--D 2] [--json] [--plot FILE]
    infoflow predict --against DIR      # DIR/results.jsonl, or a papers' DIR/train.jsonl

TASK is T1..T7 (case-insensitive) or a name (max, two-hop, kth-largest,
coupled-top-r, decoupled-top-r, d-retrieval, top-k-mean).  Exit status: 0 on success (with
``--against``: iff every group agrees), 1 if some group disagrees, 2 on bad input.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any

from infoflow_jax.core.errors import InputError
from infoflow_jax.infoflow.against import compare_results, format_comparison
from infoflow_jax.verification.store import RESULTS, TRAIN_RESULTS, read_results
from infoflow_jax.infoflow.tasks import TASKS, build_task, resolve_task_id

__all__ = ["add_parser", "run", "main"]

_DEFAULTS = {"L": "1,2,3", "h": "1", "T": "4,16", "d": "1", "k": "2", "r": "2", "D": "2"}


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``predict`` subcommand to an argparse subparsers object."""
    names = ", ".join(f"{s.task_id} ({s.name})" for s in TASKS.values())
    p = subparsers.add_parser(
        "predict",
        help="InfoFlow: predicted parameter exponent of a task on TF(L, h)",
        description=(
            "Predict the parameter exponent b (params ~ eps^-b) of a task on an L-layer, "
            "h-head softmax Transformer with the InfoFlow planner (THEORY §5), or compare "
            f"predictions with fitted exponents (--against). Tasks: {names}."
        ),
    )
    p.add_argument("task", nargs="?", help="T1..T7 or a task name (case-insensitive)")
    for name, what in [("L", "layers"), ("h", "heads per layer"), ("T", "sequence lengths"),
                       ("d", "input dimensions"), ("k", "rank for T3, set size for T7"),
                       ("r", "number of retrieved values for T4/T5"),
                       ("D", "number of retrievals for T6")]:
        p.add_argument(f"--{name}", default=_DEFAULTS[name], metavar="LIST",
                       help=f"comma-separated {what} (default {_DEFAULTS[name]})")
    p.add_argument("--json", action="store_true", help="one JSON object per grid point")
    p.add_argument("--plot", metavar="FILE",
                   help="write the information-flow figure of the first grid point (PNG/PDF)")
    p.add_argument("--against", metavar="DIR",
                   help="compare predictions with exponents fitted from DIR/results.jsonl")
    p.set_defaults(func=run)
    return p


def _int_list(name: str, text: str) -> list[int]:
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--{name}", text, "a comma-separated list of integers") from None
    if not values:
        raise InputError(f"--{name}", text, "a non-empty comma-separated list of integers")
    return values


def _grid(args) -> tuple[str, list[dict[str, Any]]]:
    task_id = resolve_task_id(args.task)
    spec = TASKS[task_id]
    axes = {n: _int_list(n, getattr(args, n)) for n in ("L", "h", "T", "d")}
    params = {n: (_int_list(n, getattr(args, n)) if n in spec.hyperparams else [None])
              for n in ("k", "r", "D")}
    points = []
    for L, h, T, d, k, r, D in itertools.product(axes["L"], axes["h"], axes["T"], axes["d"],
                                                 params["k"], params["r"], params["D"]):
        points.append(dict(L=L, h=h, T=T, d=d, k=k, r=r, D=D))
    return task_id, points


def _predict_grid(args) -> list[Any]:
    from infoflow_jax.infoflow.planner import plan

    task_id, points = _grid(args)
    plans = []
    for pt in points:
        graph = build_task(task_id, k=pt["k"], r=pt["r"], D=pt["D"], d=pt["d"])
        plans.append(plan(graph, pt["L"], pt["h"], pt["T"]))
    return plans


def _table(plans) -> str:
    cols = ["task", "L", "h", "T", "d", "k", "r", "D", "needed_L", "formula", "exponent",
            "schedule"]
    rows = []
    for p in plans:
        j = p.to_json()
        sched = " | ".join(",".join(layer) or "-" for layer in j["schedule"]) or \
            "(memorization)"
        rows.append([j["task"], j["L"], j["h"], j["T"], j["d"], j["k"], j["r"], j["D"],
                     j["needed_L"], j["exponent_formula"], j["exponent"], sched])
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    fmt = lambda row: "  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip()  # noqa: E731
    lines = [fmt(cols), fmt(["-" * w for w in widths])] + [fmt(r) for r in cells]
    reasons: list[str] = []
    for p in plans:
        key = (p.fits, p.needed_L)
        text = f"[L={p.L}, h={p.h}] {p.reason}"
        if key not in [k for k, _ in reasons]:
            reasons.append((key, text))
    lines.append("")
    lines.append("why:")
    lines += [f"  {t}" for _, t in reasons]
    return "\n".join(lines)


def run(args) -> int:
    """Run ``infoflow predict``; returns the exit status."""
    try:
        if args.against and (Path(args.against) / TRAIN_RESULTS).is_file() \
                and not (Path(args.against) / RESULTS).is_file():
            # a trained-network run of the papers' protocol: measurement beside prediction
            from infoflow_jax.training.paper_report import format_summary, summarize
            rows = summarize(read_results(args.against, TRAIN_RESULTS))
            if not rows:
                raise InputError("--against", args.against,
                                 "a directory with results.jsonl or a papers' train.jsonl")
            print(format_summary(rows))
            return 0
        if args.against:
            comparisons, skipped = compare_results(read_results(args.against, argument="--against"))
            print(format_comparison(comparisons, skipped))
            if not comparisons:
                print("infoflow predict: no group with >= 4 distinct eps to compare",
                      file=sys.stderr)
                return 1
            return 0 if all(c.agree for c in comparisons) else 1
        if not args.task:
            raise InputError("TASK", None, "one of T1..T7 (or use --against DIR)")
        plans = _predict_grid(args)
        if args.json:
            for p in plans:
                print(json.dumps(p.to_json(), ensure_ascii=False))
        else:
            print(_table(plans))
        if args.plot:
            from infoflow_jax.infoflow.infosets import information_flow
            from infoflow_jax.infoflow.plot import plot_flow

            plot_flow(information_flow(plans[0]), args.plot)
            print(f"wrote {args.plot}", file=sys.stderr)
        return 0
    except ValueError as exc:  # InputError, GraphError, bad formulas
        print(f"infoflow predict: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"infoflow predict: error: {exc}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m infoflow_jax.cli.predict``)."""
    parser = argparse.ArgumentParser(prog="infoflow")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
