"""``infoflow verify``: run constructions and lemma checks, judge each row, report.

    infoflow verify [NAME ...] [--T 4,16,64] [--eps 1e-1,1e-2,1e-3] [--k 2,3]
                    [--beta B,...] [--mutant NAME|all|none] [--json] [--seed S]
                    [--out FILE] [--list] [--quick] [--jobs N] [--memory BYTES] [--fresh]

Rows. For a construction, one row per point of T × ε × k (× β when ``--beta``
is given); for a lemma check, one row per point of T × β. Without NAMEs every
registered construction and lemma check runs on its own default grid. A NAME may be
a reference to a user's spec, ``path/to/mine.py:SPEC`` or ``package.module:SPEC``
(without ``:SPEC``: every spec of that module), resolved by :mod:`infoflow_jax.catalog`.

Mutant rows (negative controls, expected to FAIL):

* default (no ``--mutant``): every mutant of every spec, at ONE representative
  point of its grid (smallest T ≥ 4, middle ε or β, first k), so that the
  default run stays fast;
* ``--mutant all``: every mutant at every grid point;
* ``--mutant NAME``: that mutant only, at every grid point of the specs that have it;
* ``--mutant none``: no mutant rows.

Execution: configurations (a real row with its mutants, so that they share one
compiled program) are spread over ``--jobs`` worker processes (forked where that is safe,
:func:`fork_is_safe`, else spawned), which name each spec by :func:`infoflow_jax.catalog.source` and resolve it again (default:
one per core, at most 4); rows print as they complete. ``--memory`` (e.g. 8G,
512M) is the memory budget the estimators size their chunks from (default: a
safe fraction of what is free; :mod:`infoflow_jax.verification.memory`). XLA is asked for backend
optimisation level 0 (:func:`prefer_fast_compilation`): compilation dominates.

Record cache: a built-in row verified before by identical code, environment and arguments is read
back instead of verified again (:mod:`infoflow_jax.verification.record_cache`; ``--fresh``
recomputes every row, ``INFOFLOW_RECORD_CACHE=off`` disables it); the summary says how many were.

Exit status: 0 iff every row is as expected (real rows pass, mutant rows fail;
:func:`infoflow_jax.verification.verify.expected_outcome`); 1 otherwise; 2 on bad input.

``INFOFLOW_PHASES=FILE`` (for ``benchmarks/verify_breakdown.py``): every process records where
its time goes (:mod:`infoflow_jax.core.phases`) and the run writes it to FILE as JSON.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import re
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any

from infoflow_jax.core.errors import InputError, check_int_range, check_open_interval, check_positive
from infoflow_jax.verification.records import expected_outcome
from infoflow_jax.cli.table import (Column, Table, fmt_g, fmt_int, fmt_list_g, fmt_pass, fmt_sci,
                                       fmt_seconds)

NAME = "verify"

# Estimator budgets: estimators.DEFAULT_BUDGET (the library's default too) and QUICK_BUDGET
# (--quick). Lemma acceptance holds with margin at both: L1-softmax-max at T ∈ {2, 16, 256},
# β ∈ {10, 1e3}, seeds 0–2, lands in [0.998·W, e_max].

MUTANT_ALL, MUTANT_NONE = "all", "none"


# ----------------------------------------------------------------------------- parser
def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME,
        help="verify constructions and lemma checks (bound, estimate, mutants)",
        description="Build each construction (or run each lemma check) on a grid, estimate its sup "
                    "error, and judge: a real row passes when estimate <= claimed bound <= eps; a mutant "
                    "row (negative control) is expected to fail. Exit status 0 iff every row is as "
                    "expected, 1 otherwise, 2 on bad input.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Mutant rows: by default every mutant runs at one representative grid point per spec; "
               "--mutant all runs them at every point, --mutant NAME only that mutant (every point), "
               "--mutant none none.\nList values are comma-separated, e.g. --eps 1e-1,1e-2. "
               "Negative values need '=': --beta=-1.",
    )
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="catalog names (see --list), or references path/to/file.py:SPEC or package.module:SPEC "
                        "(a module without :SPEC: every spec it defines); default: all constructions and lemma "
                        "checks")
    p.add_argument("--T", dest="T", metavar="T,...", help="sequence lengths (override the default grids)")
    p.add_argument("--eps", metavar="EPS,...", help="target precisions, 0 < eps < 1 (constructions)")
    p.add_argument("--k", metavar="K,...", help="k values, 1 <= k <= T (constructions that use k)")
    p.add_argument("--beta", metavar="BETA,...",
                   help="inverse temperatures > 0: the grid for lemma checks; for constructions, "
                        "overrides the chosen beta (the claimed bound is recomputed from it)")
    p.add_argument("--mutant", metavar="NAME|all|none",
                   help="which mutant rows to run (default: every mutant at one representative point)")
    p.add_argument("--json", action="store_true", help="print one JSON record per line instead of a table")
    p.add_argument("--seed", default="0", metavar="S", help="PRNG seed for samplers and ascent starts (default 0)")
    p.add_argument("--out", metavar="FILE", help="append every record as a JSON line to FILE as soon as it is computed")
    p.add_argument("--list", action="store_true", help="list names, tasks, default grids and mutants, then exit")
    p.add_argument("--search-dtype", metavar="float64|float32",
                   help="dtype of the search for worst inputs (grid, samplers, probes, ascent); float32: every "
                        "estimator's best inputs are re-evaluated in float64 for the estimate and the verdict, and "
                        "a row below eps = 1e-4 (or whose float32 values stray) searches in float64 (default: "
                        "float32 on a TPU, float64 elsewhere)")
    p.add_argument("--device-info", action="store_true",
                   help="print which backend and devices would run the verification (one line), then exit")
    p.add_argument("--quick", action="store_true", help="small estimator budget (tests, smoke runs)")
    p.add_argument("--fresh", action="store_true",
                   help="recompute every row, even one in the record cache (a built-in row verified before by "
                        "identical code, environment and arguments is read back from $INFOFLOW_RECORD_CACHE, "
                        "default ~/.cache/infoflow-jax/records; INFOFLOW_RECORD_CACHE=off disables it)")
    p.add_argument("--jobs", metavar="N",
                   help="worker processes; configurations are spread over them (default: one per core, "
                        "at most 4; 1 runs everything in this process)")
    p.add_argument("--memory", metavar="BYTES",
                   help="memory budget for the estimators' chunks, e.g. 8G, 512M or 1000000 (suffixes K, M, "
                        "G, T are powers of 1024; default: half of the free memory)")
    return p


# ----------------------------------------------------------------------------- parsing
def _number(name: str, item: str, integer: bool):
    """One list item as a finite float, or as an int (``4``, ``4.0`` and ``4e0`` are 4; ``4.5`` is refused)."""
    try:
        x = float(item)
    except ValueError:
        raise InputError(name, item, "an integer" if integer else "a number") from None
    if not math.isfinite(x):
        raise InputError(name, x, "a finite number")
    if integer:
        if x != int(x):
            raise InputError(name, item, "an integer")
        return int(item) if item.lstrip("+-").isdigit() else int(x)
    return x


def _parse_list(name: str, text: str | None, integer: bool):
    if text is None:
        return None
    items = [s.strip() for s in str(text).split(",")]
    if not items or any(s == "" for s in items):
        raise InputError(name, text, "a comma-separated list of numbers, e.g. 4,16")
    return [_number(name, s, integer) for s in items]


def parse_floats(name: str, text: str | None) -> list[float] | None:
    """``"1e-1,1e-2"`` → [0.1, 0.01]; None stays None; anything else is an InputError naming ``name``."""
    return _parse_list(name, text, integer=False)


def parse_ints(name: str, text: str | None) -> list[int] | None:
    """``"4,16"`` → [4, 16]; None stays None; anything else is an InputError naming ``name``."""
    return _parse_list(name, text, integer=True)


MEMORY_UNITS = {"": 1, "K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30, "T": 2 ** 40}


def parse_memory(text: str | None) -> int | None:
    """``--memory``: bytes, with an optional suffix K, M, G, T (powers of 1024; a trailing
    B or iB is accepted: 8G = 8GB = 8GiB = 8·2^30). None when not given."""
    if text is None:
        return None
    allowed = "a size in bytes > 0, e.g. 8G, 512M or 1000000 (suffixes K, M, G, T)"
    m = re.fullmatch(r"\s*((?:\d+\.?\d*|\.\d+)(?:E[+-]?\d+)?)\s*([KMGT]?)(?:I?B)?\s*", str(text).upper())
    if m is None or (m.group(2) == "" and str(text).upper().rstrip().endswith("IB")):
        raise InputError("memory", text, allowed)
    n = float(m.group(1)) * MEMORY_UNITS[m.group(2)]
    if not math.isfinite(n) or n < 1:
        raise InputError("memory", text, allowed)
    return int(n)


# ----------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class Row:
    """One verification to run."""

    spec: Any
    lemma: bool
    T: int
    eps: float | None = None
    k: int | None = None
    beta: float | None = None
    mutant: str | None = None


def _representative(values):
    """The middle entry of a grid (for ε: sorted coarse → fine, so 1e-2 of 1e-1,1e-2,1e-3)."""
    return values[len(values) // 2]


def _rep_T(Ts):
    big = [t for t in Ts if t >= 4]
    return min(big) if big else max(Ts)


def _mutant_policy(option: str | None, specs) -> tuple[str, str | None]:
    """('default'|'all'|'none'|'one', name)."""
    if option is None:
        return "default", None
    if option == MUTANT_ALL:
        return "all", None
    if option == MUTANT_NONE:
        return "none", None
    allowed = []
    for spec in specs:
        allowed += [m for m in spec.mutants if m not in allowed]
    if option not in allowed:
        raise InputError("mutant", option, "one of " + ", ".join([MUTANT_ALL, MUTANT_NONE] + allowed))
    return "one", option


def _check_k_le_T(ks, Ts):
    t = min(Ts)
    for x in ks:
        if x > t:
            raise InputError("k", x, f"an integer with 1 <= k <= T (here T = {t})")


def plan_rows(specs, *, T=None, eps=None, k=None, beta=None, mutant=None) -> list[Row]:
    """Validate every option and expand the grids into rows (nothing runs here)."""
    from infoflow_jax.verification.construction import LemmaCheckSpec

    for x in eps or []:
        check_open_interval("eps", x, 0.0, 1.0)
    for x in T or []:
        check_int_range("T", x, 1)
    for x in k or []:
        check_int_range("k", x, 1)
    for x in beta or []:
        check_positive("beta", x)
    if k and T:  # both given: k ≤ T for every pair, whichever specs use k
        _check_k_le_T(k, T)
    policy, only = _mutant_policy(mutant, specs)

    rows: list[Row] = []
    for spec in specs:
        lemma = isinstance(spec, LemmaCheckSpec)
        Ts = list(T or spec.default_T)
        if lemma:
            for t in Ts:
                check_int_range("T", t, 2)  # a lemma check needs at least two tokens
            betas = list(beta or spec.default_beta)
            points = [dict(T=t, beta=b) for t in Ts for b in betas]
            rep = dict(T=_rep_T(Ts), beta=_representative(sorted(betas)))
        else:
            epss = list(eps or spec.default_eps)
            betas = list(beta) if beta else [None]
            if spec.uses_k:
                ks = list(k or spec.default_k)
                if any(x is None for x in ks):
                    raise InputError("k", None, f"given for {spec.name} (it uses k): pass --k")
                if k:  # user's k: every k must fit every T
                    _check_k_le_T(ks, Ts)
                grid_k = lambda t: [x for x in ks if x <= t]  # default k: skip k > T
            else:
                grid_k = lambda t: [None]
            points = [dict(T=t, eps=e, k=kk, beta=b)
                      for t in Ts for kk in grid_k(t) for e in epss for b in betas]
            rt = _rep_T(Ts)
            rep = dict(T=rt, eps=_representative(sorted(epss, reverse=True)),
                       k=(grid_k(rt) or [None])[0], beta=betas[0])
        if policy == "all":
            mutants_at = lambda p: list(spec.mutants)
        elif policy == "one":
            mutants_at = lambda p: [only] if only in spec.mutants else []
        elif policy == "none":
            mutants_at = lambda p: []
        else:  # default: every mutant at the representative point only
            mutants_at = lambda p: list(spec.mutants) if p == rep else []
        if not points:  # e.g. C3 at T = 1: every k it uses exceeds every T asked for — nothing to verify
            raise InputError("k", ",".join(map(str, spec.default_k if not k else k)),
                             f"an integer with 1 <= k <= T for {spec.name} (here T = {','.join(map(str, Ts))}; "
                             f"pass --T >= {min(x for x in (k or spec.default_k))} or --k)")
        if rep not in points:  # e.g. every default k exceeds the representative T
            rep = points[0]
        for p in points:
            rows.append(Row(spec, lemma, **p))
            rows += [Row(spec, lemma, **p, mutant=m) for m in mutants_at(p)]
    return rows


def check_inputs_fit(rows: list[Row], budget, memory: int | None = None) -> None:
    """Refuse up front a lemma row's T whose sampled inputs alone cannot fit in memory (before anything
    is built). A construction's row is not refused here: where its falsifier cannot fit, verify skips
    it, saying why, and the row's verdict rests on the proof check (T-independent)."""
    from infoflow_jax.verification.memory import bytes_per_input, check_fits, fixed_input_bytes, memory_budget

    plan = memory_budget(memory)
    for T in sorted({r.T for r in rows if r.lemma}, reverse=True):
        check_fits(T=T, eps=None, per_input=bytes_per_input(None, T),
                   fixed=fixed_input_bytes(T, 1, budget.samples, 2), budget=plan)


