"""``infoflow train SPEC --out DIR``: train the grid of a TOML spec (THEORY §7).

Each finished configuration is appended at once as one JSON line to
``DIR/train.jsonl``; ``DIR/manifest.json`` has kind "train". Rerunning into the
same DIR skips configurations already recorded. At the end the report
(``DIR/report_train.md`` + figures) is written and the agreement table printed.

Also runnable without the umbrella CLI: ``python -m infoflow_jax.cli.train SPEC --out DIR``.
"""

from __future__ import annotations

import argparse
import sys
import time

from infoflow_jax.core.errors import InputError


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train", help="train Transformers on a TOML grid and compare with InfoFlow (THEORY §7)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(p)
    return p


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC", help="TOML spec (see sweeps/train_cpu.toml)")
    p.add_argument("--out", metavar="DIR", required=True, help="run directory (created; resumable)")
    p.add_argument("--max-configs", type=int, default=None, metavar="N",
                   help="train at most N not-yet-recorded configurations, then stop")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    p.add_argument("--no-report", action="store_true", help="skip the report and agreement table")
    p.add_argument("--no-checkpoints", action="store_true", help="do not save best weights (.npz)")
    p.add_argument("--list", action="store_true", help="print the expanded configurations and exit")


def run(args) -> int:
    from infoflow_jax.training.harness import run_protocol
    from infoflow_jax.training.spec import load_train_spec

    from infoflow_jax.cli.train_papers import is_paper_spec_file, run_papers

    if is_paper_spec_file(args.spec):  # kind = "papers": the papers' protocol (issue 12)
        return run_papers(args)
    spec = load_train_spec(args.spec)  # InputError → one line + status 2 (infoflow_jax.cli.app / main below)
    from infoflow_jax.cli.train_papers import list_or_check

    if list_or_check(spec, args):
        return 0
    t0 = time.perf_counter()
    records = run_protocol(spec, args.out, spec_path=str(args.spec),
                           progress=not args.no_progress, max_configs=args.max_configs,
                           checkpoints=not args.no_checkpoints)
    elapsed = time.perf_counter() - t0
    print(f"{len(records)}/{len(spec.configs)} configurations recorded in {args.out}/train.jsonl "
          f"({elapsed:.1f} s this invocation)")
    if not args.no_report:
        from infoflow_jax.training.report import (agreement_rows, format_agreement_text,
                                                  write_training_report)

        path = write_training_report(args.out)
        print(format_agreement_text(agreement_rows(records)))
        print(f"report: {path}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="infoflow train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run(args)
    except InputError as exc:
        print(f"infoflow train: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
