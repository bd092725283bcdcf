"""The L4 (Kuhn) decoder as an FFN network for :class:`~infoflow_jax.core.slots.FFNBlock`.

``kuhn_decoder`` starts with a Grouped(D, 1, 2) clamp layer; an FFN block must
start with a Dense layer (it reads the residual stream through forms), so the
clamp is rewritten as the equivalent block-diagonal Dense (D → 2D) layer. Same
function, same nonzero count.
"""

from __future__ import annotations

import numpy as np

from infoflow_jax.core.kuhn import KuhnDecoder
from infoflow_jax.core.relu_net import Dense, Grouped


def densify(layer) -> Dense:
    """A Grouped layer as the equivalent (block-diagonal) Dense layer."""
    if isinstance(layer, Dense):
        return layer
    G, g_in, g_out = layer.W.shape
    W = np.zeros((G * g_in, G * g_out))
    for g in range(G):
        W[g * g_in:(g + 1) * g_in, g * g_out:(g + 1) * g_out] = layer.W[g]
    return Dense(W, np.asarray(layer.b).reshape(-1))


def kuhn_ffn(dec: KuhnDecoder) -> tuple:
    """The decoder's layers, first one Dense (FFNBlock-ready)."""
    layers = list(dec.layers)
    if isinstance(layers[0], Grouped):
        layers[0] = densify(layers[0])
    return tuple(layers)


def shift_vertex(dec: KuhnDecoder, amount: float, index: int | None = None) -> tuple:
    """Negative control: the decoder with one vertex value (default: the centre one) moved by ``amount``."""
    layers = list(kuhn_ffn(dec))
    W = np.array(layers[-1].W, copy=True)
    V = W.shape[0]
    i = V // 2 if index is None else index
    W[i, 0] += amount
    layers[-1] = Dense(W, layers[-1].b)
    return tuple(layers)
