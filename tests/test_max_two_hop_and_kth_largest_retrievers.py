"""Constructions C1–C3: claims hold, parameter counts follow the theorem, mutants are caught."""

import math

import jax
import numpy as np
import pytest

from infoflow_jax.catalog import lookup
from infoflow_jax.verification.estimators import Budget
from infoflow_jax.infoflow.against import fit_exponent
from infoflow_jax.verification.verify import verify_construction

QUICK = Budget(samples=256, starts=8, steps=60)


def run(name, T, eps, k=None, mutant=None, budget=QUICK):
    return verify_construction(lookup(name), T=T, eps=eps, k=k, mutant=mutant, budget=budget)


@pytest.mark.parametrize("name,k", [("C1", None), ("C2", None), ("C3", 2)])
def test_claimed_bound_is_at_most_eps(name, k):
    for eps in (1e-1, 1e-2, 1e-3, 1e-4):
        built = lookup(name).build(16, eps, **({"k": k} if k else {}))
        assert built.bound <= eps


@pytest.mark.parametrize("name,k,T,eps", [
    ("C1", None, 4, 1e-1), ("C1", None, 64, 1e-2),
    ("C2", None, 4, 1e-1), ("C2", None, 64, 1e-2),
    ("C3", 2, 16, 1e-2), ("C3", 3, 16, 1e-1), ("C3", 4, 16, 1e-2),
])
def test_construction_passes_at_target_eps(name, k, T, eps):
    rec = run(name, T, eps, k)
    assert rec["passed"], rec


def test_c2_theorem_params_do_not_depend_on_T():
    counts = {T: lookup("C2").build(T, 1e-2).param_count.theorem for T in (4, 64, 1024)}
    assert len(set(counts.values())) == 1, counts


@pytest.mark.parametrize("name,k", [("C1", None), ("C2", None), ("C3", 2)])
def test_theorem_params_grow_like_one_over_eps(name, k):
    eps = np.array([1e-1, 1e-2, 1e-3, 1e-4])
    params = [lookup(name).build(16, e, **({"k": k} if k else {})).param_count.theorem for e in eps]
    slope, lo, hi, _ = fit_exponent(1 / eps, np.array(params, float))
    assert abs(slope - 1) <= 0.15 or lo <= 1 <= hi, (slope, lo, hi)


def test_c3_is_exact_on_the_margin_boundary():
    """Inputs with the top k exactly γ apart: the flags must still be exact."""
    from infoflow_jax.core.samplers import sample
    built = lookup("C3").build(32, 1e-2, k=3)
    X = sample("margin_boundary", jax.random.PRNGKey(0), 256, 32, 1, built.task.domain)
    err = np.abs(np.asarray(jax.vmap(built.predict)(X)) - np.asarray(built.task.target(X)))
    assert err.max() <= built.bound


MUTANT_CASES = [(name, k, m) for name, k in (("C1", None), ("C2", None), ("C3", 2))
                for m in lookup(name).mutants]


@pytest.mark.parametrize("name,k,mutant", MUTANT_CASES)
def test_mutant_is_reported_failing(name, k, mutant):
    rec = run(name, 16, 1e-2, k, mutant)
    # the falsifier fails it, or (glue defects whose error stays below the bound) a step or the proof check
    assert not rec["passed"] or rec["step_certified"] is False or rec["proof_checked"] is False, rec
    assert rec["expected"], rec


def test_c3_with_k_4_builds_four_layers():
    assert lookup("C3").build(8, 1e-1, k=4).compiled.model.cfg.L == 4


@pytest.mark.slow
@pytest.mark.parametrize("k", [2, 3, 4])
def test_c3_passes_at_T_256(k):
    assert run("C3", 256, 1e-3, k, budget=Budget())["passed"]


# Memory: layer 1's ψ decoder (N₁ ≈ 16.6/ε units) runs at all T+1 positions, so the
# inputs per vectorised chunk shrink with T. (T = 1024, ε = 1e-4) needs ~1.4 GB and ~1e12
# flops per 1e3 inputs: left out of the suite; params_theorem there is checked above.
SLOW_C2_GRID = [(T, eps) for T in (4, 64, 1024) for eps in (1e-1, 1e-2, 1e-3, 1e-4) if (T, eps) != (1024, 1e-4)]


@pytest.mark.slow
@pytest.mark.parametrize("T,eps", SLOW_C2_GRID)
def test_c2_passes_on_the_acceptance_grid(T, eps):
    chunk = {4: 64, 64: 8, 1024: 1}[T]
    assert run("C2", T, eps, budget=Budget(chunk=chunk))["passed"]
