"""The TF(L, h, E, W) forward pass in NumPy, float64: the benchmarks' reference outside JAX.

    numpy_forward(model, X) = Ĥ(X)  for X of shape (B, T, d), read from the model's weights

It follows :mod:`infoflow_jax.core.model` step for step — embedding (positional code, the
optional per-position input matrix A_s), h-head softmax attention with the row maximum
subtracted, queries from every position except in the last layer (the CLS row only),
position-wise ReLU FFN of dense or grouped layers, residual adds, readout — batched over
B with NumPy's BLAS. The benchmarks report its largest difference from JAX's output, so
a drift between the two is measured, not assumed away.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from infoflow_jax.core.model import positional_features


def _np(param) -> np.ndarray:
    return np.asarray(param[...], np.float64)


def _ffn(ffn, z: np.ndarray) -> np.ndarray:
    kinds = ffn.kinds
    for j, kind in enumerate(kinds):
        W, b = _np(ffn.W[j]), _np(ffn.b[j])
        if kind == "dense":
            z = z @ W + b
        else:  # block-diagonal: G groups of g_in → g_out
            G, gi, go = W.shape
            zg = z.reshape(z.shape[:-1] + (G, gi))
            z = (np.einsum("bpgi,gio->bpgo", zg, W) + b).reshape(z.shape[:-1] + (G * go,))
        if j < len(kinds) - 1:
            z = np.maximum(z, 0.0)
    return z


def _attention(attn, Q: np.ndarray, H: np.ndarray) -> np.ndarray:
    """Σ_heads softmax(q kᵀ) v W_o for the query rows Q (B, P, E); keys and values from H's tokens."""
    Wq, Wk, Wv, Wo = (_np(w) for w in (attn.Wq, attn.Wk, attn.Wv, attn.Wo))
    q = np.einsum("bpe,hek->bhpk", Q, Wq)
    k = np.einsum("bse,hek->bhsk", H[:, 1:], Wk)
    v = np.einsum("bse,hev->bhsv", H[:, 1:], Wv)
    s = np.einsum("bhpk,bhsk->bhps", q, k)
    s = np.exp(s - s.max(-1, keepdims=True))
    a = s / s.sum(-1, keepdims=True)
    return np.einsum("bhps,bhsv,hve->bpe", a, v, Wo, optimize=True)


def numpy_forward(model, X: np.ndarray) -> np.ndarray:
    """Ĥ(X) for a batch X (B, T, d) in NumPy float64; shape (B,)."""
    cfg, em = model.cfg, model.embed
    X = np.asarray(X, np.float64)
    B, T, _ = X.shape
    phi = np.asarray(positional_features(cfg.positional, T, cfg.max_T, cfg.n_freq, jnp.float64))
    tokens = X @ _np(em.A) + _np(em.a) + phi @ _np(em.P)
    if cfg.position_input:
        tokens = tokens + np.einsum("bsd,sde->bse", X, _np(em.As)[:T])
    H = np.concatenate([np.broadcast_to(_np(em.c), (B, 1, cfg.E)), tokens], axis=1)
    for i, blk in enumerate(model.blocks):
        Q = H[:, :1] if i == cfg.L - 1 else H  # the last layer computes the CLS row only
        Hq = Q + _attention(blk.attn, Q, H)
        H = Hq + _ffn(blk.ffn, Hq)
    return H[:, 0] @ _np(model.w) + float(_np(model.b))