def estimator_budget(quick: bool, search_dtype: str | None = None):
    from dataclasses import replace

    from infoflow_jax.core.precision import check_search_dtype
    from infoflow_jax.verification.estimators import DEFAULT_BUDGET, QUICK_BUDGET

    budget = QUICK_BUDGET if quick else DEFAULT_BUDGET
    if search_dtype is not None:
        budget = replace(budget, search_dtype=check_search_dtype(search_dtype))
    return budget


# ----------------------------------------------------------------------------- running one row
def _failed(row: Row, message: str, seconds: float, seed: int):
    """A row that could not be verified (e.g. a --beta override whose bound exceeds ε)."""
    from infoflow_jax.verification.records import failure_record

    return failure_record(row.spec.name, task=None if row.lemma else row.spec.task_id, T=row.T, eps=row.eps,
                          k=row.k, beta=row.beta, mutant=row.mutant, seed=seed, seconds=seconds, error=message)


def run_row(row: Row, *, seed: int, budget, memory: int | None = None):
    """Run one row; a non-input failure of the construction becomes a failed record."""
    from infoflow_jax.verification.verify import verify_construction

    t0 = time.perf_counter()
    try:
        if row.lemma:
            rec = row.spec.run(T=row.T, beta=row.beta, mutant=row.mutant, seed=seed, budget=budget)
        else:
            rec = verify_construction(row.spec, T=row.T, eps=row.eps, k=row.k, mutant=row.mutant,
                                      seed=seed, budget=budget, beta=row.beta, memory=memory)
    except InputError:
        raise
    except AssertionError as exc:
        if row.beta is not None:
            # the construction refuses the user's β (its bound would exceed ε, or a lemma's
            # hypothesis fails): the row is not verified, so it fails
            rec = _failed(row, f"refused beta = {row.beta:g}: {exc}", time.perf_counter() - t0, seed)
        else:
            traceback.print_exc(file=sys.stderr)
            rec = _failed(row, f"{type(exc).__name__}: {exc}", time.perf_counter() - t0, seed)
    except Exception as exc:  # a bug in a construction must not lose the rest of the run
        traceback.print_exc(file=sys.stderr)
        rec = _failed(row, f"{type(exc).__name__}: {exc}", time.perf_counter() - t0, seed)
    return rec


