"""Per-cell error tables of a one-input decoder block, for the split box bound.

A block that reads one form z and writes one slot through one hidden ReLU layer is, exactly,

    net(z) = b2 + Σ_j W2_j·relu(a_j z + b1_j)

(:func:`~infoflow_jax.verification.step_ffn.kuhn_block_network` reads it from the compiled
weights; :class:`~infoflow_jax.core.pwl.PiecewiseLinear` gives its breakpoints, values and
slopes). On the uniform grid of n cells c = [c/n, (c+1)/n] of [0, 1] we bound, per cell,

    err[c] ≥ sup_{z ∈ c} |net(z) − F(z)|,     lo[c] ≤ net(z) ≤ hi[c]  (z ∈ c).

Points: the cell edges and every breakpoint of net in [0, 1]; each resulting piece [p, q]
(net has one slope σ there) is cut into ``sub`` equal parts. On a part [p, q], g = net − F is
(L_F + |σ|)-Lipschitz, so (the two cones from the ends, as in
:meth:`~infoflow_jax.core.pwl.PiecewiseLinear.sup_deviation`)

    sup_{[p,q]} |g| ≤ max{ (|g(p)| + |g(q)| + (L_F + |σ|)(q − p))/2, |g(p)|, |g(q)| }.

err[c] is the max over the parts inside cell c (every part lies in exactly one cell: the
edges are points). net is piecewise linear, so its range on a cell is exactly the min/max of
its values at the cell's edges and breakpoints inside. No assumption on where the knots sit:
a decoder whose knots moved, or that lost one, is bounded by what it computes.

Rounding: the PL values (long double, then rounded) differ from the exact network and from
the model's float evaluation by ≤ ``PiecewiseLinear.rounding_margin`` at |z| ≤ 1; F as
evaluated is within EVAL_ULPS_OF_F ulps of F; both margins are added to err and to the
range, and err is widened by 8u relative (the cone arithmetic).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from infoflow_jax.core.pwl import EVAL_ULPS_OF_F, UNIT_ROUNDOFF, PiecewiseLinear
from infoflow_jax.verification.step_ffn import evaluate_padded

U = UNIT_ROUNDOFF
MAX_POINTS = 1 << 20  # sub-division of the pieces stops at this many points


@dataclass(frozen=True)
class OneInputCells:
    """Cell tables of a one-input block against F on n cells of [0, 1] (module docstring)."""

    n: int
    err: np.ndarray  # (n,)
    lo: np.ndarray  # (n,)
    hi: np.ndarray  # (n,)
    lipschitz: float  # max |slope| of net over R (its exact Lipschitz constant), widened
    sub: int  # parts per piece


def block_function(net_reach):
    """(PiecewiseLinear of the block network, None), or (None, problem) unless it has exactly
    one hidden layer (dense) reading one input form."""
    net, _ = net_reach
    if len(net) != 2 or net[0][0].shape[0] != 1 or net[1][2]:
        return None, "the decoder block is not one dense hidden layer reading one form"
    (A, b1, _), (W2, b2, _) = net
    c = float(np.asarray(b2).reshape(-1)[0])
    a = np.concatenate([A[0], [0.0, 0.0]])
    b = np.concatenate([np.asarray(b1, np.float64), [c, -c]])  # the output bias: relu(c) − relu(−c)
    s = np.concatenate([W2[:, 0], [1.0, -1.0]])
    return PiecewiseLinear.from_units(a, b, s), None


def one_input_cells(pl: PiecewiseLinear, F, lipschitz: float, n: int, max_points: int = MAX_POINTS) -> OneInputCells:
    """Per-cell error and range of ``pl`` against the 1-D ``lipschitz``-Lipschitz F on n cells
    of [0, 1] (module docstring). F is called on a 1-D array."""
    t = np.asarray(pl.breakpoints, np.float64)
    slopes = np.asarray(pl.slopes, np.float64)
    edges = np.arange(n + 1) / n
    base = np.unique(np.concatenate([edges, t[(t > 0.0) & (t < 1.0)]]))
    sub = max(1, max_points // max(len(base) - 1, 1))
    frac = np.arange(sub) / sub
    pts = np.append((base[:-1, None] + np.diff(base)[:, None] * frac[None]).reshape(-1), base[-1])
    net = np.asarray(pl.evaluate(pts), np.float64)
    fv = evaluate_padded(F, pts)
    g = np.abs(net - fv)
    mids = 0.5 * (pts[:-1] + pts[1:])
    sigma = slopes[np.searchsorted(t, mids, side="right")]
    piece = np.maximum((g[:-1] + g[1:] + (lipschitz + np.abs(sigma)) * np.diff(pts)) / 2, np.maximum(g[:-1], g[1:]))
    cell = np.minimum(np.floor(mids * n).astype(np.int64), n - 1)  # every part lies in one cell
    starts = np.searchsorted(cell, np.arange(n), side="left")
    margin = float(pl.rounding_margin(1.0)) + EVAL_ULPS_OF_F * 2 * U * float(np.max(np.abs(fv)) + 1.0)
    err = np.maximum.reduceat(piece, starts) * (1 + 8 * U) + margin
    # range: the values at every edge and breakpoint of the cell (the part ends include them)
    left = np.minimum.reduceat(np.minimum(net[:-1], net[1:]), starts)
    right = np.maximum.reduceat(np.maximum(net[:-1], net[1:]), starts)
    lip = float(np.max(np.abs(slopes))) * (1 + 8 * U)
    return OneInputCells(n=n, err=err, lo=left - margin, hi=right + margin, lipschitz=lip, sub=sub)
