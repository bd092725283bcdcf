"""How close the default estimate comes to the largest error an independent search finds.

    python benchmarks/estimate_quality.py                                   # everything, T ∈ {2,4,8}
    python benchmarks/estimate_quality.py --names C2,C4 --T 8 --eps 0.01 --seconds-per-config 30
    python benchmarks/estimate_quality.py --default-only                    # the default side again, stored rows

For every real built-in construction (catalog names; C5 where it can be instantiated) at each
T, each k ∈ {2, 3} with k ≤ T where the construction takes k, and each ε:

* the default estimate: ``infoflow_jax.verify(built)`` — the public API, default budget, seed 0;
* an independent search (:mod:`benchmarks.independent_search`: structured starts from the
  construction's scales, stratified random starts, SciPy L-BFGS-B, a batched compass search;
  no code shared with the estimators, probes or samplers), ``--seconds-per-config`` of wall
  time (default 4·T·d seconds, clamped to [8, 60]);
* ratio = default estimate / independent max; a row with ratio < 0.95 is flagged (issue #10's
  acceptance: the default estimate reaches ≥ 0.95 of what an independent search finds).

Writes ``benchmarks/results/estimate_quality_cpu.json`` (``--out``) after every row: one row
per configuration (name, T, k, eps, bound, the default estimate and the estimator and input
that attained it, the independent max with its input and the family/phase that found it,
ratio, seconds, machine), and a list of configurations that could not be built. A rerun skips
the rows already in the file. Progress goes to stderr; the table to stdout. Bad input: exit 2
with one line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from infoflow_jax.core.precision import use_float64  # noqa: E402

use_float64()

from benchmarks import machine as mach  # noqa: E402
from benchmarks.independent_search import in_domain, search  # noqa: E402
from infoflow_jax import verify  # noqa: E402
from infoflow_jax.catalog import builtin  # noqa: E402
from infoflow_jax.core.errors import InputError  # noqa: E402
from infoflow_jax.verification.construction import ConstructionSpec  # noqa: E402

DEFAULT_NAMES = ("C1", "C2", "C3", "C4", "C6-coupled", "C6-decoupled", "C7", "C8", "C5")  # C5 last: its wide Kuhn FFN is slow
DEFAULT_T = (2, 4, 8)
DEFAULT_EPS = (1e-1, 1e-2)
KS = (2, 3)
FLAG_BELOW = 0.95


def default_seconds(T: int, d: int) -> float:
    """The search's time box: 4·T·d seconds, clamped to [8, 60]."""
    return float(min(60.0, max(8.0, 4.0 * T * d)))


def configurations(names, Ts, epss):
    """(name, T, k, eps) in order: k ∈ {2, 3} with k ≤ T where the construction takes k."""
    for name in names:
        spec = builtin()[name]
        for T in Ts:
            ks = [k for k in KS if k <= T] if spec.uses_k else [None]
            for k in ks:
                for eps in epss:
                    yield name, T, k, eps


def key_of(name, T, k, eps) -> str:
    return f"{name}|T={T}|k={k}|eps={eps:g}"


def build(name: str, T: int, k, eps: float):
    spec: ConstructionSpec = builtin()[name]
    kw = {"k": k} if spec.uses_k else {}
    return spec.build(T, eps, **kw)


def plain_error(built, X) -> float:
    """|Ĥ(X) − H(X)| recomputed with the plain forward ``built.predict`` and ``task.target``."""
    X = np.asarray(X, dtype=np.float64)
    return float(abs(float(built.predict(X)) - float(built.task.target(X[None])[0])))


def ratio_of(err_estimate: float, independent_max: float) -> float:
    """default / independent (1 when both are 0, ∞ when only the independent one is)."""
    if independent_max > 0:
        return err_estimate / independent_max
    return 1.0 if err_estimate == 0 else math.inf


