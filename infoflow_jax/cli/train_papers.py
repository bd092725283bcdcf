"""``infoflow train SPEC`` for specs with ``kind = "papers"`` (issue 12).

Trains with :mod:`infoflow_jax.training.papers` into ``DIR/train.jsonl`` (resumable) and
prints the median / range over seeds of ``best_test_nmse`` per configuration, with the
InfoFlow planner's prediction beside it (:mod:`infoflow_jax.training.paper_report`).
"""

from __future__ import annotations

import time

from infoflow_jax.core.errors import InputError
from infoflow_jax.verification.store import spec_kind

__all__ = ["is_paper_spec_file", "run_papers"]


def is_paper_spec_file(path) -> bool:
    """True if ``path`` is a readable TOML file whose top level says ``kind = "papers"``."""
    return spec_kind(path) == "papers"  # an unreadable file: False, the ordinary loader reports it


def list_or_check(spec, args) -> bool:
    """``--list``: print the spec's configurations (True: done). Otherwise validate ``--max-configs``."""
    if args.list:
        for cfg in spec.configs:
            print(cfg.config_hash(), cfg.label())
        print(f"{len(spec.configs)} configurations")
        return True
    if args.max_configs is not None and args.max_configs < 0:
        raise InputError("--max-configs", args.max_configs, "an integer >= 0")
    return False


def run_papers(args) -> int:
    from infoflow_jax.training.paper_report import format_summary, summarize, write_paper_report
    from infoflow_jax.training.papers import load_paper_spec, run_paper_protocol

    spec = load_paper_spec(args.spec)
    if list_or_check(spec, args):
        return 0
    t0 = time.perf_counter()
    records = run_paper_protocol(spec, args.out, spec_path=str(args.spec),
                                 progress=not args.no_progress, max_configs=args.max_configs)
    print(f"{len(records)}/{len(spec.configs)} configurations recorded in {args.out}/train.jsonl "
          f"({time.perf_counter() - t0:.1f} s this invocation)")
    if not args.no_report:
        print(format_summary(summarize(records)))
        print(f"report: {write_paper_report(args.out)}")
    return 0
