"""Throughput of the sweep engine against simpler ways of doing the same work.

    python benchmarks/sweep_throughput.py [--quick] [--out benchmarks/results/sweep_throughput.json]

Measures, on whatever JAX device is present (CPU or GPU, unchanged):

1. **engine** — ``run_sweep`` on a small sweep (C1 and C2 at T = 16, three ε,
   each with one mutant): wall time, compilations, compile and evaluation
   seconds, and input·configuration evaluations per second (every forward
   evaluation of |Ĥ − H| summed over configurations; an ascent step counts one);
2. **per-config jit** — the same configurations one by one, each with a fresh
   ``jax.jit`` of the same estimator program (batch of one), i.e. one compile
   per configuration;
3. **numpy** — a plain NumPy forward pass (float64) of the same weights on the
   same inputs, for C1 and C2, against the engine's compiled forward pass;
4. **batching** — for a small model, ``jax.vmap`` over all inputs vs
   ``jax.lax.map`` in chunks vs ``jax.lax.map`` one input at a time.

Writes every number to the JSON file and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from infoflow_jax.core.precision import use_float64  # noqa: E402

use_float64()

from infoflow_jax.catalog import catalog  # noqa: E402
from infoflow_jax.verification.estimators import Budget  # noqa: E402
from infoflow_jax.core.model import apply  # noqa: E402
from infoflow_jax.sweep import engine as E  # noqa: E402
from infoflow_jax.core.devices import Placement, device_info  # noqa: E402
from infoflow_jax.sweep.spec import Run, SweepSpec, expand  # noqa: E402


def _block(x):
    return jax.block_until_ready(x)


# ----------------------------------------------------------------------------- 1. engine
def bench_engine(spec: SweepSpec) -> dict:
    out = Path(tempfile.mkdtemp(prefix="sweep_bench_"))
    try:
        t0 = time.perf_counter()
        st = E.run_sweep(spec, out, progress=False)
        wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(out, ignore_errors=True)
    evals = st.input_evaluations
    return {"configs": st.configs_run, "buckets": st.buckets_run, "compilations": st.compilations,
            "compile_seconds_summed": st.compile_seconds, "eval_seconds": st.eval_seconds,
            "build_seconds": st.build_seconds, "wall_seconds": wall, "input_config_evaluations": evals,
            "throughput_wall": evals / wall, "throughput_eval_only": evals / max(st.eval_seconds, 1e-9)}


# ----------------------------------------------------------------------------- 2. per-config jit
def bench_per_config(spec: SweepSpec) -> dict:
    registry = catalog()
    placement = Placement()
    configs = expand(spec, registry=registry)
    compile_s = eval_s = build_s = 0.0
    evals = 0
    t_wall = time.perf_counter()
    for c in configs:
        t0 = time.perf_counter()
        p = E.prepare(c, registry[c.name])
        build_s += time.perf_counter() - t0
        (bucket,) = E.make_buckets([p], "pow2", placement.devices[0].platform)
        bucket.batch, bucket.chunk = placement.count, c.budget.chunk
        bucket.names = E.candidate_names(bucket.domain, bucket.T, bucket.d, bucket.budget, bucket.probe_names)
        t0 = time.perf_counter()
        compiled, args = E._compile(bucket, [p], placement, E._TraceCounter())  # a fresh jax.jit every time
        compile_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        _block(compiled(*args))
        eval_s += time.perf_counter() - t0
        evals += E.evaluations_per_config(bucket.domain, bucket.T, bucket.d, bucket.budget, bucket.probe_sizes)
    wall = time.perf_counter() - t_wall
    return {"configs": len(configs), "compilations": len(configs), "compile_seconds": compile_s,
            "eval_seconds": eval_s, "build_seconds": build_s, "wall_seconds": wall,
            "input_config_evaluations": evals, "throughput_wall": evals / wall,
            "throughput_eval_only": evals / max(eval_s, 1e-9)}


# ----------------------------------------------------------------------------- 3. numpy reference
def numpy_forward(model, X: np.ndarray) -> np.ndarray:
    """The TF(L, h, E, W) forward pass of ``model`` in NumPy (float64), batched over X (B, T, d)."""
    from infoflow_jax.core.model import positional_features

    cfg = model.cfg
    B, T, _ = X.shape
    em = model.embed
    phi = np.asarray(positional_features(cfg.positional, T, cfg.max_T, cfg.n_freq, jnp.float64))
    tokens = X @ np.asarray(em.A[...]) + np.asarray(em.a[...]) + phi @ np.asarray(em.P[...])
    H = np.concatenate([np.broadcast_to(np.asarray(em.c[...]), (B, 1, cfg.E)), tokens], axis=1)
    for i, blk in enumerate(model.blocks):
        last = i == cfg.L - 1
        Q = H[:, :1] if last else H
        Wq, Wk, Wv, Wo = (np.asarray(w[...]) for w in (blk.attn.Wq, blk.attn.Wk, blk.attn.Wv, blk.attn.Wo))
        q = np.einsum("bpe,hek->bhpk", Q, Wq)
        k = np.einsum("bse,hek->bhsk", H[:, 1:], Wk)
        v = np.einsum("bse,hev->bhsv", H[:, 1:], Wv)
        s = np.einsum("bhpk,bhsk->bhps", q, k)
        s = np.exp(s - s.max(-1, keepdims=True))
        a = s / s.sum(-1, keepdims=True)
        Hq = Q + np.einsum("bhps,bhsv,hve->bpe", a, v, Wo)
        z = Hq
        kinds = blk.ffn.kinds
        for j, kind in enumerate(kinds):
            W, b = np.asarray(blk.ffn.W[j][...]), np.asarray(blk.ffn.b[j][...])
            if kind == "dense":
                z = z @ W + b
            else:
                G, gi, go = W.shape
                z = (np.einsum("bpgi,gio->bpgo", z.reshape(z.shape[:-1] + (G, gi)), W) + b).reshape(
                    z.shape[:-1] + (G * go,))
            if j < len(kinds) - 1:
                z = np.maximum(z, 0.0)
        H = Hq + z
    return H[:, 0] @ np.asarray(model.w[...]) + float(np.asarray(model.b[...]))


def bench_numpy(n_inputs: int, T: int) -> list[dict]:
    registry = catalog()
    rows = []
    X = np.asarray(jax.random.uniform(jax.random.PRNGKey(0), (n_inputs, T, 1)))
    for name, eps in (("C1", 1e-2), ("C2", 1e-2)):
        built = registry[name].build(T, eps)
        g, s = built.split()
        f = jax.jit(jax.vmap(lambda x: apply(g, s, x)))
        y_jax = np.asarray(_block(f(X)))
        reps = 3
        t0 = time.perf_counter()
        for _ in range(reps):
            _block(f(X))
        t_jax = (time.perf_counter() - t0) / reps
        numpy_forward(built.compiled.model, X[:8])  # warm up
        t0 = time.perf_counter()
        y_np = numpy_forward(built.compiled.model, X)
        t_np = time.perf_counter() - t0
        rows.append({"construction": name, "T": T, "eps": eps, "inputs": n_inputs,
                     "max_abs_diff": float(np.max(np.abs(y_np - y_jax))),
                     "jax_inputs_per_s": n_inputs / t_jax, "numpy_inputs_per_s": n_inputs / t_np,
                     "speedup_jax_over_numpy": t_np / t_jax})
    return rows


# ----------------------------------------------------------------------------- 4. batching
def bench_batching(n_inputs: int, T: int, chunk: int) -> dict:
    registry = catalog()
    built = registry["C1"].build(T, 1e-1)
    g, s = built.split()
    X = jax.random.uniform(jax.random.PRNGKey(1), (n_inputs, T, 1))
    one = lambda x: apply(g, s, x)
    variants = {
        "vmap": jax.jit(jax.vmap(one)),
        f"lax.map chunk={chunk}": jax.jit(lambda X: jax.lax.map(one, X, batch_size=chunk)),
        "lax.map chunk=1": jax.jit(lambda X: jax.lax.map(one, X)),
    }
    out = {}
    for label, f in variants.items():
        t0 = time.perf_counter()
        _block(f(X))
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(3):
            _block(f(X))
        dt = (time.perf_counter() - t0) / 3
        out[label] = {"compile_plus_first_s": first, "seconds": dt, "inputs_per_s": n_inputs / dt}
    return out


# ----------------------------------------------------------------------------- main
def _spec(quick: bool) -> SweepSpec:
    eps = (1e-1, 3e-2, 1e-2)
    budget = Budget(samples=256 if quick else 512, starts=8, steps=60 if quick else 120, grid_points=81)
    runs = (Run(name="C1", T=(16,), eps=eps, mutants=("knot-dropped",)),
            Run(name="C2", T=(16,), eps=eps, mutants=("psi-knot-dropped",)))
    return SweepSpec(runs=runs, name="throughput", budget=budget, bucket="auto", max_batch=8)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller budgets (smoke run)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sweep_throughput.json"))
    args = ap.parse_args(argv)
    spec = _spec(args.quick)
    n_in = 2048 if args.quick else 8192
    result = {
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "loadavg_start": os.getloadavg() if hasattr(os, "getloadavg") else None, **device_info()},
        "jax": jax.__version__, "quick": args.quick, "spec": spec.to_dict(),
    }
    print("1/4 engine ...", flush=True)
    result["engine"] = bench_engine(spec)
    print("2/4 per-config jit ...", flush=True)
    result["per_config_jit"] = bench_per_config(spec)
    print("3/4 numpy ...", flush=True)
    result["numpy"] = bench_numpy(n_in, 16)
    print("4/4 batching ...", flush=True)
    result["batching"] = bench_batching(n_in, 16, 256)
    result["machine"]["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    e, a = result["engine"], result["per_config_jit"]
    result["ratios"] = {"wall_per_config_over_engine": a["wall_seconds"] / e["wall_seconds"],
                        "compilations_per_config_over_engine": a["compilations"] / max(e["compilations"], 1),
                        "eval_throughput_engine_over_per_config": e["throughput_eval_only"] / a["throughput_eval_only"]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")

    print(f"\ndevice: {result['machine']['device_count']} × {', '.join(result['machine']['device_kinds'])}; "
          f"load average {result['machine']['loadavg_start']}")
    print(f"{'method':28s} {'configs':>7s} {'compiles':>8s} {'compile s':>9s} {'eval s':>8s} {'wall s':>8s} "
          f"{'evals/s (wall)':>14s} {'evals/s (eval)':>14s}")
    for label, r in (("engine (buckets, vmap)", e), ("per-config fresh jit", a)):
        comp = r.get("compile_seconds_summed", r.get("compile_seconds"))
        print(f"{label:28s} {r['configs']:7d} {r['compilations']:8d} {comp:9.1f} {r['eval_seconds']:8.2f} "
              f"{r['wall_seconds']:8.1f} {r['throughput_wall']:14.3g} {r['throughput_eval_only']:14.3g}")
    print(f"wall: per-config / engine = {result['ratios']['wall_per_config_over_engine']:.2f}×")
    print(f"\n{'forward pass':28s} {'inputs/s jax':>13s} {'inputs/s numpy':>15s} {'jax/numpy':>10s} {'max|diff|':>10s}")
    for r in result["numpy"]:
        print(f"{r['construction'] + ' T=16 eps=1e-2':28s} {r['jax_inputs_per_s']:13.3g} {r['numpy_inputs_per_s']:15.3g} "
              f"{r['speedup_jax_over_numpy']:10.2f} {r['max_abs_diff']:10.2g}")
    print(f"\n{'batching (C1, T=16)':28s} {'inputs/s':>10s} {'compile+first s':>16s}")
    for label, r in result["batching"].items():
        print(f"{label:28s} {r['inputs_per_s']:10.3g} {r['compile_plus_first_s']:16.2f}")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
