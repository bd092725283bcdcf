"""The TF(L, h, E, W) forward pass in NumPy, float64, on the host: nothing is compiled.

    predict_np(model, X) = Ĥ(X)          for X of shape (B, T, d)
    pre_ffn_residuals(model, X)          the residual entering each layer's FFN

The same arithmetic as :class:`~infoflow_jax.core.model.Transformer` (its positional features
:func:`~infoflow_jax.core.model.positional_features`, softmax over tokens with the row maximum
subtracted, keys and values from tokens, the last layer at CLS only), read from the model's
weights (:func:`numpy_weights`). The structural probes search with it
(:mod:`infoflow_jax.verification.probes`), the localized mutants and tests screen with it, and the
benchmarks time it against JAX (``numpy_weights(model, shortcuts=False)``: the plain layers).
"""

from __future__ import annotations

import numpy as np

from infoflow_jax.core.invariance import shared_query_layers
from infoflow_jax.core.model import positional_features
from infoflow_jax.core.pwl import FastFFN, decompose_layer


def numpy_weights(model, *, shortcuts: bool = True):
    """The model's parameters as NumPy arrays (the NumPy forward's input). A layer's FFN is its
    list of (W, b, grouped) layers, or — when it is one hidden Dense layer with a one-input group
    (an L3 decoder) — its exact piecewise-linear form (:class:`~infoflow_jax.core.pwl.FastFFN`, the
    fast path's decomposition of the same weights, in NumPy): a decoder of N units then costs one
    binary search per position instead of 2·N·E multiply-adds, equal to the dense layer to
    float64 rounding. A layer whose token queries are proven equal at every token
    (:func:`~infoflow_jax.core.invariance.shared_query_layers`, the fast path's other shortcut) is
    marked ``attn["shared"]``: its attention is computed for CLS and token 1 only (O(T), not O(T²)).

    ``shortcuts=False``: neither shortcut — every FFN as its plain layers, every attention for every
    query row — the plain reference the benchmarks time and compare with JAX's output."""
    e = model.embed
    shared = shared_query_layers(model) if shortcuts else [False] * len(model.blocks)
    emb = dict(A=np.asarray(e.A[...]), a=np.asarray(e.a[...]), P=np.asarray(e.P[...]), c=np.asarray(e.c[...]),
               As=np.asarray(e.As[...]) if model.cfg.position_input else None)
    blocks = []
    for layer, blk in enumerate(model.blocks):
        attn = {k: np.asarray(getattr(blk.attn, k)[...]) for k in ("Wq", "Wk", "Wv", "Wo")}
        attn["shared"] = bool(shared[layer])
        dec = decompose_layer(model, layer) if shortcuts else None
        if dec is not None and dec.pl_groups:
            ffn = FastFFN.from_decomposition(dec)
        else:
            ffn = [(np.asarray(W[...]), np.asarray(b[...]), kind == "grouped")
                   for W, b, kind in zip(blk.ffn.W, blk.ffn.b, blk.ffn.kinds)]
        blocks.append((attn, ffn))
    return emb, blocks


def numpy_ffn(ffn, z):
    """One layer's FFN in NumPy: a FastFFN (NumPy arrays, evaluated in NumPy) or dense layers."""
    if isinstance(ffn, FastFFN):
        return ffn(z)
    for i, (W, b, grouped) in enumerate(ffn):
        if grouped:  # block-diagonal: every group at once, one batched matmul over the groups
            # (a Kuhn layer has hundreds of groups of 3–4 inputs: a Python loop of matmuls, one per
            # group, was 25× slower, and one multiply-add per input of a group 3–9× slower)
            G, g_in, g_out = W.shape
            zg = z.reshape(-1, G, g_in).transpose(1, 0, 2)  # (G, rows, g_in)
            out = np.matmul(zg, W).transpose(1, 0, 2)  # (rows, G, g_out)
            z = (out + b).reshape(z.shape[:-1] + (G * g_out,))
        else:
            z = z @ W + b
        if i < len(ffn) - 1:
            z = np.maximum(z, 0.0)
    return z


CHUNK_BYTES = 2e6  # FFN activations one chunk of the NumPy forward may hold: about what the caches keep
# (8192 tie candidates through C5 / C7 / C3 T = 64: 452 / 198 / 249 ms in 32 MB chunks, 140 / 71 / 241 ms in 2 MB)


def activation_bytes(cfg, T: int, weights=None) -> float:
    """Bytes of float64 FFN activations the NumPy forward holds per input: every position's hidden
    units in the layers before the last, CLS's in the last, and the residual stream. With
    ``weights`` (:func:`numpy_weights`), a piecewise-linear layer counts its dense remainder and 4 per
    one-input group (projection, index, value, slope) instead of its hidden units."""
    widths = [max((s.n_out for s in layer.ffn), default=0) for layer in cfg.layers]
    if weights is not None:
        widths = [int(f.W1r.shape[1]) + 4 * int(f.U.shape[1]) if isinstance(f, FastFFN) else w
                  for w, (_, f) in zip(widths, weights[1])]
    return 8.0 * ((T + 1) * sum(widths[:-1]) + widths[-1] + (T + 1) * cfg.E)


