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
from functools import partial
from typing import Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from infoflow_jax.core.errors import check_int_range


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


def apply_layer(layer_W, layer_b, z, grouped: bool, precision=None):
    """One affine layer on the last axis of ``z``; ``precision`` is the matmuls' ``jax.lax.Precision``
    (None: the backend's default; ``HIGHEST``: no TF32 on GPUs)."""
    if not grouped:
        return jnp.matmul(z, layer_W, precision=precision) + layer_b
    G, g_in, g_out = layer_W.shape
    zg = z.reshape(z.shape[:-1] + (G, g_in))
    out = jnp.einsum("...gi,gio->...go", zg, layer_W, precision=precision) + layer_b
    return out.reshape(z.shape[:-1] + (G * g_out,))


def _forward(params, z, precision):
    last = len(params) - 1
    for i, (W, b) in enumerate(params):
        z = apply_layer(W, b, z, W.ndim == 3, precision)
        if i < last:
            z = jax.nn.relu(z)
    return z


def relu_net_apply(layers: Sequence[Layer], x, *, precision=None, chunk: Optional[int] = None):
    """Evaluate a Dense/Grouped ReLU network on x of shape (..., n_in) → (..., n_out).

    ReLU after every layer but the last. A layer whose W is 3-D is Grouped. Computes in x's
    float dtype (float32 if x is an integer array and x64 is off). jit / vmap / grad friendly;
    the weights enter a jitted kernel as arguments, so networks of equal shapes share one compile.

    ``precision``: the matmuls' ``jax.lax.Precision`` (default: the backend's; the L4 decoder
    passes ``HIGHEST``, no TF32 on GPUs). ``chunk``: evaluate the flattened batch in chunks of
    this many points (``lax.map``), bounding activation memory at chunk × (widest layer): the
    L4 decoder's hidden width is ≈ 5·(n+1)^D, i.e. 5 MB per point at D=3, n=50.
    """
    x = jnp.asarray(x)
    dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.result_type(float)
    params = [(jnp.asarray(l.W, dtype=dtype), jnp.asarray(l.b, dtype=dtype)) for l in layers]
    if chunk is not None:
        chunk = check_int_range("chunk", chunk, 1)
    return _apply_jit(params, x.astype(dtype), precision, chunk)


@partial(jax.jit, static_argnames=("precision", "chunk"))
def _apply_jit(params, z, precision, chunk):
    if chunk is None:
        return _forward(params, z, precision)
    batch = z.shape[:-1]
    flat = z.reshape(-1, z.shape[-1])
    B = flat.shape[0]
    pad = (-B) % chunk
    flat = jnp.concatenate([flat, jnp.zeros((pad, flat.shape[1]), flat.dtype)], axis=0)
    out = jax.lax.map(lambda c: _forward(params, c, precision), flat.reshape(-1, chunk, flat.shape[1]))
    out = out.reshape(-1, out.shape[-1])[:B]
    return out.reshape(batch + (out.shape[-1],))


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
