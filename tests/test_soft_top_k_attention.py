"""C8 soft top-k attention; task T7 (top-k aggregation) and its top-set margin domain."""

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infoflow_jax.verification.mutants import LOCALIZED_MUTANTS

from infoflow_jax.cli import predict as cli_predict
from infoflow_jax.catalog import lookup
from infoflow_jax.verification.construction import error_function
from infoflow_jax.core.domains import Cube, Margin, TopSetMargin
from infoflow_jax.core.errors import InputError
from infoflow_jax.verification.estimators import Budget
from infoflow_jax.core.functions import DEFAULT_F, TENT
from infoflow_jax.infoflow.against import fit_exponent
from infoflow_jax.infoflow.planner import plan
from infoflow_jax.infoflow.tasks import top_k_mean_graph
from infoflow_jax.core.samplers import sample, samplers_for
from infoflow_jax.core.tasks import TopKMean
from infoflow_jax.verification.verify import verify_construction

# samplers + grid; `infoflow verify` runs the ascent
SMALL = Budget(samples=128, grid_points=256, starts=0, steps=0, chunk=64)
EPS_FIT = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4)  # three decades


def _sorted_desc(X):
    return -np.sort(-np.asarray(X[..., 0]), -1)


# ----------------------------------------------------------------------------- T7 and its domains
def test_t7_target_matches_a_numpy_reference():
    X = np.random.default_rng(0).uniform(size=(50, 7, 1))
    s = _sorted_desc(X)
    F = lambda u: np.sin(2 * np.pi * u) / 2 + u
    tent = lambda u: 1 - 2 * np.abs(u - 0.5)
    assert np.allclose(TopKMean(7, k=3, gaps="none").target(jnp.asarray(X)), F(s[:, :3].mean(-1)))
    assert np.allclose(TopKMean(7, k=2, v=TENT, gaps="none").target(jnp.asarray(X)), F(tent(s[:, :2]).mean(-1)))


def test_t7_lipschitz_constant_is_LF_times_Lv_and_holds():
    task = TopKMean(6, k=2, v=TENT, gaps="none")
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    X = jax.random.uniform(k1, (20000, 6, 1))
    Y = jnp.clip(X + 1e-3 * jax.random.uniform(k2, X.shape, minval=-1, maxval=1), 0, 1)
    ratio = jnp.abs(task.target(X) - task.target(Y)) / jnp.max(jnp.abs(X - Y), axis=(-2, -1))
    assert task.lipschitz == DEFAULT_F.lipschitz * TENT.lipschitz and float(jnp.max(ratio)) <= task.lipschitz


def test_t7_domain_is_chosen_by_gaps():
    assert TopKMean(6, k=2, gamma=0.2, gaps="all").domain == Margin(0.2, 3)
    assert TopKMean(6, k=2, gamma=0.4, gaps="k").domain == TopSetMargin(0.4, 2)
    assert TopKMean(6, k=2, gaps="none").domain == Cube()
    assert TopKMean(6, k=3, gamma=0.1).hyperparams() == {"k": 3, "r": None, "D": None, "gamma": 0.1}


@pytest.mark.parametrize("kw", [dict(k=2, gamma=0.4, gaps="all"), dict(k=6, gamma=0.1, gaps="k"),
                                dict(k=2, gamma=0.1, gaps="some"), dict(k=2, gaps="k")])
def test_t7_rejects_bad_parameters(kw):
    with pytest.raises(InputError):
        TopKMean(6, **kw)


@pytest.mark.parametrize("k,gamma", [(1, 0.3), (2, 0.2), (3, 0.5)])
def test_top_set_retraction_lands_in_the_domain(k, gamma):
    dom = TopSetMargin(gamma, k)
    X = jax.random.uniform(jax.random.PRNGKey(k), (500, 9, 1))
    assert bool(jnp.all(dom.contains(dom.retract(X))))