def pre_ffn_residuals(model, X, weights=None, upto: int | None = None) -> list[np.ndarray]:
    """The residual entering each layer's FFN (after its attention), in NumPy: (B, T+1, E) per layer,
    (B, 1, E) for the last one (only CLS is read there, as in :class:`~infoflow_jax.core.model.Transformer`);
    layers up to ``upto`` (default all). The same arithmetic as the model (softmax over tokens,
    keys and values from tokens), evaluated on the host so that probing compiles nothing.

    Inputs go through CHUNK_BYTES of activations at a time: a wide decoder at every position makes
    (B, T+1, H) arrays, and past the caches the same arithmetic in one piece is 5–7× slower
    (C2 T=16 ε=1e-3, 1024 inputs: 8.1 s at once, 1.5 s in chunks of 4–64; 2-core EPYC)."""
    weights = numpy_weights(model) if weights is None else weights
    parts = [_pre_ffn_residuals(model, Xc, weights, upto) for Xc in _chunks(model, X, weights)]
    return parts[0] if len(parts) == 1 else [np.concatenate(layer) for layer in zip(*parts)]


def _chunks(model, X, weights) -> list[np.ndarray]:
    """X (float64) in pieces of CHUNK_BYTES of activations (:func:`activation_bytes`); one piece
    (X itself, even empty) when it fits."""
    X = np.asarray(X, np.float64)
    chunk = max(1, int(CHUNK_BYTES // activation_bytes(model.cfg, X.shape[1], weights)))
    return [X] if X.shape[0] <= chunk else [X[i:i + chunk] for i in range(0, X.shape[0], chunk)]


def _pre_ffn_residuals(model, X, weights, upto: int | None) -> list[np.ndarray]:
    emb, blocks = weights
    B, T, _ = X.shape
    tokens = X @ emb["A"] + emb["a"] + positional_features(model.cfg.positional, T, model.cfg.max_T, model.cfg.n_freq, np.float64, xp=np) @ emb["P"]
    if emb["As"] is not None:
        tokens = tokens + np.einsum("bsd,sde->bse", X, emb["As"][:T])
    H = np.concatenate([np.broadcast_to(emb["c"], (B, 1, emb["c"].shape[0])), tokens], axis=1)
    last = len(blocks) - 1
    upto = last if upto is None else upto
    out = []
    for l, (attn, ffn) in enumerate(blocks[:upto + 1]):
        # queries: CLS only in the last layer (only CLS is read); CLS and token 1 where every token's
        # query is the same (token 1's row then stands for every token); else every position.
        # Batched matmuls (BLAS), not einsum: the same sums, 5–20× faster here.
        Q = H[:, :1] if l == last else H[:, :2] if attn["shared"] else H
        q = np.matmul(Q[:, None], attn["Wq"])  # (B, h, P, k)
        k = np.matmul(H[:, None, 1:], attn["Wk"])  # (B, h, T, k)
        s = np.matmul(q, np.swapaxes(k, -1, -2))  # (B, h, P, T)
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        w = s / s.sum(axis=-1, keepdims=True)
        v = np.matmul(H[:, None, 1:], attn["Wv"])  # (B, h, T, v)
        a = np.matmul(np.matmul(w, v), attn["Wo"]).sum(axis=1)  # (B, P, E)
        if l == last:
            H = Q + a
        elif attn["shared"]:
            H = H + np.concatenate([a[:, :1], np.broadcast_to(a[:, 1:2], (B, T, a.shape[-1]))], axis=1)
        else:
            H = H + a
        out.append(H)
        if l < upto:
            H = H + numpy_ffn(ffn, H)
    return out


def predict_np(model, X, weights=None) -> np.ndarray:
    """Ĥ(X) for a batch (B, T, d), in NumPy (:func:`pre_ffn_residuals`, the last FFN at CLS, the readout)."""
    W = numpy_weights(model) if weights is None else weights
    ffn = W[1][-1][1]
    # the last FFN at CLS chunk by chunk too (activation_bytes counts its hidden units): a wide (Kuhn)
    # decoder over thousands of inputs in one piece allocates arrays of hundreds of MB
    parts = []
    for Xc in _chunks(model, X, W):
        h = _pre_ffn_residuals(model, Xc, W, None)[-1][:, 0]
        parts.append(h + numpy_ffn(ffn, h))
    return np.concatenate(parts) @ np.asarray(model.w[...]) + float(np.asarray(model.b[...]))
