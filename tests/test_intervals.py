"""Interval bounds are sound: no sampled point of a box ever leaves its bounds."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

import constructions
from infoflow_jax.core.intervals import (EXP_ULPS, bound_plan, kth_largest_bounds, output_bounds, softmax_bounds,
                                    weighted_average_bounds)
from infoflow_jax.core.model import TFConfig, Transformer, batched_apply

T = 3
SHAPES = {
    "plain": TFConfig.uniform(L=1, h=2, E=4, W=8, d=1),
    "positions+deep-ffn": TFConfig.uniform(L=2, h=2, E=4, W=6, d=2, ffn_depth=2, positional="onehot", max_T=T),
}


def random_model(cfg, seed, noise, shared_directions=False):
    """A random model, every parameter (biases, CLS, embedding offset included) perturbed;
    with ``shared_directions`` the first FFN's hidden units share two input directions,
    so its bounds go through the piecewise-linear path."""
    graphdef, state = nnx.split(Transformer(cfg, rngs=nnx.Rngs(seed)))
    leaves, tdef = jax.tree_util.tree_flatten(state)
    keys = jax.random.split(jax.random.PRNGKey(seed + 1), len(leaves))
    leaves = [l + noise * jax.random.normal(k, l.shape) for l, k in zip(leaves, keys)]
    state = jax.tree_util.tree_unflatten(tdef, leaves)
    if shared_directions:
        model = nnx.merge(graphdef, state)
        W1 = np.asarray(model.blocks[0].ffn.W[0][...])
        # powers of two scale exactly, so the columns stay proportional bit for bit
        scales = np.random.default_rng(seed).choice([-4.0, -1.0, -0.5, 0.25, 1.0, 2.0], size=W1.shape[1])
        W2 = np.asarray(model.blocks[0].ffn.W[1][...])
        even = np.arange(W1.shape[1]) % 2 == 0
        W1 = np.where(even, W1[:, :1], W1[:, 1:2]) * scales
        W2 = np.where(even[:, None], W2[:1], W2[1:2]) * np.abs(scales)[:, None]
        model.blocks[0].ffn.W[0].set_value(jnp.asarray(W1))
        model.blocks[0].ffn.W[1].set_value(jnp.asarray(W2))
        graphdef, state = nnx.split(model)
    return graphdef, state


def sample_boxes(seed, n_boxes, shape, width):
    rng = np.random.default_rng(seed)
    lo = rng.uniform(-0.5, 1.0, size=(n_boxes,) + shape)
    hi = lo + width * rng.uniform(0, 1, size=lo.shape)
    return lo, hi


def points_in(lo, hi, n, seed):
    """n points per box: random, plus every box's two extreme corners."""
    u = np.random.default_rng(seed).uniform(size=(n,) + lo.shape)
    u[0], u[1] = 0.0, 1.0
    return lo + (hi - lo) * u  # (n, B, T, d)


def assert_contains(graphdef, state, lo, hi, n=48, seed=0):
    blo, bhi = (np.asarray(v) for v in output_bounds(graphdef, state, jnp.asarray(lo), jnp.asarray(hi)))
    X = points_in(lo, hi, n, seed)
    y = np.asarray(batched_apply(graphdef, state, jnp.asarray(X.reshape((-1,) + lo.shape[1:])))).reshape(n, -1)
    assert np.all(np.isfinite(blo)) and np.all(np.isfinite(bhi))
    below, above = np.min(y - blo), np.min(bhi - y)
    assert below >= 0 and above >= 0, f"a sample leaves its box bound by {min(below, above):.3g}"
    return blo, bhi, y


def test_jnp_exp_is_within_the_assumed_ulps_of_numpy_exp():
    x = np.linspace(-745.0, 0.0, 200001)
    ours, ref = np.asarray(jnp.exp(jnp.asarray(x))), np.exp(x)  # NumPy's exp: < 1 ulp (glibc)
    normal = ref > np.finfo(np.float64).tiny
    ulps = np.abs(ours[normal] - ref[normal]) / np.spacing(ref[normal])
    assert np.max(ulps) <= EXP_ULPS - 1


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 10_000), width=st.sampled_from([1e-6, 1e-2, 0.3]), noise=st.sampled_from([0.1, 0.5]))
def test_no_sampled_output_of_a_random_model_leaves_its_box_bound(seed, width, noise):
    g, s = random_model(SHAPES["plain"], seed, noise)
    assert_contains(g, s, *sample_boxes(seed, 4, (T, 1), width))


@settings(max_examples=2, deadline=None)
@given(seed=st.integers(0, 10_000), width=st.sampled_from([1e-3, 0.2]))
def test_bounds_hold_with_positions_and_a_deeper_ffn(seed, width):
    g, s = random_model(SHAPES["positions+deep-ffn"], seed, 0.3)
    assert_contains(g, s, *sample_boxes(seed, 4, (T, 2), width))


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 10_000), width=st.sampled_from([1e-3, 0.2]))
def test_bounds_hold_through_the_piecewise_linear_path(seed, width):
    g, s = random_model(SHAPES["plain"], seed, 0.3, shared_directions=True)
    assert bound_plan(g, s).ffn[0].pl.n_units.shape == (2,)  # two one-input groups
    assert_contains(g, s, *sample_boxes(seed, 4, (T, 1), width))


