"""The exact fast forward: one-input FFN blocks through their sorted breakpoints, and
attention layers with shared token queries on two query rows.

    apply_fast(fast_plan(graphdef, state), X) = apply(graphdef, state, X)   (to float64 rounding)

A layer's FFN with one hidden Dense layer is, for ANY weights, the identity

    FFN(h) = b2 + Σ_g o_g·PL_g(u_g·h) + relu(h W1r + b1r) W2r          (:mod:`infoflow_jax.core.pwl`)

with PL_g the piecewise-linear function of the units sharing input direction u_g and output
direction o_g. Evaluated through its K_g sorted breakpoints (one ``searchsorted`` and an
interpolation) a group costs O(log K_g) per position instead of O(K_g), and holds O(1)
activations instead of K_g: an L3 decoder with N + 1 units becomes one binary search.

Attention: a layer whose token queries are proven equal at every token position
(:mod:`infoflow_jax.core.invariance`: its Wq is exactly 0 on every coordinate that can differ
between tokens, e.g. C2's and C3's queries β·one) has identical token rows of scores, softmax
and output. It is computed for the query rows CLS and token 1 only, and token 1's row is
broadcast: scores (h, 2, T) instead of (h, T+1, T), O(T) instead of O(T²) per layer.

The plan is read from the COMPILED weights (``state``) only — never from a construction's
design — so a mutant or a hand edit changes the fast function exactly as it changes the
dense one. Attention, embeddings, readout, deeper or grouped FFNs and units outside a
one-input group run exactly as in :mod:`infoflow_jax.core.model` (the same modules: the
fast path only substitutes the FFN callable of a block). Values agree to float64 rounding
(the breakpoint values are prefix sums in extended precision); gradients agree off the
measure-zero set where a pre-activation is exactly at a kink (and at kinks too, see
:mod:`infoflow_jax.core.pwl`). Both shortcuts are exact for the weights they were planned
from: derivatives w.r.t. X are covered, derivatives w.r.t. the weights are not (re-plan after
changing a weight).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import jax
import numpy as np
from infoflow_jax.core.flax_nnx import nnx

from infoflow_jax.core.invariance import shared_query_layers
from infoflow_jax.core.pwl import FastFFN, decompose_layer

MIN_FAST_UNITS = 8  # a one-input group this large makes the fast path worth it (verify's auto mode)
# from this T on, a shared-query layer alone makes it worth it. Measured (2 shared CPU cores, C6-coupled
# and C8 at ε = 0.1, no decoder group, jitted forward per input): T = 16 no gain, T = 64 4.5× faster
# but ≈ 0.2 s per row (less than a compilation), T = 256 60–120× (1.4–2.8 ms → 0.023 ms).
MIN_SHARED_T = 256


@dataclass(frozen=True)
class FastPlan:
    """A pytree: the model's weights ``state`` (pure, as for :func:`~infoflow_jax.core.model.apply`),
    per layer a :class:`~infoflow_jax.core.pwl.FastFFN` or None (dense), and the model's
    ``graphdef`` (static). ``largest_group`` (static) is the most units in one one-input group;
    ``shared_queries`` (static, one bool per layer) marks the layers whose attention runs on
    the query rows CLS and token 1 only (the last layer runs at CLS only anyway)."""

    state: Any
    ffns: tuple
    graphdef: Any
    largest_group: int = 0
    shared_queries: tuple = ()

    @property
    def shares_queries(self) -> bool:
        """Some layer below the last (which computes its CLS row only) uses the shortcut."""
        return any(self.shared_queries[:-1])


jax.tree_util.register_dataclass(FastPlan, data_fields=["state", "ffns"],
                                 meta_fields=["graphdef", "largest_group", "shared_queries"])


def fast_plan(graphdef, state, *, share_queries: bool = True) -> FastPlan:
    """Decompose every layer's FFN of the model ``nnx.merge(graphdef, state)`` (NumPy, outside jit:
    it reads concrete weights). A layer gets a FastFFN iff its FFN is one hidden Dense layer
    with at least one one-input group; every other layer stays dense. With ``share_queries``
    (default) every layer whose token queries are proven shared
    (:func:`~infoflow_jax.core.invariance.shared_query_layers`) gets the two-row attention."""
    model = nnx.merge(graphdef, state)
    shared = shared_query_layers(model) if share_queries else (False,) * model.cfg.L
    ffns, largest = [], 0
    for layer in range(model.cfg.L):
        dec = decompose_layer(model, layer)
        if dec is None or not dec.pl_groups:
            ffns.append(None)
            continue
        largest = max(largest, max(g.units.size for g in dec.pl_groups))
        ffns.append(FastFFN.from_decomposition(dec))
    return FastPlan(state=state, ffns=tuple(ffns), graphdef=graphdef, largest_group=int(largest),
                    shared_queries=tuple(bool(f) for f in shared))


def fast_pays(plan: FastPlan, T: int) -> bool:
    """verify's auto mode: some one-input group has ≥ MIN_FAST_UNITS units, or some layer below
    the last shares its token queries and T ≥ MIN_SHARED_T."""
    return plan.largest_group >= MIN_FAST_UNITS or (plan.shares_queries and T >= MIN_SHARED_T)


def apply_fast(plan: FastPlan, X, valid=None):
    """Ĥ(X) with every planned FFN evaluated through its FastFFN and every shared-query layer's
    attention on two query rows; pure, jit/vmap/grad over (plan, X). ``valid``: the real tokens
    of a padded input (token 1 must be real: the shared row is token 1's)."""
    return nnx.merge(plan.graphdef, plan.state)(X, ffns=plan.ffns, shared_queries=plan.shared_queries or None,
                                                valid=valid)


def fast_query_rows(plan: FastPlan, T: int) -> list[int]:
    """Query rows of each layer's attention on the fast path (for the memory plan): 1 for the
    last layer (CLS only), 2 for a shared-query layer (CLS, token 1), T + 1 otherwise."""
    L = len(plan.ffns)
    shared = plan.shared_queries or (False,) * L
    return [1 if layer == L - 1 else 2 if shared[layer] else T + 1 for layer in range(L)]


def fast_ffn_widths(plan: FastPlan) -> list[int]:
    """Activations per position of each layer's FFN on the fast path (for the memory plan):
    dense layers their widest layer; fast layers the dense remainder plus ~4 per group
    (projection, index, value, slope)."""
    widths = []
    for layer, ffn in enumerate(plan.ffns):
        if ffn is None:
            widths.append(_dense_width(plan, layer))
        else:
            widths.append(int(ffn.W1r.shape[1]) + 4 * int(ffn.U.shape[1]))
    return widths


def _dense_width(plan: FastPlan, layer: int) -> int:
    # the FFN parameters of block `layer` are state.blocks[layer].ffn.b[i]: their last axes give the widths
    ffn = plan.state["blocks"][layer]["ffn"]
    return max(int(np.prod(ffn["b"][i][...].shape)) for i in range(len(ffn["b"])))


# ----------------------------------------------------------------------------- one shape for a batch
def _pad_axis(x, axis: int, n: int, value: float = 0.0):
    x = np.asarray(x)
    if x.shape[axis] == n:
        return x
    shape = list(x.shape)
    shape[axis] = n - shape[axis]
    return np.concatenate([x, np.full(shape, value, x.dtype)], axis=axis)


def _pad_ffn(ffn: FastFFN, G: int, K: int, R: int) -> FastFFN:
    """``ffn`` with G groups, K breakpoints per group and R dense units, computing the same function:
    extra groups have zero directions and a constant-0 PL, extra breakpoints are +inf (never below
    a finite input: :func:`infoflow_jax.core.pwl.stack`'s convention), extra units are zero."""
    from infoflow_jax.core.pwl import PiecewiseLinear

    pl = ffn.pl
    g0 = np.asarray(pl.breakpoints).shape[0]
    t = np.array(_pad_axis(_pad_axis(pl.breakpoints, 1, K, np.inf), 0, G, np.inf))  # a writable copy
    t[g0:, 0] = 0.0  # a constant-0 group: one finite breakpoint keeps its evaluation finite
    pl = PiecewiseLinear(breakpoints=t,
                         values=_pad_axis(_pad_axis(pl.values, 1, K), 0, G),
                         slopes=_pad_axis(_pad_axis(pl.slopes, 1, K + 1), 0, G),
                         slopes_at=_pad_axis(_pad_axis(pl.slopes_at, 1, K), 0, G),
                         scale_a=_pad_axis(pl.scale_a, 0, G), scale_b=_pad_axis(pl.scale_b, 0, G),
                         n_units=_pad_axis(pl.n_units, 0, G))
    return FastFFN(U=_pad_axis(ffn.U, 1, G), O=_pad_axis(ffn.O, 0, G), pl=pl,
                   W1r=_pad_axis(ffn.W1r, 1, R), b1r=_pad_axis(ffn.b1r, 0, R), W2r=_pad_axis(ffn.W2r, 0, R),
                   b2=np.asarray(ffn.b2))


def same_shape_plans(plans: list[FastPlan]) -> list[FastPlan]:
    """Plans of one model structure (one graphdef, states of one shape) padded to one pytree shape,
    so that a batch of them stacks (``jax.vmap`` over configurations, the sweep engine); each still
    computes its own function exactly. A layer must be fast in all plans or in none."""
    if len({(p.graphdef, p.shared_queries) for p in plans}) != 1:
        raise ValueError("plans of different structure cannot share one shape")
    out = [list(p.ffns) for p in plans]
    for layer in range(len(plans[0].ffns)):
        ffns = [p.ffns[layer] for p in plans]
        if all(f is None for f in ffns):
            continue
        if any(f is None or f.pl is None for f in ffns):
            raise ValueError(f"layer {layer} is fast in some plans only")
        G = max(int(np.asarray(f.U).shape[1]) for f in ffns)
        K = max(int(np.asarray(f.pl.breakpoints).shape[1]) for f in ffns)
        R = max(int(np.asarray(f.W1r).shape[1]) for f in ffns)
        for i, f in enumerate(ffns):
            out[i][layer] = _pad_ffn(f, G, K, R)
    largest = max(p.largest_group for p in plans)
    return [FastPlan(state=p.state, ffns=tuple(f), graphdef=p.graphdef, largest_group=largest,
                     shared_queries=p.shared_queries) for p, f in zip(plans, out)]


# ----------------------------------------------------------------------------- one shape for many builds
#: Breakpoints per one-input group of a shared-shape plan (:func:`shared_shape`): at least this many,
#: so that every ε of a family (an L3 decoder has N + 1 ∝ 1/ε breakpoints) lands in one shape and one
#: compiled program. A search over K breakpoints costs ⌈log₂(K + 1)⌉ steps, so this costs at most
#: 15 steps where the smallest decoders needed 6 (measured in benchmarks/verify_breakdown.py's notes).
SHARED_BREAKPOINTS = 1 << 15
SMALL_BREAKPOINTS = 4  # the K of a layer without a decoder (flags: 2, a weakened flag: 4)
SMALL_GROUPS = 2  # the fewest groups of a shared layer (a flag: 1, a flag weakened on a band: 2)


def _next_pow2(n: int) -> int:
    return 1 << max(int(n) - 1, 0).bit_length()


def shared_shape(plan: FastPlan, *, breakpoints: int = SHARED_BREAKPOINTS) -> FastPlan:
    """``plan``'s function in a pytree shape shared by every build of its structure whose fast layers
    fit: the same values everywhere (exactly: padding adds +inf breakpoints and zero units, as
    :func:`same_shape_plans` does), so that one compiled program serves a construction at every ε
    and its mutants (``verify`` jits per shape).

    * a fast layer's own FFN weights are never read (its FastFFN replaces them): the plan's model
      gets a one-unit zero FFN there, so the widths N ∝ 1/ε leave the graphdef and the state;
    * each FastFFN is padded (:func:`_pad_ffn`) to next_pow2 groups (at least SMALL_GROUPS), next_pow2(K)
      breakpoints — at least ``breakpoints`` once that is ≥ MIN_FAST_UNITS (a decoder, whose K grows as
      1/ε), else at least SMALL_BREAKPOINTS (a layer of flags: each padded breakpoint is one more step
      of every search) — and next_pow2 dense units (0 stays 0);
    * ``largest_group`` becomes the breakpoint capacity (a static field: kept equal across builds);
      decide :func:`fast_pays` on the plan *before* sharing its shape.
    """
    from infoflow_jax.core.model import Transformer

    model = nnx.merge(plan.graphdef, plan.state)
    layers = []
    for shape, ffn in zip(model.cfg.layers, plan.ffns):
        if ffn is not None:  # one hidden Dense layer (fast_plan's condition): its width becomes 1
            first, second = shape.ffn
            shape = replace(shape, ffn=(replace(first, n_out=1), replace(second, n_in=1)))
        layers.append(shape)
    cfg = replace(model.cfg, layers=tuple(layers))
    old = {jax.tree_util.keystr(p): x for p, x in jax.tree_util.tree_flatten_with_path(plan.state)[0]}
    dtype = next(iter(old.values())).dtype
    graphdef, state = nnx.split(Transformer(cfg, dtype=dtype, rngs=None))
    flat, treedef = jax.tree_util.tree_flatten_with_path(state)
    # every leaf of the same path and shape is the plan's own; the others are the stubs' zeros
    leaves = [old[k] if (k := jax.tree_util.keystr(p)) in old and np.shape(old[k]) == np.shape(x) else x
              for p, x in flat]
    ffns, capacity = [], 0
    for ffn in plan.ffns:
        if ffn is None or ffn.pl is None:
            ffns.append(ffn)
            continue
        G = max(_next_pow2(np.asarray(ffn.U).shape[1]), SMALL_GROUPS)
        K = _next_pow2(np.asarray(ffn.pl.breakpoints).shape[1])
        # a decoder (K ∝ 1/ε): every ε in one shape; a layer of flags (K = 2) stays small, the same
        # for the flags a mutant weakens on a band (two groups of ≤ 4 breakpoints)
        K = max(K, breakpoints) if K >= MIN_FAST_UNITS else max(K, SMALL_BREAKPOINTS)
        R = np.asarray(ffn.W1r).shape[1]
        ffns.append(_pad_ffn(ffn, G, K, _next_pow2(R) if R else 0))
        capacity = max(capacity, K)
    return FastPlan(state=jax.tree_util.tree_unflatten(treedef, leaves), ffns=tuple(ffns), graphdef=graphdef,
                    largest_group=capacity, shared_queries=plan.shared_queries)
