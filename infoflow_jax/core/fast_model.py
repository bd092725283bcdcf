"""The exact fast forward: every one-input FFN block through its sorted breakpoints.

    apply_fast(fast_plan(graphdef, state), X) = apply(graphdef, state, X)   (to float64 rounding)

A layer's FFN with one hidden Dense layer is, for ANY weights, the identity

    FFN(h) = b2 + Σ_g o_g·PL_g(u_g·h) + relu(h W1r + b1r) W2r          (:mod:`infoflow_jax.core.pwl`)

with PL_g the piecewise-linear function of the units sharing input direction u_g and output
direction o_g. Evaluated through its K_g sorted breakpoints (one ``searchsorted`` and an
interpolation) a group costs O(log K_g) per position instead of O(K_g), and holds O(1)
activations instead of K_g: an L3 decoder with N + 1 units becomes one binary search.

The plan is read from the COMPILED weights (``state``) only — never from a construction's
design — so a mutant or a hand edit changes the fast function exactly as it changes the
dense one. Attention, embeddings, readout, deeper or grouped FFNs and units outside a
one-input group run exactly as in :mod:`infoflow_jax.core.model` (the same modules: the
fast path only substitutes the FFN callable of a block). Values agree to float64 rounding
(the breakpoint values are prefix sums in extended precision); gradients agree off the
measure-zero set where a pre-activation is exactly at a kink.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
from flax import nnx

from infoflow_jax.core.pwl import FastFFN, decompose_layer

MIN_FAST_UNITS = 8  # a one-input group this large makes the fast path worth it (verify's auto mode)


@dataclass(frozen=True)
class FastPlan:
    """A pytree: the model's weights ``state`` (pure, as for :func:`~infoflow_jax.core.model.apply`),
    per layer a :class:`~infoflow_jax.core.pwl.FastFFN` or None (dense), and the model's
    ``graphdef`` (static). ``largest_group`` (static) is the most units in one one-input group."""

    state: Any
    ffns: tuple
    graphdef: Any
    largest_group: int = 0


jax.tree_util.register_dataclass(FastPlan, data_fields=["state", "ffns"], meta_fields=["graphdef", "largest_group"])


def fast_plan(graphdef, state) -> FastPlan:
    """Decompose every layer's FFN of the model ``nnx.merge(graphdef, state)`` (NumPy, outside jit:
    it reads concrete weights). A layer gets a FastFFN iff its FFN is one hidden Dense layer
    with at least one one-input group; every other layer stays dense."""
    model = nnx.merge(graphdef, state)
    ffns, largest = [], 0
    for layer in range(model.cfg.L):
        dec = decompose_layer(model, layer)
        if dec is None or not dec.pl_groups:
            ffns.append(None)
            continue
        largest = max(largest, max(g.units.size for g in dec.pl_groups))
        ffns.append(FastFFN.from_decomposition(dec))
    return FastPlan(state=state, ffns=tuple(ffns), graphdef=graphdef, largest_group=int(largest))


def apply_fast(plan: FastPlan, X):
    """Ĥ(X) with every planned FFN evaluated through its FastFFN; pure, jit/vmap/grad over (plan, X)."""
    return nnx.merge(plan.graphdef, plan.state)(X, ffns=plan.ffns)


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