# ----------------------------------------------------------------------------- output
def _params_cell(r):
    if r.get("params_theorem") is None:
        return "-"
    return f"{fmt_int(r['params_theorem'])}/{fmt_int(r['params_total'])}"


def steps_cell(r):
    """Proof-step checks: ok, the first failing step's name, or - (no claims)."""
    from infoflow_jax.verification.steps import first_failing

    if r.get("step_certified") is None:
        return "-"
    return "ok" if r["step_certified"] else first_failing(r.get("steps")) or "FAIL"


def proof_cell(r):
    """The proof check: ok (steps, their composition, the ideal program), the first part that failed, or -."""
    if r.get("proof_checked") is None:
        return "-"
    if r["proof_checked"]:
        return "ok"
    parts = r.get("proof") or {}
    return next((p for p in ("steps", "composition", "ideal") if str(parts.get(p, "ok")) != "ok"), "FAIL")


COLUMNS = [
    Column("name", "name", 14, "<"),
    Column("task", "task", 4, "<"),
    Column("T", "T", 4, ">", fmt_int),
    Column("k", "k", 2, ">", fmt_int),
    Column("eps", "eps", 7, ">", lambda x: fmt_g(x, 2)),
    Column("beta", "beta", 9, ">", lambda x: fmt_list_g(x, 3)),
    Column("params", "params thm/total", 16, ">", cell=_params_cell),
    Column("bound", "bound", 9, ">", fmt_sci),
    Column("err_estimate", "estimate", 9, ">", fmt_sci),
    Column("estimator", "estimator", 13, "<"),
    Column("passed", "result", 6, "<", fmt_pass),
    Column("steps", "steps", 12, "<", cell=steps_cell),
    Column("proof_checked", "proof", 7, "<", cell=proof_cell),
    Column("mutant", "mutant", 18, "<"),
    Column("expected", "expected", 10, "<", lambda x: "ok" if x else "UNEXPECTED"),
    Column("seconds", "sec", 5, ">", fmt_seconds),
]
TABLE = Table(COLUMNS)


