"""Timing, FLOP counts and the machine's matmul peak, shared by the benchmarks.

* :func:`timed` — wall seconds of a call that blocks until its result is ready.
* :func:`repeat_times` — min and median of ``repeats`` calls after one warm-up call: on a
  shared machine the minimum is the least disturbed run, the median says how disturbed.
* :func:`compile_ahead` — ``jit(f).lower(*args).compile()`` timed: the compile half of the
  compile/evaluate split.
* :func:`xla_flops` — FLOPs of one call of a compiled program from XLA's cost analysis
  (``compiled.cost_analysis()['flops']``: a dot of (m×k)·(k×n) counts 2·m·k·n, an
  elementwise op one per element; transcendental functions are counted apart and are not
  included). XLA counts a loop's body once, whatever its trip count, so count programs
  without loops (``jax.vmap``, not ``jax.lax.map``).
* :func:`matmul_peak` / :func:`numpy_matmul_peak` — the machine's peak in GFLOP/s for a
  dtype, measured: the best rate of a square matmul, 2·n³ FLOPs, over the sizes given.
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np


def block(x):
    return jax.block_until_ready(x)


def timed(fn, *args):
    """(result, wall seconds) of ``fn(*args)``, blocked until ready."""
    t0 = time.perf_counter()
    out = block(fn(*args))
    return out, time.perf_counter() - t0


def repeat_times(fn, *args, repeats: int) -> dict:
    """One warm-up call, then ``repeats`` timed calls: ``{"min_s", "median_s", "repeats"}``."""
    block(fn(*args))
    times = [timed(fn, *args)[1] for _ in range(max(1, repeats))]
    return {"min_s": min(times), "median_s": statistics.median(times), "repeats": len(times)}


def compile_ahead(fn, *args):
    """(compiled, seconds to trace, lower and compile) of ``jax.jit(fn)`` for ``args``."""
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - t0


def xla_flops(compiled) -> float | None:
    """FLOPs of one call of ``compiled`` by XLA's cost analysis (None when the backend gives none)."""
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):  # older JAX: one dict per computation
        cost = cost[0] if cost else None
    if not cost or "flops" not in cost:
        return None
    return float(cost["flops"])


def _best_rate(call, n: int, repeats: int) -> float:
    return 2.0 * n ** 3 / repeat_times(call, repeats=repeats)["min_s"] / 1e9


def matmul_peak(sizes, dtype, device, repeats: int = 5) -> dict:
    """Best GFLOP/s of a jitted n×n matmul in ``dtype`` on ``device`` over ``sizes``."""
    rates = {}
    for n in sizes:
        a = jax.device_put(jax.random.normal(jax.random.PRNGKey(n), (n, n), dtype), device)
        mm = jax.jit(lambda x: x @ x)
        rates[str(n)] = _best_rate(lambda: mm(a), n, repeats)
    return {"gflops": max(rates.values()), "by_size": rates, "dtype": jnp.dtype(dtype).name,
            "what": "jax.jit(x @ x), best of repeats"}


def numpy_matmul_peak(sizes, repeats: int = 5) -> dict:
    """Best GFLOP/s of a NumPy float64 n×n matmul (its BLAS, all its threads) over ``sizes``."""
    rates = {}
    for n in sizes:
        a = np.random.default_rng(n).standard_normal((n, n))
        rates[str(n)] = _best_rate(lambda: a @ a, n, repeats)
    return {"gflops": max(rates.values()), "by_size": rates, "dtype": "float64",
            "what": "numpy x @ x, best of repeats"}
