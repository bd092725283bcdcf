"""Position-wise ReLU networks as data: a list of Dense / Grouped layers.

A network ``[l_1, ..., l_n]`` computes ``l_n ∘ relu ∘ l_{n-1} ∘ ... ∘ relu ∘ l_1``:
ReLU after every layer but the last, which is linear.

``Dense(W, b)``: ``z ↦ z W + b`` with ``W`` of shape (n_in, n_out).
``Grouped(W, b)``: a block-diagonal layer with G equal blocks, ``W`` of shape
(G, g_in, g_out): the input of width G·g_in is cut into G groups, each mapped by
its own matrix. Its dense parameter count is G·g_in·g_out + G·g_out, which is
what makes the d-dimensional decoder (L4) cost (n+1)^D·O(D) parameters instead
of a square of that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np


@dataclass(frozen=True, eq=False)
class Dense:
    W: np.ndarray  # (n_in, n_out)
    b: np.ndarray  # (n_out,)

    @property
    def n_in(self) -> int:
        return int(self.W.shape[0])

    @property
    def n_out(self) -> int:
        return int(self.W.shape[1])


@dataclass(frozen=True, eq=False)
class Grouped:
    W: np.ndarray  # (G, g_in, g_out)
    b: np.ndarray  # (G, g_out)

    @property
    def n_in(self) -> int:
        return int(self.W.shape[0] * self.W.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.W.shape[0] * self.W.shape[2])


Layer = Union[Dense, Grouped]


def apply_layer(layer_W, layer_b, z, grouped: bool):
    """One affine layer on the last axis of ``z``."""
    if not grouped:
        return z @ layer_W + layer_b
    G, g_in, g_out = layer_W.shape
    zg = z.reshape(z.shape[:-1] + (G, g_in))
    out = jnp.einsum("...gi,gio->...go", zg, layer_W) + layer_b
    return out.reshape(z.shape[:-1] + (G * g_out,))


def relu_net_apply(layers: Sequence[Layer], x):
    """Evaluate a ReLU network on ``x`` of shape (..., n_in)."""
    z = x
    for i, layer in enumerate(layers):
        z = apply_layer(jnp.asarray(layer.W), jnp.asarray(layer.b), z, isinstance(layer, Grouped))
        if i < len(layers) - 1:
            z = jax.nn.relu(z)
    return z


def depth(layers: Sequence[Layer]) -> int:
    """Number of ReLU (hidden) layers."""
    return len(layers) - 1


def identity_dense(width: int) -> Dense:
    """A layer that passes a non-negative (post-ReLU) vector through unchanged."""
    return Dense(np.eye(width), np.zeros(width))


def pad_depth(layers: Sequence[Layer], hidden_layers: int) -> list[Layer]:
    """Insert identity layers before the output layer to reach ``hidden_layers``.

    Exact: hidden activations are post-ReLU, hence ≥ 0, and relu(z) = z there.
    """
    layers = list(layers)
    missing = hidden_layers - depth(layers)
    if missing < 0:
        raise ValueError(f"network has {depth(layers)} hidden layers > {hidden_layers}")
    width = layers[-1].n_in
    return layers[:-1] + [identity_dense(width) for _ in range(missing)] + layers[-1:]


def dense_param_count(layers: Sequence[Layer]) -> int:
    return int(sum(l.W.size + l.b.size for l in layers))


def nonzero_param_count(layers: Sequence[Layer]) -> int:
    return int(sum(np.count_nonzero(l.W) + np.count_nonzero(l.b) for l in layers))
