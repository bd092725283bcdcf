"""The piecewise-linear view of one-input FFN blocks is exact, read from the compiled weights."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import constructions
from infoflow_jax.core.decoders import piecewise_linear_decoder
from infoflow_jax.core.functions import DEFAULT_F
from infoflow_jax.core.pwl import (FastFFN, PiecewiseLinear, decompose_ffn, decompose_layer, dense_ffn,
                              layer_ffn_weights)

BUILDS = {
    "C1": lambda: constructions.c1_max_retriever.build(4, 1e-2),
    "C2": lambda: constructions.c2_two_hop_retriever.build(4, 1e-2),
    "C3": lambda: constructions.c3_kth_largest.build(4, 1e-2, k=2),
    "C4": lambda: constructions.c4_second_largest.build(4, 1e-1),
    "C5": lambda: constructions.c5_memorizer.build(2, 0.3),
    "C6-decoupled": lambda: constructions.c6_top_r.build_decoupled(4, 1e-1),
    "C6-coupled": lambda: constructions.c6_top_r.build_coupled(4, 0.3),
    "C7": lambda: constructions.c7_d_retrieval.build(4, 0.3),
}


def random_ffn(seed, E=5, H=40):
    """Random weights with structure to find: proportional columns (shared input
    direction), shared output rows, zero columns (constants) and zero rows (dead units)."""
    rng = np.random.default_rng(seed)
    W1, b1, W2, b2 = rng.normal(size=(E, H)), rng.normal(size=H), rng.normal(size=(H, E)), rng.normal(size=E)
    u, o = rng.normal(size=E), rng.normal(size=E)
    shared = rng.choice(H, size=H // 2, replace=False)
    W1[:, shared] = u[:, None] * rng.choice([-2.0, -0.5, 0.25, 1.0, 4.0], size=shared.size)
    W2[shared] = o[None, :] * rng.normal(size=(shared.size, 1))
    W1[:, rng.choice(H, 3)] = 0.0
    W2[rng.choice(H, 3)] = 0.0
    return W1, b1, W2, b2


@jax.jit
def _values_and_gradients(fast, W1, b1, W2, b2, h, w):
    dense = lambda x: dense_ffn(W1, b1, W2, b2, x)
    grad = lambda f: jax.grad(lambda x: jnp.sum(f(x) * w))(h)
    return fast(h), dense(h), grad(fast), grad(dense)


def assert_same_values_and_gradients(fast, W1, b1, W2, b2, h, what):
    """Values, and the gradient of a random projection of the output (one reverse pass)."""
    w = jnp.asarray(np.random.default_rng(7).normal(size=(h.shape[0], W2.shape[1])))
    fv, dv, fg, dg = _values_and_gradients(fast, W1, b1, W2, b2, h, w)
    assert_close(fv, dv, f"{what} values")
    assert_close(fg, dg, f"{what} gradients")


def assert_close(fast, dense, what):
    fast, dense = np.asarray(fast), np.asarray(dense)
    tol = 1e-12 * max(1.0, float(np.max(np.abs(dense))))
    err = float(np.max(np.abs(fast - dense)))
    assert err <= tol, f"{what}: |fast − dense| = {err:.3g} > {tol:.3g}"


@pytest.mark.parametrize("seed", range(3))
def test_decomposition_assigns_every_unit_once_and_reassembles_the_weights(seed):
    W1, b1, W2, b2 = random_ffn(seed)
    dec = decompose_ffn(W1, b1, W2, b2)
    units = np.sort(np.concatenate([g.units for g in dec.groups]))
    assert np.array_equal(units, np.arange(W1.shape[1]))
    assert any(g.one_input for g in dec.groups)  # the shared direction was found
    for g in dec.groups:
        np.testing.assert_allclose(g.u[:, None] * g.a[None, :], W1[:, g.units], rtol=2 ** -52, atol=0)
        np.testing.assert_allclose(g.s[:, None] * g.o[None, :], W2[g.units], rtol=2 ** -52, atol=0)
        np.testing.assert_array_equal(g.b, b1[g.units])


@pytest.mark.parametrize("seed", range(2))
def test_fast_ffn_equals_dense_in_values_and_gradients_on_random_weights(seed):
    W1, b1, W2, b2 = random_ffn(seed)
    fast = FastFFN.from_decomposition(decompose_ffn(W1, b1, W2, b2))
    assert fast.pl is not None
    h = jnp.asarray(np.random.default_rng(100 + seed).normal(size=(512, W1.shape[0])) * 3)
    assert_same_values_and_gradients(fast, W1, b1, W2, b2, h, "random")


@pytest.mark.parametrize("name", list(BUILDS))
def test_fast_ffn_equals_dense_on_every_compiled_layer_of_every_construction(name):
    model = BUILDS[name]().compiled.model
    rng = np.random.default_rng(0)
    for layer in range(model.cfg.L):
        dec = decompose_layer(model, layer)
        if dec is None:  # deeper / grouped FFNs stay dense, by design
            assert len(layer_ffn_weights(model, layer)) > 2
            continue
        assert np.array_equal(np.sort(np.concatenate([g.units for g in dec.groups])), np.arange(dec.W1.shape[1]))
        fast = FastFFN.from_decomposition(dec)
        h = jnp.asarray(rng.uniform(-0.5, 1.5, size=(256, model.cfg.E)))
        assert_same_values_and_gradients(fast, dec.W1, dec.b1, dec.W2, dec.b2, h, f"{name} layer {layer}")


def test_an_l3_decoder_block_compiles_into_one_one_input_group():
    built = BUILDS["C1"]()
    dec = decompose_layer(built.compiled.model, 0)
    assert len(dec.pl_groups) == 1
    assert dec.pl_groups[0].units.size == built.choices["N"] + 1
    assert dec.dense_units.size == 0


def random_pl(seed, n=60):
    rng = np.random.default_rng(seed)
    a, b, s = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    a[:3] = 0.0  # constants
    a[5:9], b[5:9] = a[10], b[10]  # repeated breakpoints
    return a, b, s, PiecewiseLinear.from_units(a, b, s)


@pytest.mark.parametrize("seed", range(3))
def test_range_on_equals_the_extremes_of_a_fine_grid_and_is_never_exceeded(seed):
    a, b, s, pl = random_pl(seed)
    rng = np.random.default_rng(seed)
    t = np.asarray(pl.breakpoints)
    for lo, hi in np.sort(rng.uniform(-4, 4, size=(20, 2)), axis=1):
        grid = np.concatenate([np.linspace(lo, hi, 4001), t[(t >= lo) & (t <= hi)]])
        dense = np.maximum(grid[:, None] * a + b, 0) @ s
        rmin, rmax = (float(v) for v in pl.range_on(lo, hi))
        scale = 1e-12 * max(1.0, np.max(np.abs(dense)))
        assert rmin <= dense.min() + scale and dense.max() <= rmax + scale
        assert abs(rmin - dense.min()) <= scale and abs(rmax - dense.max()) <= scale


@pytest.mark.parametrize("seed", range(3))
def test_sup_deviation_upper_is_at_least_every_sampled_deviation(seed):
    _, _, _, pl = random_pl(seed, n=20)
    rng = np.random.default_rng(seed)
    k, c = rng.uniform(1, 20), rng.uniform(0.1, 3)
    f = lambda z: c * jnp.sin(k * z) + 0.3 * z
    L = c * k + 0.3
    lo, hi = -2.0, 3.0
    dev = pl.sup_deviation(f, L, lo, hi)
    z = np.linspace(lo, hi, 50001)
    sampled = np.max(np.abs(np.asarray(pl(jnp.asarray(z))) - np.asarray(f(jnp.asarray(z)))))
    assert dev.lower <= sampled * (1 + 1e-12) + 1e-12
    assert sampled <= dev.upper
    finer = pl.sup_deviation(f, L, lo, hi, max_piece=1e-3)
    assert sampled <= finer.upper <= dev.upper


def test_sup_deviation_of_an_l3_decoder_certifies_its_lemma_bound():
    """|F̂ − F| ≤ L/(2N)·(1 + slope term): the sound bound stays within 2× of L3's bound."""
    N = 50
    W1, b1 = piecewise_linear_decoder(DEFAULT_F, N)[0].W, piecewise_linear_decoder(DEFAULT_F, N)[0].b
    W2 = piecewise_linear_decoder(DEFAULT_F, N)[1].W
    pl = PiecewiseLinear.from_units(W1[0], b1, W2[:, 0])
    F0 = float(DEFAULT_F(jnp.zeros(1))[0])
    dev = pl.sup_deviation(lambda z: DEFAULT_F(z) - F0, DEFAULT_F.lipschitz, 0.0, 1.0)
    assert dev.upper <= 2 * DEFAULT_F.lipschitz / (2 * N)