def test_top_set_retraction_is_identity_on_the_domain():
    dom = TopSetMargin(0.2, 3)
    X = sample("top_set_boundary", jax.random.PRNGKey(1), 300, 10, 1, dom)
    assert np.allclose(dom.retract(X), X, atol=1e-15)


def test_top_set_boundary_sampler_sits_on_the_gap_at_k_with_ties_inside_the_top_set():
    dom = TopSetMargin(0.2, 3)
    s = _sorted_desc(sample("top_set_boundary", jax.random.PRNGKey(2), 300, 10, 1, dom))
    assert np.allclose(s[:, 2] - s[:, 3], 0.2)
    assert np.min(s[:, 0] - s[:, 1]) < 1e-5  # the top set's own gaps are free


@pytest.mark.parametrize("name", samplers_for(TopSetMargin(0.2, 2)))
def test_every_sampler_stays_in_the_top_set_domain(name):
    dom = TopSetMargin(0.2, 2)
    assert bool(jnp.all(dom.contains(sample(name, jax.random.PRNGKey(3), 300, 16, 1, dom))))


# ----------------------------------------------------------------------------- C8: the proof's steps
X_GAPPED = jnp.array([[0.95], [0.2], [0.7], [0.05], [0.45], [0.1]])  # gaps ≥ 0.25 ≥ γ = 1/6 at j = 1, 2, 3


def test_c8_flags_exactly_the_top_k():
    built = lookup("C8").build(6, 1e-2, k=3)
    f3 = np.asarray(built.compiled.read_slot(X_GAPPED, "f3", 3))[1:]
    assert np.array_equal(f3, [1.0, 0.0, 1.0, 0.0, 1.0, 0.0])


def test_c8_uniform_head_returns_the_top_k_mean_within_the_leakage_term():
    built = lookup("C8").build(6, 1e-2, k=3)
    u = float(built.compiled.read_slot(X_GAPPED, "u", 4)[0])
    leak = built.bound_terms["leakage L_F·ρ(T,k,βK)·D"] / DEFAULT_F.lipschitz
    assert abs(u - (0.95 + 0.7 + 0.45) / 3) <= leak


def test_c8_depth_is_k_plus_one_with_one_head():
    cfg = lookup("C8").build(8, 1e-2, k=3).compiled.model.cfg
    assert cfg.L == 4 and max(l.heads for l in cfg.layers) == 1


def test_c8_params_theorem_is_independent_of_T():
    assert len({lookup("C8").build(T, 1e-3, k=2).param_count.theorem for T in (4, 16, 64, 256)}) == 1


@pytest.mark.parametrize("T", [4, 64])
def test_c8_exponent_is_1_over_three_decades(T):
    ps = [lookup("C8").build(T, e, k=2).param_count.theorem for e in EPS_FIT]
    assert abs(fit_exponent([1 / e for e in EPS_FIT], ps)[0] - 1) <= 0.15


@pytest.mark.parametrize("T,k", [(8, 2), pytest.param(16, 3, marks=pytest.mark.slow)])
def test_c8_passes(T, k):
    rec = verify_construction(lookup("C8"), T=T, eps=1e-2, k=k, budget=SMALL)
    assert rec["passed"] and rec["L"] == k + 1, rec


def test_c8_passes_with_a_nonlinear_value_map():
    rec = verify_construction(lookup("C8"), T=8, eps=1e-2, k=2, budget=SMALL, v=TENT)
    assert rec["passed"] and "value decoder L_F·L_v/(2N_v)" in rec["bound_terms"], rec


# the localized mutants are checked at the default budget in tests/test_localized_mutants.py
@pytest.mark.parametrize("mutant", sorted(set(lookup("C8").mutants) - LOCALIZED_MUTANTS))
def test_c8_mutant_is_caught(mutant):
    rec = verify_construction(lookup("C8"), T=8, eps=1e-2, k=2, mutant=mutant, budget=SMALL)
    assert not rec["passed"]


