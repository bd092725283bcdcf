"""Shared token queries (core/invariance.py): proven from the compiled weights by exact zero
tests, and the fast forward that computes such a layer's attention on two query rows is the
dense model, to float64 rounding, whatever the weights."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import dense_and_fast
from flax import nnx

import constructions
from infoflow_jax.core.fast_model import (MIN_FAST_UNITS, MIN_SHARED_T, FastPlan, fast_pays, fast_plan,
                                         fast_query_rows)
from infoflow_jax.core.invariance import ffn_varying_outputs, token_invariance
from infoflow_jax.verification import memory

SPECS = {spec.name: spec for spec in constructions.CATALOG}
UNIT_ROUNDOFF = 2.0 ** -53
T_SMALL = 8


def build(name, k=None, T=T_SMALL, mutant=None):
    kw = {} if k is None else {"k": k}
    return SPECS[name].build(T, 1e-1, mutant=mutant, **kw)


def inputs(T=T_SMALL, n=16, seed=0):
    """Uniform inputs on [0, 1]^T plus two with ties (equal tokens, a repeated maximum)."""
    X = jax.random.uniform(jax.random.PRNGKey(seed), (n, T, 1), jnp.float64)
    return jnp.concatenate([X, jnp.full((1, T, 1), 0.5), X[:1].at[0, -1].set(jnp.max(X[0]))])


def max_differences(graphdef, state, plan, Xs):
    """(values, gradients w.r.t. X): max |fast − dense|, and the tolerance: 64 ulps amplified by
    1 + Σ|Wq| (a rounding-level change of a score moves the softmax by up to β times it)."""
    (dv, dg), (fv, fg) = dense_and_fast((graphdef, state), plan, Xs)
    model = nnx.merge(graphdef, state)
    beta = sum(float(jnp.max(jnp.abs(blk.attn.Wq[...]))) for blk in model.blocks)
    tol = lambda ref: 64 * UNIT_ROUNDOFF * (1 + beta) * max(1.0, float(jnp.max(jnp.abs(ref))))
    return (float(jnp.max(jnp.abs(fv - dv))), tol(dv)), (float(jnp.max(jnp.abs(fg - dg))), tol(dg))


def assert_fast_equals_dense(graphdef, state, plan, Xs, what):
    for name, (err, tol) in zip(("values", "gradients"), max_differences(graphdef, state, plan, Xs)):
        assert err <= tol, f"{what}: {name} differ by {err:.3g} > {tol:.3g}"


def edited(built, edit):
    """The weights after ``edit(model, slot_index)`` mutates a copy of the compiled model."""
    model = nnx.clone(built.compiled.model)
    edit(model, built.compiled.slots.index)
    return nnx.split(model)


def add_to(param, index, delta):
    value = np.array(param[...])
    value[index] += delta
    param.set_value(jnp.asarray(value)) if hasattr(param, "set_value") else setattr(param, "value", jnp.asarray(value))


# ----------------------------------------------------------------------------- the flags on real builds
@pytest.mark.parametrize("name,k,expected", [("C2", None, (True, True)), ("C3", 2, (True, True)),
                                             ("C3", 3, (True, True, True))])
def test_every_query_of_beta_times_one_is_shared_in_c2_and_c3(name, k, expected):
    """C2's and C3's queries are β·one (a constant slot): proven shared in every layer."""
    graphdef, state = build(name, k).split()
    assert fast_plan(graphdef, state).shared_queries == expected


@pytest.mark.parametrize("name,k", [("C2", None), ("C3", 2), ("C3", 3)])
def test_two_row_attention_equals_dense_in_values_and_gradients(name, k):
    built = build(name, k)
    graphdef, state = built.split()
    plan = fast_plan(graphdef, state)
    assert plan.shares_queries
    assert_fast_equals_dense(graphdef, state, plan, inputs(), f"{name} k={k}")


@pytest.mark.parametrize("name", ["C2", "C3"])
def test_every_shipped_mutant_keeps_fast_equal_to_dense(name):
    """Mutants change weights (β, keys, values, flags, knots); the plan re-derived from each
    mutant's weights still equals that mutant's dense forward."""
    for mutant in SPECS[name].mutants:
        graphdef, state = build(name, 2 if name == "C3" else None, mutant=mutant).split()
        assert_fast_equals_dense(graphdef, state, fast_plan(graphdef, state), inputs(), f"{name} {mutant}")


# ----------------------------------------------------------------------------- edits switch the shortcut off
def query_reads_x(model, slot):
    add_to(model.blocks[0].attn.Wq, (0, slot("x"), 0), 1e-3)


def constant_embedded_from_x(model, slot):
    add_to(model.embed.A, (0, slot("one")), 1e-3)


EDITS = {  # name: (build, edit, the flags it must leave)
    "layer-1 query reads x": (("C3", 3), query_reads_x, (False, True, True)),
    "A writes x into the constant slot": (("C3", 3), constant_embedded_from_x, (False, False, False)),
    "layer-1 FFN writes the constant slot": (
        ("C3", 3), lambda m, s: add_to(m.blocks[0].ffn.W[1], (np.flatnonzero(np.any(np.asarray(
            m.blocks[0].ffn.W[1][...]) != 0, axis=1))[0], s("one")), 1e-3), (True, False, False)),
    "layer-2 query reads m1, written by a layer-1 head whose query reads x": (
        ("C3", 3), lambda m, s: (query_reads_x(m, s), add_to(m.blocks[1].attn.Wq, (0, s("m1"), 0), 1e-3)),
        (False, False, True)),
    "C2 layer-1 query reads x": (("C2", None), query_reads_x, (False, True)),
    # the CLS row is never compared: a CLS query unlike the tokens' keeps every flag, and the
    # shortcut must then broadcast the TOKEN row (in C2 and C3 as built, CLS and token queries agree)
    "CLS embedding of the constant halved": (("C3", 3), lambda m, s: add_to(m.embed.c, s("one"), -0.5),
                                             (True, True, True)),
}


@pytest.mark.parametrize("what", list(EDITS))
def test_an_edit_that_makes_a_query_depend_on_x_turns_its_flag_off_and_fast_still_equals_dense(what):
    (name, k), edit, flags = EDITS[what]
    graphdef, state = edited(build(name, k), edit)
    plan = fast_plan(graphdef, state)
    assert plan.shared_queries == flags
    assert_fast_equals_dense(graphdef, state, plan, inputs(), what)


def test_forcing_the_shortcut_on_an_edited_query_is_caught():
    """The comparison above can fail: with the layer-1 query β·(1 − 2x) (retrieving the max
    for some tokens, the min for others), the two-row attention forced on anyway differs from
    the dense model far beyond rounding."""
    def query_flips_with_x(model, slot):
        add_to(model.blocks[0].attn.Wq, (0, slot("x"), 0), -2 * float(model.blocks[0].attn.Wq[...][0, slot("one"), 0]))

    graphdef, state = edited(build("C2"), query_flips_with_x)
    honest = fast_plan(graphdef, state)
    forced = FastPlan(state=honest.state, ffns=honest.ffns, graphdef=graphdef,
                      largest_group=honest.largest_group, shared_queries=(True, True))
    (err, tol), _ = max_differences(graphdef, state, forced, inputs())
    assert err > 1e3 * tol


def test_a_one_ulp_weight_on_a_varying_coordinate_counts_as_nonzero():
    """No tolerance: the smallest subnormal on x in a query switches the layer off."""
    graphdef, state = edited(build("C2"), lambda m, s: add_to(m.blocks[0].attn.Wq, (0, s("x"), 0), 5e-324))
    assert fast_plan(graphdef, state).shared_queries == (False, True)


# ----------------------------------------------------------------------------- the analysis is sound
@jax.jit
def _residual_streams(graphdef, state, Xs):
    return jax.vmap(lambda X: jnp.stack(nnx.merge(graphdef, state).residual_stream(X)))(Xs)


@pytest.mark.parametrize("seed", range(2))
def test_coordinates_proven_invariant_are_equal_at_every_token_under_random_edits(seed):
    """Random sparse edits of C3 (k = 3): a few entries of A, every Wq, Wo and FFN matrix set to
    random values. After the embedding and after every layer, each coordinate the analysis calls
    invariant must be equal at every token row of the dense residual stream, and fast == dense."""
    built = build("C3", 3)
    rng = np.random.default_rng(seed)

    def edit(model, slot):
        params = [model.embed.A] + [p for blk in model.blocks
                                    for p in (blk.attn.Wq, blk.attn.Wo, blk.ffn.W[0], blk.ffn.W[-1])]
        for p in rng.choice(len(params), size=3, replace=False):
            shape = params[p][...].shape
            add_to(params[p], tuple(rng.integers(n) for n in shape), rng.normal() * 1e-2)

    graphdef, state = edited(built, edit)
    model = nnx.merge(graphdef, state)
    inv = token_invariance(model)
    Xs = inputs()
    states = _residual_streams(graphdef, state, Xs)  # (n, L+1, T+1, E)
    for after in range(model.cfg.L + 1):
        invariant = ~inv.varying[2 * after]
        tokens = states[:, after, 1:, :][..., invariant]
        spread = float(jnp.max(jnp.abs(tokens - tokens[:, :1])))
        assert spread <= 1e-12 * (1 + float(jnp.max(jnp.abs(tokens)))), f"after layer {after}: spread {spread:.3g}"
    assert_fast_equals_dense(graphdef, state, fast_plan(graphdef, state), Xs, f"random edit {seed}")


def test_a_unit_reading_a_varying_coordinate_makes_every_output_it_writes_varying_through_depth():
    """Deeper and grouped FFNs: varying-ness flows along every nonzero weight, and only there."""
    W1 = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])  # unit 0 reads coord 0 (varying), unit 1 coord 1
    layers = [(W1, np.zeros(3), False), (np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]]), np.zeros(2), False)]
    assert ffn_varying_outputs(layers, np.array([True, False])).tolist() == [False, True]
    assert ffn_varying_outputs(layers, np.array([False, True])).tolist() == [True, False]
    Wg = np.zeros((2, 3, 2))  # grouped: 2 blocks, each 3 inputs → 2 outputs (6 → 4)
    Wg[0, 0, 1] = 1.0  # block 0: its input 0 → its output 1; block 1 all zero
    grouped = [(Wg, np.zeros((2, 2)), True)]
    assert ffn_varying_outputs(grouped, np.array([True, False, False, True, True, True])).tolist() == \
        [False, True, False, False]


# ----------------------------------------------------------------------------- memory plan
def test_the_memory_plan_counts_two_query_rows_for_a_shared_layer_and_one_for_the_last():
    T = 1024
    built = build("C2", T=T)
    graphdef, state = built.split()
    cfg = built.compiled.model.cfg
    assert fast_query_rows(fast_plan(graphdef, state), T) == [2, 1]
    assert fast_query_rows(fast_plan(graphdef, state, share_queries=False), T) == [T + 1, 1]
    h = cfg.layers[0].heads
    shared = memory.bytes_per_input(cfg, T, 1, query_rows=[2, 1])
    dense = memory.bytes_per_input(cfg, T, 1)  # default: T + 1 query rows in every layer
    assert dense - shared == memory.COPIES * memory.ITEM * h * (T + 1 - 2) * T


# ----------------------------------------------------------------------------- when verify takes the fast path
def test_auto_mode_takes_the_fast_path_for_shared_queries_alone_from_min_shared_t_on():
    """C6-coupled has no decoder group of MIN_FAST_UNITS units but shares its queries: dense
    below MIN_SHARED_T (no gain measured), fast from it on (the O(T²) attention dominates)."""
    graphdef, state = SPECS["C6-coupled"].build(8, 0.3, k=2).split()
    plan = fast_plan(graphdef, state)
    assert plan.largest_group < MIN_FAST_UNITS and plan.shares_queries
    assert not fast_pays(plan, MIN_SHARED_T - 1) and fast_pays(plan, MIN_SHARED_T)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SPECS))
def test_every_shipped_mutant_gets_the_same_verdict_on_the_fast_and_the_dense_path(name):
    """verify at T = 16 (C5: 2) on both paths, the same estimators and seed: the same verdict
    for the real build and every mutant, and estimates equal to 1e-9 relative."""
    from infoflow_jax.verification.estimators import Budget
    from infoflow_jax.verification.verify import verify

    spec = SPECS[name]
    kw = {"k": spec.default_k[0]} if spec.uses_k else {}
    budget = Budget(samples=64, grid_points=81, starts=4, steps=20, chunk=64)
    for mutant in (None, *spec.mutants):
        built = spec.build(2 if name == "C5" else 16, max(spec.default_eps), mutant=mutant, **kw)
        dense, fast = verify(built, fast=False, budget=budget), verify(built, fast=True, budget=budget)
        assert fast.passed == dense.passed, (name, mutant)
        assert abs(fast.err_estimate - dense.err_estimate) <= 1e-9 * max(dense.err_estimate, 1e-300), (name, mutant)
