"""The verification engine: build, estimate the sup error, judge, and make a record.

Pass criterion (THEORY §6) for a construction at target ε:

    err_estimate ≤ bound ≤ ε

A mutant keeps the original claim (its bound) and is expected to *fail*.
Verification runs in float64.
"""

from __future__ import annotations

import time

import jax
import numpy as np

from infoflow_jax.verification.construction import ConstructionSpec, error_function
from infoflow_jax.verification.estimators import Budget, estimate_sup_error
from infoflow_jax.core.precision import require_float64, within_bound

RECORD_KEYS = ("name", "task", "T", "k", "eps", "beta", "params_total", "params_nonzero", "params_theorem",
               "bound", "err_estimate", "estimator", "passed", "worst_input", "mutant", "dtype", "seconds")


def passes(err_estimate: float, bound: float, eps: float) -> bool:
    """THEORY §6: estimate ≤ claimed bound ≤ ε (the first up to float64 rounding,
    :func:`~infoflow_jax.core.precision.within_bound`, since some bounds are attained exactly)."""
    return bool(np.isfinite(err_estimate) and within_bound(err_estimate, bound) and bound <= eps)


def verify_construction(spec: ConstructionSpec, *, T: int, eps: float, k: int | None = None,
                        mutant: str | None = None, seed: int = 0, budget: Budget = Budget(),
                        beta: float | None = None, **options) -> dict:
    """Build ``spec`` at (T, ε, k), estimate its sup error, return a result record."""
    require_float64("verification")
    t0 = time.perf_counter()
    kw = dict(options)
    if spec.uses_k:
        kw["k"] = k
    built = spec.build(T, eps, mutant=mutant, beta=beta, **kw)
    if mutant is None and beta is None and not built.bound <= eps:
        # the construction chose its own β, N: its claim must be ≤ ε by construction
        raise AssertionError(f"{spec.name}: claimed bound {built.bound:.3e} exceeds eps = {eps:.3e}")
    graphdef, state = built.split()
    err = error_function(graphdef, built.task)
    probes = getattr(built, "probes", None)
    est = estimate_sup_error(err, state, domain=built.task.domain, T=T, d=built.task.d,
                             key=jax.random.PRNGKey(seed), budget=budget, extra_inputs=probes)
    record = construction_record(spec, built, est, T=T, eps=eps, mutant=mutant, seed=seed)
    record["seconds"] = time.perf_counter() - t0
    return record


def construction_record(spec: ConstructionSpec, built, est, *, T: int, eps: float, mutant: str | None,
                        seed: int, dtype: str = "float64") -> dict:
    """The result record of one construction configuration (every key but ``seconds``).

    Shared by :func:`verify_construction` and the sweep engine (``infoflow_jax.sweep``),
    so that both write records with identical keys.
    """
    params = built.params
    return {
        "name": spec.name,
        "task": built.task.id,
        "T": T,
        "d": built.task.d,
        "L": built.compiled.model.cfg.L,
        "h": max(l.heads for l in built.compiled.model.cfg.layers),
        **built.task.params(),
        "eps": eps,
        "beta": [None if b is None else float(b) for b in built.betas],
        **params.as_record(),
        "bound": float(built.bound),
        "bound_terms": {k_: float(v) for k_, v in built.bound_terms.items()},
        "choices": built.choices,
        "err_estimate": est.value,
        "estimator": est.estimator,
        "estimates": est.per_estimator,
        "passed": passes(est.value, built.bound, eps),
        "worst_input": np.asarray(est.worst_input).tolist(),
        "mutant": mutant,
        "measured": True,
        "dtype": dtype,
        "seed": seed,
    }


def expected_outcome(record: dict) -> bool:
    """A row is as expected when a real construction passes and a mutant fails."""
    return record["passed"] if record.get("mutant") is None else not record["passed"]
