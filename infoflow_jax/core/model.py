"""The model family TF(L, h, E, W) of THEORY §1, as ``flax.nnx`` modules.

Residual stream of width E at T token positions plus one readout position
(CLS, index 0).

* Embedding: token s gets ``x_s A + a + φ_pos(s) P``; CLS gets a fixed vector c.
  ``φ_pos`` is the positional code: none (width 0), one-hot (width T) or
  sinusoidal (width 2·n_freq). Optionally (``TFConfig.position_input``, off by
  default) token s adds ``x_s A_s``: THEORY's ``A·φ(x_s) + p(s)`` with φ the
  one-hot product feature x_s ⊗ e_s (the C5 memorizer needs it; when off the
  parameter ``As`` does not exist, so every other model is unchanged).
* Each layer: h-head softmax attention, queries from every position,
  keys/values from token positions only, residual add; then a position-wise
  ReLU FFN (Dense / Grouped layers, see :mod:`infoflow_jax.core.relu_net`),
  residual add.
* Output ``y = w·h_0^{(L)} + b``.

The inverse temperature β is part of ``W_Q`` (a scale); the softmax subtracts
the row maximum, so β up to 1e7 neither overflows nor underflows to NaN in
float32 or float64.

Every module computes one example (X of shape (T, d)); batch with ``jax.vmap``
from outside. The pure functional form is ``graphdef, state = nnx.split(model)``
and :func:`apply`.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from infoflow_jax.core.flax_nnx import nnx

from infoflow_jax.core.errors import check_choice, check_int_range

POSITIONAL_CODES = ("none", "onehot", "sinusoidal")


@dataclass(frozen=True)
class FFNLayerShape:
    """Shape of one FFN layer: dense (n_in → n_out) or grouped (G × g_in → g_out)."""

    kind: str  # "dense" | "grouped"
    n_in: int
    n_out: int
    groups: int = 1

    @property
    def g_in(self) -> int:
        return self.n_in // self.groups

    @property
    def g_out(self) -> int:
        return self.n_out // self.groups


@dataclass(frozen=True)
class LayerShape:
    heads: int
    d_key: int
    d_value: int
    ffn: tuple[FFNLayerShape, ...]  # first n_in == E, last n_out == E


@dataclass(frozen=True)
class TFConfig:
    """All shapes of a TF(L, h, E, W) model. Hashable: it keys compilation caches."""

    d: int
    E: int
    layers: tuple[LayerShape, ...]
    positional: str = "none"
    max_T: int = 0  # needed by one-hot / sinusoidal codes
    n_freq: int = 4
    position_input: bool = False  # token s also embeds x_s through its own matrix A_s (φ = x_s ⊗ e_s)

    @property
    def L(self) -> int:
        return len(self.layers)

    @property
    def n_pos(self) -> int:
        return {"none": 0, "onehot": self.max_T, "sinusoidal": 2 * self.n_freq}[self.positional]

    @staticmethod
    def uniform(*, L: int, h: int, E: int, W: int, d: int = 1, ffn_depth: int = 1,
                d_key: int | None = None, d_value: int | None = None,
                positional: str = "none", max_T: int = 0) -> "TFConfig":
        """The trainable family: every layer h heads and an FFN of width W, depth ``ffn_depth``."""
        check_int_range("L", L, 1)
        check_int_range("h", h, 1)
        check_int_range("E", E, 1)
        check_int_range("W", W, 1)
        check_int_range("ffn_depth", ffn_depth, 1)
        check_choice("positional", positional, POSITIONAL_CODES)
        dk = d_key or max(1, E // h)
        dv = d_value or max(1, E // h)
        widths = [E] + [W] * ffn_depth + [E]
        ffn = tuple(FFNLayerShape("dense", a, b) for a, b in zip(widths[:-1], widths[1:]))
        return TFConfig(d=d, E=E, layers=tuple(LayerShape(h, dk, dv, ffn) for _ in range(L)),
                        positional=positional, max_T=max_T)


def positional_features(kind: str, T: int, max_T: int, n_freq: int, dtype, xp=jnp):
    """φ_pos(s) for s = 1..T, shape (T, n_pos); ``xp`` the array module (``numpy`` for the host
    forward, :mod:`infoflow_jax.core.numpy_forward`)."""
    if kind == "none":
        return xp.zeros((T, 0), dtype)
    if kind == "onehot":
        return xp.eye(T, max_T, dtype=dtype)
    s = xp.arange(1, T + 1, dtype=dtype)[:, None]
    freqs = xp.pi * 2.0 ** xp.arange(n_freq, dtype=dtype)[None, :] / max(max_T, 1)
    return xp.concatenate([xp.sin(s * freqs), xp.cos(s * freqs)], axis=-1)


def _zeros(shape, dtype):
    """Zeros placed on the device from the host: ``jnp.zeros`` would compile one small XLA program
    per shape, and a build makes a model of new widths for every ε."""
    return jax.device_put(np.zeros(shape, dtype))


def _zeros_or_random(rngs, shape, dtype, scale):
    if rngs is None:
        return _zeros(shape, dtype)
    # float(scale): a numpy float64 scale would promote float32 weights to float64 under x64
    return (float(scale) * jax.random.normal(rngs.params(), shape, dtype)).astype(dtype)


class Embedding(nnx.Module):
    def __init__(self, cfg: TFConfig, *, dtype, rngs: nnx.Rngs | None):
        E = cfg.E
        self.positional = cfg.positional
        self.max_T = cfg.max_T
        self.n_freq = cfg.n_freq
        self.A = nnx.Param(_zeros_or_random(rngs, (cfg.d, E), dtype, 1.0 / np.sqrt(cfg.d)))
        self.a = nnx.Param(_zeros((E,), dtype))
        self.P = nnx.Param(_zeros_or_random(rngs, (cfg.n_pos, E), dtype, 1.0 / np.sqrt(max(cfg.n_pos, 1))))
        self.c = nnx.Param(_zeros_or_random(rngs, (E,), dtype, 1.0))
        self.position_input = cfg.position_input
        if cfg.position_input:  # only then: models without it keep exactly their old parameters
            self.As = nnx.Param(_zeros_or_random(rngs, (cfg.max_T, cfg.d, E), dtype, 1.0 / np.sqrt(cfg.d)))

    def __call__(self, X):
        T = X.shape[0]
        phi = positional_features(self.positional, T, self.max_T, self.n_freq, X.dtype)
        tokens = X @ self.A[...] + self.a[...] + phi @ self.P[...]
        if self.position_input:  # x_s A_s: the one-hot product feature x_s ⊗ e_s through one matrix
            tokens = tokens + jnp.einsum("sd,sde->se", X, self.As[...][:T])
        return jnp.concatenate([self.c[...][None, :], tokens], axis=0)  # (T+1, E)


class Attention(nnx.Module):
    """h-head softmax attention; queries from all T+1 positions, keys/values from tokens."""

    def __init__(self, E: int, shape: LayerShape, *, dtype, rngs):
        h, dk, dv = shape.heads, shape.d_key, shape.d_value
        self.Wq = nnx.Param(_zeros_or_random(rngs, (h, E, dk), dtype, 1.0 / np.sqrt(E)))
        self.Wk = nnx.Param(_zeros_or_random(rngs, (h, E, dk), dtype, 1.0 / np.sqrt(E)))
        self.Wv = nnx.Param(_zeros_or_random(rngs, (h, E, dv), dtype, 1.0 / np.sqrt(E)))
        self.Wo = nnx.Param(_zeros_or_random(rngs, (h, dv, E), dtype, 1.0 / np.sqrt(dv * h)))

    def weights(self, H, queries=None, valid=None):
        """Attention weights, shape (h, P, T): softmax over token positions, for the
        query rows ``queries`` (default: all T+1 positions of H). ``valid`` (bool (T,)):
        keys where it is False (padding) get score −∞, i.e. weight exactly 0."""
        queries = H if queries is None else queries
        q = jnp.einsum("pe,hek->hpk", queries, self.Wq[...])
        k = jnp.einsum("se,hek->hsk", H[1:], self.Wk[...])
        scores = jnp.einsum("hpk,hsk->hps", q, k)
        if valid is not None:
            scores = jnp.where(valid, scores, -jnp.inf)
        # jax.nn.softmax subtracts the row max: exp never sees a positive argument.
        return jax.nn.softmax(scores, axis=-1)

    def __call__(self, H, queries=None, valid=None):
        v = jnp.einsum("se,hev->hsv", H[1:], self.Wv[...])
        heads = jnp.einsum("hps,hsv->hpv", self.weights(H, queries, valid), v)
        return jnp.einsum("hpv,hve->pe", heads, self.Wo[...])


class FFN(nnx.Module):
    """Position-wise ReLU network; grouped layers are block-diagonal."""

    def __init__(self, shapes: tuple[FFNLayerShape, ...], *, dtype, rngs):
        self.kinds = tuple(s.kind for s in shapes)
        Ws, bs = [], []
        for s in shapes:
            if s.kind == "dense":
                Ws.append(nnx.Param(_zeros_or_random(rngs, (s.n_in, s.n_out), dtype, 1.0 / np.sqrt(s.n_in))))
                bs.append(nnx.Param(_zeros((s.n_out,), dtype)))
            else:
                Ws.append(nnx.Param(_zeros_or_random(rngs, (s.groups, s.g_in, s.g_out), dtype, 1.0 / np.sqrt(s.g_in))))
                bs.append(nnx.Param(_zeros((s.groups, s.g_out), dtype)))
        self.W = nnx.List(Ws)
        self.b = nnx.List(bs)

    def __call__(self, H):
        from infoflow_jax.core.relu_net import apply_layer

        z = H
        n = len(self.kinds)
        for i, kind in enumerate(self.kinds):
            z = apply_layer(self.W[i][...], self.b[i][...], z, kind == "grouped")
            if i < n - 1:
                z = jax.nn.relu(z)
        return z


class Block(nnx.Module):
    def __init__(self, E: int, shape: LayerShape, *, dtype, rngs):
        self.attn = Attention(E, shape, dtype=dtype, rngs=rngs)
        self.ffn = FFN(shape.ffn, dtype=dtype, rngs=rngs)

    def __call__(self, H, ffn=None, shared_query=False, valid=None):
        """``ffn`` (a position-wise callable) replaces this block's own FFN when given:
        the fast path (:mod:`infoflow_jax.core.fast_model`) passes an exact equivalent.
        ``shared_query=True`` is for a caller that has proven every token row's query equal
        (:mod:`infoflow_jax.core.invariance`): attention then runs for the query rows CLS and
        token 1 only and token 1's output row is broadcast to every token, O(T) not O(T²).
        ``valid`` (bool (T,)) masks padded keys (:meth:`Attention.weights`)."""
        ffn = self.ffn if ffn is None else ffn
        if shared_query:
            a = self.attn(H, queries=H[:2], valid=valid)
            H = H + jnp.concatenate([a[:1], jnp.broadcast_to(a[1:2], (H.shape[0] - 1, a.shape[1]))])
        else:
            H = H + self.attn(H, valid=valid)
        return H + ffn(H)

    def cls_row(self, H, ffn=None, valid=None):
        """The CLS row of ``self(H)`` only, shape (1, E): the last layer needs no more,
        which saves a factor T+1 of FFN work there."""
        ffn = self.ffn if ffn is None else ffn
        h0 = H[:1] + self.attn(H, queries=H[:1], valid=valid)
        return h0 + ffn(h0)


class Transformer(nnx.Module):
    """TF(L, h, E, W): X (T, d) ↦ scalar. ``rngs=None`` gives all-zero weights (for hand-built ones)."""

    def __init__(self, cfg: TFConfig, *, dtype=jnp.float64, rngs: nnx.Rngs | None = None):
        self.cfg = cfg
        self.embed = Embedding(cfg, dtype=dtype, rngs=rngs)
        self.blocks = nnx.List([Block(cfg.E, s, dtype=dtype, rngs=rngs) for s in cfg.layers])
        self.w = nnx.Param(_zeros_or_random(rngs, (cfg.E,), dtype, 1.0 / np.sqrt(cfg.E)))
        self.b = nnx.Param(_zeros((), dtype))

    def residual_stream(self, X):
        """All residual states h^{(0..L)}, each (T+1, E): for inspection and tests."""
        H = self.embed(X)
        states = [H]
        for block in self.blocks:
            H = block(H)
            states.append(H)
        return states

    def __call__(self, X, ffns=None, shared_queries=None, valid=None):
        """Ĥ(X). ``ffns`` (one entry per layer, None = the block's own FFN) substitutes
        exact equivalents of the FFNs, ``shared_queries`` (one bool per layer) marks layers
        whose token queries are proven equal (:func:`infoflow_jax.core.fast_model.apply_fast`).
        ``valid`` (bool (T,), default all True) marks the real tokens of a padded input:
        attention gives padded keys weight exactly 0 and the readout reads CLS only, so Ĥ
        equals Ĥ of the unpadded input (to the summation order of zeros)."""
        ffns = (None,) * len(self.blocks) if ffns is None else tuple(ffns)
        shared = (False,) * len(self.blocks) if shared_queries is None else tuple(shared_queries)
        H = self.embed(X)
        for block, ffn, sq in zip(self.blocks[:-1], ffns[:-1], shared[:-1]):
            H = block(H, ffn, sq, valid)
        h0 = self.blocks[-1].cls_row(H, ffns[-1], valid)[0] if len(self.blocks) else H[0]
        return h0 @ self.w[...] + self.b[...]


def apply(graphdef, state, X, valid=None):
    """Pure form: ``apply(*nnx.split(model), X) == model(X)``; jit/vmap over X and state.
    ``valid``: the real tokens of a padded input (:meth:`Transformer.__call__`)."""
    return nnx.merge(graphdef, state)(X, valid=valid)


def batched_apply(graphdef, state, Xs):
    """``apply`` over a batch of inputs (B, T, d) → (B,)."""
    return jax.vmap(lambda X: apply(graphdef, state, X))(Xs)
