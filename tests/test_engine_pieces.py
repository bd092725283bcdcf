"""The estimator engine's small pieces pick exactly what the plain forms pick: the per-estimator
best of the pool (one masked reduction), distinct rows (a dict of row bytes: the screening's
candidates, an FFN's unit directions),
and the NumPy forward in chunks (the same values as in one piece, to float64 rounding: BLAS may
sum a product of few rows in another order)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infoflow_jax.catalog import lookup
from infoflow_jax.core.numpy_forward import CHUNK_BYTES, numpy_weights, predict_np
from infoflow_jax.verification.estimators import segment_best
from infoflow_jax.core.pwl import distinct_rows, row_labels


def _plain_best(values, inputs, sizes, top=None):
    """A slice and an argmax (or a stable sort) per segment: what segment_best replaces."""
    out_v, out_X, start = [], [], 0
    for n in sizes:
        v, X = values[start:start + n], inputs[start:start + n]
        if top:
            idx = np.argsort(-v, kind="stable")[:top]
            idx = np.concatenate([idx, np.repeat(idx[:1], top - idx.size)])
            out_v.append(v[idx])
            out_X.append(X[idx])
        else:
            out_v.append(v[np.argmax(v)])
            out_X.append(X[np.argmax(v)])
        start += n
    return np.stack(out_v), np.stack(out_X)


@pytest.mark.parametrize("top", [None, 4])
def test_segment_best_picks_each_segments_first_maximum_or_its_top_in_input_order(top):
    rng = np.random.default_rng(0)
    sizes = [5, 1, 3, 8, 2]
    values = rng.integers(0, 4, sum(sizes)).astype(float)  # many ties: the first one must win
    values[7] = np.inf  # a NaN output counts as +inf before it gets here
    inputs = rng.random((sum(sizes), 3, 1))
    got_v, got_X = jax.jit(lambda v, X: segment_best(v, X, sizes, top))(jnp.asarray(values), jnp.asarray(inputs))
    want_v, want_X = _plain_best(values, inputs, sizes, top)
    assert np.array_equal(np.asarray(got_v), want_v)
    assert np.array_equal(np.asarray(got_X), want_X)


def test_distinct_rows_first_occurrences_are_numpy_uniques_first_indices_in_drawing_order():
    rng = np.random.default_rng(1)
    X = rng.integers(0, 3, (4000, 5, 1)).astype(float)  # lattice draws: many repeats
    X[3, 0, 0], X[9] = -0.0, X[3]  # −0.0 and 0.0 are one number
    X[9, 0, 0] = 0.0
    _, first = np.unique(X.reshape(X.shape[0], -1), axis=0, return_index=True)
    assert np.array_equal(distinct_rows(X)[0], np.sort(first))


def test_row_labels_are_numpy_uniques_inverse():
    rng = np.random.default_rng(4)
    keys = np.repeat(rng.integers(-2, 3, (30, 6)).astype(float), 50, axis=0)[rng.permutation(1500)]
    keys[keys == 0] *= np.where(rng.random(int((keys == 0).sum())) < 0.5, -1.0, 1.0)  # some −0.0
    assert np.array_equal(row_labels(keys), np.unique(keys, axis=0, return_inverse=True)[1].reshape(-1))


@pytest.mark.parametrize("name, T, eps", [("C7", 4, 0.1), ("C2", 16, 0.01)])
def test_the_numpy_forward_in_chunks_equals_it_in_one_piece_to_rounding(name, T, eps, monkeypatch):
    built = lookup(name).build(T=T, eps=eps)
    model = built.compiled.model
    X = np.random.default_rng(2).random((600, T, built.task.d))
    W = numpy_weights(model)
    whole = predict_np(model, X, W)
    from infoflow_jax.core import numpy_forward

    monkeypatch.setattr(numpy_forward, "CHUNK_BYTES", CHUNK_BYTES / 1e4)  # chunks of a few rows
    np.testing.assert_allclose(numpy_forward.predict_np(model, X, W), whole, rtol=1e-12, atol=1e-14)
