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

import time

import jax
import jax.numpy as jnp

from infoflow_jax.verification.construction import LemmaCheckSpec
from infoflow_jax.verification.mutants import TEMPERATURE_OFF
from infoflow_jax.core.domains import Cube, Margin
from infoflow_jax.core.errors import check_choice, check_int_range, check_positive
from infoflow_jax.verification.estimators import DEFAULT_BUDGET, Budget, estimate_sup_error
from infoflow_jax.verification.records import Record, lemma_record
from infoflow_jax.core.lemmas import e_max, l1_attained, margin_weight_defect, margin_weight_defect_attained
from infoflow_jax.core.precision import require_float64

LEMMA_MUTANTS = {"temperature-off": TEMPERATURE_OFF.description}
L2_GAMMA = 0.1


def _all_tokens(X, valid):
    return jnp.ones(X.shape[0], bool) if valid is None else valid


def softmax_max_gap(beta, X, valid=None):
    """max v − Σ_s softmax(βv)_s v_s for v = X[:, 0] over the tokens where ``valid`` (default all;
    padded tokens get score −∞, i.e. weight exactly 0)."""
    v, valid = X[:, 0], _all_tokens(X, valid)
    p = jax.nn.softmax(jnp.where(valid, beta * v, -jnp.inf))
    return jnp.max(jnp.where(valid, v, -jnp.inf)) - jnp.sum(p * v)


def margin_defect(beta, X, valid=None):
    """‖softmax(βa) − e_{s*}‖₁ = 2·Σ_{s≠s*} softmax_s (no cancellation near 1); over the tokens
    where ``valid`` (default all)."""
    a, valid = X[:, 0], _all_tokens(X, valid)
    p = jax.nn.softmax(jnp.where(valid, beta * a, -jnp.inf))
    top = jnp.argmax(jnp.where(valid, a, -jnp.inf))
    return 2.0 * jnp.sum(jnp.where(jnp.arange(a.shape[0]) == top, 0.0, p))


def claim(name: str, T: int, beta: float, gamma: float = L2_GAMMA) -> tuple[float, float]:
    """(the lemma's bound, the value known to be attained) for check ``name`` at (T, β)."""
    if name == "L1-softmax-max":
        return e_max(T, beta), l1_attained(T, beta)[0]
    return margin_weight_defect(T, beta, gamma), margin_weight_defect_attained(T, beta, gamma)


GAP_FUNCTIONS = {"L1-softmax-max": softmax_max_gap, "L2-margin": margin_defect}


def domain_of(name: str, gamma: float = L2_GAMMA):
    return Cube() if name == "L1-softmax-max" else Margin(gamma, 2)


def beta_used(beta: float, mutant: str | None) -> float:
    """The β the softmax is evaluated at: β, or β/10 for the ``temperature-off`` mutant."""
    return TEMPERATURE_OFF(beta) if mutant == "temperature-off" else beta


def run_check(name: str, *, T: int, beta: float, mutant: str | None = None, seed: int = 0,
              budget: Budget = DEFAULT_BUDGET, gamma: float = L2_GAMMA) -> Record:
    """Validate, estimate sup of the lemma's gap over its domain, and judge it."""
    require_float64(name)
    check_int_range("T", T, 2)
    check_positive("beta", beta)
    if mutant is not None:
        check_choice("mutant", mutant, LEMMA_MUTANTS)
    t0 = time.perf_counter()
    est = estimate_sup_error(GAP_FUNCTIONS[name], jnp.asarray(beta_used(beta, mutant)), domain=domain_of(name, gamma),
                             T=T, d=1, seed=seed, budget=budget)
    rec = check_record(name, T=T, beta=beta, est=est, mutant=mutant, seed=seed, gamma=gamma)
    rec.seconds = time.perf_counter() - t0
    return rec


def check_record(name: str, *, T: int, beta: float, est, mutant: str | None = None, seed: int = 0,
                 dtype: str = "float64", gamma: float = L2_GAMMA) -> Record:
    """The record of check ``name`` at (T, β) for the estimate ``est``, judged against the lemma's
    claim: :func:`run_check`'s and the sweep engine's (seconds set by the caller)."""
    bound, attained = claim(name, T, beta, gamma)
    return lemma_record(name, T=T, beta=beta, bound=bound, attained=attained, est=est, mutant=mutant, seed=seed,
                        dtype=dtype, gamma=None if name == "L1-softmax-max" else gamma)


def run_l1(*, T: int, beta: float, mutant: str | None = None, seed: int = 0, budget: Budget = DEFAULT_BUDGET) -> Record:
    return run_check("L1-softmax-max", T=T, beta=beta, mutant=mutant, seed=seed, budget=budget)


def run_l2(*, T: int, beta: float, mutant: str | None = None, seed: int = 0, budget: Budget = DEFAULT_BUDGET,
           gamma: float = L2_GAMMA) -> Record:
    return run_check("L2-margin", T=T, beta=beta, mutant=mutant, seed=seed, budget=budget, gamma=gamma)


L1_SPEC = LemmaCheckSpec(name="L1-softmax-max", summary="L1: softmax average vs max, in [0.99·W, e_max]",
                         run=run_l1, mutants=LEMMA_MUTANTS)
# β = 10 would make L2's bound 2(T−1)e^{−1} ≥ 2 = the trivial bound on an ℓ1 distance of
# distributions: vacuous, and no mutant could fail it. β ≥ 100 keeps it informative.
L2_SPEC = LemmaCheckSpec(name="L2-margin", summary="L2: softmax weight defect under margin γ = 0.1",
                         run=run_l2, mutants=LEMMA_MUTANTS, default_beta=(100.0, 1e3))
LEMMA_CHECKS = (L1_SPEC, L2_SPEC)

