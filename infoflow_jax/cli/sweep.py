"""``infoflow sweep SPEC --out DIR``: run (or resume) a sweep spec (TOML) into a folder.

Writes ``DIR/results.jsonl`` (one record per configuration, appended and
fsynced as each finishes) and ``DIR/manifest.json``. Rerunning the same
command resumes: configurations already in ``results.jsonl`` are skipped.
Compiled bucket programs are cached in ``DIR/xla_cache`` (JAX's persistent
compilation cache) so that a resumed sweep does not compile again.

Several processes (``jax.distributed``): ``--coordinator HOST:PORT --num-processes N --process-id I``
(or ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``; ``--distributed`` alone lets
JAX detect SLURM, a TPU pod slice or Open MPI) run the same command in N processes on one shared
folder: each runs its share of the families and writes ``DIR/parts/process-<I>``; process 0 writes
the merged ``DIR/results.jsonl`` when all are done. Rerun the same N commands to resume.

Exit status: 0 when the sweep completed and every row is as expected (real
configurations pass, mutants fail), 1 otherwise, 2 on bad input, 130 when
interrupted (rerun to resume).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "sweep"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME, help="run a sweep spec (TOML): bucketed, compiled once per bucket, resumable",
        description="Run every configuration of a sweep spec, grouped into buckets of one padded shape and "
                    "evaluated by one compiled program per bucket; results are appended to DIR/results.jsonl "
                    "as they finish. Rerun the same command to resume. See docs/sweeps.md.")
    p.add_argument("spec", metavar="SPEC", help="sweep spec, a TOML file (e.g. sweeps/default.toml)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created; reused to resume)")
    p.add_argument("--dry-run", action="store_true", help="list the configurations and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--compile-workers", type=int, default=None, metavar="N",
                   help="threads compiling buckets ahead of evaluation (default: min(2, cores))")
    p.add_argument("--compile-cache", metavar="PATH",
                   help="folder of JAX's persistent compilation cache (default: DIR/xla_cache)")
    p.add_argument("--no-compile-cache", action="store_true", help="do not use a persistent compilation cache")
    g = p.add_argument_group("several processes (jax.distributed; docs/sweeps.md)")
    g.add_argument("--coordinator", metavar="HOST:PORT",
                   help="address of process 0 (default: $JAX_COORDINATOR_ADDRESS)")
    g.add_argument("--num-processes", metavar="N", help="processes in the run (default: $JAX_NUM_PROCESSES, else 1)")
    g.add_argument("--process-id", metavar="I", help="this process, 0 <= I < N (default: $JAX_PROCESS_ID)")
    g.add_argument("--distributed", action="store_true",
                   help="start jax.distributed, detecting the cluster (SLURM, TPU pod slice, Open MPI) for what "
                        "is not given")
    return p


def _sigterm_interrupts() -> None:
    """SIGTERM (a scheduler's preemption) stops the sweep like Ctrl-C: the manifest records it."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        def handler(signum, frame):
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, handler)


PHASES_ENV = "INFOFLOW_PHASES"


def run(args) -> int:
    import os
    import time

    from infoflow_jax.core import phases
    from infoflow_jax.core.errors import InputError
    from infoflow_jax.core.precision import use_float64

    t_run = time.time()
    if os.environ.get(PHASES_ENV):  # benchmarks/verify_breakdown.py: where this run's time goes
        phases.enable()

    use_float64()
    from infoflow_jax.core.devices import init_processes, process_layout
    from infoflow_jax.sweep.engine import run_sweep
    from infoflow_jax.verification.store import all_records
    from infoflow_jax.sweep.spec import expand, load_spec
    from infoflow_jax.verification.records import expected_outcome

    spec = load_spec(args.spec)
    if args.compile_workers is not None and args.compile_workers < 1:
        raise InputError("compile-workers", args.compile_workers, "an integer >= 1")
    configs = expand(spec)
    if args.dry_run:
        for c in configs:
            print(f"{c.hash}  {c.label()}  seed={c.seed} {c.dtype}")
        print(f"{len(configs)} configurations")
        return 0
    out = Path(args.out)
    layout = process_layout(args.coordinator, args.num_processes, args.process_id, auto=args.distributed)
    if not args.no_compile_cache:
        from infoflow_jax.core.devices import enable_compile_cache

        enable_compile_cache(Path(args.compile_cache) if args.compile_cache else out / "xla_cache")
    process = init_processes(layout)  # before any computation
    _sigterm_interrupts()
    stats = run_sweep(spec, out, progress=not args.no_progress, spec_path=str(args.spec),
                      compile_workers=args.compile_workers, process=process)
    hashes = {c.hash for c in configs}
    records = [r for r in all_records(out) if r.get("config_hash") in hashes]
    unexpected = [r for r in records if not expected_outcome(r)]
    who = (f"; process {stats.process_index} of {stats.process_count}: {stats.configs_mine} configurations"
           if stats.process_count > 1 else "")
    print(f"{len(records)}/{len(configs)} configurations in {out / 'results.jsonl'} "
          f"({stats.configs_run} run now, {stats.configs_done_before} already done{who})")
    print(f"{stats.buckets_run} buckets evaluated, {stats.compilations} compilations "
          f"({stats.compile_seconds:.1f} s compiling, summed over compile threads), "
          f"{stats.eval_seconds:.1f} s evaluating, {stats.build_seconds:.1f} s building, "
          f"{stats.prep_seconds:.1f} s preparing inputs, "
          f"wall {stats.wall_seconds:.1f} s")
    for r in unexpected:
        what = "mutant passed" if r.get("mutant") else "failed"
        print(f"UNEXPECTED ({what}): {r['name']} T={r['T']} k={r.get('k')} eps={r.get('eps')} beta={r.get('beta')} "
              f"mutant={r.get('mutant')} estimate={r.get('err_estimate')} bound={r.get('bound')}", file=sys.stderr)
    print(f"every row as expected: {'yes' if not unexpected else 'NO'}; report: infoflow report {out}")
    if phases.enabled():
        import json

        with open(os.environ[PHASES_ENV], "w") as f:
            json.dump({"run_wall_seconds": time.time() - t_run, "main": phases.totals(), "stats": stats.as_dict(),
                       "configurations": len(configs), "unexpected": len(unexpected)}, f, indent=1)
    return 0 if (len(records) == len(configs) and not unexpected) else 1
