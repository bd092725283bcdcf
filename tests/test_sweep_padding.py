"""Width padding (zero hidden units) for buckets: exact, shape-sharing, and grouped layers left alone."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from infoflow_jax.core.precision import use_float64

use_float64()

from infoflow_jax.catalog import catalog  # noqa: E402
from infoflow_jax.core.model import FFNLayerShape, LayerShape, TFConfig, apply  # noqa: E402
from infoflow_jax.core.params import count_params  # noqa: E402
from infoflow_jax.sweep import buckets  # noqa: E402

REG = catalog()


def _outputs(graphdef, state, X):
    return np.asarray(jax.jit(jax.vmap(lambda x: apply(graphdef, state, x)))(X))


@pytest.mark.parametrize("name, kw", [("C1", {}), ("C2", {}), ("C3", {"k": 3}),
                                      ("C1", {"mutant": "knot-dropped"})])
def test_padding_is_exact(name, kw):
    """Padded and unpadded models give identical outputs (pow2 bucket and a much wider family bucket)."""
    built = REG[name].build(16, 3e-2, **kw)
    X = jax.random.uniform(jax.random.PRNGKey(1), (256, 16, 1))
    ref = _outputs(*built.split(), X)
    wide = buckets.with_widths(built.compiled.model.cfg,
                          [[4 * buckets.next_pow2(w) if w else 0 for w in ws]
                           for ws in buckets.hidden_widths(built.compiled.model.cfg)])
    for bucket in (buckets.next_pow2, wide):
        g, s = buckets.pad_state(built, bucket)
        np.testing.assert_array_equal(_outputs(g, s, X), ref)


def test_padding_adds_only_zero_parameters():
    built = REG["C2"].build(4, 1e-2)
    g, s = buckets.pad_state(built)
    before, after = built.param_count, count_params(s)
    assert after.total > before.total
    assert (after.nonzero, after.theorem) == (before.nonzero, before.theorem)


def test_padded_models_of_different_eps_share_one_shape():
    cfgs = [REG["C1"].build(16, e).compiled.model.cfg for e in (1e-1, 3e-2, 1e-2)]
    fam = buckets.join([buckets.padded_config(c) for c in cfgs])
    shapes = {jax.tree_util.tree_structure(buckets.pad_state(REG["C1"].build(16, e), fam)[1]) for e in (1e-1, 3e-2, 1e-2)}
    assert len(shapes) == 1
    assert len({buckets.padded_config(c) for c in cfgs}) == 3  # pow2 buckets alone keep them apart


def test_interfaces_next_to_grouped_layers_are_not_padded():
    ffn = (FFNLayerShape("dense", 4, 6), FFNLayerShape("grouped", 6, 10, 2), FFNLayerShape("dense", 10, 5),
           FFNLayerShape("dense", 5, 4))
    cfg = TFConfig(d=1, E=4, layers=(LayerShape(1, 1, 1, ffn),))
    assert buckets.width_paddable(cfg) == [[False, False, True]]
    padded = buckets.padded_config(cfg)
    assert [s.n_out for s in padded.layers[0].ffn] == [6, 10, 8, 4]


def test_auto_policy_merges_only_when_padding_is_cheaper_than_compiling():
    cheap = [REG["C1"].build(16, e).compiled.model.cfg for e in (1e-1, 1e-2, 1e-3)]  # decoder at CLS only
    assert len(set(buckets.plan_widths(cheap, 16, 5000))) == 1
    dear = [REG["C2"].build(64, e).compiled.model.cfg for e in (1e-1, 1e-3)]  # ψ decoder at all 65 positions
    assert len(set(buckets.plan_widths(dear, 64, 1e5))) == 2
