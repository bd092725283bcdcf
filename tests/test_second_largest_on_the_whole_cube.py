"""C4: two-layer second largest on the whole cube (one-hot positions)."""

import jax.numpy as jnp
import numpy as np
import pytest

from infoflow_jax.verification.mutants import LOCALIZED_MUTANTS

from infoflow_jax.catalog import lookup
from infoflow_jax.verification.estimators import Budget
from infoflow_jax.verification.verify import verify_construction

SMALL = Budget(samples=128, grid_points=256, starts=4, steps=20, chunk=64)


def test_c4_layer1_gives_each_token_the_max_over_the_others():
    built = lookup("C4").build(5, 1e-3)
    X = jnp.array([[0.3], [0.9], [0.9 - 1e-9], [0.1], [0.5]])
    M = np.asarray(built.compiled.read_slot(X, "M", 1))[1:]
    x = np.asarray(X[:, 0])
    others = np.array([np.max(np.delete(x, t)) for t in range(5)])
    assert np.max(np.abs(M - others)) < 1e-3


def test_c4_bound_is_the_docstring_formula_and_below_eps():
    built = lookup("C4").build(16, 1e-2)
    assert built.bound == pytest.approx(sum(built.bound_terms.values()))
    assert built.bound <= 1e-2
    assert built.choices["B"] > built.betas[0]


@pytest.mark.parametrize("T", [4, 64])
def test_c4_passes_on_cube_with_near_tie_probes(T):
    rec = verify_construction(lookup("C4"), T=T, eps=1e-3, k=2, budget=SMALL)
    assert "near_tie_top2" in rec["estimates"]
    assert rec["passed"], rec


@pytest.mark.slow
def test_c4_passes_at_T256():
    rec = verify_construction(lookup("C4"), T=256, eps=1e-2, k=2,
                              budget=Budget(samples=64, grid_points=0, starts=2, steps=10, chunk=16))
    assert rec["passed"], rec


# the localized mutants are checked at the default budget in tests/test_localized_mutants.py
@pytest.mark.parametrize("mutant", sorted(set(lookup("C4").mutants) - LOCALIZED_MUTANTS))
def test_c4_mutant_is_caught(mutant):
    rec = verify_construction(lookup("C4"), T=4, eps=1e-2, k=2, mutant=mutant, budget=SMALL)
    assert not rec["passed"]
