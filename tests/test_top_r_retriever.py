"""C6: r-layer top-r retriever, decoupled (T5) and coupled (T4) decode; tasks T4, T5."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infoflow_jax.verification.mutants import LOCALIZED_MUTANTS

from infoflow_jax.catalog import lookup
from infoflow_jax.verification.estimators import Budget
from infoflow_jax.infoflow.against import fit_exponent
from infoflow_jax.core.tasks import CoupledG, CoupledTopR, DecoupledTopR
from infoflow_jax.verification.verify import verify_construction

SMALL = Budget(samples=128, grid_points=256, starts=0, steps=0, chunk=64)  # samplers + grid; `infoflow verify` runs the ascent


@pytest.mark.parametrize("r", [1, 2, 3])
def test_coupled_G_is_2_lipschitz_in_sup_norm(r):
    G = CoupledG(r)
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(r), 3)
    u = jax.random.uniform(k1, (20000, r))
    v = jnp.clip(u + 1e-3 * jax.random.uniform(k2, (20000, r), minval=-1, maxval=1), 0, 1)
    ratio = jnp.abs(G(u) - G(v)) / jnp.max(jnp.abs(u - v), axis=-1)
    assert float(jnp.max(ratio)) <= G.lipschitz


def test_t4_t5_params_and_domain():
    t4, t5 = CoupledTopR(6, r=3, gamma=0.1), DecoupledTopR(6, r=2, gamma=0.2)
    assert t4.hyperparams() == {"k": None, "r": 3, "D": None, "gamma": 0.1}
    assert t5.hyperparams()["r"] == 2 and t5.domain.k == 2 and t5.domain.gamma == 0.2


def test_c6_cls_holds_the_top_r():
    built = lookup("C6-coupled").build(6, 0.3, k=3)
    X = jnp.array([[0.2], [0.95], [0.1], [0.6], [0.3], [0.05]])
    got = [float(built.compiled.read_slot(X, s, l)[0]) for s, l in (("m1", 1), ("m2", 2), ("z", 3))]
    assert np.allclose(got, [0.95, 0.6, 0.3], atol=0.3 / 4 / 2)


@pytest.mark.parametrize("name", ["C6-decoupled", "C6-coupled"])
def test_c6_passes_at_r2(name):
    rec = verify_construction(lookup(name), T=8, eps=0.1, k=2, budget=SMALL)
    assert rec["passed"] and rec["r"] == 2 and rec["L"] == 2, rec


# the localized mutants are checked at the default budget in tests/test_localized_mutants.py
@pytest.mark.parametrize("name,mutant", [(n, m) for n in ("C6-decoupled", "C6-coupled")
                                         for m in sorted(set(lookup(n).mutants) - LOCALIZED_MUTANTS)])
def test_c6_mutant_is_caught(name, mutant):
    eps = lookup(name).default_eps[0]
    rec = verify_construction(lookup(name), T=8, eps=eps, k=2, mutant=mutant, budget=SMALL)
    assert not rec["passed"]


def _slope(name, r, eps):
    ps = [lookup(name).build(8, e, k=r).param_count.theorem for e in eps]
    return fit_exponent([1 / e for e in eps], ps)[0]


@pytest.mark.parametrize("r", [1, 2, 3])
def test_c6_decoupled_exponent_is_1(r):
    assert abs(_slope("C6-decoupled", r, (0.1, 0.03, 0.01, 0.003, 0.001)) - 1) <= 0.15


@pytest.mark.parametrize("r,eps", [(1, (0.1, 0.03, 0.01, 0.003, 0.001)), (2, (0.1, 0.05, 0.03, 0.02, 0.01))])
def test_c6_coupled_exponent_is_r(r, eps):
    assert abs(_slope("C6-coupled", r, eps) - r) <= 0.15 * r


@pytest.mark.slow
def test_c6_coupled_exponent_is_3_at_r3():
    assert abs(_slope("C6-coupled", 3, (0.15, 0.1, 0.07, 0.05, 0.03)) - 3) <= 0.45
