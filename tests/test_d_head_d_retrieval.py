"""C7: one-layer D-head D-retrieval (T6)."""

import jax.numpy as jnp
import pytest

from infoflow_jax.verification.mutants import LOCALIZED_MUTANTS

from infoflow_jax.catalog import lookup
from infoflow_jax.core.errors import InputError
from infoflow_jax.verification.estimators import Budget
from infoflow_jax.core.tasks import DRetrieval, LinearFeature
from infoflow_jax.verification.verify import verify_construction

SMALL = Budget(samples=128, grid_points=256, starts=0, steps=0, chunk=64)  # samplers + grid; `infoflow verify` runs the ascent


def test_t6_target_is_G_of_the_D_maxima():
    task = DRetrieval(3, d=2, D=2)
    X = jnp.array([[0.1, 0.9], [0.7, 0.2], [0.3, 0.4]])
    assert jnp.allclose(task.retrieved(X), jnp.array([0.7, 0.9]))
    assert task.hyperparams() == {"k": None, "r": None, "D": 2, "gamma": None}


def test_linear_feature_rejects_weights_leaving_the_unit_interval():
    with pytest.raises(InputError):
        LinearFeature((0.8, 0.8))


def test_c7_uses_D_heads_and_params_independent_of_T():
    a, b = lookup("C7").build(4, 0.1, D=3, d=3), lookup("C7").build(64, 0.1, D=3, d=3)
    assert a.compiled.model.cfg.layers[0].heads == 3
    assert a.param_count.theorem == b.param_count.theorem


@pytest.mark.parametrize("T,D,d", [(4, 2, 2), (16, 3, 2)])
def test_c7_passes(T, D, d):
    rec = verify_construction(lookup("C7"), T=T, eps=0.1, budget=SMALL, D=D, d=d)
    assert rec["passed"] and rec["h"] == D and rec["D"] == D, rec


# the localized mutants are checked at the default budget in tests/test_localized_mutants.py
@pytest.mark.parametrize("mutant", sorted(set(lookup("C7").mutants) - LOCALIZED_MUTANTS))
def test_c7_mutant_is_caught(mutant):
    rec = verify_construction(lookup("C7"), T=4, eps=0.1, mutant=mutant, budget=SMALL)
    assert not rec["passed"]
