"""C5: the one-layer memorizer (uniform attention, one-hot product embedding, L4 decoder)."""

import jax
import numpy as np
import pytest

from infoflow_jax.verification.mutants import LOCALIZED_MUTANTS

from constructions.c5_memorizer import formula_params
from infoflow_jax.catalog import lookup
from infoflow_jax.verification.estimators import Budget
from infoflow_jax.core.functions import IDENTITY
from infoflow_jax.infoflow.against import fit_exponent
from infoflow_jax.core.model import TFConfig, Transformer
from infoflow_jax.core.params import count_params
from infoflow_jax.verification.verify import verify_construction

SMALL = Budget(samples=128, grid_points=256, starts=0, steps=0, chunk=64)  # samplers + grid; `infoflow verify` runs the ascent


def test_c5_cls_holds_the_whole_sequence():
    built = lookup("C5").build(3, 0.3)
    X = jax.random.uniform(jax.random.PRNGKey(1), (3, 1))
    z = [float(built.compiled.read_slot(X, f"z{j}", 1)[0]) for j in (1, 2, 3)]
    assert np.allclose(z, np.asarray(X[:, 0]), atol=1e-14)


def test_position_input_is_off_by_default_and_adds_no_parameters():
    cfg = TFConfig.uniform(L=1, h=1, E=4, W=3, positional="onehot", max_T=5)
    assert not cfg.position_input
    assert not hasattr(Transformer(cfg).embed, "As")
    c1 = lookup("C1").build(4, 0.1)
    assert not c1.compiled.model.cfg.position_input
    on = TFConfig(d=1, E=4, layers=cfg.layers, positional="onehot", max_T=5, position_input=True)
    assert count_params(Transformer(on)).total == count_params(Transformer(cfg)).total + 5 * 1 * 4  # A_s only


@pytest.mark.parametrize("target", ["max", "second"])
def test_c5_passes(target):
    rec = verify_construction(lookup("C5"), T=2, eps=0.1, budget=SMALL, target=target)
    assert rec["passed"], rec


# the localized mutants are checked at the default budget in tests/test_localized_mutants.py
@pytest.mark.parametrize("mutant", sorted(set(lookup("C5").mutants) - LOCALIZED_MUTANTS))
def test_c5_mutant_is_caught(mutant):
    rec = verify_construction(lookup("C5"), T=2, eps=0.1, mutant=mutant, budget=SMALL)
    assert not rec["passed"]


def test_c5_formula_matches_built_dense_decoder():
    for T, eps in ((1, 0.05), (2, 0.1), (3, 0.2)):
        built = lookup("C5").build(T, eps, F=IDENTITY)
        assert built.param_count.theorem <= formula_params(T, eps, F=IDENTITY)
        assert formula_params(T, eps, F=IDENTITY) <= 2.0 * built.param_count.theorem  # dense vs nonzero


@pytest.mark.parametrize("T,eps", [(1, (0.02, 0.01, 0.005, 0.003, 0.002)), (2, (0.05, 0.03, 0.02, 0.01, 0.005))])
def test_c5_exponent_is_T(T, eps):
    ps = [lookup("C5").build(T, e, F=IDENTITY).param_count.theorem for e in eps]
    slope, lo, hi, n = fit_exponent([1 / e for e in eps], ps)
    assert abs(slope - T) <= 0.15 * T


@pytest.mark.slow
def test_c5_exponent_is_3_at_T3():
    eps = (0.1, 0.06, 0.04, 0.025, 0.016, 0.01)
    ps = [lookup("C5").build(3, e, F=IDENTITY).param_count.theorem for e in eps]
    slope, *_ = fit_exponent([1 / e for e in eps], ps)
    assert abs(slope - 3) <= 0.45