def to_json(record) -> str:
    from infoflow_jax.verification.store import dumps

    return dumps(record)


def _emit(line: str, stream=None):
    stream = stream or sys.stdout
    print(line, file=stream, flush=True)


def list_specs(specs, as_json: bool) -> int:
    from infoflow_jax.catalog import origin
    from infoflow_jax.verification.construction import LemmaCheckSpec

    for spec in specs:
        lemma = isinstance(spec, LemmaCheckSpec)
        info = {
            "name": spec.name,
            "kind": "lemma check" if lemma else "construction",
            "task": None if lemma else spec.task_id,
            "summary": spec.summary,
            "default_T": list(spec.default_T),
            "mutants": dict(spec.mutants),
            "origin": origin(spec),
        }
        if lemma:
            info["default_beta"] = list(spec.default_beta)
        else:
            info["default_eps"] = list(spec.default_eps)
            if spec.uses_k:
                info["default_k"] = list(spec.default_k)
        if as_json:
            _emit(to_json(info))
            continue
        grid = f"T={','.join(map(str, spec.default_T))}"
        if lemma:
            grid += f"  beta={','.join(fmt_g(b) for b in spec.default_beta)}"
        else:
            grid += f"  eps={','.join(fmt_g(e) for e in spec.default_eps)}"
            if spec.uses_k:
                grid += f"  k={','.join(map(str, spec.default_k))}"
        _emit(f"{spec.name}  [{info['kind']}{', task ' + spec.task_id if not lemma else ''}]  {spec.summary}")
        _emit(f"    default grid: {grid}")
        if info["origin"] != "built in":  # what to type to select it (a reference, or its name)
            _emit(f"    from: {info['origin']}")
        for m, desc in spec.mutants.items():
            _emit(f"    mutant {m}: {desc}")
    return 0


