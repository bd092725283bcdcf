"""The prepared accelerator run (issue 21): one command, on whatever device JAX finds, within a time budget.

    python benchmarks/accelerator.py --budget-seconds 600      # full run, ≤ 10 minutes
    python benchmarks/accelerator.py --smoke                   # tiny sizes, CPU, run by the test suite

Sections, in order (each is skipped, and says so, when the budget left cannot cover it):

* ``rows`` — C2 and C3 (k = 2) at T = 4096, ε = 1e-4 (no mutants), searched in float64 and in
  float32 (``infoflow verify --search-dtype``), one fresh process per search dtype: wall seconds,
  each row's seconds, estimate, verdict and the dtype it searched in.
* ``sweep`` — the default sweep (``infoflow sweep sweeps/default.toml``, compilation cache off):
  wall, compilations, compile and evaluate seconds, every row as expected.
* ``roofline`` — one batched forward of C2's estimator error (T = 4096, ε = 1e-4, the exact fast
  path ``verify`` takes there) in float64 and float32: XLA's cost analysis of the compiled program
  (FLOPs, bytes accessed) over its measured time (best of repeats) gives the achieved FLOP/s and
  bytes/s, divided by the device's datasheet peak (:data:`PEAKS`; ``null`` for a device not listed,
  e.g. a CPU).
* ``verify-default`` — the default ``infoflow verify`` with ``--search-dtype float64`` and then
  ``float32``, side by side (cache off, the same machine state): wall seconds, their ratio, and the
  expected outcome of every row compared row by row.

Writes ``OUT/accelerator_<backend>[_smoke].json`` and ``.md`` (a table naming the device and the
host's load at each section). ``--sections`` picks sections (e.g. ``--sections verify-default`` on a CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import machine  # noqa: E402

SECTIONS = ("rows", "sweep", "roofline", "verify-default")

#: datasheet peaks, dense (no sparsity), per device kind (a substring of ``device.device_kind``):
#: float64 and float32 FLOP/s on the vector units (no tensor cores: the estimators are not matmuls),
#: and memory bytes/s. TPUs have no float64; their float32 matmuls run as bf16 passes (no vector
#: float32 peak is published): float32 holds the bf16 matmul peak there, an upper bound.
PEAKS = {
    "H200": {"float64": 34e12, "float32": 67e12, "bytes_per_s": 4.8e12, "source": "NVIDIA H200 SXM datasheet"},
    "H100 PCIe": {"float64": 26e12, "float32": 51e12, "bytes_per_s": 2.0e12, "source": "NVIDIA H100 PCIe datasheet"},
    "H100": {"float64": 34e12, "float32": 67e12, "bytes_per_s": 3.35e12, "source": "NVIDIA H100 SXM datasheet"},
    "A100-SXM4-80GB": {"float64": 9.7e12, "float32": 19.5e12, "bytes_per_s": 2.039e12, "source": "NVIDIA A100 datasheet"},
    "A100": {"float64": 9.7e12, "float32": 19.5e12, "bytes_per_s": 1.555e12, "source": "NVIDIA A100 40GB datasheet"},
    "TPU v4": {"float64": None, "float32": 275e12, "bytes_per_s": 1.2e12, "source": "Google Cloud TPU v4 (bf16 peak)"},
    "TPU v5 lite": {"float64": None, "float32": 197e12, "bytes_per_s": 0.819e12,
                    "source": "Google Cloud TPU v5e (bf16 peak)"},
    "TPU v5e": {"float64": None, "float32": 197e12, "bytes_per_s": 0.819e12, "source": "Google Cloud TPU v5e (bf16 peak)"},
}

FULL = {"T": 4096, "eps": 1e-4, "extra": [], "sweep": str(ROOT / "sweeps" / "default.toml"), "batch": 16,
        "verify_default": [], "timeout_share": 1.0}
SMOKE = {"T": 4, "eps": 1e-2, "extra": ["--quick"], "sweep": None, "batch": 8,
         "verify_default": ["C1", "--T", "2", "--eps", "0.1", "--quick", "--jobs", "1"], "timeout_share": 1.0}
SMOKE_SPEC = """
name = "accelerator-smoke"
bucket = "pow2"
[budget]
samples = 64
starts = 2
steps = 20
grid_points = 81
polish_levels = 2
[[run]]
construction = "C1"
T = [4]
eps = [1e-1]
"""


def peak_for(device_kind: str) -> dict | None:
    for key, peak in PEAKS.items():  # the more specific keys first (dict order)
        if key in device_kind:
            return {"match": key, **peak}
    return None


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "infoflow_jax.cli.app", *args]


def _env() -> dict:
    env = dict(os.environ, INFOFLOW_COMPILE_CACHE="off", PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    return env


def _run(cmd, timeout: float) -> tuple[subprocess.CompletedProcess | None, float]:
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=max(1.0, timeout), env=_env(), cwd=ROOT)
    except subprocess.TimeoutExpired:
        return None, time.perf_counter() - t0
    return proc, time.perf_counter() - t0


def _records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


# ----------------------------------------------------------------------------- sections
def section_rows(size: dict, left: float) -> dict:
    out = {"T": size["T"], "eps": size["eps"], "by_search_dtype": {}}
    for i, dtype in enumerate(("float64", "float32")):
        cmd = _cli("verify", "C2", "C3", "--T", str(size["T"]), "--k", "2", "--eps", f"{size['eps']:g}",
                   "--mutant", "none", "--jobs", "1", "--json", "--search-dtype", dtype, *size["extra"])
        proc, wall = _run(cmd, left / (2 - i))
        left -= wall
        if proc is None:
            out["by_search_dtype"][dtype] = {"status": "timed out", "wall_s": wall}
            continue
        rows = [{k: r.get(k) for k in ("name", "T", "k", "eps", "err_estimate", "bound", "estimator", "passed",
                                       "expected", "search_dtype", "search_note", "path", "seconds")}
                for r in _records(proc.stdout)]
        out["by_search_dtype"][dtype] = {"status": "ok" if proc.returncode == 0 else f"exit {proc.returncode}",
                                         "wall_s": wall, "rows": rows, "stderr_tail": proc.stderr[-1500:]}
    return out


def section_sweep(size: dict, left: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        spec = size["sweep"]
        if spec is None:
            spec = str(Path(tmp) / "smoke.toml")
            Path(spec).write_text(SMOKE_SPEC)
        out_dir = Path(tmp) / "run"
        proc, wall = _run(_cli("sweep", spec, "--out", str(out_dir), "--no-progress", "--no-compile-cache"), left)
        if proc is None:
            return {"spec": spec, "status": "timed out", "wall_s": wall}
        manifest = json.loads((out_dir / "manifest.json").read_text())
        stats = manifest["runs"][-1]["stats"]
        rows = [json.loads(line) for line in (out_dir / "results.jsonl").read_text().splitlines()]
    return {"spec": os.path.relpath(spec, ROOT) if spec.startswith(str(ROOT)) else "smoke", "wall_s": wall,
            "status": "ok" if proc.returncode == 0 else f"exit {proc.returncode}", "rows": len(rows),
            "unexpected": sum(not r["expected"] for r in rows),
            **{k: stats[k] for k in ("compilations", "compile_seconds", "eval_seconds", "build_seconds",
                                     "wall_seconds", "input_evaluations", "device_count")}}


def section_roofline(size: dict, left: float) -> dict:
    import jax
    import numpy as np

    from benchmarks.measure import repeat_times
    from infoflow_jax.catalog import lookup
    from infoflow_jax.core.fast_model import fast_pays, fast_plan, shared_shape
    from infoflow_jax.core.precision import search_precision, to_search_dtype, use_float64
    from infoflow_jax.verification.construction import error_function, fast_error_function

    use_float64()
    T, eps, B = size["T"], size["eps"], size["batch"]
    built = lookup("C2").build(T, eps)
    graphdef, state = built.split()
    plan = fast_plan(graphdef, state)
    fast = fast_pays(plan, T)
    err, params = ((fast_error_function(built.task), shared_shape(plan)) if fast
                   else (error_function(graphdef, built.task), state))
    X = np.random.default_rng(0).random((B, T, built.task.d))
    fn = jax.vmap(err, in_axes=(None, 0))
    device = jax.devices()[0]
    peak = peak_for(device.device_kind)
    out = {"construction": "C2", "T": T, "eps": eps, "batch": B, "path": "fast" if fast else "dense",
           "device_kind": device.device_kind, "peak": peak, "by_dtype": {}}
    for dtype in ("float64", "float32"):
        with search_precision(dtype):
            args = to_search_dtype((params, X), dtype)
            t0 = time.perf_counter()
            compiled = jax.jit(fn).lower(*args).compile()
            compile_s = time.perf_counter() - t0
            cost = compiled.cost_analysis()
            cost = (cost[0] if isinstance(cost, (list, tuple)) and cost else cost) or {}
            times = repeat_times(compiled, *args, repeats=5)
        flops, nbytes = cost.get("flops"), cost.get("bytes accessed")
        s = times["min_s"]
        row = {"compile_s": compile_s, **times, "flops": flops, "bytes_accessed": nbytes,
               "inputs_per_s": B / s, "flop_per_s": flops / s if flops else None,
               "bytes_per_s": nbytes / s if nbytes else None}
        if peak is not None:
            fpeak = peak.get(dtype)
            row["flop_fraction_of_peak"] = row["flop_per_s"] / fpeak if fpeak and row["flop_per_s"] else None
            row["bytes_fraction_of_peak"] = row["bytes_per_s"] / peak["bytes_per_s"] if row["bytes_per_s"] else None
        out["by_dtype"][dtype] = row
    r64, r32 = out["by_dtype"]["float64"], out["by_dtype"]["float32"]
    out["float32_over_float64_inputs_per_s"] = r32["inputs_per_s"] / r64["inputs_per_s"]
    return out


def section_verify_default(size: dict, left: float) -> dict:
    out = {"args": size["verify_default"], "by_search_dtype": {}}
    for i, dtype in enumerate(("float64", "float32")):
        proc, wall = _run(_cli("verify", *size["verify_default"], "--json", "--search-dtype", dtype), left / (2 - i))
        left -= wall
        if proc is None:
            out["by_search_dtype"][dtype] = {"status": "timed out", "wall_s": wall}
            continue
        recs = _records(proc.stdout)
        out["by_search_dtype"][dtype] = {
            "status": "ok" if proc.returncode == 0 else f"exit {proc.returncode}", "wall_s": wall, "rows": len(recs),
            "unexpected": sum(not r["expected"] for r in recs),
            "searched": {d: sum(r.get("search_dtype") == d for r in recs) for d in ("float64", "float32")},
            "fell_back": [f"{r['name']} T={r['T']} eps={r.get('eps')} {r.get('mutant') or ''}: {r['search_note']}"
                          for r in recs if r.get("search_note")],
            "outcomes": {_row_key(r): [r["expected"], r["passed"], r.get("err_estimate")] for r in recs}}
    both = out["by_search_dtype"]
    if all(both.get(d, {}).get("outcomes") is not None for d in ("float64", "float32")):
        a, b = both["float64"]["outcomes"], both["float32"]["outcomes"]
        out["same_rows"] = sorted(a) == sorted(b)
        out["expected_differs"] = [k for k in a if k in b and a[k][0] != b[k][0]]
        out["passed_differs"] = [k for k in a if k in b and a[k][1] != b[k][1]]
        out["wall_ratio_float64_over_float32"] = both["float64"]["wall_s"] / both["float32"]["wall_s"]
    return out


def _row_key(r: dict) -> str:
    return f"{r['name']}|T={r['T']}|k={r.get('k')}|eps={r.get('eps')}|beta={r.get('beta')}|{r.get('mutant')}"


RUNNERS = {"rows": section_rows, "sweep": section_sweep, "roofline": section_roofline,
           "verify-default": section_verify_default}


# ----------------------------------------------------------------------------- output
def render(doc: dict) -> str:
    m = doc["machine"]
    lines = [f"# Accelerator run{' (smoke)' if doc['smoke'] else ''}", "",
             f"Device: **{doc['device']}**; machine: {machine.name(m)}; load at start "
             f"{m.get('load_average_start')}; budget {doc['budget_seconds']} s, used {doc['wall_s']:.0f} s.", "",
             "| section | what | result | wall s | load (1 min) |", "|---|---|---|---|---|"]
    for s in doc["sections"]:
        name, r = s["section"], s.get("result") or {}
        load = (s.get("load_after") or [None])[0]
        if s.get("skipped"):
            lines.append(f"| {name} | skipped | {s['skipped']} | | {load} |")
            continue
        if name == "rows":
            for dt, v in r["by_search_dtype"].items():
                for row in v.get("rows", []):
                    lines.append(f"| rows | {row['name']} T={row['T']} eps={row['eps']:g} search {dt} "
                                 f"(ran {row['search_dtype']}) | estimate {row['err_estimate']:.3g} ≤ bound "
                                 f"{row['bound']:.3g}: {'pass' if row['passed'] else 'FAIL'} | "
                                 f"{row['seconds']:.1f} | {load} |")
                if not v.get("rows"):
                    lines.append(f"| rows | search {dt} | {v['status']} | {v['wall_s']:.1f} | {load} |")
        elif name == "sweep":
            lines.append(f"| sweep | {r['spec']} | {r.get('rows')} rows, {r.get('unexpected')} unexpected, "
                         f"{r.get('compilations')} compilations, compile {r.get('compile_seconds', 0):.1f} s, "
                         f"evaluate {r.get('eval_seconds', 0):.1f} s ({r['status']}) | {r['wall_s']:.1f} | {load} |")
        elif name == "roofline":
            for dt, v in r["by_dtype"].items():
                frac = v.get("flop_fraction_of_peak")
                bfrac = v.get("bytes_fraction_of_peak")
                lines.append(f"| roofline | C2 T={r['T']} eps={r['eps']:g} {r['path']}, batch {r['batch']}, {dt} | "
                             f"{_g(v['flop_per_s'])} FLOP/s ({_pct(frac)} of peak), {_g(v['bytes_per_s'])} B/s "
                             f"({_pct(bfrac)} of peak), {v['inputs_per_s']:.3g} inputs/s | {v['min_s']:.3g} | {load} |")
        elif name == "verify-default":
            for dt, v in r["by_search_dtype"].items():
                lines.append(f"| verify-default | `infoflow verify {' '.join(r['args'])}` --search-dtype {dt} | "
                             f"{v.get('rows')} rows, {v.get('unexpected')} unexpected, searched "
                             f"{v.get('searched')} ({v['status']}) | {v['wall_s']:.1f} | {load} |")
            if "same_rows" in r:
                lines.append(f"| verify-default | float64 vs float32 search | same rows: {r['same_rows']}; expected "
                             f"outcome differs on {len(r['expected_differs'])} rows; wall ratio float64/float32 "
                             f"{r['wall_ratio_float64_over_float32']:.2f} | | |")
    peak = next((s["result"]["peak"] for s in doc["sections"] if s["section"] == "roofline" and s.get("result")), None)
    lines += ["", f"Peak used: {peak if peak else 'unknown for this device (no datasheet entry): fractions are null'}."]
    return "\n".join(lines) + "\n"


def _g(x):
    return "n/a" if x is None else f"{x:.3g}"


def _pct(x):
    return "n/a" if x is None else f"{100 * x:.2g}%"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget-seconds", type=float, default=600.0, help="the whole run's time budget (default 600)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (CPU, seconds): the test suite runs this")
    ap.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset of " + ", ".join(SECTIONS))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="folder for the JSON and markdown")
    args = ap.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    bad = [s for s in sections if s not in SECTIONS]
    if bad or args.budget_seconds <= 0:
        print(f"accelerator: error: sections = {bad or args.sections!r} / budget-seconds = {args.budget_seconds} is "
              f"out of range: must be a subset of {', '.join(SECTIONS)} and a number > 0", file=sys.stderr)
        raise SystemExit(2)

    from infoflow_jax.core.devices import describe_devices
    from infoflow_jax.core.precision import use_float64

    use_float64()
    size = SMOKE if args.smoke else FULL
    t0 = time.perf_counter()
    doc = {"smoke": args.smoke, "budget_seconds": args.budget_seconds, "device": describe_devices(),
           "machine": machine.describe(), "sections": []}
    for name in sections:
        left = args.budget_seconds - (time.perf_counter() - t0)
        entry = {"section": name}
        if left < 5:
            entry["skipped"] = f"budget spent ({left:.0f} s left)"
        else:
            t1 = time.perf_counter()
            entry["result"] = RUNNERS[name](size, left)
            entry["wall_s"] = time.perf_counter() - t1
        entry["load_after"] = machine.load_average()
        doc["sections"].append(entry)
        took = "skipped" if "skipped" in entry else f"{entry['wall_s']:.1f} s"
        print(f"accelerator: {name}: {took}", file=sys.stderr, flush=True)
    doc["wall_s"] = time.perf_counter() - t0
    import jax

    stem = f"accelerator_{jax.default_backend()}{'_smoke' if args.smoke else ''}"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
    (out / f"{stem}.md").write_text(render(doc))
    print(f"accelerator: wrote {out / stem}.json and .md ({doc['wall_s']:.0f} s)", file=sys.stderr)
    return doc


if __name__ == "__main__":
    main()
