"""One run on one machine: the sweep engine against a fresh ``jax.jit`` per configuration and
against NumPy, the compile/evaluate split, inputs per second per construction on the dense and
the exact fast path, and the fraction of the machine's peak each reaches.

    python benchmarks/sweep_throughput.py                 # this machine's JAX backend, float64
    python benchmarks/sweep_throughput.py --device gpu    # the GPU benchmark: float64 and float32
    python benchmarks/sweep_throughput.py --quick         # a smoke run (small sizes, seconds to a minute)

Sections (``--sections``, default all; every number of one run is measured side by side):

``peak``     the machine's peak GFLOP/s per dtype: the best jitted square matmul in JAX on the
             device, and in NumPy (float64, the host's BLAS), at the start and again at the end
             of the run (the larger is the peak; a shared machine's load moves both).
``forward``  per construction (C1, C2 at T = 16 and 64, C3, C6, C7, C8): inputs per second of
             Ĥ on a batch of inputs from the task's domain — JAX dense (``jit(vmap(apply))``),
             JAX on the exact fast path (``apply_fast`` of ``fast_plan``, when a one-input FFN
             group exists), NumPy float64 (:mod:`infoflow_jax.core.numpy_forward`, its plain layers) — each path's compile seconds,
             its FLOPs per input (XLA cost analysis of the compiled batch, divided by the
             batch; also the engine's FLOP model ``eval_flops``), GFLOP/s and fraction of peak,
             and each path's largest difference from JAX dense.
``sweep``    one small sweep (C1, C2, C3 at T = 16, three ε, one mutant each) three ways:
             the engine (``run_sweep``: buckets, one compiled program per bucket, vmapped over
             configurations); a fresh ``jax.jit`` per configuration of the same estimator
             program (``estimators.draw`` then ``evaluate``, as the engine runs them); NumPy
             evaluating the same fixed inputs (grid, samplers, probes) of every configuration.
             Compile vs evaluate seconds, estimator evaluations per second, and the useful
             FLOPs (unpadded forwards, value-and-gradient for each ascent step, both by XLA
             cost analysis) per evaluate second against the peak.
``batching`` C1 at T = 16: ``jax.vmap`` over all inputs vs ``jax.lax.map`` in chunks vs one
             input at a time.

Writes ``benchmarks/results/sweep_throughput_<backend>.json`` (``--out``), the machine named
(CPU model, cores, JAX backend and device, versions, load average at the start, at each
section and at the end) and a ``summary`` of the ratios; prints the tables.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from infoflow_jax.core.precision import use_float64  # noqa: E402

use_float64()

from benchmarks import machine as mach  # noqa: E402
from benchmarks.measure import (compile_ahead, matmul_peak, numpy_matmul_peak, repeat_times, timed,  # noqa: E402
                                xla_flops)
from infoflow_jax.core.numpy_forward import numpy_weights, predict_np  # noqa: E402
from infoflow_jax.catalog import catalog  # noqa: E402
from infoflow_jax.core.devices import Placement  # noqa: E402
from infoflow_jax.core.errors import InputError, check_choice  # noqa: E402
from infoflow_jax.core.fast_model import MIN_FAST_UNITS, apply_fast, fast_plan  # noqa: E402
from infoflow_jax.core.model import apply  # noqa: E402
from infoflow_jax.core.samplers import sample  # noqa: E402
from infoflow_jax.sweep import buckets  # noqa: E402
from infoflow_jax.sweep import engine as E  # noqa: E402
from infoflow_jax.sweep.spec import Run, SweepSpec, expand  # noqa: E402
from infoflow_jax.verification import memory  # noqa: E402
from infoflow_jax.verification.construction import error_function  # noqa: E402
from infoflow_jax.verification.estimators import (Budget, candidate_names, draw_for_seed, evaluate,  # noqa: E402
                                                  evaluations_per_config, to_estimate)

SECTIONS = ("peak", "forward", "sweep", "batching")
DTYPES = ("float64", "float32")
# (name, T, eps, build options): every construction whose forward is cheap to build at a size
# where the decoders matter; C2 also at T = 64, eps = 1e-3 (its decoder runs at every position)
FORWARD_CASES = (("C1", 16, 1e-2, {}), ("C2", 16, 1e-2, {}), ("C2", 64, 1e-3, {}), ("C3", 16, 1e-2, {"k": 2}),
                 ("C6-decoupled", 8, 1e-2, {"k": 2}), ("C6-coupled", 8, 0.3, {"k": 2}), ("C7", 16, 0.1, {}),
                 ("C8", 16, 1e-2, {"k": 2}))
QUICK_FORWARD = ("C1", "C2", "C3")


class Settings:
    """Sizes of one run: full or ``--quick``, CPU or an accelerator."""

    def __init__(self, quick: bool, backend: str):
        accel = backend != "cpu"
        self.quick = quick
        self.peak_sizes = (256, 512) if quick else ((4096, 8192) if accel else (1024, 2048))
        self.peak_repeats = 3 if quick else 5
        self.max_inputs = 256 if quick else (65536 if accel else 4096)  # inputs per forward call
        self.call_bytes = (2 ** 30 if quick else 8 * 2 ** 30) if accel else 2 ** 28  # activation bytes per call
        self.numpy_inputs = 128 if quick else 1024  # at most; never more than JAX's batch
        self.numpy_bytes = 2 ** 28  # NumPy's activation bytes per chunk (host memory)
        self.repeats = 2 if quick else 5
        self.batching_inputs = 512 if quick else 8192
        self.engine_rounds = 1 if quick else 2  # engine, per-config jit, engine again


# ----------------------------------------------------------------------------- peak
def bench_peak(s: Settings, device, dtypes) -> dict:
    out = {name: matmul_peak(s.peak_sizes, getattr(jnp, name), device, s.peak_repeats) for name in dtypes}
    out["numpy_float64"] = numpy_matmul_peak(s.peak_sizes, s.peak_repeats)
    out["load_average"] = mach.load_average()
    return out


def peak_gflops(peaks: list[dict], key: str) -> float | None:
    """The largest rate any peak measurement of ``key`` reached (None when not measured)."""
    rates = [p[key]["gflops"] for p in peaks if key in p]
    return max(rates) if rates else None


def _fraction(gflops, peak):
    return None if gflops is None or not peak else gflops / peak


def attach_fractions(result: dict) -> None:
    """``fraction_of_peak`` = GFLOP/s / peak, beside every rate, once every peak is measured: JAX's
    rates against the device's matmul peak in their dtype, NumPy's against NumPy's float64 peak."""
    peaks = result.get("peak", [])
    numpy_peak = peak_gflops(peaks, "numpy_float64")
    for row in result.get("forward", []):
        for path in ("dense", "fast"):
            if row.get(path):
                row[path]["fraction_of_peak"] = _fraction(row[path]["gflops"], peak_gflops(peaks, row["dtype"]))
        if "numpy" in row:
            row["numpy"]["fraction_of_peak"] = _fraction(row["numpy"]["gflops"], numpy_peak)
    for sw in result.get("sweep", []):
        for way in (w for w in ("engine", "engine_again", "per_config_jit") if w in sw):
            sw[way]["fraction_of_peak"] = _fraction(sw[way]["useful_gflops_eval"], peak_gflops(peaks, sw["dtype"]))
        if "numpy_fixed_inputs" in sw:
            sw["numpy_fixed_inputs"]["fraction_of_peak"] = _fraction(sw["numpy_fixed_inputs"]["gflops"], numpy_peak)