def select_specs(names: list[str]):
    """The specs NAMEs select (catalog names and references; :func:`infoflow_jax.catalog.select`)."""
    from infoflow_jax.catalog import select

    return select(names)


# ----------------------------------------------------------------------------- parallel execution
def _family(row: Row) -> tuple:
    """What a compiled program is shared by: one spec at one T and k. Every ε, β and mutant of it
    has one program shape (``verify`` runs a fast-path build in the shape of its structure,
    :func:`infoflow_jax.core.fast_model.shared_shape`; a lemma check's β is an argument)."""
    return row.spec.name, row.T, row.k


def family_groups(rows: list[Row]) -> list[list[Row]]:
    """The rows of one family (:func:`_family`: a configuration, its other ε and β, and their
    mutants), in plan order, stay together, so that they run in one process and share its
    compiled programs (a worker would compile a family's program again)."""
    groups: dict[tuple, list[Row]] = {}
    for row in rows:
        groups.setdefault(_family(row), []).append(row)
    return list(groups.values())


def default_jobs() -> int:
    """Worker processes for ``--jobs`` left out: one per available core, at most 4; 1 where an
    accelerator plugin is installed (:func:`infoflow_jax.core.devices.accelerator_installed`: each
    process would claim the GPU's memory, and a TPU takes one process)."""
    from infoflow_jax.core.devices import accelerator_installed

    if accelerator_installed():
        return 1
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover (non-Linux)
        n = os.cpu_count() or 1
    return max(1, min(n, 4))


PHASES_ENV = "INFOFLOW_PHASES"


def _worker_init() -> None:
    import warnings

    from infoflow_jax.core import phases

    if os.environ.get(PHASES_ENV):
        phases.enable()
        started = phases.process_start_time()
        if started is not None:  # the interpreter's start and the imports that unpickling this function did
            phases.record("startup", started, time.time())
    with phases.phase("import"):
        from infoflow_jax.catalog import catalog
        from infoflow_jax.core.errors import EntryPointWarning
        from infoflow_jax.core.precision import use_float64

        use_float64()
        with warnings.catch_warnings():  # the parent process has reported skipped entry points already
            warnings.simplefilter("ignore", EntryPointWarning)
            catalog()