def run_row(name: str, T: int, k, eps: float, seconds: float | None, machine: str, seed: int = 0,
            progress=None) -> dict:
    """One configuration: build, the default estimate, the independent search, the ratio."""
    say = progress or (lambda msg: None)
    t0 = time.perf_counter()
    built = build(name, T, k, eps)
    d = built.task.d
    secs = default_seconds(T, d) if seconds is None else float(seconds)
    say(f"{key_of(name, T, k, eps)}: verify (default budget) ...")
    rec = verify(built, seed=seed)
    t_verify = time.perf_counter() - t0
    say(f"{key_of(name, T, k, eps)}: default estimate {rec.err_estimate:.4g} ({rec.estimator}); "
        f"independent search {secs:g} s ...")
    res = search(built, secs, seed=seed, progress=lambda m: say("    " + m))
    recheck = plain_error(built, res.X)
    ind = float(res.value)
    ratio = ratio_of(rec.err_estimate, ind)
    return {
        "name": name, "T": T, "k": k, "eps": eps, "d": d, "bound": built.bound,
        "err_estimate": rec.err_estimate, "estimator": rec.estimator, "default_input": rec.worst_input,
        "default_estimates": rec.estimates, "default_seconds": t_verify,
        "independent_max": ind, "independent_input": np.asarray(res.X).tolist(),
        "independent_how": res.how, "independent_recheck": recheck,
        "independent_in_domain": in_domain(built.task.domain, res.X),
        "independent_evaluations": res.evaluations, "independent_phases": res.phases,
        "search_seconds": res.seconds, "seconds_budget": secs,
        "ratio": ratio, "flag": bool(ratio < FLAG_BELOW), "seed": seed,
        "choices": {kk: (v if isinstance(v, (int, float, str, list)) else str(v)) for kk, v in built.choices.items()},
        "betas": built.betas, "seconds": time.perf_counter() - t0, "machine": machine,
    }


def remeasure_default(row: dict, commit: str, machine: str, progress=None) -> dict:
    """The row with its default side measured again at this commit (the independent side kept)."""
    say = progress or (lambda msg: None)
    t0 = time.perf_counter()
    built = build(row["name"], row["T"], row["k"], row["eps"])
    rec = verify(built, seed=row.get("seed", 0))
    ratio = ratio_of(rec.err_estimate, row["independent_max"])
    say(f"    default {row['err_estimate']:.4g} -> {rec.err_estimate:.4g} ({rec.estimator}); ratio "
        f"{row['ratio']:.3f} -> {ratio:.3f}")
    return {**row, "err_estimate": rec.err_estimate, "estimator": rec.estimator, "default_input": rec.worst_input,
            "default_estimates": rec.estimates, "default_seconds": time.perf_counter() - t0,
            "ratio": ratio, "flag": bool(ratio < FLAG_BELOW), "default_commit": commit, "default_machine": machine}


