"""The papers' Transformer: attention-only layers and a two-layer GELU MLP readout (issue 12).

Pure functions on a parameter dict (so that seeds can be trained side by side with
``jax.vmap``). For one example X (T, d):

* embedding: token t gets ``[x^(t), φ_pos(t)] W_in + b_in`` (φ_pos one-hot or absent);
  a learned readout token c is prepended (position 0), as in :mod:`infoflow_jax.core.model`;
* each of the L layers: h-head softmax attention, queries from all T+1 positions,
  keys/values from the T tokens, head width ``d_head`` (default E // h) and
  output projection back to E; optional pre-layer norm (``layer_norm``) and
  residual add (``residual``). The papers' head-count setting has neither;
* optional per-token feed-forward block after each attention (``ffn`` > 0, the standard
  Transformer block and the layer model of InfoFlow's planner, docs/infoflow.md §3):
  ``H ← H + F₂ GELU(F₁ H + f₁) + f₂`` (with ``residual``; without it the block replaces H).
  Without it (``ffn`` = 0, the head-count paper's model) a layer is attention only, and a
  token's state after layer ℓ is *linear* in the values it retrieved: a layer-(ℓ+1) score,
  linear in that state, cannot be a product such as x(s)ᵀA x(t*(s)) of the token's own
  input and a retrieved one;
* readout: ``y = w₂ᵀ GELU(W₁ h_0 + b₁) + b₂`` on the readout token's final state.

Initial scales: every matrix N(0, 1/fan_in) (``query_init = "zero"``: every W_Q = 0, so
every head starts uniform and the gradient, not the random sign of the initial score,
picks what it retrieves; the fix of the T1 control, docs/training.md); the last readout layer is scaled by
``out_scale`` (default 0: the network starts at the constant b₂, which the trainer sets
to the mean training target; a large initial output offset is what drove the T1
control of the older protocol into the constant predictor, see docs/training.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from infoflow_jax.core.errors import check_choice, check_int_range

QUERY_INITS = ("normal", "zero")

__all__ = ["QUERY_INITS", "PaperArch", "init_params", "forward", "forward_batch", "attention_readout_row",
           "layer_attention", "layer_states", "paper_param_count"]


@dataclass(frozen=True)
class PaperArch:
    """Shapes and switches of the papers' model; hashable (keys compilation caches)."""

    d: int
    T: int
    L: int
    h: int
    E: int
    W: int  # hidden width of the GELU readout MLP
    d_head: int = 0  # 0: E // (heads of the layer)
    h_last: int = 0  # heads of the last layer when > 0 (the papers' (h₁, h₂)); 0: h
    residual: bool = False
    layer_norm: bool = False
    positional: str = "none"  # "none" | "onehot"
    out_scale: float = 0.0
    ffn: int = 0  # hidden width of the per-token GELU block after each attention; 0: none
    query_init: str = "normal"  # "normal" | "zero" (every W_Q starts at 0)

    def __post_init__(self):
        for name in ("d", "T", "L", "h", "E", "W"):
            check_int_range(name, getattr(self, name), 1)
        check_int_range("d_head", self.d_head, 0)
        check_int_range("h_last", self.h_last, 0)
        check_int_range("ffn", self.ffn, 0)
        check_choice("positional", self.positional, ("none", "onehot"))
        check_choice("query_init", self.query_init, QUERY_INITS)

    @property
    def layer_heads(self) -> tuple[int, ...]:
        """Heads per layer: h everywhere, the last layer h_last if given."""
        return (self.h,) * (self.L - 1) + (self.h_last or self.h,)

    def head_width(self, heads: int) -> int:
        return self.d_head or max(1, self.E // heads)

    @property
    def n_in(self) -> int:
        return self.d + (self.T if self.positional == "onehot" else 0)


def _normal(key, shape, fan_in, dtype):
    return jax.random.normal(key, shape, dtype) / jnp.sqrt(jnp.asarray(fan_in, dtype))


def init_params(arch: PaperArch, key, dtype=jnp.float32) -> dict:
    """Parameters of ``arch``: N(0, 1/fan_in) matrices, zero biases, LN scales 1.

    The keys of the attention and readout weights do not depend on ``ffn`` or
    ``query_init``: a variant differs from the plain model only in what it changes.
    """
    E = arch.E
    keys = jax.random.split(key, 4 + 4 * arch.L)
    ffn_keys = jax.random.split(jax.random.fold_in(key, 7), 2 * arch.L)
    layers = []
    for i, h in enumerate(arch.layer_heads):
        k = arch.head_width(h)
        kq, kk, kv, ko = keys[4 + 4 * i: 8 + 4 * i]
        Wq = _normal(kq, (h, E, k), E, dtype)
        layers.append({
            "Wq": jnp.zeros_like(Wq) if arch.query_init == "zero" else Wq,
            "Wk": _normal(kk, (h, E, k), E, dtype),
            "Wv": _normal(kv, (h, E, k), E, dtype), "Wo": _normal(ko, (h, k, E), h * k, dtype),
            "ln_g": jnp.ones((E,), dtype), "ln_b": jnp.zeros((E,), dtype),
        })
        if arch.ffn:
            layers[-1].update({
                "F1": _normal(ffn_keys[2 * i], (E, arch.ffn), E, dtype),
                "f1": jnp.zeros((arch.ffn,), dtype),
                "F2": _normal(ffn_keys[2 * i + 1], (arch.ffn, E), arch.ffn, dtype),
                "f2": jnp.zeros((E,), dtype)})
    return {
        "W_in": _normal(keys[0], (arch.n_in, E), arch.n_in, dtype), "b_in": jnp.zeros((E,), dtype),
        "c": _normal(keys[1], (E,), 1, dtype),
        "layers": layers,
        "W1": _normal(keys[2], (E, arch.W), E, dtype), "b1": jnp.zeros((arch.W,), dtype),
        "w2": arch.out_scale * _normal(keys[3], (arch.W,), arch.W, dtype),
        "b2": jnp.zeros((), dtype),
    }


def _layer_norm(H, g, b):
    mu = jnp.mean(H, axis=-1, keepdims=True)
    var = jnp.var(H, axis=-1, keepdims=True)
    return (H - mu) / jnp.sqrt(var + 1e-5) * g + b


def _attention(p: dict, H):
    """Heads' weights (h, T+1, T) and the projected output (T+1, E)."""
    q = jnp.einsum("pe,hek->hpk", H, p["Wq"])
    kk = jnp.einsum("se,hek->hsk", H[1:], p["Wk"])
    v = jnp.einsum("se,hek->hsk", H[1:], p["Wv"])
    weights = jax.nn.softmax(jnp.einsum("hpk,hsk->hps", q, kk), axis=-1)
    return weights, jnp.einsum("hps,hsk,hke->pe", weights, v, p["Wo"])


def _embed(arch: PaperArch, params: dict, X):
    feats = X
    if arch.positional == "onehot":
        feats = jnp.concatenate([X, jnp.eye(X.shape[0], arch.T, dtype=X.dtype)], axis=-1)
    tokens = feats @ params["W_in"] + params["b_in"]
    return jnp.concatenate([params["c"][None, :], tokens], axis=0)


def _layers(arch: PaperArch, params: dict, X):
    """Final states (T+1, E), and per layer the attention weights, the attention outputs and
    the states after the layer (after its FFN block, if any)."""
    H = _embed(arch, params, X)
    weights, outs, states = [], [], []
    for p in params["layers"]:
        Hn = _layer_norm(H, p["ln_g"], p["ln_b"]) if arch.layer_norm else H
        w, a = _attention(p, Hn)
        weights.append(w)
        outs.append(a)
        H = H + a if arch.residual else a
        if arch.ffn:
            f = jax.nn.gelu(H @ p["F1"] + p["f1"]) @ p["F2"] + p["f2"]
            H = H + f if arch.residual else f
        states.append(H)
    return H, weights, outs, states


def forward(arch: PaperArch, params: dict, X):
    """Scalar prediction for one input X (T, d)."""
    H = _layers(arch, params, X)[0]
    z = jax.nn.gelu(H[0] @ params["W1"] + params["b1"])
    return z @ params["w2"] + params["b2"]


def forward_batch(arch: PaperArch, params: dict, Xs):
    """Predictions for a batch (B, T, d) → (B,)."""
    return jax.vmap(lambda X: forward(arch, params, X))(Xs)


def attention_readout_row(arch: PaperArch, params: dict, X):
    """The readout token's attention output of the last layer (E,) and its weights (h, T):
    what the probe and the fixed-position check read."""
    _, weights, outs, _ = _layers(arch, params, X)
    return outs[-1][0], weights[-1][:, 0, :]


def layer_attention(arch: PaperArch, params: dict, X) -> list:
    """Every layer's attention weights for one input X (T, d): a list of (h, T+1, T) arrays,
    row 0 the readout token's query, row s (1..T) token s's query; column t the key token t."""
    return _layers(arch, params, X)[1]


def layer_states(arch: PaperArch, params: dict, X) -> list:
    """Every layer's output states for one input X (T, d): a list of (T+1, E) arrays, row 0
    the readout token, rows 1..T the tokens."""
    return _layers(arch, params, X)[3]


def paper_param_count(arch: PaperArch) -> int:
    """Trainable parameters in use (LN parameters only with ``layer_norm``)."""
    E = arch.E
    attn = sum(4 * h * E * arch.head_width(h) for h in arch.layer_heads)
    ln = arch.L * 2 * E if arch.layer_norm else 0
    ffn = arch.L * (2 * E * arch.ffn + arch.ffn + E) if arch.ffn else 0
    return arch.n_in * E + E + E + attn + ln + ffn + E * arch.W + arch.W + arch.W + 1