def _run_group(items: list[tuple], seed: int, budget_kw: dict, memory: int | None = None) -> list[tuple[str, Any]]:
    """Worker: run one group of rows given as plain tuples; InputErrors travel back as data.

    A row names its spec by :func:`infoflow_jax.catalog.source`: a catalog name, or the absolute
    reference a user's construction was resolved from, which this process resolves again (a
    spawned worker shares no objects with the parent)."""
    from infoflow_jax.catalog import lookup
    from infoflow_jax.verification.construction import LemmaCheckSpec
    from infoflow_jax.verification.estimators import Budget

    from infoflow_jax.core import phases

    budget = Budget(**budget_kw)
    out: list[tuple[str, Any]] = []
    for source, T, eps, k, beta, mutant in items:
        try:
            spec = lookup(source)
            row = Row(spec, isinstance(spec, LemmaCheckSpec), T, eps, k, beta, mutant)
            out.append(("record", run_row(row, seed=seed, budget=budget, memory=memory)))
        except InputError as exc:
            out.append(("input_error", (exc.argument, repr(exc.value), exc.allowed)))
            break
    if phases.enabled():  # this process's phases since its last group, keyed by its pid
        out.append(("phases", (os.getpid(), phases.totals(reset_after=True))))
    return out


class _RemoteInputError(InputError):
    def __init__(self, argument, value_repr, allowed):
        ValueError.__init__(self, f"{argument} = {value_repr} is out of range: must be {allowed}")
        self.argument, self.value, self.allowed = argument, value_repr, allowed


def _records_sequential(rows: list[Row], seed: int, budget, bar, memory: int | None = None):
    """(row, record) of each row, computed in this process."""
    for row in rows:
        bar.set_postfix_str(f"{row.spec.name} T={row.T}" + (f" {row.mutant}" if row.mutant else ""))
        yield row, run_row(row, seed=seed, budget=budget, memory=memory)


def _ready() -> None:
    """A worker's first task: nothing (its initializer, the imports, is the point)."""


def fork_is_safe() -> bool:
    """May worker processes be forked from this one? On Linux, while JAX has started no XLA backend
    here and no other thread runs: until then this process is one thread (XLA's thread pools start
    with its backend, which is why JAX warns about a fork only after that), and a forked worker
    inherits its imports — JAX and the catalog, ≈ 2 CPU-s that a spawned one repeats."""
    import sys
    import threading

    return sys.platform.startswith("linux") and threading.active_count() == 1 and not backend_started()


def backend_started() -> bool:
    """Has JAX started an XLA backend in this process?"""
    from jax._src import xla_bridge  # no public way to ask whether a backend has started

    return xla_bridge.backends_are_initialized()