# ----------------------------------------------------------------------------- forward
def _built(name: str, T: int, eps: float, options: dict):
    return catalog()[name].build(T, eps, **options)


def _inputs(built, n: int, seed: int = 0) -> np.ndarray:
    task = built.task
    return np.asarray(sample("uniform", jax.random.PRNGKey(seed), n, task.T, task.d, task.domain))


def _weights(built, dtype: str):
    """(graphdef, state) of ``built``'s model in ``dtype`` (float32: every weight cast, as sweeps do)."""
    if dtype == "float64":
        return built.split()
    return buckets.pad_state(built, built.compiled.model.cfg, dtype=jnp.float32)


def _path_row(fn, params, X, n: int, repeats: int, model_flops: float) -> tuple[dict, np.ndarray]:
    """Compile ``vmap(fn)`` for the batch X, time it, count its FLOPs: the row of one path."""
    batched = jax.vmap(fn, in_axes=(None, 0))
    compiled, compile_s = compile_ahead(batched, params, X)
    y = np.asarray(compiled(params, X), np.float64)
    t = repeat_times(compiled, params, X, repeats=repeats)
    flops = xla_flops(compiled)
    per_input = None if flops is None else flops / n
    gflops = None if per_input is None else per_input * n / t["min_s"] / 1e9
    return {"compile_s": compile_s, **t, "inputs_per_s": n / t["min_s"], "xla_flops_per_input": per_input,
            "gflops": gflops, "model_flops_per_input": model_flops}, y


