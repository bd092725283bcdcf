"""The model family TF(L, h, E, W): pure form, batching, stability, parameter counts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from infoflow_jax.core.model import TFConfig, Transformer, apply, batched_apply
from infoflow_jax.core.params import count_params


def small_model(seed=0, positional="onehot"):
    cfg = TFConfig.uniform(L=2, h=2, E=8, W=16, positional=positional, max_T=5)
    return Transformer(cfg, rngs=nnx.Rngs(seed))


def test_pure_form_equals_module_call():
    m = small_model()
    X = jax.random.uniform(jax.random.PRNGKey(0), (5, 1))
    g, s = nnx.split(m)
    assert float(apply(g, s, X)) == pytest.approx(float(m(X)), abs=1e-14)


def test_output_is_readout_of_cls_after_last_layer():
    m = small_model()
    X = jax.random.uniform(jax.random.PRNGKey(1), (5, 1))
    full = m.residual_stream(X)[-1][0] @ m.w[...] + m.b[...]
    assert float(m(X)) == pytest.approx(float(full), abs=1e-12)


def test_vmap_over_weight_pytrees_matches_separate_calls():
    g, s0 = nnx.split(small_model(0))
    _, s1 = nnx.split(small_model(1))
    stacked = jax.tree.map(lambda a, b: jnp.stack([a, b]), s0, s1)
    X = jax.random.uniform(jax.random.PRNGKey(2), (5, 1))
    out = jax.jit(jax.vmap(lambda s: apply(g, s, X)))(stacked)
    assert np.allclose(out, [apply(g, s0, X), apply(g, s1, X)], atol=1e-12)


def test_batched_apply_matches_loop():
    g, s = nnx.split(small_model())
    Xs = jax.random.uniform(jax.random.PRNGKey(3), (7, 5, 1))
    assert np.allclose(batched_apply(g, s, Xs), [apply(g, s, X) for X in Xs], atol=1e-12)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_softmax_with_beta_1e7_stays_finite(dtype):
    cfg = TFConfig.uniform(L=1, h=1, E=2, W=2)
    m = Transformer(cfg, dtype=dtype, rngs=nnx.Rngs(0))
    m.blocks[0].attn.Wq.set_value(1e7 * jnp.ones_like(m.blocks[0].attn.Wq[...]))
    m.blocks[0].attn.Wk.set_value(jnp.ones_like(m.blocks[0].attn.Wk[...]))
    X = jnp.linspace(0, 1, 6, dtype=dtype)[:, None]
    assert bool(jnp.isfinite(m(X)))
    assert bool(jnp.all(jnp.isfinite(m.blocks[0].attn.weights(m.embed(X)))))


def test_theorem_count_excludes_attention_and_counts_nonzero():
    m = small_model()
    pc = count_params(m)
    attn = sum(int(np.count_nonzero(np.asarray(p))) for b in m.blocks
               for p in (b.attn.Wq[...], b.attn.Wk[...], b.attn.Wv[...], b.attn.Wo[...]))
    assert pc.theorem == pc.nonzero - attn


def test_total_counts_every_dense_entry():
    m = small_model()
    leaves = jax.tree.leaves(nnx.state(m, nnx.Param))
    assert count_params(m).total == sum(int(np.size(l)) for l in leaves)


@pytest.mark.parametrize("positional", ["none", "onehot", "sinusoidal"])
def test_every_positional_code_builds_and_runs(positional):
    m = small_model(positional=positional)
    assert bool(jnp.isfinite(m(jnp.full((5, 1), 0.5))))
