"""The exact piecewise-linear view of one-input FFN blocks, read from compiled weights.

Decomposition of one FFN layer
------------------------------
A layer's FFN with one hidden layer is  FFN(h) = b2 + Σ_j W2[j,:]·relu(h·W1[:,j] + b1_j).
Write every input column as W1[:,j] = a_j·u_j and every output row as W2[j,:] = s_j·o_j,
normalised by the entry of largest modulus (first one on ties): u_j[p] = 1 where
p = argmax |W1[:,j]| and a_j = W1[p,j] (u_j = 0, a_j = 0 for a zero column; the same
for o_j, s_j). Units with bit-identical (u, o) form one group g, and

    FFN(h) = b2 + Σ_g o_g · PL_g(u_g·h),     PL_g(z) = Σ_{j∈g} s_j·relu(a_j z + b1_j).

Every unit is in exactly one group (singletons allowed; a = 0 units are constants,
s = 0 units dead), so this is an identity for ANY weights — a mutant, a hand edit —
never an assumption about how they were built. Exactness is up to float64 rounding:
a_j·u_j reproduces W1[:,j] to one ulp per entry. Two columns that are proportional
only up to rounding land in different groups, which costs speed, never correctness.

PiecewiseLinear
---------------
PL(z) = c0 + Σ_j s_j relu(a_j z + b_j) (a_j ≠ 0) has breakpoints t_j = −b_j/a_j; at t_j
its slope jumps by s_j·|a_j| (a unit with a > 0 switches on, one with a < 0 switches
off). Left of every breakpoint the slope is Σ_{a_j<0} s_j a_j. The value at a
breakpoint t_k is c0 + t_k·A_k + B_k with A_k, B_k the sums of s_j a_j and s_j b_j over
the units active at t_k (a > 0 with t_j < t_k, a < 0 with t_j > t_k): prefix and suffix
sums over the sorted breakpoints, accumulated in extended precision (np.longdouble).

``evaluate(z)`` = values[k] + slopes[i+1]·(z − t_k), i = (number of breakpoints ≤ z) − 1,
k = max(i, 0): one ``searchsorted``, O(log K) per point, jit/vmap/grad friendly (and NumPy on
NumPy arrays: the arrays of a PiecewiseLinear are built in NumPy, so building and evaluating one
on the host compiles nothing); its
derivative is the slope of the piece, and at a breakpoint itself (z = t_k exactly)
``slopes_at[k]``: the slope a dense evaluation reports there, Σ s_j a_j over the units
whose float64 pre-activation fl(fl(a_j t_k) + b_j) is > 0 (JAX's relu has derivative 0 at
0), so that gradients agree with the dense network's at exact ties too (inputs on a grid,
equal tokens), not only between kinks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from infoflow_jax.core.errors import check_finite_array
from infoflow_jax.core.functions import array_module

UNIT_ROUNDOFF = 2.0 ** -53
EVAL_ULPS_OF_F = 64  # assumed accuracy of a user f evaluated in float64 (sup_deviation's margin)


# ----------------------------------------------------------------------------- one function
@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class PiecewiseLinear:
    """A continuous piecewise-linear function of one variable.

    breakpoints (K,) sorted ascending (a stacked one: (G, K) padded with +inf);
    values (K,) = PL(breakpoints); slopes (K+1,): slopes[0] left of the first
    breakpoint, slopes[i+1] on [t_i, t_{i+1}], slopes[K] right of the last; slopes_at (K,)
    the derivative reported AT each breakpoint (the dense network's convention, see above).
    scale_a = Σ|s_j a_j|, scale_b = Σ|s_j b_j| + |c0| and n_units bound the rounding
    of a dense evaluation: |dense(z) − PL(z)| ≤ c·u·n_units·(scale_a·|z| + scale_b).
    """

    breakpoints: jax.Array
    values: jax.Array
    slopes: jax.Array
    slopes_at: jax.Array
    scale_a: jax.Array
    scale_b: jax.Array
    n_units: jax.Array

    @property
    def slope_left(self):
        return self.slopes[..., 0]

    @property
    def slope_right(self):
        return self.slopes[..., -1]

    # -- construction (NumPy, outside jit: it reads concrete weights)
    @staticmethod
    def from_units(a, b, s) -> "PiecewiseLinear":
        """PL(z) = Σ_j s_j·relu(a_j z + b_j), exactly (up to float64 rounding)."""
        a, b, s = (check_finite_array(n, v).reshape(-1) for n, v in (("a", a), ("b", b), ("s", s)))
        active = a != 0
        c0 = np.sum(s[~active] * np.maximum(b[~active], 0.0))
        a, b, s = a[active], b[active], s[active]
        if a.size == 0:  # a constant: one (arbitrary) breakpoint keeps the arrays non-empty
            return PiecewiseLinear(*map(np.asarray, (np.zeros(1), np.full(1, c0), np.zeros(2), np.zeros(1),
                                                     0.0, abs(c0), 0.0)))
        t = -b / a
        order = np.argsort(t, kind="stable")
        a, b, s, t = a[order], b[order], s[order], t[order]
        ld = np.longdouble
        sa, sb = s.astype(ld) * a.astype(ld), s.astype(ld) * b.astype(ld)
        pos = a > 0
        bps, first = np.unique(t, return_index=True)  # merged breakpoints; first index of each
        last = np.append(first[1:], t.size)  # one past the last unit sitting at each breakpoint
        zero = np.zeros(1, ld)
        # active at t_k: a > 0 with t_j < t_k (units before first[k]); a < 0 with t_j > t_k (from last[k])
        pre_a = np.concatenate([zero, np.cumsum(np.where(pos, sa, 0))])
        pre_b = np.concatenate([zero, np.cumsum(np.where(pos, sb, 0))])
        suf_a = np.concatenate([np.cumsum(np.where(pos, 0, sa)[::-1])[::-1], zero])
        suf_b = np.concatenate([np.cumsum(np.where(pos, 0, sb)[::-1])[::-1], zero])
        bl = bps.astype(ld)
        values = ld(c0) + bl * (pre_a[first] + suf_a[last]) + pre_b[first] + suf_b[last]
        jump = np.cumsum(s.astype(ld) * np.abs(a).astype(ld))  # slope jump s_j·|a_j| at t_j, accumulated
        slope_left = np.sum(np.where(pos, 0, sa))
        slopes = slope_left + np.concatenate([zero, jump[last - 1]])
        # at t_k: the strictly active units, plus those sitting at t_k whose float64
        # pre-activation is still > 0 (what a dense relu's derivative counts)
        on_at_own = (a * t + b) > 0  # NumPy float64: fl(fl(a_j t_j) + b_j), as the dense layer rounds it
        slopes_at = pre_a[first] + suf_a[last] + np.add.reduceat(np.where(on_at_own, sa, 0), first)
        return PiecewiseLinear(
            breakpoints=np.asarray(bps, np.float64),
            values=values.astype(np.float64),
            slopes=slopes.astype(np.float64),
            slopes_at=slopes_at.astype(np.float64),
            scale_a=np.asarray(float(np.sum(np.abs(sa)))),
            scale_b=np.asarray(float(np.sum(np.abs(sb)) + abs(c0))),
            n_units=np.asarray(float(a.size)),
        )

    # -- evaluation (jnp, traceable; NumPy when z and the arrays are NumPy's)
    def evaluate(self, z, method: str = "scan"):
        """PL(z) by one binary search and a linear interpolation; any shape of z.
        ``method`` is jnp.searchsorted's ("compare_all": O(K), loop-free; NumPy has one method)."""
        t = self.breakpoints
        xp = array_module(z, t)
        if xp is np:
            i = np.searchsorted(t, z, side="right") - 1  # −1 .. K−1
        else:
            i = jnp.searchsorted(t, z, side="right", method=method) - 1
        k = xp.maximum(i, 0)
        # at a breakpoint z − t_k = 0: the value is values[k] either way, the derivative slopes_at[k]
        slope = xp.where(z == t[k], self.slopes_at[k], self.slopes[i + 1])
        return self.values[k] + slope * (z - t[k])

    __call__ = evaluate

    def range_on(self, lo, hi):
        """(min, max) of PL over [lo, hi] exactly: a continuous piecewise-linear function
        attains its extrema at the interval's ends or at a breakpoint inside it.
        lo, hi broadcast together; O(K) per interval (breakpoints masked, jit-friendly)."""
        lo, hi = jnp.broadcast_arrays(jnp.asarray(lo), jnp.asarray(hi))
        # O(K) anyway (the mask below), so a loop-free search: a smaller program to compile
        ends = self.evaluate(jnp.stack([lo, hi]), method="compare_all")
        t = self.breakpoints
        inside = (t >= lo[..., None]) & (t <= hi[..., None])
        vmin = jnp.min(jnp.where(inside, self.values, jnp.inf), axis=-1)
        vmax = jnp.max(jnp.where(inside, self.values, -jnp.inf), axis=-1)
        return jnp.minimum(jnp.min(ends, 0), vmin), jnp.maximum(jnp.max(ends, 0), vmax)

    def rounding_margin(self, zmag):
        """A bound on |PL(z) − dense evaluation of its units| for |z| ≤ zmag, both in float64:
        each is a sum of n_units terms of size ≤ |s_j|(|a_j||z| + |b_j|), so each errs by at
        most γ_{n+2}·(scale_a·zmag + scale_b) (Higham, any summation order); 4(n + 8)·u covers
        both, the interpolation's own two roundings and the prefix sums'."""
        return 4.0 * (self.n_units + 8.0) * UNIT_ROUNDOFF * (self.scale_a * zmag + self.scale_b)

    # -- sound deviation from a Lipschitz function (NumPy, outside jit)
    def sup_deviation(self, f: Callable, lipschitz: float, lo: float, hi: float,
                      max_piece: float | None = None) -> "Deviation":
        """Bounds on D = sup_{z∈[lo,hi]} |PL(z) − f(z)| for f L-Lipschitz on [lo, hi].

        Points: lo, hi and every breakpoint inside (pieces longer than ``max_piece``
        are cut evenly). On a piece [p, q] PL has one slope σ, so g = PL − f is
        K-Lipschitz there with K = L + |σ|. For z ∈ [p, q]:
            |g(z)| ≤ min(|g(p)| + K(z − p), |g(q)| + K(q − z)) ≤ (|g(p)| + |g(q)| + K(q − p))/2,
        the value where the two cones meet (they meet inside [p, q] because
        ||g(p)| − |g(q)|| ≤ K(q − p)); this is ≤ max(|g(p)|, |g(q)|) + K(q − p)/2, the
        cruder form. Upper = max over pieces, plus a rounding margin (PL's
        ``rounding_margin`` and EVAL_ULPS_OF_F ulps of |f|). Lower = max |g| at the points:
        attained, hence a true lower bound (up to the same rounding).
        """
        if not np.isfinite(lo) or not np.isfinite(hi) or not lo <= hi:
            raise ValueError(f"need finite lo <= hi, got [{lo}, {hi}]")
        t = np.asarray(self.breakpoints, np.float64)
        pts = np.unique(np.concatenate([[lo, hi], t[(t > lo) & (t < hi)]]))
        if max_piece is not None and pts.size > 1:
            cuts = np.maximum(1, np.ceil(np.diff(pts) / max_piece).astype(int))
            frac = np.concatenate([np.arange(c) / c for c in cuts])  # small: one entry per sub-piece
            pts = np.append(np.repeat(pts[:-1], cuts) + frac * np.repeat(np.diff(pts), cuts), pts[-1])
        pl = np.asarray(self.evaluate(pts), np.float64)  # NumPy: compiles nothing
        fv = np.asarray(f(pts), np.float64).reshape(pts.shape)  # a named f runs in NumPy; a jnp f takes NumPy too
        g = np.abs(pl - fv)
        margin = float(self.rounding_margin(max(abs(lo), abs(hi)))) \
            + EVAL_ULPS_OF_F * 2 * UNIT_ROUNDOFF * float(np.max(np.abs(fv)))
        lower = float(np.max(g))
        at = float(pts[int(np.argmax(g))])
        if pts.size == 1:
            return Deviation(upper=lower + margin, lower=lower, at=at)
        mids = (pts[:-1] + pts[1:]) / 2
        slope = np.asarray(self.slopes)[np.searchsorted(t, mids, side="right")]
        K = lipschitz + np.abs(slope)
        width = np.diff(pts)
        piece = np.maximum((g[:-1] + g[1:] + K * width) / 2, np.maximum(g[:-1], g[1:]))
        return Deviation(upper=float(np.max(piece)) * (1 + 8 * UNIT_ROUNDOFF) + margin, lower=lower, at=at)


@dataclass(frozen=True)
class Deviation:
    """upper ≥ sup |PL − f| (sound); lower = |PL − f| at the point ``at`` (attained)."""

    upper: float
    lower: float
    at: float


def stack(pls: list[PiecewiseLinear]) -> PiecewiseLinear:
    """G functions in one PiecewiseLinear with a leading axis, breakpoints padded with +inf
    (never ≤ a finite z, so searchsorted and range_on ignore them). Evaluate with
    :func:`evaluate_stacked`."""
    K = max(int(p.breakpoints.shape[0]) for p in pls)
    # NumPy (host data; jit takes it as it is): eager jnp here compiled one program per shape
    pad = lambda x, n, v: np.concatenate([np.asarray(x), np.full((n - x.shape[0],), v, np.asarray(x).dtype)])
    return PiecewiseLinear(
        breakpoints=np.stack([pad(p.breakpoints, K, np.inf) for p in pls]),
        values=np.stack([pad(p.values, K, 0.0) for p in pls]),
        slopes=np.stack([pad(p.slopes, K + 1, 0.0) for p in pls]),
        slopes_at=np.stack([pad(p.slopes_at, K, 0.0) for p in pls]),
        scale_a=np.stack([np.asarray(p.scale_a) for p in pls]),
        scale_b=np.stack([np.asarray(p.scale_b) for p in pls]),
        n_units=np.stack([np.asarray(p.n_units) for p in pls]),
    )


def evaluate_stacked(stacked: PiecewiseLinear, z):
    """z (..., G) ↦ (PL_g(z_g))_g, shape (..., G); in NumPy when z and ``stacked`` are NumPy's."""
    if array_module(z, stacked.breakpoints) is np:
        return np.stack([_row(stacked, g).evaluate(z[..., g]) for g in range(stacked.breakpoints.shape[0])], -1)
    return jax.vmap(PiecewiseLinear.evaluate, in_axes=(0, -1), out_axes=-1)(stacked, z)


def _row(stacked: PiecewiseLinear, g: int) -> PiecewiseLinear:
    return PiecewiseLinear(*(getattr(stacked, f)[g] for f in ("breakpoints", "values", "slopes", "slopes_at",
                                                               "scale_a", "scale_b", "n_units")))


def range_stacked(stacked: PiecewiseLinear, lo, hi):
    """Exact (min, max) of PL_g over [lo_g, hi_g]; lo, hi (..., G)."""
    return jax.vmap(PiecewiseLinear.range_on, in_axes=(0, -1, -1), out_axes=-1)(stacked, lo, hi)


# ----------------------------------------------------------------------------- one layer
def _normalise_columns(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """M (n, H) = u·diag(a): u[:, j] has u[p_j, j] = 1 at p_j = first argmax |M[:, j]|."""
    p = np.argmax(np.abs(M), axis=0)
    a = M[p, np.arange(M.shape[1])]
    safe = np.where(a == 0, 1.0, a)
    u = np.where(a == 0, 0.0, M / safe) + 0.0  # + 0.0: −0.0 → 0.0, so keys compare as bytes
    return u, a


@dataclass(frozen=True)
class UnitGroup:
    """Hidden units sharing input direction u and output direction o: o·PL(u·h)."""

    units: np.ndarray  # indices into the hidden layer
    u: np.ndarray  # (E,)
    o: np.ndarray  # (E,)
    a: np.ndarray
    b: np.ndarray
    s: np.ndarray

    @property
    def one_input(self) -> bool:
        """Worth a PiecewiseLinear: ≥ 2 units, a real input and a real output."""
        return self.units.size >= 2 and bool(np.any(self.u)) and bool(np.any(self.o))

    def function(self) -> PiecewiseLinear:
        return PiecewiseLinear.from_units(self.a, self.b, self.s)


@dataclass(frozen=True)
class FFNDecomposition:
    """FFN(h) = b2 + Σ_g o_g·PL_g(u_g·h): every hidden unit in exactly one group."""

    W1: np.ndarray
    b1: np.ndarray
    W2: np.ndarray
    b2: np.ndarray
    groups: tuple[UnitGroup, ...]

    @property
    def pl_groups(self) -> tuple[UnitGroup, ...]:
        return tuple(g for g in self.groups if g.one_input)

    @property
    def dead_units(self) -> np.ndarray:
        """Units with a zero output row: they add exactly 0 (0·finite = 0), so both the
        fast path and the interval bounds may skip them."""
        return self._units(lambda g: not np.any(g.o))

    @property
    def dense_units(self) -> np.ndarray:
        """Units evaluated densely: neither in a one-input group nor dead."""
        return self._units(lambda g: not g.one_input and bool(np.any(g.o)))

    def _units(self, keep) -> np.ndarray:
        rest = [g.units for g in self.groups if keep(g)]
        return np.sort(np.concatenate(rest)) if rest else np.zeros(0, int)


def distinct_rows(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first, inverse) for the rows of X (B, …): the index of each distinct row's first
    occurrence, in order of appearance, and each row's position in that list. Rows are compared
    by their bytes in a dict (linear time; ``np.unique(axis=0)`` sorts rows lexicographically);
    adding 0.0 first makes −0.0 and 0.0 one row, as they are one number."""
    rows = np.ascontiguousarray(X + 0.0).reshape(X.shape[0], -1)
    seen: dict = {}
    first, inverse = [], np.empty(rows.shape[0], np.intp)
    for i, row in enumerate(rows):
        j = seen.setdefault(row.tobytes(), len(seen))
        if j == len(first):
            first.append(i)
        inverse[i] = j
    return np.asarray(first, np.intp), inverse


def row_labels(keys: np.ndarray) -> np.ndarray:
    """``np.unique(keys, axis=0, return_inverse=True)[1]``: each row's rank among the distinct rows
    in lexicographic order; only the distinct rows (:func:`distinct_rows`) are sorted — a layer has
    thousands of units and a handful of directions."""
    first, inverse = distinct_rows(keys)
    _, rank = np.unique(keys[first] + 0.0, axis=0, return_inverse=True)
    return rank.reshape(-1)[inverse]


def decompose_ffn(W1, b1, W2, b2) -> FFNDecomposition:
    """Group the hidden units of relu(h W1 + b1) W2 + b2 by bit-identical normalised
    (input column, output row) directions. Exact for any finite weights."""
    W1, b1, W2, b2 = (check_finite_array(n, v) for n, v in (("W1", W1), ("b1", b1), ("W2", W2), ("b2", b2)))
    u, a = _normalise_columns(W1)
    o, s = _normalise_columns(W2.T)
    label = row_labels(np.concatenate([u.T, o.T], axis=1))
    order = np.argsort(label, kind="stable")
    splits = np.flatnonzero(np.diff(label[order])) + 1
    groups = tuple(
        UnitGroup(units=idx, u=u[:, idx[0]], o=o[:, idx[0]], a=a[idx], b=b1[idx], s=s[idx])
        for idx in np.split(order, splits)
    )
    return FFNDecomposition(W1=W1, b1=b1, W2=W2, b2=b2, groups=groups)


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class FastFFN:
    """A one-hidden-layer FFN evaluated through its decomposition:

        FFN(h) = b2 + PL(h U) O + relu(h W1r + b1r) W2r

    U (E, G) and O (G, E) hold the directions of the G one-input groups, PL their
    stacked functions; W1r, b1r, W2r the remaining live units, dense (exact by construction);
    dead units (zero output row) are skipped: they add exactly 0."""

    U: jax.Array
    O: jax.Array
    pl: PiecewiseLinear | None
    W1r: jax.Array
    b1r: jax.Array
    W2r: jax.Array
    b2: jax.Array

    @staticmethod
    def from_decomposition(dec: FFNDecomposition) -> "FastFFN":
        groups = dec.pl_groups
        rest = dec.dense_units
        E = dec.W1.shape[0]
        return FastFFN(  # NumPy arrays: host data, taken by jit as they are
            U=np.stack([g.u for g in groups], 1) if groups else np.zeros((E, 0)),
            O=np.stack([g.o for g in groups], 0) if groups else np.zeros((0, dec.W2.shape[1])),
            pl=stack([g.function() for g in groups]) if groups else None,
            W1r=np.asarray(dec.W1[:, rest]), b1r=np.asarray(dec.b1[rest]), W2r=np.asarray(dec.W2[rest]),
            b2=np.asarray(dec.b2),
        )

    def __call__(self, h):
        if array_module(h, self.W1r) is np:  # the host's NumPy forward (probe screening): compiles nothing
            out = np.maximum(h @ self.W1r + self.b1r, 0.0) @ self.W2r + self.b2
            return out + evaluate_stacked(self.pl, h @ self.U) @ self.O if self.pl is not None else out
        out = jax.nn.relu(h @ self.W1r + self.b1r) @ self.W2r + self.b2
        if self.pl is not None:
            out = out + evaluate_stacked(self.pl, h @ self.U) @ self.O
        return out


def dense_ffn(W1, b1, W2, b2, h):
    """The reference: relu(h W1 + b1) W2 + b2."""
    return jax.nn.relu(h @ W1 + b1) @ W2 + b2


def layer_ffn_weights(model, layer: int) -> list[tuple[np.ndarray, np.ndarray, bool]]:
    """The compiled FFN of block ``layer`` of a Transformer: [(W, b, grouped), ...]."""
    ffn = model.blocks[layer].ffn
    return [(np.asarray(ffn.W[i][...]), np.asarray(ffn.b[i][...]), kind == "grouped")
            for i, kind in enumerate(ffn.kinds)]


def decompose_layer(model, layer: int) -> FFNDecomposition | None:
    """The decomposition of block ``layer``'s FFN; None when it is not a single hidden
    Dense layer (deeper or grouped FFNs stay dense)."""
    parts = layer_ffn_weights(model, layer)
    if len(parts) != 2 or parts[0][2] or parts[1][2]:
        return None
    (W1, b1, _), (W2, b2, _) = parts
    return decompose_ffn(W1, b1, W2, b2)
