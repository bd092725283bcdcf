"""Lemma checks as verification targets: ``L1-softmax-max`` and ``L2-margin``.

L1-softmax-max: the adversarial estimate of sup_v [max v − Σ softmax(βv)_s v_s]
over v ∈ [0,1]^T must land in [0.99·W(T,β), e_max(T,β)]: below 0.99·W the
search is too weak to be trusted, above e_max the lemma (or the softmax) is wrong.

L2-margin: the estimate of sup ‖softmax(βa) − e_{s*}‖₁ over scores whose top
beats every other by ≥ γ must land in [0.99·A, 2(T−1)e^{−βγ}], where
A = 2(T−1)e^{−βγ}/(1 + (T−1)e^{−βγ}) is attained by "all others exactly γ below".

Mutant ``temperature-off`` evaluates the softmax at β/10 while keeping the claim;
it must fail.
"""

from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from infoflow_jax.verification.construction import LemmaCheckSpec, register
from infoflow_jax.core.domains import Cube, Margin
from infoflow_jax.core.errors import check_choice, check_int_range, check_positive
from infoflow_jax.verification.estimators import Budget, estimate_sup_error
from infoflow_jax.core.lemmas import e_max, l1_attained, margin_weight_defect
from infoflow_jax.core.precision import require_float64, within_bound

LEMMA_MUTANTS = {"temperature-off": "softmax evaluated at β/10 against the bound for β"}
L2_GAMMA = 0.1


def softmax_max_gap(beta, X):
    """max v − Σ_s softmax(βv)_s v_s for v = X[:, 0]."""
    v = X[:, 0]
    return jnp.max(v) - jnp.sum(jax.nn.softmax(beta * v) * v)


def margin_defect(beta, X):
    """‖softmax(βa) − e_{s*}‖₁ = 2·Σ_{s≠s*} softmax_s (no cancellation near 1)."""
    a = X[:, 0]
    p = jax.nn.softmax(beta * a)
    return 2.0 * jnp.sum(jnp.where(jnp.arange(a.shape[0]) == jnp.argmax(a), 0.0, p))


def _record(name, T, beta, bound, attained, est, mutant, t0, extra=None):
    passed = bool(0.99 * attained <= est.value and within_bound(est.value, bound))
    return {
        "name": name, "task": None, "T": T, "d": 1, "L": None, "h": None, "k": None, "r": None, "D": None,
        "gamma": None, "eps": None, "beta": [float(beta)],
        "params_total": None, "params_nonzero": None, "params_theorem": None,
        "bound": float(bound), "attained": float(attained), "err_estimate": float(est.value),
        "estimator": est.estimator, "estimates": est.per_estimator, "passed": passed,
        "worst_input": np.asarray(est.worst_input).tolist(), "mutant": mutant, "measured": True,
        "dtype": "float64", **(extra or {}), "seconds": time.perf_counter() - t0,
    }


def _estimate(check: str, gap_fn, domain, *, T: int, beta: float, mutant: str | None, seed: int, budget: Budget):
    """Validate, then estimate sup of ``gap_fn(β_used, X)`` over ``domain`` (β_used = β/10 for the mutant)."""
    require_float64(check)
    check_int_range("T", T, 2)
    check_positive("beta", beta)
    if mutant is not None:
        check_choice("mutant", mutant, LEMMA_MUTANTS)
    used = beta / 10 if mutant == "temperature-off" else beta
    return estimate_sup_error(gap_fn, jnp.asarray(used), domain=domain, T=T, d=1,
                              key=jax.random.PRNGKey(seed), budget=budget)


def run_l1(*, T: int, beta: float, mutant: str | None = None, seed: int = 0, budget: Budget = Budget()) -> dict:
    t0 = time.perf_counter()
    est = _estimate("L1-softmax-max", softmax_max_gap, Cube(), T=T, beta=beta, mutant=mutant, seed=seed,
                    budget=budget)
    W, _ = l1_attained(T, beta)
    return _record("L1-softmax-max", T, beta, e_max(T, beta), W, est, mutant, t0)


def run_l2(*, T: int, beta: float, mutant: str | None = None, seed: int = 0, budget: Budget = Budget(),
           gamma: float = L2_GAMMA) -> dict:
    t0 = time.perf_counter()
    est = _estimate("L2-margin", margin_defect, Margin(gamma, 2), T=T, beta=beta, mutant=mutant, seed=seed,
                    budget=budget)
    q = (T - 1) * math.exp(-beta * gamma)
    return _record("L2-margin", T, beta, margin_weight_defect(T, beta, gamma), 2 * q / (1 + q), est, mutant, t0,
                   {"gamma": gamma})


L1_SPEC = register(LemmaCheckSpec(name="L1-softmax-max", summary="L1: softmax average vs max, in [0.99·W, e_max]",
                                  run=run_l1))
# β = 10 would make L2's bound 2(T−1)e^{−1} ≥ 2 = the trivial bound on an ℓ1 distance of
# distributions: vacuous, and no mutant could fail it. β ≥ 100 keeps it informative.
L2_SPEC = register(LemmaCheckSpec(name="L2-margin", summary="L2: softmax weight defect under margin γ = 0.1",
                                  run=run_l2, default_beta=(100.0, 1e3)))

