"""Width buckets: pad FFN hidden layers with zero units so that models of different ε share a shape.

A hidden unit whose in-weights, bias and out-weights are all zero computes
relu(0) = 0 and adds 0·0 to every output: it changes nothing. Padding every
dense FFN hidden layer of a built model to a *bucket* width therefore gives a
model with the same function (up to the summation order of a longer dot
product, i.e. float rounding; see ``tests/test_sweep_padding.py``) whose weight
pytree has a shape shared by every configuration in the bucket, so one compiled
program evaluates all of them (stacked, ``jax.vmap``).

Padding is post hoc (it reads a :class:`~infoflow_jax.verification.construction.Built`'s
compiled model and rebuilds a wider :class:`~infoflow_jax.core.model.Transformer`):
constructions need no option for it. Only the interfaces *between two dense*
FFN layers are padded; interfaces next to a grouped (block-diagonal) layer keep
their width (a bucket then simply holds fewer configurations).

Parameter counts are always taken from the unpadded model.

Policies (``SweepSpec.bucket``):

* ``"pow2"`` — every padded width rounded up to the next power of two;
* ``"family"`` — every configuration of a *family* (same construction
  structure, T, k, dtype, budget) padded to the family's largest width: one
  program per family. Cheaper when compilation dominates (small models on a
  CPU), dearer when evaluation does (large widths at many positions);
* ``"auto"`` — start from the power-of-two classes and merge neighbouring
  classes of a family (narrow into wide) while the extra evaluation work of
  the padding is estimated to cost less than the compilation it saves
  (:func:`plan_widths`, a FLOP model with per-platform constants
  :data:`AUTO_COST`). Each bucket is then padded only to the widest width of
  its own members (a bucket of one width is not padded at all).
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from infoflow_jax.core.flax_nnx import nnx

from infoflow_jax.core.model import TFConfig, Transformer


def next_pow2(width: int) -> int:
    """Smallest power of two ≥ width (width ≥ 1)."""
    return 1 << max(int(width) - 1, 0).bit_length()


def width_paddable(cfg: TFConfig) -> list[list[bool]]:
    """For each layer, for each FFN interface j (between FFN layer j and j+1): may it be padded?"""
    out = []
    for layer in cfg.layers:
        s = layer.ffn
        out.append([s[j].kind == "dense" and s[j + 1].kind == "dense" for j in range(len(s) - 1)])
    return out


def hidden_widths(cfg: TFConfig) -> tuple[tuple[int, ...], ...]:
    """Widths of the paddable interfaces (0 where an interface is not paddable)."""
    return tuple(tuple(layer.ffn[j].n_out if ok else 0 for j, ok in enumerate(flags))
                 for layer, flags in zip(cfg.layers, width_paddable(cfg)))


def with_widths(cfg: TFConfig, widths: Sequence[Sequence[int]]) -> TFConfig:
    """``cfg`` with its paddable interfaces set to ``widths`` (entries of 0 are left alone)."""
    layers = []
    for layer, ws, flags in zip(cfg.layers, widths, width_paddable(cfg)):
        ffn = list(layer.ffn)
        for j, (w, ok) in enumerate(zip(ws, flags)):
            if ok and w:
                if w < ffn[j].n_out:
                    raise ValueError(f"cannot pad width {ffn[j].n_out} down to {w}")
                ffn[j] = replace(ffn[j], n_out=int(w))
                ffn[j + 1] = replace(ffn[j + 1], n_in=int(w))
        layers.append(replace(layer, ffn=tuple(ffn)))
    return replace(cfg, layers=tuple(layers))


def padded_config(cfg: TFConfig, bucket: Callable[[int], int] = next_pow2) -> TFConfig:
    """``cfg`` with every paddable hidden width w replaced by ``bucket(w)`` (≥ w)."""
    return with_widths(cfg, [[bucket(w) if w else 0 for w in ws] for ws in hidden_widths(cfg)])


def capped(cfg: TFConfig, width: int) -> TFConfig:
    """``cfg`` with every paddable hidden width at most ``width`` (for cost estimates only)."""
    layers = []
    for layer, flags in zip(cfg.layers, width_paddable(cfg)):
        ffn = list(layer.ffn)
        for j, ok in enumerate(flags):
            if ok and ffn[j].n_out > width:
                ffn[j] = replace(ffn[j], n_out=width)
                ffn[j + 1] = replace(ffn[j + 1], n_in=width)
        layers.append(replace(layer, ffn=tuple(ffn)))
    return replace(cfg, layers=tuple(layers))


def structure(cfg: TFConfig) -> TFConfig:
    """The shape family of ``cfg``: its config with every paddable width set to 0."""
    layers = []
    for layer, flags in zip(cfg.layers, width_paddable(cfg)):
        ffn = list(layer.ffn)
        for j, ok in enumerate(flags):
            if ok:
                ffn[j] = replace(ffn[j], n_out=0)
                ffn[j + 1] = replace(ffn[j + 1], n_in=0)
        layers.append(replace(layer, ffn=tuple(ffn)))
    return replace(cfg, layers=tuple(layers))


def join(cfgs: Sequence[TFConfig]) -> TFConfig:
    """The smallest config every one of ``cfgs`` (one structure) pads into: elementwise max width."""
    cfgs = list(cfgs)
    base = structure(cfgs[0])
    if any(structure(c) != base for c in cfgs[1:]):
        raise ValueError("configs of different structure cannot share a bucket")
    hw = [hidden_widths(c) for c in cfgs]
    widths = [[max(h[l][j] for h in hw) for j in range(len(hw[0][l]))] for l in range(len(hw[0]))]
    return with_widths(cfgs[0], [[int(w) for w in ws] for ws in widths])


def _pad_leaf(old, new_shape, dtype):
    old = np.asarray(old)
    if old.shape == tuple(new_shape):
        return jnp.asarray(old, dtype)
    if old.ndim != len(new_shape) or any(a > b for a, b in zip(old.shape, new_shape)):
        raise ValueError(f"cannot pad a leaf of shape {old.shape} into {tuple(new_shape)}")
    out = np.zeros(new_shape, dtype=old.dtype)
    out[tuple(slice(0, n) for n in old.shape)] = old
    return jnp.asarray(out, dtype)


def pad_model(model: Transformer, target: TFConfig, *, dtype=None) -> Transformer:
    """A Transformer of config ``target`` computing the same function as ``model``.

    Every weight of ``model`` is copied into the top-left corner of the wider
    weight; the rest is zero (zero hidden units: zero in-weights, bias, out-weights).
    """
    if structure(target) != structure(model.cfg):
        raise ValueError("target config has a different structure")
    leaves_old = jax.tree_util.tree_leaves(nnx.state(model, nnx.Param))
    dtype = dtype or leaves_old[0].dtype
    wide = Transformer(target, dtype=dtype, rngs=None)
    graphdef, state = nnx.split(wide)
    leaves_new, treedef = jax.tree_util.tree_flatten(state)
    if len(leaves_new) != len(leaves_old):
        raise ValueError("padded model has a different parameter structure")
    padded = [_pad_leaf(o, n.shape, dtype) for o, n in zip(leaves_old, leaves_new)]
    nnx.update(wide, jax.tree_util.tree_unflatten(treedef, padded))
    return wide


def pad_state(built, bucket: Callable[[int], int] | TFConfig = next_pow2, *, dtype=None):
    """``(graphdef, state)`` of ``built``'s model padded to ``bucket``.

    ``bucket`` is a width function (e.g. :func:`next_pow2`) or the target
    :class:`TFConfig` itself (e.g. a family's :func:`join`).
    """
    model = built.compiled.model if hasattr(built, "compiled") else built
    target = bucket if isinstance(bucket, TFConfig) else padded_config(model.cfg, bucket)
    if target == model.cfg and dtype is None:
        return nnx.split(model)
    return nnx.split(pad_model(model, target, dtype=dtype))


# ----------------------------------------------------------------------------- the "auto" policy
#: platform → (seconds one bucket program takes to compile, sustained FLOP/s of evaluation).
#: Measured orders of magnitude (docs/sweeps.md); only the ratio matters.
AUTO_COST = {"cpu": (6.0, 4e9), "gpu": (15.0, 2e12), "tpu": (15.0, 2e12)}

#: platform → XLA compiler options for a bucket program. On CPU, XLA's fusion emitters (the
#: default in jaxlib 0.10) spend most of a bucket's compile time in LLVM; the classic emitters
#: compile the same HLO in 15–50 % less time at equal evaluation speed on C1 and C3 (C2's
#: evaluation slower; docs/sweeps.md has the measurement). Numerics are float64 either way
#: (no fast-math). A user's XLA_FLAGS cannot override these: set ``INFOFLOW_XLA_DEFAULTS=off``.
COMPILER_OPTIONS = {"cpu": {"xla_cpu_use_fusion_emitters": False}}


def compiler_options(platform: str) -> dict | None:
    """The options :data:`COMPILER_OPTIONS` gives ``platform`` (None: XLA's defaults)."""
    if os.environ.get("INFOFLOW_XLA_DEFAULTS", "").lower() in ("off", "0", "false"):
        return None
    return COMPILER_OPTIONS.get(platform) or None


def eval_flops(cfg: TFConfig, T: int) -> float:
    """FLOPs of one forward evaluation of a model of config ``cfg`` on T tokens.

    The last layer computes the CLS row only (``Block.cls_row``), so its FFN
    costs one position, every other layer T + 1.
    """
    f = 0.0
    for i, layer in enumerate(cfg.layers):
        rows = 1 if i == cfg.L - 1 else T + 1
        h, dk, dv, E = layer.heads, layer.d_key, layer.d_value, cfg.E
        f += 2 * h * (rows * E * dk + T * E * (dk + dv) + rows * T * (dk + dv) + rows * dv * E)
        for s in layer.ffn:
            f += 2 * rows * (s.n_in * s.n_out if s.kind == "dense" else s.groups * s.g_in * s.g_out)
    return f


def plan_widths(cfgs: Sequence[TFConfig], T: int, evals: float, *, platform: str = "cpu",
                policy: str = "auto") -> list[TFConfig]:
    """The padded config of each of ``cfgs`` (one structure family), under ``policy``.

    ``evals``: forward-evaluation equivalents per configuration (samples +
    grid + 3 × ascent steps·starts), for the "auto" cost model.
    """
    pow2 = [padded_config(c) for c in cfgs]
    if policy == "pow2":
        return pow2
    if policy == "family":
        fam = join(cfgs)
        return [fam] * len(cfgs)
    compile_s, flops_per_s = AUTO_COST.get(platform, AUTO_COST["cpu"])
    cost = lambda c: evals * eval_flops(c, T) / flops_per_s  # seconds per configuration
    distinct = sorted(set(pow2), key=lambda c: eval_flops(c, T))
    count = {c: sum(p == c for p in pow2) for c in distinct}
    merged: dict[TFConfig, TFConfig] = {}
    current, members = distinct[0], [distinct[0]]
    for nxt in distinct[1:]:
        j = join([current, nxt])
        extra = sum(count[m] * (cost(j) - cost(m)) for m in members) + count[nxt] * (cost(j) - cost(nxt))
        if extra < compile_s:
            current, members = j, members + [nxt]
        else:
            merged.update({m: current for m in members})
            current, members = nxt, [nxt]
    merged.update({m: current for m in members})
    # each bucket's shape: the widest of its members' own widths (padding beyond it buys nothing)
    tight: dict[TFConfig, TFConfig] = {}
    for c, p in zip(cfgs, pow2):
        b = merged[p]
        tight[b] = c if b not in tight else join([tight[b], c])
    return [tight[merged[p]] for p in pow2]


def plan_T(members: Sequence[tuple[int, TFConfig | None, float]], *, platform: str = "cpu",
           policy: str = "auto") -> dict[int, int]:
    """T padding (``pad_T``): the padded length T_pad each T of a family runs at.

    ``members``: one (T, cfg, evals) per configuration — its model config (None for a lemma
    check: cost ∝ T) and its forward-evaluation equivalents at its own T. A T merged into a
    group runs at the group's largest T and evaluates the group's largest input batches
    (the exhaustive grid exists only at small T). Policy ``"family"``: every T at the largest;
    ``"pow2"`` and ``"auto"``: going down from the largest T, a smaller T joins the current
    group while the extra evaluation it causes costs less than the compilation it saves
    (the cost model of :func:`plan_widths`, :data:`AUTO_COST`); else it starts its own group.
    """
    Ts = sorted({t for t, _, _ in members}, reverse=True)
    if policy == "family":
        return {t: Ts[0] for t in Ts}
    compile_s, flops_per_s = AUTO_COST.get(platform, AUTO_COST["cpu"])
    flops = lambda cfg, T: eval_flops(cfg, T) if cfg is not None else 8.0 * T

    def cost(group: list[int]) -> float:
        """Seconds evaluating the group's members in one padded program."""
        t_pad = group[0]
        evals = max(e for t, _, e in members if t in group)
        return sum(evals * flops(cfg, t_pad) for t, cfg, _ in members if t in group) / flops_per_s

    def alone(t: int) -> float:
        return sum(e * flops(cfg, t) for tt, cfg, e in members if tt == t) / flops_per_s

    out: dict[int, int] = {}
    group = [Ts[0]]
    for t in Ts[1:]:
        if cost(group + [t]) - cost(group) - alone(t) < compile_s:
            group.append(t)
        else:
            out.update({g: group[0] for g in group})
            group = [t]
    out.update({g: group[0] for g in group})
    return out