def forward_row(s: Settings, case, dtype: str) -> dict:
    """Inputs per second of one construction's Ĥ: JAX dense, JAX fast, NumPy (float64)."""
    name, T, eps, options = case
    built = _built(name, T, eps, options)
    cfg, d = built.compiled.model.cfg, built.task.d
    graphdef, state = _weights(built, dtype)
    per_input_bytes = memory.bytes_per_input(cfg, T, d)
    n = int(max(1, min(s.max_inputs, s.call_bytes // per_input_bytes)))
    X64 = _inputs(built, n)
    X = jnp.asarray(X64, getattr(jnp, dtype))
    model_flops = buckets.eval_flops(cfg, T)
    row = {"construction": name, "T": T, "eps": eps, "options": options, "d": d, "dtype": dtype,
           "params_theorem": built.param_count.theorem,
           "inputs_per_call": n, "bytes_per_input_planned": per_input_bytes, "load_average": mach.load_average()}
    dense, y_dense = _path_row(lambda st, x: apply(graphdef, st, x), state, X, n, s.repeats, model_flops)
    row["dense"] = dense
    if dtype != "float64":  # the float32 error floor of this forward, against the float64 one
        g64, s64 = built.split()
        y64 = np.asarray(jax.jit(jax.vmap(lambda x: apply(g64, s64, x)))(jnp.asarray(X64)))
        dense["max_abs_diff_vs_float64"] = float(np.max(np.abs(y_dense - y64)))
    plan = fast_plan(graphdef, state)
    if plan.largest_group:
        fast, y_fast = _path_row(apply_fast, plan, X, n, s.repeats, model_flops)
        fast["largest_group"] = plan.largest_group
        fast["verify_picks_fast"] = plan.largest_group >= MIN_FAST_UNITS
        fast["max_abs_diff_vs_dense"] = float(np.max(np.abs(y_fast - y_dense)))
        fast["speedup_over_dense"] = fast["inputs_per_s"] / dense["inputs_per_s"]
        # the dense path's FLOPs done in the fast path's time (what the algorithm saves, as a rate)
        fast["dense_equivalent_gflops"] = (None if dense["xla_flops_per_input"] is None else
                                           dense["xla_flops_per_input"] * fast["inputs_per_s"] / 1e9)
        row["fast"] = fast
    else:
        row["fast"] = None
        row["fast_note"] = "no one-input FFN group: verify runs the dense forward"
    if dtype == "float64":
        m = min(n, s.numpy_inputs)
        row["numpy"] = numpy_row(built, X64[:m], y_dense[:m], s, dense)
        row["jax_dense_over_numpy"] = dense["inputs_per_s"] / row["numpy"]["inputs_per_s"]
    return row


def numpy_row(built, X: np.ndarray, y_jax: np.ndarray, s: Settings, dense: dict) -> dict:
    """NumPy's forward on the first inputs of the same batch, in chunks that keep its memory near JAX's."""
    model = built.compiled.model
    chunk = int(max(1, min(len(X), s.numpy_bytes // memory.bytes_per_input(model.cfg, built.task.T, built.task.d))))

    W = numpy_weights(model, shortcuts=False)

    def run(Xs):
        return np.concatenate([predict_np(model, Xs[i:i + chunk], W) for i in range(0, len(Xs), chunk)])

    run(X[:chunk])  # warm up (BLAS threads, page faults)
    reps = max(1, s.repeats // 2)
    t = repeat_times(run, X, repeats=reps)
    y = run(X)
    per_input = dense["xla_flops_per_input"]  # the same arithmetic, as XLA counts it for the dense forward
    gflops = None if per_input is None else per_input * len(X) / t["min_s"] / 1e9
    return {"inputs": len(X), "chunk": chunk, **t, "inputs_per_s": len(X) / t["min_s"], "gflops": gflops,
            "max_abs_diff_vs_jax": float(np.max(np.abs(y - y_jax)))}


# ----------------------------------------------------------------------------- sweep
def sweep_spec(quick: bool, dtype: str) -> SweepSpec:
    if quick:
        budget = Budget(samples=64, starts=2, steps=10, grid_points=81)
        runs = (Run(name="C1", T=(4,), eps=(1e-1, 1e-2), mutants=("knot-dropped",)),)
    else:
        eps = (1e-1, 3e-2, 1e-2)
        budget = Budget(samples=512, starts=8, steps=120, grid_points=81)
        runs = (Run(name="C1", T=(16,), eps=eps, mutants=("knot-dropped",)),
                Run(name="C2", T=(16,), eps=eps, mutants=("psi-knot-dropped",)),
                Run(name="C3", T=(16,), eps=eps, k=(2,), mutants=("flag-dropped",)))
    return SweepSpec(runs=runs, name=f"throughput-{dtype}", budget=budget, bucket="auto", max_batch=8,
                     dtype=(dtype,))


def run_engine(spec: SweepSpec, placement: Placement) -> tuple[dict, dict]:
    """``run_sweep`` into a scratch folder: its statistics and each configuration's record."""
    out = Path(tempfile.mkdtemp(prefix="sweep_bench_"))
    try:
        st, wall = timed(lambda: E.run_sweep(spec, out, progress=False, placement=placement))
        recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]
    finally:
        shutil.rmtree(out, ignore_errors=True)
    by_hash = {r["config_hash"]: r for r in recs}
    result = {"configs": st.configs_run, "buckets": st.buckets_run, "compilations": st.compilations,
              "compile_seconds_summed": st.compile_seconds, "eval_seconds": st.eval_seconds,
              "build_seconds": st.build_seconds, "wall_seconds": wall,
              "input_evaluations_incl_padding": st.input_evaluations, "per_bucket": st.per_bucket}
    return result, by_hash


def fresh_program(err_fn, domain, budget: Budget, chunk: int):
    """The estimator program of one configuration — ``evaluate`` on the host-drawn inputs, what the
    engine vmaps — as a new function, so that ``jax.jit`` of it compiles afresh."""
    def per_config_program(params, drawn, probes):
        return evaluate(err_fn, params, drawn, probes, domain=domain, budget=budget, chunk=chunk)

    return per_config_program


def run_per_config(configs, placement: Placement) -> tuple[dict, dict]:
    """Each configuration alone: build, one fresh jit (trace + compile), one call."""
    registry = catalog()
    rows, estimates = [], {}
    t_wall = time.perf_counter()
    for c in configs:
        p, build_s = timed(lambda: E.prepare(c, registry[c.name]))
        task = p.built.task
        graphdef, state = _weights(p.built, c.dtype)
        names = candidate_names(task.domain, c.T, task.d, c.budget, p.probe_names)
        fn = fresh_program(error_function(graphdef, task, c.dtype), task.domain, c.budget, c.budget.chunk)
        drawn = draw_for_seed(c.seed, domain=task.domain, T=c.T, d=task.d, budget=c.budget)
        args = placement.replicated((state, drawn, tuple(jnp.asarray(x) for x in p.probes)))
        compiled, compile_s = compile_ahead(fn, *args)
        (values, inputs), eval_s = timed(compiled, *args)
        estimates[c.hash] = to_estimate(names, np.asarray(values), np.asarray(inputs)).value
        rows.append({"config": c.label(), "construction": c.name, "build_seconds": build_s,
                     "compile_seconds": compile_s, "eval_seconds": eval_s})
    wall = time.perf_counter() - t_wall
    total = lambda key: sum(r[key] for r in rows)
    return {"configs": len(configs), "compilations": len(configs), "compile_seconds": total("compile_seconds"),
            "eval_seconds": total("eval_seconds"), "build_seconds": total("build_seconds"), "wall_seconds": wall,
            "by_config": rows}, estimates


def config_work(prepared: dict) -> dict:
    """Per configuration: forward evaluations of |Ĥ − H| (fixed inputs, ascent) and the useful FLOPs
    (unpadded model; XLA cost analysis of a vmapped forward and a vmapped value-and-gradient)."""
    per_shape: dict = {}
    out = {}
    for h, p in prepared.items():
        c, task = p.config, p.built.task
        fixed = evaluations_per_config(task.domain, c.T, task.d, replace(c.budget, starts=0),
                                       tuple(x.shape[0] for x in p.probes))
        # the ascent: steps + 1 value-and-gradient evaluations per start (the last update is discarded)
        steps = c.budget.starts * (c.budget.steps + 1) if c.budget.starts and c.budget.steps else 0
        fwd_end = 0
        key = (p.cfg, task, c.dtype)
        if key not in per_shape:
            graphdef, state = _weights(p.built, c.dtype)
            err = error_function(graphdef, task, c.dtype)
            X = jnp.zeros((64, c.T, task.d))
            f = xla_flops(compile_ahead(jax.vmap(err, in_axes=(None, 0)), state, X)[0])
            g = xla_flops(compile_ahead(jax.vmap(jax.value_and_grad(err, argnums=1), in_axes=(None, 0)), state, X)[0])
            per_shape[key] = (None if f is None else f / 64, None if g is None else g / 64)
        f, g = per_shape[key]
        flops = None if f is None or g is None else (fixed + fwd_end) * f + steps * g
        out[h] = {"config": c.label(), "fixed_inputs": fixed, "ascent_steps": steps,
                  "evaluations": fixed + fwd_end + steps, "forward_flops": f, "value_and_grad_flops": g,
                  "useful_flops": flops}
    return out


def numpy_fixed(prepared: dict, records: dict, s: Settings) -> dict:
    """NumPy evaluates every configuration's fixed inputs (the grid, sampler draws and probes the
    engine evaluates, same seed); its max |Ĥ − H| there is checked against the engine's non-ascent
    estimators."""
    seconds, inputs, worst_rel = 0.0, 0, 0.0
    for h, p in prepared.items():
        c, task, model = p.config, p.built.task, p.built.compiled.model
        Xs, _ = draw_for_seed(c.seed, domain=task.domain, T=c.T, d=task.d, budget=c.budget)
        X = np.concatenate([np.asarray(x) for x in Xs] +
                           [np.asarray(task.domain.retract(jnp.asarray(x))) for x in p.probes])
        chunk = int(max(1, s.numpy_bytes // memory.bytes_per_input(model.cfg, c.T, task.d)))
        t0 = time.perf_counter()
        W = numpy_weights(model, shortcuts=False)
        y = np.concatenate([predict_np(model, X[i:i + chunk], W) for i in range(0, len(X), chunk)])
        seconds += time.perf_counter() - t0
        inputs += len(X)
        err = float(np.max(np.abs(y - np.asarray(jax.vmap(task.target)(jnp.asarray(X))))))
        if h in records:
            ref = max(v for k, v in records[h]["estimates"].items() if k != "adversarial")
            worst_rel = max(worst_rel, abs(err - ref) / max(abs(ref), 1e-300))
    return {"inputs": inputs, "seconds": seconds, "inputs_per_s": inputs / seconds,
            "max_rel_diff_vs_engine_fixed_estimators": worst_rel}


def bench_sweep(s: Settings, dtype: str, placement: Placement) -> dict:
    spec = sweep_spec(s.quick, dtype)
    configs = expand(spec, registry=catalog())
    load = mach.load_average()
    engine, records = run_engine(spec, placement)
    per_config, estimates = run_per_config(configs, placement)
    # the engine again after the per-configuration runs (engine, jit, engine): a shared machine's load
    # drifts, and the two engine runs bracket the one in between
    engine_again = run_engine(spec, placement)[0] if s.engine_rounds > 1 else None
    ways = {"engine": engine, "engine_again": engine_again, "per_config_jit": per_config}
    ways = {k: v for k, v in ways.items() if v is not None}
    registry = catalog()
    prepared = {c.hash: E.prepare(c, registry[c.name]) for c in configs}  # built again, outside the timings
    work = config_work(prepared)
    useful = [w["useful_flops"] for w in work.values()]
    useful_flops = None if None in useful else float(sum(useful))
    evals = sum(w["evaluations"] for w in work.values())
    for r in ways.values():
        r["evaluations"] = evals
        r["evaluations_per_s_eval"] = evals / r["eval_seconds"]
        r["evaluations_per_s_wall"] = evals / r["wall_seconds"]
        r["useful_gflops_eval"] = None if useful_flops is None else useful_flops / r["eval_seconds"] / 1e9
    rel = [abs(records[h]["err_estimate"] - v) / max(abs(v), 1e-300) for h, v in estimates.items() if h in records]
    by_name = {c.name: {} for c in configs}
    for name, way in by_name.items():  # evaluate seconds per construction: engine buckets vs one jit per config
        for key, r in ways.items():
            rows = r["per_bucket"] if "per_bucket" in r else r["by_config"]
            label = (lambda x: x["bucket"].split("/")[0]) if "per_bucket" in r else (lambda x: x["construction"])
            way[key] = sum(x["eval_seconds"] for x in rows if label(x) == name)
    out = {"dtype": dtype, "spec": spec.to_dict(), "load_average_start": load, **ways,
           "eval_seconds_by_construction": by_name, "useful_flops": useful_flops,
           "per_config_work": list(work.values()),
           "estimates_max_rel_diff_engine_vs_per_config": max(rel) if rel else None,
           "engine_estimates": {c.label(): records[c.hash]["err_estimate"] for c in configs if c.hash in records}}
    if dtype == "float64":
        out["numpy_fixed_inputs"] = numpy_fixed(prepared, records, s)
        nf = out["numpy_fixed_inputs"]
        fixed_flops = [w["fixed_inputs"] * w["forward_flops"] for w in work.values() if w["forward_flops"]]
        nf["gflops"] = sum(fixed_flops) / nf["seconds"] / 1e9 if len(fixed_flops) == len(work) else None
    out["load_average_end"] = mach.load_average()
    return out


# ----------------------------------------------------------------------------- batching
def bench_batching(s: Settings, chunk: int = 256) -> dict:
    built = _built("C1", 16, 1e-1, {})
    graphdef, state = built.split()
    X = jnp.asarray(_inputs(built, s.batching_inputs, seed=1))
    one = lambda st, x: apply(graphdef, st, x)
    variants = {
        "vmap": lambda st, X: jax.vmap(lambda x: one(st, x))(X),
        f"lax.map chunk={chunk}": lambda st, X: jax.lax.map(lambda x: one(st, x), X, batch_size=chunk),
        "lax.map chunk=1": lambda st, X: jax.lax.map(lambda x: one(st, x), X),
    }
    out = {}
    for label, f in variants.items():
        compiled, compile_s = compile_ahead(f, state, X)
        t = repeat_times(compiled, state, X, repeats=s.repeats)
        out[label] = {"compile_s": compile_s, **t, "inputs_per_s": X.shape[0] / t["min_s"]}
    return out


# ----------------------------------------------------------------------------- summary and tables
def summarize(result: dict) -> dict:
    """The ratios the README quotes, from this run only."""
    summ = {"machine": mach.name(result["machine"])}
    peaks = result.get("peak", [])
    for key in ("float64", "float32", "numpy_float64"):
        if peak_gflops(peaks, key) is not None:
            summ[f"peak_gflops_{key}"] = peak_gflops(peaks, key)
    for sw in result.get("sweep", []):
        a = sw["per_config_jit"]
        engines = [sw[k] for k in ("engine", "engine_again") if k in sw]
        each = lambda f: [f(e) for e in engines]  # one value per engine run (engine, jit, engine again)
        row = {"configs": a["configs"], "engine_runs": len(engines),
               "wall_per_config_jit_over_engine": each(lambda e: a["wall_seconds"] / e["wall_seconds"]),
               "compilations_engine": each(lambda e: e["compilations"]),
               "compilations_per_config_jit": a["compilations"],
               "compile_over_eval_seconds_engine": each(lambda e: e["compile_seconds_summed"] / e["eval_seconds"]),
               "compile_over_eval_seconds_per_config_jit": a["compile_seconds"] / a["eval_seconds"],
               "eval_throughput_engine_over_per_config_jit": each(lambda e: a["eval_seconds"] / e["eval_seconds"]),
               "fraction_of_peak_engine": each(lambda e: e["fraction_of_peak"]),
               "fraction_of_peak_per_config_jit": a["fraction_of_peak"]}
        if "numpy_fixed_inputs" in sw:
            nf = sw["numpy_fixed_inputs"]
            row["engine_gflops_over_numpy_gflops"] = each(
                lambda e: None if not nf.get("gflops") or e["useful_gflops_eval"] is None
                else e["useful_gflops_eval"] / nf["gflops"])
            row["per_config_jit_gflops_over_numpy_gflops"] = (
                None if not nf.get("gflops") or a["useful_gflops_eval"] is None else a["useful_gflops_eval"] / nf["gflops"])
            row["fraction_of_numpy_peak_numpy"] = nf["fraction_of_peak"]
        ref = next((x for x in result["sweep"] if x["dtype"] == "float64"), None)
        if sw["dtype"] != "float64" and ref is not None:  # the float32 error floor: estimates against float64's
            both = [(v, ref["engine_estimates"][k]) for k, v in sw["engine_estimates"].items()
                    if k in ref["engine_estimates"]]
            row["max_abs_diff_estimates_vs_float64"] = max(abs(a - b) for a, b in both) if both else None
        summ[f"sweep_{sw['dtype']}"] = row
    per = []
    for r in result.get("forward", []):
        f = r["fast"]
        per.append({"construction": r["construction"], "T": r["T"], "eps": r["eps"], "dtype": r["dtype"],
                    "dense_inputs_per_s": r["dense"]["inputs_per_s"],
                    "fast_inputs_per_s": None if f is None else f["inputs_per_s"],
                    "numpy_inputs_per_s": r["numpy"]["inputs_per_s"] if "numpy" in r else None,
                    "fast_over_dense": None if f is None else f["speedup_over_dense"],
                    "jax_dense_over_numpy": r.get("jax_dense_over_numpy"),
                    "dense_fraction_of_peak": r["dense"]["fraction_of_peak"],
                    "numpy_fraction_of_numpy_peak": r["numpy"]["fraction_of_peak"] if "numpy" in r else None})
    if per:
        summ["forward"] = per
    return summ


def _g(x, fmt=".3g"):
    return "-" if x is None else format(x, fmt)


def print_tables(result: dict) -> None:
    m = result["machine"]
    print(f"\nmachine: {mach.name(m)}; load {m['load_average_start']} -> {m.get('load_average_end')}")
    for p in result.get("peak", []):
        print("peak GFLOP/s: " + ", ".join(f"{k} {p[k]['gflops']:.1f}" for k in p if isinstance(p[k], dict)))
    if result.get("forward"):
        print(f"\n{'forward':24s} {'dtype':7s} {'dense in/s':>10s} {'fast in/s':>10s} {'numpy in/s':>10s} "
              f"{'fast/dense':>10s} {'jax/numpy':>9s} {'dense %peak':>11s} {'numpy %peak':>11s} {'compile s':>9s}")
        for r in result["forward"]:
            f, n = r["fast"], r.get("numpy")
            label = f"{r['construction']} T={r['T']} eps={r['eps']:g}"
            frac = r["dense"]["fraction_of_peak"]
            nfrac = None if n is None else n["fraction_of_peak"]
            print(f"{label:24s} {r['dtype']:7s} {_g(r['dense']['inputs_per_s']):>10s} "
                  f"{_g(None if f is None else f['inputs_per_s']):>10s} {_g(None if n is None else n['inputs_per_s']):>10s} "
                  f"{_g(None if f is None else f['speedup_over_dense']):>10s} {_g(r.get('jax_dense_over_numpy')):>9s} "
                  f"{_g(None if frac is None else 100 * frac, '.2f'):>11s} {_g(None if nfrac is None else 100 * nfrac, '.2f'):>11s} "
                  f"{r['dense']['compile_s']:9.2f}")
    for sw in result.get("sweep", []):
        print(f"\nsweep ({sw['dtype']}) {'configs':>8s} {'compiles':>8s} {'compile s':>9s} {'eval s':>8s} "
              f"{'wall s':>8s} {'evals/s (eval)':>14s} {'GFLOP/s':>8s} {'%peak':>6s}")
        for label, key in (("engine", "engine"), ("per-config jit", "per_config_jit"), ("engine again", "engine_again")):
            if key not in sw:
                continue
            r = sw[key]
            comp = r.get("compile_seconds_summed", r.get("compile_seconds"))
            frac = r["fraction_of_peak"]
            print(f"{label:16s} {r['configs']:8d} {r['compilations']:8d} {comp:9.1f} {r['eval_seconds']:8.2f} "
                  f"{r['wall_seconds']:8.1f} {r['evaluations_per_s_eval']:14.3g} {_g(r['useful_gflops_eval']):>8s} "
                  f"{_g(None if frac is None else 100 * frac, '.2f'):>6s}")
        if "numpy_fixed_inputs" in sw:
            nf = sw["numpy_fixed_inputs"]
            print(f"{'numpy (fixed)':16s} {nf['inputs']:8d} inputs in {nf['seconds']:.1f} s: "
                  f"{nf['inputs_per_s']:.3g} inputs/s, {_g(nf['gflops'])} GFLOP/s")
        print("evaluate seconds by construction: " + "; ".join(
            f"{name} " + ", ".join(f"{k} {v:.2f}" for k, v in way.items())
            for name, way in sw["eval_seconds_by_construction"].items()))
    if result.get("batching"):
        print(f"\n{'batching (C1, T=16)':24s} {'inputs/s':>10s} {'compile s':>10s}")
        for label, r in result["batching"].items():
            print(f"{label:24s} {r['inputs_per_s']:10.3g} {r['compile_s']:10.2f}")


# ----------------------------------------------------------------------------- main
def _csv(arg: str, value: str, allowed) -> tuple[str, ...]:
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    if not items:
        raise InputError(arg, value, "a comma-separated list of " + ", ".join(allowed))
    for v in items:
        check_choice(arg, v, allowed)
    return items


def pick_device(choice: str):
    """The device measured: JAX's default (``auto``), or the first CPU / GPU device."""
    if choice == "auto":
        return jax.devices()[0]
    try:
        return jax.devices(choice)[0]
    except RuntimeError:
        raise InputError("--device", choice, f"a backend JAX can see here: auto or {jax.default_backend()}") from None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    ap.add_argument("--device", default="auto", help="auto (JAX's default backend), cpu or gpu")
    ap.add_argument("--dtype", default=None, help="float64 and/or float32 (default: float64 on CPU, both on GPU)")
    ap.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated: " + ", ".join(SECTIONS))
    ap.add_argument("--constructions", default=None,
                    help="forward rows, comma-separated (default: all; --quick: " + ",".join(QUICK_FORWARD) + ")")
    ap.add_argument("--out", default=None, help="JSON file (default benchmarks/results/sweep_throughput_<backend>.json)")
    args = ap.parse_args(argv)
    try:
        check_choice("--device", args.device, ("auto", "cpu", "gpu"))
        sections = _csv("--sections", args.sections, SECTIONS)
        names = sorted({c[0] for c in FORWARD_CASES})
        chosen = _csv("--constructions", args.constructions, names) if args.constructions else (
            QUICK_FORWARD if args.quick else tuple(names))
        device = pick_device(args.device)
        dtypes = _csv("--dtype", args.dtype, DTYPES) if args.dtype else (
            ("float64",) if device.platform == "cpu" else DTYPES)
    except InputError as exc:
        print(f"sweep_throughput: error: {exc}", file=sys.stderr)
        return 2
    jax.config.update("jax_default_device", device)
    jax.config.update("jax_enable_compilation_cache", False)  # every compile is measured, none loaded
    backend = device.platform
    out_path = Path(args.out) if args.out else (
        ROOT / "benchmarks" / "results" / f"sweep_throughput_{backend}{'_quick' if args.quick else ''}.json")
    s = Settings(args.quick, backend)
    placement = Placement(jax.devices(backend))
    result = {"benchmark": "sweep_throughput", "quick": args.quick, "dtypes": list(dtypes),
              "sections": list(sections), "machine": mach.describe(device),
              "flops_counted_by": "XLA cost analysis of the compiled, vmapped program (no loops), per input; "
                                  "forward rows also give the engine's FLOP model buckets.eval_flops"}
    t0 = time.perf_counter()
    if "peak" in sections:
        print("peak ...", flush=True)
        result["peak"] = [bench_peak(s, device, dtypes)]
    if "forward" in sections:
        result["forward"] = []
        for case in (c for c in FORWARD_CASES if c[0] in chosen):
            for dtype in dtypes:
                print(f"forward {case[0]} T={case[1]} eps={case[2]:g} {dtype} ...", flush=True)
                result["forward"].append(forward_row(s, case, dtype))
    if "sweep" in sections:
        result["sweep"] = []
        for dtype in dtypes:
            print(f"sweep {dtype}: engine, per-config jit, numpy ...", flush=True)
            result["sweep"].append(bench_sweep(s, dtype, placement))
    if "batching" in sections:
        print("batching ...", flush=True)
        result["batching"] = bench_batching(s)
    if "peak" in sections:
        result["peak"].append(bench_peak(s, device, dtypes))  # again at the end: the load may have moved
    result["machine"]["load_average_end"] = mach.load_average()
    result["wall_seconds"] = time.perf_counter() - t0
    attach_fractions(result)
    result["summary"] = summarize(result)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print_tables(result)
    print(f"\nwrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
