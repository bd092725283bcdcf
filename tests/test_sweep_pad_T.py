"""T padding: one program serves several T; padded results are the unpadded ones."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infoflow_jax.core.precision import use_float64

use_float64()

from infoflow_jax.catalog import catalog  # noqa: E402
from infoflow_jax.core.domains import Cube, Margin, TopSetMargin  # noqa: E402
from infoflow_jax.core.model import apply  # noqa: E402
from infoflow_jax.sweep import buckets  # noqa: E402
from infoflow_jax.sweep.engine import run_sweep  # noqa: E402
from infoflow_jax.sweep.spec import parse_spec  # noqa: E402
from infoflow_jax.verification.construction import error_function  # noqa: E402
from infoflow_jax.verification.padding import (PaddedDomain, fillers, padded_error_function,  # noqa: E402
                                               T_paddable, with_mask)

REG = catalog()
T_PAD = 16


def _inputs(T, n=200, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, T, 1))


@pytest.mark.parametrize("name, T, kw", [("C1", 4, {}), ("C2", 3, {}), ("C3", 4, {"k": 3}), ("C8", 5, {"k": 2})])
def test_padded_forward_equals_the_unpadded_one(name, T, kw):
    built = REG[name].build(T, 1e-2, **kw)
    g, s = built.split()
    X = _inputs(T)
    valid = jnp.arange(T_PAD) < T
    ref = jax.vmap(lambda x: apply(g, s, x))(jnp.asarray(X))
    got = jax.vmap(lambda x: apply(g, s, x, valid))(jnp.asarray(with_mask(X, T_PAD)[..., :-1]))
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-13)


@pytest.mark.parametrize("name, T, kw", [("C1", 4, {}), ("C3", 4, {"k": 2})])
def test_padded_error_equals_the_unpadded_error(name, T, kw):
    built = REG[name].build(T, 1e-2, **kw)
    g, s = built.split()
    X = _inputs(T, seed=1)
    ref = jax.vmap(lambda x: error_function(g, built.task)(s, x))(jnp.asarray(X))
    got = jax.vmap(lambda x: padded_error_function(g, built.task)(s, x))(jnp.asarray(with_mask(X, T_PAD)))
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-13)


def test_the_mask_and_the_padding_get_no_gradient():
    """The ascent never moves the mask channel or a padded token: their gradient is exactly 0."""
    built = REG["C3"].build(4, 1e-2, k=2)
    g, s = built.split()
    err = padded_error_function(g, built.task)
    G = jax.vmap(jax.grad(lambda x: err(s, x)))(jnp.asarray(with_mask(_inputs(4, seed=2), T_PAD)))
    assert float(jnp.max(jnp.abs(G[..., -1]))) == 0.0
    assert float(jnp.max(jnp.abs(G[:, 4:, :]))) == 0.0
    assert float(jnp.max(jnp.abs(G[:, :4, 0]))) > 0.0  # the real tokens do get one


def test_a_filler_input_has_error_minus_infinity():
    built = REG["C1"].build(4, 1e-1)
    g, s = built.split()
    assert float(padded_error_function(g, built.task)(s, jnp.asarray(fillers(1, T_PAD, 1)[0]))) == -np.inf


@pytest.mark.parametrize("domain, rule", [(Cube(), "min"), (Margin(0.07, 3), "min"), (TopSetMargin(0.05, 2), "min")])
def test_padded_retraction_retracts_the_real_tokens_as_unpadded(domain, rule):
    X = np.random.default_rng(3).uniform(-0.2, 1.2, (300, 6, 1))
    X[:, 2] = X[:, 4]  # ties
    ref = np.asarray(domain.retract(jnp.asarray(X)))
    got = np.asarray(PaddedDomain(domain, rule).retract(jnp.asarray(with_mask(X, T_PAD))))
    np.testing.assert_array_equal(got[:, :6, :-1], ref)
    np.testing.assert_array_equal(got[..., -1], with_mask(X, T_PAD)[..., -1])


def test_positional_and_user_families_are_not_paddable():
    from infoflow_jax.core.tasks import FunctionTask

    c4 = REG["C4"].build(4, 1e-1, k=2)
    assert not T_paddable(c4.task, c4.compiled.model.cfg)  # one-hot positions: the position is read
    c1 = REG["C1"].build(4, 1e-1)
    assert T_paddable(c1.task, c1.compiled.model.cfg)
    assert not T_paddable(FunctionTask(T=4, fn=lambda X: X[..., 0, 0]), c1.compiled.model.cfg)


def test_plan_T_merges_a_cheap_family_and_keeps_an_expensive_one_apart():
    cheap = REG["C1"].build(4, 1e-1).compiled.model.cfg
    wide = REG["C2"].build(4, 1e-3).compiled.model.cfg
    merged = buckets.plan_T([(4, cheap, 3e3), (16, cheap, 3e3), (64, cheap, 3e3)])
    assert set(merged.values()) == {64}
    apart = buckets.plan_T([(4, wide, 1e4), (16, wide, 1e4), (64, wide, 1e4)])
    assert apart == {4: 4, 16: 16, 64: 64}
    assert set(buckets.plan_T([(4, wide, 1e4), (64, wide, 1e4)], policy="family").values()) == {64}


SPEC = {
    "name": "pad", "bucket": "family", "budget": {"samples": 64, "starts": 4, "steps": 20},
    "run": [{"construction": "C1", "T": [3, 8], "eps": [1e-1, 1e-2]},
            {"construction": "C3", "T": [3, 8], "k": [2], "eps": [1e-1], "mutants": "all"},
            {"lemma": "L1-softmax-max", "T": [2, 8], "beta": [10.0]}],
}


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    out = {}
    for pad_T in (False, True):
        folder = tmp_path_factory.mktemp(f"pad{pad_T}")
        stats = run_sweep(parse_spec({**SPEC, "pad_T": pad_T}), folder, progress=False)
        recs = {r["config_hash"]: r for r in map(json.loads, (folder / "results.jsonl").read_text().splitlines())}
        out[pad_T] = (stats, recs)
    return out


def test_padding_T_compiles_one_program_per_family(both):
    assert both[False][0].compilations == 6  # C1, C3 and L1, each at T = 3 and 8
    assert both[True][0].compilations == 3


def test_padded_sweep_gives_the_unpadded_verdicts_and_estimates(both):
    plain, padded = both[False][1], both[True][1]
    assert plain.keys() == padded.keys()
    for h, r in plain.items():
        q = padded[h]
        assert (q["passed"], q["estimator"], sorted(q["estimates"])) == (r["passed"], r["estimator"],
                                                                        sorted(r["estimates"])), h
        for name, v in r["estimates"].items():  # the same inputs: equal to float64 rounding of O(1) outputs
            assert abs(q["estimates"][name] - v) <= 1e-12, (h, name)
        assert np.shape(q["worst_input"]) == np.shape(r["worst_input"])  # back at the row's own T