def git_commit() -> str:
    """HEAD of the checkout measured, '+' when its tracked files differ from HEAD."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "infoflow_jax"], cwd=ROOT).returncode
        return head + ("+" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def load(out: Path) -> dict:
    if out.exists():
        try:
            return json.loads(out.read_text())
        except json.JSONDecodeError:
            pass  # a torn file from an interrupted write: start over beside it
    return {"benchmark": "estimate_quality", "rows": [], "not_built": []}


def save(out: Path, result: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(result, indent=1, default=_jsonable))
    os.replace(tmp, out)  # atomic: an interrupted run never leaves a torn file


def _jsonable(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return str(o)


def table(rows) -> str:
    head = f"{'name':13s} {'T':>2s} {'k':>2s} {'eps':>6s} {'bound':>9s} {'default':>9s} {'independ.':>9s} " \
           f"{'ratio':>6s}  found by (independent)"
    lines = [head, "-" * len(head)]
    for r in rows:
        mark = "  << ratio < 0.95" if r["flag"] else ""
        lines.append(f"{r['name']:13s} {r['T']:>2d} {str(r['k'] or '-'):>2s} {r['eps']:>6g} {r['bound']:>9.3g} "
                     f"{r['err_estimate']:>9.3g} {r['independent_max']:>9.3g} {r['ratio']:>6.3f}  "
                     f"{r['independent_how']}{mark}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- CLI
def _ints(arg: str, value: str) -> tuple[int, ...]:
    try:
        items = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        items = ()
    if not items or any(v < 1 or v > 64 for v in items):
        raise InputError(arg, value, "a comma-separated list of integers in [1, 64]")
    return items


def _floats(arg: str, value: str) -> tuple[float, ...]:
    try:
        items = tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        items = ()
    if not items or any(not (1e-4 <= v < 1) for v in items):
        raise InputError(arg, value, "a comma-separated list of numbers in [1e-4, 1)")
    return items


def _names(value: str) -> tuple[str, ...]:
    allowed = [n for n, s in builtin().items() if isinstance(s, ConstructionSpec)]
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    if not items or any(v not in allowed for v in items):
        raise InputError("--names", value, "a comma-separated list of " + ", ".join(allowed))
    return items


def _seconds(value: str) -> float | None:
    if value is None:
        return None
    try:
        s = float(value)
    except ValueError:
        s = math.nan
    if not (0.5 <= s <= 600):
        raise InputError("--seconds-per-config", value, "a number of seconds in [0.5, 600]")
    return s


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line on stderr and exit 2 (no usage block)."""

    def error(self, message):
        print(f"estimate_quality: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def main(argv=None) -> int:
    ap = OneLineParser(description=__doc__.splitlines()[0])
    ap.add_argument("--names", default=",".join(DEFAULT_NAMES), help="comma-separated catalog names")
    ap.add_argument("--T", default=",".join(map(str, DEFAULT_T)), help="comma-separated sequence lengths")
    ap.add_argument("--eps", default=",".join(f"{e:g}" for e in DEFAULT_EPS), help="comma-separated precisions")
    ap.add_argument("--seconds-per-config", default=None,
                    help="wall seconds of the independent search per configuration (default 4·T·d, in [8, 60])")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "estimate_quality_cpu.json"))
    ap.add_argument("--default-only", action="store_true",
                    help="measure the default estimate again on the stored rows (at this commit; rows "
                         "already measured at it are skipped), keeping their independent max")
    try:
        args = ap.parse_args(argv)
    except SystemExit as exc:  # argparse's own errors already exit 2 with a usage line
        return int(exc.code or 0)
    try:
        names, Ts, epss = _names(args.names), _ints("--T", args.T), _floats("--eps", args.eps)
        seconds = _seconds(args.seconds_per_config)
    except InputError as exc:
        print(f"estimate_quality: error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    result = load(out)
    m = mach.describe()
    machine = mach.name(m)
    result.setdefault("machines", {})[machine] = m
    done = {key_of(r["name"], r["T"], r["k"], r["eps"]) for r in result["rows"]}
    not_built = {x["key"] for x in result["not_built"]}
    say = lambda msg: print(msg, file=sys.stderr, flush=True)
    configs = list(configurations(names, Ts, epss))
    if args.default_only:
        commit = git_commit()
        wanted = {key_of(*c) for c in configs}
        for i, row in enumerate(result["rows"]):
            key = key_of(row["name"], row["T"], row["k"], row["eps"])
            if key not in wanted or (row.get("default_commit") == commit and not commit.endswith("+")):
                continue
            say(f"[{i + 1}/{len(result['rows'])}] {key}: default estimate again at {commit}")
            result["rows"][i] = remeasure_default(row, commit, machine, progress=say)
            save(out, result)
        configs = []  # nothing new is searched
    for i, (name, T, k, eps) in enumerate(configs, 1):
        key = key_of(name, T, k, eps)
        if key in done or key in not_built:
            say(f"[{i}/{len(configs)}] {key}: in {out.name} already, skipped")
            continue
        say(f"[{i}/{len(configs)}] {key}")
        try:
            row = run_row(name, T, k, eps, seconds, machine, seed=args.seed, progress=say)
        except (InputError, AssertionError, ValueError) as exc:  # not instantiable here (k > T − 1, too many vertices)
            say(f"    not built: {str(exc).splitlines()[0]}")
            result["not_built"].append({"key": key, "name": name, "T": T, "k": k, "eps": eps,
                                        "reason": str(exc).splitlines()[0]})
            save(out, result)
            continue
        say(f"    ratio {row['ratio']:.3f} (default {row['err_estimate']:.4g}, independent {row['independent_max']:.4g}, "
            f"{row['seconds']:.0f} s)")
        result["rows"].append(row)
        save(out, result)
    result["flagged"] = [key_of(r["name"], r["T"], r["k"], r["eps"]) for r in result["rows"] if r["flag"]]
    save(out, result)
    print(table(result["rows"]))
    print(f"{len(result['rows'])} rows, {len(result['flagged'])} with ratio < {FLAG_BELOW}; "
          f"{len(result['not_built'])} configurations not buildable")
    return 0


if __name__ == "__main__":
    sys.exit(main())