@pytest.mark.parametrize("shared", [False, True])
def test_a_degenerate_box_bounds_a_one_layer_models_point_value_within_1e_12(shared):
    """Only the rounding margins remain. (Each later layer multiplies them by its interval
    gain: two random layers measure ~1e-11, C2 at T = 2 ~1e-11 — sound, not 1e-12.)"""
    g, s = random_model(SHAPES["plain"], 3, 0.1, shared_directions=shared)
    lo, _ = sample_boxes(5, 4, (T, 1), 0.0)
    blo, bhi, y = assert_contains(g, s, lo, lo, n=2)
    assert np.max(bhi - y[0]) <= 1e-12 and np.max(y[0] - blo) <= 1e-12


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.sampled_from([1, 5]), scale=st.sampled_from([0.1, 3.0, 300.0]))
def test_softmax_bounds_contain_every_sampled_softmax(seed, n, scale):
    rng = np.random.default_rng(seed)
    l = rng.normal(size=(16, n)) * scale
    u = l + rng.uniform(0, 1, size=l.shape) * scale * rng.uniform(0, 1, size=(16, 1))
    wl, wu = (np.asarray(v) for v in jax.jit(softmax_bounds)(jnp.asarray(l), jnp.asarray(u)))
    s = l + (u - l) * rng.uniform(size=(256,) + l.shape)
    s[0], s[1] = l, u
    w = np.asarray(jax.nn.softmax(jnp.asarray(s), axis=-1))
    assert np.all(wl <= w) and np.all(w <= wu)


@jax.jit
def _average_of_softmax(l, u, vl, vu):
    return weighted_average_bounds(*softmax_bounds(l, u), vl, vu)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.sampled_from([1, 5]))
def test_weighted_average_bounds_contain_every_sampled_average(seed, n):
    rng = np.random.default_rng(seed)
    l = rng.normal(size=(16, n)) * 3
    u = l + rng.uniform(0, 2, size=l.shape)
    vl = rng.normal(size=l.shape)
    vu = vl + rng.uniform(0, 1, size=l.shape)
    box = _average_of_softmax(jnp.asarray(l), jnp.asarray(u), jnp.asarray(vl), jnp.asarray(vu))
    s = l + (u - l) * rng.uniform(size=(1000,) + l.shape)
    w = np.asarray(jax.nn.softmax(jnp.asarray(s), axis=-1))
    v = vl + (vu - vl) * rng.integers(0, 2, size=(1000,) + l.shape)  # value corners: the extremes are there
    avg = np.sum(w * v, -1)
    assert np.all(np.asarray(box.lo) <= avg.min(0)) and np.all(avg.max(0) <= np.asarray(box.hi))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 8), data=st.data())
def test_kth_largest_bounds_contain_every_sampled_kth_largest(seed, n, data):
    k = data.draw(st.integers(1, n))
    rng = np.random.default_rng(seed)
    lo = rng.uniform(size=(3, n))
    hi = lo + rng.uniform(0, 0.5, size=lo.shape)
    blo, bhi = (np.asarray(v) for v in kth_largest_bounds(jnp.asarray(lo), jnp.asarray(hi), k))
    x = lo + (hi - lo) * rng.uniform(size=(500,) + lo.shape)
    kth = np.sort(x, -1)[..., n - k]
    assert np.all(blo <= kth) and np.all(kth <= bhi)
    # attained at the corners: the bound is exact
    assert np.allclose(np.sort(lo, -1)[..., n - k], blo) and np.allclose(np.sort(hi, -1)[..., n - k], bhi)


@pytest.mark.parametrize("build", [lambda: constructions.c1_max_retriever.build(2, 1e-1),
                                   lambda: constructions.c2_two_hop_retriever.build(2, 1e-1)], ids=["C1", "C2"])
def test_construction_bounds_over_small_boxes_contain_samples(build):
    g, s = build().split()
    lo, hi = sample_boxes(11, 6, (2, 1), 1e-3)
    lo = np.clip(lo, 0.0, 1.0 - 1e-3)
    hi = lo + 1e-3
    assert_contains(g, s, lo, hi, n=64)


def test_output_bounds_trace_under_jit_and_vmap_to_the_same_values():
    g, s = random_model(SHAPES["plain"], 1, 0.3)
    lo, hi = sample_boxes(1, 3, (T, 1), 0.1)
    direct = output_bounds(g, s, jnp.asarray(lo), jnp.asarray(hi))
    traced = jax.jit(jax.vmap(lambda a, b: output_bounds(g, s, a, b)))(jnp.asarray(lo), jnp.asarray(hi))
    np.testing.assert_allclose(np.asarray(direct), np.asarray(traced), rtol=1e-14, atol=1e-14)