def test_a_mutated_weight_changes_the_fast_path_exactly_as_the_dense_path():
    model = BUILDS["C2"]().compiled.model
    (W1, b1, _), (W2, b2, _) = layer_ffn_weights(model, 1)
    h = jnp.asarray(np.random.default_rng(0).uniform(-0.2, 1.2, size=(2048, W1.shape[0])))
    before = FastFFN.from_decomposition(decompose_ffn(W1, b1, W2, b2))(h)
    W1m, b1m, W2m = W1.copy(), b1.copy(), W2.copy()
    live = np.flatnonzero(np.any(W2 != 0, axis=1))
    j = live[len(live) // 2]
    W2m[j] *= 1.5  # a bump in one cell
    b1m[live[-3]] += 1e-3  # a moved knot
    col = W1m[:, live[5]]
    col[(np.argmax(np.abs(col)) + 1) % col.size] += 1e-9  # a unit whose input direction is no longer shared
    dec = decompose_ffn(W1m, b1m, W2m, b2)
    after = FastFFN.from_decomposition(dec)(h)
    assert_close(after, dense_ffn(W1m, b1m, W2m, b2, h), "mutated")
    assert float(jnp.max(jnp.abs(after - before))) > 1e-6  # the edit is visible
    assert live[5] in dec.dense_units or any(g.units.tolist() == [live[5]] for g in dec.groups)


def test_a_piecewise_linear_function_evaluates_alike_in_numpy_and_in_jax():
    pl = PiecewiseLinear.from_units(np.array([1.0, -2.0, 0.5, 3.0]), np.array([-0.2, 1.0, 0.1, -2.4]),
                                    np.array([1.0, 0.7, -1.3, 0.4]))
    z = np.concatenate([np.linspace(-1, 2, 301), np.asarray(pl.breakpoints)])
    assert np.allclose(pl.evaluate(z), np.asarray(pl.evaluate(jnp.asarray(z))), rtol=0, atol=1e-15)
