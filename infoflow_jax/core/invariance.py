"""Which residual coordinates are equal at every TOKEN position, read from compiled weights.

A static analysis (NumPy, outside jit) of a :class:`~infoflow_jax.core.model.Transformer`'s
concrete weights. Coordinate e is *token-invariant* after a sublayer when, for every input X,
h_t[e] is the same at every token position t = 1..T (the CLS row 0 is never compared). The
analysis is conservative and sound: "invariant" is proven, "varying" only means "not proven".

    embedding   e invariant  iff  A[:, e] = 0, P[:, e] = 0 and (position input) A_s[:, e] = 0 ∀s
                (the token row is x_s A + a + φ(s) P + x_s A_s: only a survives)
    attention   token queries are SHARED iff every head's Wq is exactly 0 on the rows of varying
                coordinates: then q_t = h_t Wq is the same at every token t, so are its scores
                against the (common) keys, its softmax and its output row — the SAME vector is
                added to every token row and invariance is unchanged. Otherwise every coordinate
                some head writes (a nonzero column of Wo) becomes varying.
    FFN         a hidden unit is varying iff it has a nonzero in-weight from a varying coordinate
                (through every layer of a deeper FFN, grouped layers block by block); an output
                coordinate becomes varying iff a varying unit writes it with a nonzero out-weight.
                (Biases are the same at every position; relu and residual addition are
                position-wise.)

Only exact zero tests (``== 0``, no tolerance): any change of a weight that lets a query read
a varying coordinate — a mutant, a hand edit, ±1e-300 — turns the layer's flag off. NaN weights
compare unequal to 0, hence count as nonzero (conservative). The equalities hold in exact
arithmetic and for float64 evaluation up to rounding (a dot product whose nonzero terms are
equal rows, summed with exact zeros); they assume a finite residual stream (0·inf = NaN).

:func:`shared_query_layers` feeds :mod:`infoflow_jax.core.fast_model`: a layer with shared
token queries computes attention for two query rows (CLS and token 1) and broadcasts the token
row — O(T) instead of O(T²) per layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TokenInvariance:
    """The analysis of one model: ``varying[i]`` (bool, (E,)) after sublayer i — index 0 the
    embedding, then attention and FFN of layer 1, of layer 2, … (1 + 2L masks); and per layer
    ``shared_queries[l]``: every token row of layer l's attention uses the same query."""

    varying: tuple[np.ndarray, ...]
    shared_queries: tuple[bool, ...]

    def varying_before_layer(self, layer: int) -> np.ndarray:
        return self.varying[2 * layer]


def embedding_varying(A, P, As=None) -> np.ndarray:
    """(E,) bool: the token embedding x_s A + a + φ(s) P (+ x_s A_s) can differ between tokens
    at e iff some entry of A[:, e], P[:, e] (or A_s[:, e] for some s) is nonzero."""
    A, P = np.asarray(A), np.asarray(P)
    varying = np.any(A != 0, axis=0) | np.any(P != 0, axis=0)
    if As is not None:
        As = np.asarray(As)
        varying |= np.any(As.reshape(-1, As.shape[-1]) != 0, axis=0)
    return varying


def queries_shared(Wq, varying) -> bool:
    """Wq (h, E, d_k): every head's query reads no varying coordinate (rows exactly 0)."""
    return not bool(np.any(np.asarray(Wq)[:, np.asarray(varying), :] != 0))


def attention_writes(Wo) -> np.ndarray:
    """(E,) bool: coordinates some head writes, Wo (h, d_v, E) with a nonzero column."""
    Wo = np.asarray(Wo)
    return np.any(Wo.reshape(-1, Wo.shape[-1]) != 0, axis=0)


def ffn_varying_outputs(layers, varying) -> np.ndarray:
    """(n_out,) bool: the FFN's outputs that can differ between tokens. ``layers`` is
    [(W, b, grouped), …] (dense W (n_in, n_out); grouped W (G, g_in, g_out), block diagonal);
    a unit is varying iff a nonzero weight connects it to a varying unit of the layer below."""
    z = np.asarray(varying, bool)
    for W, _, grouped in layers:
        W = np.asarray(W)
        if grouped:
            G, g_in, g_out = W.shape
            zg = z.reshape(G, g_in)
            z = np.any((W != 0) & zg[:, :, None], axis=1).reshape(G * g_out)
        else:
            z = np.any((W != 0) & z[:, None], axis=0)
    return z


def token_invariance(model) -> TokenInvariance:
    """Run the analysis over the embedding and every layer of ``model`` (concrete weights)."""
    emb = model.embed
    As = np.asarray(emb.As[...]) if getattr(emb, "position_input", False) else None
    varying = embedding_varying(emb.A[...], emb.P[...], As)
    masks, shared = [varying], []
    for block in model.blocks:
        ok = queries_shared(block.attn.Wq[...], varying)
        shared.append(ok)
        if not ok:
            varying = varying | attention_writes(block.attn.Wo[...])
        masks.append(varying)
        ffn = block.ffn
        layers = [(ffn.W[i][...], ffn.b[i][...], kind == "grouped") for i, kind in enumerate(ffn.kinds)]
        varying = varying | ffn_varying_outputs(layers, varying)
        masks.append(varying)
    return TokenInvariance(varying=tuple(masks), shared_queries=tuple(shared))


def shared_query_layers(model) -> tuple[bool, ...]:
    """Per layer: True iff its token queries are proven equal at every token position."""
    return token_invariance(model).shared_queries