def start_workers(jobs: int):
    """``jobs`` worker processes, started now: forked when :func:`fork_is_safe` (they inherit this
    process's imports), else spawned (each imports JAX and the catalog, :func:`_worker_init`)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    method = "fork" if fork_is_safe() else "spawn"
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context(method),
                               initializer=_worker_init)
    for _ in range(jobs):  # a pool starts a worker per task submitted while none is idle
        pool.submit(_ready)
    return pool


def _records_parallel(rows: list[Row], seed: int, budget, jobs: int, bar, memory: int | None = None,
                      worker_phases: dict | None = None, pool=None):
    """Run groups of rows in ``jobs`` worker processes (``pool``, or new ones); yield
    (row, record) as groups complete."""
    from concurrent.futures import FIRST_COMPLETED, wait
    from dataclasses import asdict

    from infoflow_jax.catalog import source

    budget_kw = asdict(budget)
    worker_phases = {} if worker_phases is None else worker_phases
    groups = family_groups(rows)
    pool = pool or start_workers(jobs)
    try:
        group_of = {pool.submit(_run_group, [(source(r.spec), r.T, r.eps, r.k, r.beta, r.mutant) for r in g],
                                seed, budget_kw, memory): g for g in groups}
        pending = set(group_of)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                group = iter(group_of[fut])  # a group's records come back in its rows' order
                for kind, payload in fut.result():
                    if kind == "input_error":
                        raise _RemoteInputError(*payload)
                    if kind == "phases":
                        worker_phases.setdefault(payload[0], []).append(payload[1])
                        continue
                    yield next(group), payload
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ----------------------------------------------------------------------------- record cache
def cached_rows(rows: list[Row], *, seed: int, budget, memory: int | None, fresh: bool = False):
    """(cache, keys, cached, todo): the record cache (:mod:`~infoflow_jax.verification.record_cache`;
    None when off), each cacheable row's key by ``id(row)``, the (row, record) pairs read from it,
    and the rows left to compute, in plan order. ``fresh``: nothing is read (every row is computed
    and its entry rewritten)."""
    from infoflow_jax.catalog import origin
    from infoflow_jax.verification.record_cache import RecordCache, default_record_cache

    root = default_record_cache()
    if root is None:
        return None, {}, [], list(rows)
    cache = RecordCache(root)
    keys, cached, todo = {}, [], []
    for row in rows:
        if origin(row.spec) == "built in":  # a user's construction has code the fingerprint cannot see
            keys[id(row)] = cache.key(name=row.spec.name, T=row.T, eps=row.eps, k=row.k, beta=row.beta,
                                      mutant=row.mutant, seed=seed, budget=budget, memory=memory)
            rec = None if fresh else cache.get(keys[id(row)])
            if rec is not None:
                cached.append((row, rec))
                continue
        todo.append(row)
    return cache, keys, cached, todo


def stored(records, cache, keys: dict):
    """Pass (row, record) pairs through, storing each record of a row that has a cache key."""
    for row, rec in records:
        if id(row) in keys:  # keys: only where there is a cache
            cache.put(keys[id(row)], rec)
        yield row, rec


# ----------------------------------------------------------------------------- run
#: XLA flags for a verification run, each set unless XLA_FLAGS already names it.
FAST_COMPILE_FLAGS = {"--xla_backend_optimization_level": "0", "--xla_cpu_use_fusion_emitters": "false"}


def prefer_fast_compilation() -> None:
    """Ask XLA for cheap compilation, for every flag of :data:`FAST_COMPILE_FLAGS` that
    XLA_FLAGS does not already set.

    Almost all of a verification run is XLA compilation (every configuration has its own
    shapes, and each row runs its programs only once). Backend optimisation level 0 roughly
    halves compile time; XLA's classic CPU loop emitters (``--xla_cpu_use_fusion_emitters=false``)
    cut what is left by 2–3× (LLVM code generation of the fusion emitters is most of it).
    Measured per estimator program (CPU seconds, C3 T=64 k=3 / C2 T=16 / C8 T=16 k=3):
    compile 2.39/1.50/1.78 → 0.73/0.48/0.78 s, one evaluation 0.28/0.035/0.10 →
    0.39/0.050/0.13 s. No numerics change beyond float64 rounding (no fast-math on CPU).
    Does nothing once the XLA backend has started in this process (the flags could no longer
    take effect); worker processes inherit the flags through the environment. Flags for
    another platform are ignored there.
    """
    if backend_started():
        # too late for this process: XLA read its flags at start. Setting them now would only make
        # JAX's persistent-cache keys (which hash XLA_FLAGS) claim flags this process does not use,
        # and a later process that does use them could load this process's executables (it crashed
        # once, inside the cache read, when an in-process CLI call ran in the test suite).
        return
    flags = os.environ.get("XLA_FLAGS", "")
    for name, value in FAST_COMPILE_FLAGS.items():
        if name not in flags:
            flags = (flags + f" {name}={value}").strip()
    os.environ["XLA_FLAGS"] = flags


def run(args) -> int:
    from infoflow_jax.core import phases

    t_run = time.time()
    if os.environ.get(PHASES_ENV):
        phases.enable()
    prefer_fast_compilation()  # before anything can start the XLA backend
    with phases.phase("import"):
        from infoflow_jax.core.devices import default_compile_cache, enable_compile_cache

    # JAX's persistent compilation cache, on by default (INFOFLOW_COMPILE_CACHE=off to opt out):
    # almost all of a verification run is compilation, and a rerun of the same shapes skips it
    enable_compile_cache(default_compile_cache())
    from infoflow_jax.core.precision import use_float64

    use_float64()
    if args.device_info:
        from infoflow_jax.core.devices import describe_devices

        _emit(describe_devices())
        return 0
    seeds = parse_ints("seed", args.seed)
    if len(seeds) != 1 or seeds[0] < 0:
        raise InputError("seed", args.seed, "one integer >= 0")
    seed = seeds[0]
    jobs = default_jobs()
    if args.jobs is not None:
        js = parse_ints("jobs", args.jobs)
        if len(js) != 1 or js[0] < 1:
            raise InputError("jobs", args.jobs, "one integer >= 1")
        jobs = js[0]
    memory = parse_memory(args.memory)
    if args.search_dtype is not None:
        from infoflow_jax.core.precision import check_search_dtype

        check_search_dtype(args.search_dtype)
    Ts = parse_ints("T", args.T)
    epss = parse_floats("eps", args.eps)
    ks = parse_ints("k", args.k)
    betas = parse_floats("beta", args.beta)
    pool = None
    try:
        with phases.phase("import"):  # the catalog: every construction module, and JAX
            specs = select_specs(args.names)
        # the default run (every spec) will use its workers: start them now, forked with what this
        # process has imported (no XLA backend has started yet), while it plans the rows
        pool = start_workers(jobs) if jobs > 1 and not args.names and not args.list else None
        if args.list:
            return list_specs(specs, args.json)
        rows = plan_rows(specs, T=Ts, eps=epss, k=ks, beta=betas, mutant=args.mutant)
        budget = estimator_budget(args.quick, args.search_dtype)
        check_inputs_fit(rows, budget, memory)
        cache, keys, cached, todo = cached_rows(rows, seed=seed, budget=budget, memory=memory, fresh=args.fresh)
        jobs = min(jobs, len(family_groups(todo)))
        if not todo and pool is not None:  # every row is in the record cache: no worker is needed
            pool.shutdown(wait=False, cancel_futures=True)
            pool = None

        out = None
        if args.out is not None:
            from infoflow_jax.verification.store import JsonlFile

            out = JsonlFile(args.out).open()  # a torn last line (an interrupted run) is cut first

        from tqdm import tqdm

        n_pass = n_caught = n_unexpected = 0
        worker_phases: dict = {}  # pid → [phases.totals()] of each worker process (INFOFLOW_PHASES)
        t_start = time.perf_counter()
        try:
            header = not args.json  # printed before the first row: a bad input found while building prints one line only
            with tqdm(total=len(rows), desc=f"infoflow {NAME}", unit="row", file=sys.stderr,
                      disable=None, leave=False, dynamic_ncols=True) as bar:
                if jobs > 1:
                    bar.set_postfix_str(f"{jobs} worker processes")
                    records = _records_parallel(todo, seed, budget, jobs, bar, memory, worker_phases, pool)
                else:
                    records = _records_sequential(todo, seed, budget, bar, memory)
                for _, rec in itertools.chain(cached, stored(records, cache, keys)):
                    if out is not None:
                        out.append(rec)
                    line = to_json(rec) if args.json else TABLE.row(rec)
                    bar.clear()
                    if header:
                        _emit(TABLE.header())
                        header = False
                    _emit(line)
                    bar.refresh()
                    bar.update(1)
                    if rec["mutant"] is None and rec["passed"]:
                        n_pass += 1
                    if rec["mutant"] is not None and expected_outcome(rec):  # failed the global check or a step
                        n_caught += 1
                    if not expected_outcome(rec):
                        n_unexpected += 1
        finally:
            if out is not None:
                out.close()
        from_cache = (f"; {len(cached)} from the record cache, {cache.root}: --fresh to recompute them"
                      if cached else "")
        processes = jobs if todo else 0
        summary = (f"{len(rows)} rows: {n_pass} passed, {n_caught} mutants caught, {n_unexpected} unexpected"
                   f" ({time.perf_counter() - t_start:.1f} s, {processes} process{'' if processes == 1 else 'es'}"
                   f"{from_cache})")
        # with --json, stdout holds records only; the summary goes to stderr
        _emit(summary, sys.stderr if args.json else sys.stdout)
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
    if phases.enabled():
        _write_phases(os.environ[PHASES_ENV], time.time() - t_run, phases.totals(),
                      worker_phases)
    return 0 if n_unexpected == 0 else 1


def _write_phases(path: str, wall: float, main: dict, workers: dict) -> None:
    """INFOFLOW_PHASES: this process's phases (from the start of ``run``) and each worker's."""
    import json

    from infoflow_jax.core.phases import merge

    doc = {"run_wall_seconds": wall, "main": main,
           "workers": {str(pid): merge(parts) for pid, parts in workers.items()}}
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