def test_c8_threshold_mutant_fails_only_near_the_margin():
    """last-threshold-nudged agrees with C8 where x_(k) − x_(k+1) ≥ 3γ/2 + 0.01 and fails on the boundary."""
    real, bad = (lookup("C8").build(8, 1e-2, k=2, mutant=m) for m in (None, "last-threshold-nudged"))
    gamma = real.choices["gamma"]
    X = sample("margin_boundary", jax.random.PRNGKey(5), 256, 8, 1, real.task.domain)
    s = _sorted_desc(X)
    far = np.asarray(X).copy()
    below = np.asarray(X[..., 0]) <= s[:, 2:3]  # push the rest down: gap at k becomes ≥ 3γ/2 + 0.01
    far[..., 0] = np.where(below, np.maximum(far[..., 0] - (0.5 * gamma + 0.01), 0.0), far[..., 0])
    far = jnp.asarray(far)[np.asarray(_sorted_desc(far)[:, 1] - _sorted_desc(far)[:, 2] >= 1.5 * gamma + 0.01)]
    def err(b, Z):
        graphdef, state = b.split()
        return jax.jit(jax.vmap(error_function(graphdef, b.task), in_axes=(None, 0)))(state, Z)
    assert len(far) > 100 and float(jnp.max(err(bad, far))) <= real.bound
    assert float(jnp.max(err(bad, X))) > real.bound


def test_c8_claim_needs_every_gap_not_only_the_gap_at_k():
    """On Ω^set (gap at k only) a tie inside the top k makes layer 1 flag two tokens; C8 then flags k+1."""
    built = lookup("C8").build(4, 1e-2, k=2)
    X = jnp.array([[[0.9], [0.9], [0.2], [0.1]]])
    assert bool(TopSetMargin(built.choices["gamma"], 2).contains(X)[0])
    assert abs(float(built.predict(X[0])) - float(built.task.target(X)[0])) > built.bound


@pytest.mark.parametrize("kw", [dict(T=4, k=4), dict(T=4, k=0), dict(T=1, k=1)])
def test_c8_rejects_k_outside_1_to_T_minus_1(kw):
    with pytest.raises(InputError):
        lookup("C8").build(kw["T"], 1e-2, k=kw["k"])


@pytest.mark.slow
@pytest.mark.parametrize("T", [4, 16, 64])
def test_c8_passes_at_eps_1e_minus_4(T):
    rec = verify_construction(lookup("C8"), T=T, eps=1e-4, k=2, budget=SMALL)
    assert rec["passed"], rec


# ----------------------------------------------------------------------------- InfoFlow
def _predict_json(capsys, argv):
    parser = argparse.ArgumentParser(prog="infoflow")
    cli_predict.add_parser(parser.add_subparsers(dest="command"))
    assert cli_predict.run(parser.parse_args(["predict", *argv])) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_predict_t7_k2_is_T_at_one_layer_and_1_at_two(capsys):
    """docs/infoflow.md, T7: needed L = k (k exclusion retrievals, decode F((1/k)Σ v(m_j))); L < k: T·d."""
    r1, r2 = _predict_json(capsys, ["T7", "--k", "2", "--L", "1,2", "--T", "16", "--json"])
    assert (r1["exponent"], r1["exponent_formula"], r1["needed_L"]) == (16, "T*d", 2)
    assert (r2["exponent"], r2["schedule"]) == (1, [["m1"], ["m2"]]) and r2["reason"]


@pytest.mark.parametrize("k", [1, 2, 3])
def test_soft_top_k_route_needs_k_plus_one_layers_and_costs_exponent_1(k):
    g = top_k_mean_graph(k, soft=True)
    deep, shallow = plan(g, L=k + 1, h=1, T=16), plan(g, L=k, h=1, T=16)
    assert (deep.needed_L, deep.exponent, shallow.exponent) == (k + 1, 1, 16)
    assert [s.layer for s in deep.steps if s.mode == "uniform-set"] == [k + 1]
