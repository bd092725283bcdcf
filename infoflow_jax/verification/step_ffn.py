"""Step checks of FFN blocks, read from the compiled weights (NumPy, no compilation).

One-input blocks (:class:`~infoflow_jax.core.claims.OneInput`)
---------------------------------------------------------------
The block's output slot o as a function of its input form z = ⟨φ, h⟩ is read from the
layer's compiled FFN  FFN(h)_o = b2_o + Σ_j W2[j,o]·relu(h·W1[:,j] + b1_j): every unit with
W2[j,o] ≠ 0 must read along φ only (W1[:,j] = a_j·φ on the slots readable at this point;
otherwise the block reads something its claim does not name, and it is not certified), so

    net(z) = b2_o + Σ_j W2[j,o]·relu(a_j z + b1_j),

piecewise linear with breakpoints −b1_j/a_j (:class:`~infoflow_jax.core.pwl.PiecewiseLinear`).
On an interval [lo, hi], cut at lo, hi, every breakpoint inside and every point where f's
slope may change, net has one slope σ per piece [p, q] and g = |net − f| satisfies

    sup_{[p,q]} g ≤ max{ (g(p) + g(q) + (L_f + |σ|)(q − p))/2, g(p), g(q) }

(the two cones from the ends meet inside the piece), and sup g = max(g(p), g(q)) exactly when
f is affine on [p, q] (net − f is affine). Pieces whose bound exceeds the tolerance while
their end errors do not are cut in four, until none is left (or the points run out).
The block's range over [lo, hi] is exact: its min and max over the ends and breakpoints
(it is compared with a claimed range up to float64 rounding, like every bound here).
A rounding margin (``PiecewiseLinear.rounding_margin`` at |z| ≤ max(|lo|, |hi|, 1), and 64
ulps of |f|) is added: the dense network sums its units in another order.

Kuhn blocks (:class:`~infoflow_jax.core.claims.OnBox`)
-------------------------------------------------------
The units that reach the output slot must read only the D claimed forms. The network,
as a function of z ∈ R^D, is evaluated at every vertex of the product grid
{lo} ∪ {0, 1/n, …, 1} ∪ {hi} per axis, keeping every hidden pre-activation. On a
Freudenthal simplex of that grid (cell c, permutation σ: vertices c, c + e_σ1, …) every
hidden unit whose pre-activations at the D+1 vertices do not take both signs is affine
there (induction over layers: its input is affine, so its pre-activation is affine and its
sign on the simplex is that of its vertices); if all are, the network is affine on the
simplex. A unit taking both signs makes the block non-certified (it has a kink inside a
simplex). Pre-activations within τ_j = 2^-36·scale_j of 0 count as 0 (float64 noise at
grid points; scale_j bounds the terms of unit j's sum); a real kink that small moves the
output by at most 2τ_j·gain_j (gain_j: Σ of |weights| along paths to the output), and
Σ_j 2τ_j·gain_j is added to the certificate (first order).
Inside [0,1]^D, with the network affine on each simplex of spacing 1/n, its values on the
finer grid of spacing 1/(n·m) are the Kuhn interpolant of its coarse vertex values (the
Freudenthal triangulations are nested), and on each fine simplex

    sup |net − G| ≤ max over its vertices |net − G| + C_D·L_∞/(n·m)

(C_D: :func:`~infoflow_jax.core.kuhn.kuhn_error_constant`, the exact worst case of a
Lipschitz G against an affine interpolation). m = 1, 2, 4, … until the bound meets the
tolerance, an end error already exceeds it, or the fine grid gets too large.
Outside [0,1]^D (lo < 0 or hi > 1) the claim is net(z) = net(clip z): net is affine on each
shell simplex (checked as above) and so is net∘clip (clip is affine on each shell cell and
maps its simplices into simplices of a face), so equality at the shell vertices proves it
on the shell; where it fails, the shell is bounded like the inside with m = 1.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from infoflow_jax.core.kuhn import kuhn_error_constant
from infoflow_jax.core.pwl import EVAL_ULPS_OF_F, UNIT_ROUNDOFF, PiecewiseLinear

U = UNIT_ROUNDOFF
MAX_POINTS = 1 << 21  # refinement stops here (the bound is then what it is: sound, maybe loose)
SIGN_THRESHOLD = 2.0 ** -36  # relative: a pre-activation this close to 0 counts as 0
# A Kuhn block's check holds every hidden pre-activation at every grid vertex (units × vertices
# floats, plus sign masks): above this many entries (≈ 0.5 GB of float64) it is not attempted and
# the step is reported as not certified, with the size (C7 at D = 3 would need tens of GB).
MAX_KUHN_ENTRIES = 6e7


@dataclass(frozen=True)
class StepBound:
    """upper ≥ sup |net − f| over the claim's domain (sound; inf: could not be certified);
    lower = |net − f| at ``at`` (attained); ``problem`` says why a claim failed structurally."""

    upper: float
    lower: float = 0.0
    at: object = None
    value_range: tuple[float, float] | None = None
    problem: str | None = None
    rounding: float = 0.0  # the part of ``upper`` that only covers float64 rounding


def evaluate_padded(f, z: np.ndarray) -> np.ndarray:
    """f(z) as float64 NumPy, evaluated on a batch padded to a power of two (a jnp f then
    compiles once per size class, not once per row)."""
    z = np.asarray(z, dtype=np.float64)
    n = z.shape[0]
    size = 1 << max(4, math.ceil(math.log2(max(n, 1))))
    padded = np.concatenate([z, np.repeat(z[-1:], size - n, axis=0)]) if n else z
    return np.asarray(f(padded), dtype=np.float64).reshape(size, -1)[:n].reshape(-1)


# ----------------------------------------------------------------------------- one input
def parallel_units(W1, units: np.ndarray, form: np.ndarray, readable: np.ndarray):
    """Which of ``units`` read along ``form`` only (W1[:, j] = a_j·form on the readable slots,
    to 4 ulps), and their a_j."""
    cols = W1[:, units][readable]
    phi = form[readable]
    p = int(np.argmax(np.abs(phi)))
    a = cols[p] / phi[p]
    return np.all(np.abs(cols - np.outer(phi, a)) <= 4 * U * np.abs(cols), axis=0), a


def one_input_function(W1, b1, W2, b2, form: np.ndarray, out: int, readable: np.ndarray,
                       units: np.ndarray | None = None, with_bias: bool = True):
    """The block writing slot ``out`` as a PiecewiseLinear of z = ⟨form, h⟩ (+ its constant),
    or (None, problem) when a unit writing ``out`` reads anything but ``form``. ``units``: only
    these hidden units (default: every unit writing ``out``); ``with_bias``: add b2[out]."""
    live = np.flatnonzero(W2[:, out] != 0) if units is None else np.asarray(units)
    ok, a = parallel_units(W1, live, form, readable)
    if not np.all(ok):
        cols = W1[:, live[~ok]]
        rows = np.flatnonzero(readable & np.any(cols != 0, axis=1))
        return None, f"units writing the slot read slots {rows.tolist()} beyond its input form"
    c = float(b2[out]) if with_bias else 0.0
    # the output bias as two constant units: relu(c) − relu(−c) = c
    a = np.concatenate([a, [0.0, 0.0]])
    b = np.concatenate([b1[live], [c, -c]])
    s = np.concatenate([W2[live, out], [1.0, -1.0]])
    return PiecewiseLinear.from_units(a, b, s), None


def _pl_numpy(pl: PiecewiseLinear):
    return (np.asarray(pl.breakpoints, np.float64), np.asarray(pl.values, np.float64),
            np.asarray(pl.slopes, np.float64))


def _pl_eval(t, values, slopes, z):
    i = np.searchsorted(t, z, side="right") - 1
    k = np.maximum(i, 0)
    return values[k] + slopes[i + 1] * (z - t[k])


def sup_one_input(pl: PiecewiseLinear, f, lipschitz: float, lo: float, hi: float, tolerance: float,
                  affine_between=None) -> StepBound:
    """A sound upper bound on sup_{z∈[lo,hi]} |pl(z) − f(z)| (module docstring, rounding margin
    included), the attained lower bound, and the exact range of pl on [lo, hi]."""
    t, values, slopes = _pl_numpy(pl)
    inner = [t[(t > lo) & (t < hi)]]
    if affine_between is not None:
        k = np.asarray(affine_between, dtype=np.float64)
        inner.append(k[(k > lo) & (k < hi)])
    pts = np.unique(np.concatenate([[lo, hi], *inner]))
    net = _pl_eval(t, values, slopes, pts)
    fv = evaluate_padded(f, pts)
    zmag = max(abs(lo), abs(hi), 1.0)
    margin = (4.0 * (float(pl.n_units) + 8.0) * U * (float(pl.scale_a) * zmag + float(pl.scale_b))
              + EVAL_ULPS_OF_F * 2 * U * float(np.max(np.abs(fv))))
    value_range = (float(np.min(net)), float(np.max(net)))  # exact for the PL; the dense net differs by rounding
    g = np.abs(net - fv)
    if pts.size == 1 or affine_between is not None:
        upper = float(np.max(g))
    else:
        for _ in range(12):
            slope = slopes[np.searchsorted(t, (pts[:-1] + pts[1:]) / 2, side="right")]
            width = np.diff(pts)
            ends = np.maximum(g[:-1], g[1:])
            piece = np.maximum((g[:-1] + g[1:] + (lipschitz + np.abs(slope)) * width) / 2, ends)
            refine = (piece > tolerance) & (ends <= tolerance)
            if not np.any(refine) or pts.size * 2 > MAX_POINTS:
                break
            new = (pts[:-1][refine, None] + width[refine, None] * np.array([0.25, 0.5, 0.75])).reshape(-1)
            order = np.argsort(np.concatenate([pts, new]), kind="stable")
            pts = np.concatenate([pts, new])[order]
            g = np.concatenate([g, np.abs(_pl_eval(t, values, slopes, new) - evaluate_padded(f, new))])[order]
        slope = slopes[np.searchsorted(t, (pts[:-1] + pts[1:]) / 2, side="right")]
        width = np.diff(pts)
        piece = np.maximum((g[:-1] + g[1:] + (lipschitz + np.abs(slope)) * width) / 2, np.maximum(g[:-1], g[1:]))
        upper = float(np.max(piece)) * (1 + 8 * U)
    i = int(np.argmax(g))
    return StepBound(upper=upper + margin, lower=float(g[i]), at=float(pts[i]), value_range=value_range,
                       rounding=margin)


# ----------------------------------------------------------------------------- Kuhn blocks
def _back(W, grouped: bool, mask_out: np.ndarray) -> np.ndarray:
    """|W|-weighted pull-back of a vector on a layer's outputs to its inputs."""
    if not grouped:
        return np.abs(W) @ mask_out
    G, gi, go = W.shape
    return np.einsum("gio,go->gi", np.abs(W), mask_out.reshape(G, go)).reshape(-1)


def _forward(layers, Z: np.ndarray):
    """Network on Z (P, D): the hidden pre-activations of every layer and the output."""
    pre, h = [], Z
    for i, (W, b, grouped) in enumerate(layers):
        if grouped:
            G, gi, go = W.shape
            z = (np.einsum("pgi,gio->pgo", h.reshape(h.shape[0], G, gi), W) + b).reshape(h.shape[0], -1)
        else:
            z = h @ W + b
        if i < len(layers) - 1:
            pre.append(z)
            h = np.maximum(z, 0.0)
        else:
            return pre, z[:, 0]


def _scales(layers, Z: np.ndarray) -> list[np.ndarray]:
    """Per hidden unit, the max over Z of Σ|w||input| + |b|: the size of the terms of its sum."""
    out, h = [], np.abs(Z)
    for i, (W, b, grouped) in enumerate(layers[:-1]):
        if grouped:
            G, gi, go = W.shape
            z = (np.einsum("pgi,gio->pgo", h.reshape(h.shape[0], G, gi), np.abs(W)) + np.abs(b)).reshape(h.shape[0], -1)
        else:
            z = h @ np.abs(W) + np.abs(b)
        out.append(np.max(z, axis=0))
        h = z
    return out


def kuhn_block_network(layers, forms: np.ndarray, out: int, readable: np.ndarray):
    """The block writing slot ``out`` as a network of z ∈ R^D: [(W, b, grouped), …] with the
    first layer reading z and the last writing one output; or (None, problem).

    ``layers``: the layer's compiled FFN [(W, b, grouped)]; ``forms`` (E, D) the claimed input
    forms. Units that do not reach ``out`` are zeroed (they cannot change it)."""
    reach = [None] * (len(layers) - 1)  # reach[i]: outputs of affine layer i that can change ``out``
    m = layers[-1][0][:, out] != 0
    for i in range(len(layers) - 2, -1, -1):
        reach[i] = m
        if i:
            m = _back(layers[i][0], layers[i][2], m.astype(np.float64)) > 0
    W1, b1, grouped1 = layers[0]
    if grouped1:
        return None, "the first FFN layer is grouped: it cannot read the residual stream through forms"
    cols = W1[:, reach[0]][readable]
    Phi = forms[readable]
    A, *_ = np.linalg.lstsq(Phi, cols, rcond=None)
    if np.any(np.abs(Phi @ A - cols) > 64 * U * np.max(np.abs(cols), initial=0.0)):
        return None, "units reaching the slot read the residual stream beyond the claimed input forms"
    A_full = np.zeros((forms.shape[1], W1.shape[1]))
    A_full[:, reach[0]] = A
    net = [(A_full, np.where(reach[0], b1, 0.0), False)] + list(layers[1:-1])
    Wl, bl, gl = layers[-1]
    net.append((Wl[:, out:out + 1], np.asarray(bl)[out:out + 1], False))
    return (net, reach), None


def _simplices(sizes: tuple[int, ...]) -> np.ndarray:
    """Vertex indices (S, D+1) into a C-order product grid of the Freudenthal simplices."""
    D = len(sizes)
    strides = np.array([int(np.prod(sizes[i + 1:])) for i in range(D)])
    cells = np.indices(tuple(s - 1 for s in sizes)).reshape(D, -1).T @ strides
    out = []
    for perm in itertools.permutations(range(D)):
        offs = np.concatenate([[0], np.cumsum(strides[list(perm)])])
        out.append(cells[:, None] + offs[None, :])
    return np.concatenate(out)


def _mixed_sign(pre: list[np.ndarray], taus: list[np.ndarray], reach, simplices: np.ndarray) -> int:
    """Index of a simplex on which some reaching unit takes both signs, or −1."""
    for z, tau, r in zip(pre, taus, reach):
        z = z[:, r]
        # the signs packed 8 units to a byte: the OR over a simplex's vertices moves 8× fewer bytes
        pos, neg = np.packbits(z > tau[r], axis=1), np.packbits(z < -tau[r], axis=1)
        for s0 in range(0, simplices.shape[0], 2048):
            idx = simplices[s0:s0 + 2048]
            any_pos, any_neg = pos[idx[:, 0]], neg[idx[:, 0]]
            for k in range(1, idx.shape[1]):
                any_pos = any_pos | pos[idx[:, k]]
                any_neg = any_neg | neg[idx[:, k]]
            bad = np.flatnonzero(np.any(any_pos & any_neg, axis=1))
            if bad.size:
                return int(s0 + bad[0])
    return -1


def _kuhn_interpolate(coarse: np.ndarray, n: int, m: int, D: int) -> tuple[np.ndarray, np.ndarray]:
    """Points of the grid of spacing 1/(n m) in [0,1]^D and the Kuhn interpolant there of
    ``coarse`` (values on the grid of spacing 1/n, C order)."""
    idx = np.indices((n * m + 1,) * D).reshape(D, -1).T  # fine indices
    base = np.minimum(idx // m, n - 1)
    frac = (idx - base * m) / m
    order = np.argsort(-frac, axis=1, kind="stable")
    fs = np.take_along_axis(frac, order, axis=1)
    strides = (n + 1) ** np.arange(D - 1, -1, -1)
    vert = base @ strides
    lam_t = np.concatenate([np.ones((idx.shape[0], 1)), fs, np.zeros((idx.shape[0], 1))], axis=1)
    lam = lam_t[:, :-1] - lam_t[:, 1:]
    value = lam[:, 0] * coarse[vert]
    for k in range(D):
        vert = vert + strides[order[:, k]]
        value = value + lam[:, k + 1] * coarse[vert]
    return idx / (n * m), value


def _kuhn_grid(net_reach, n: int, box: tuple[float, float]):
    """The block on the grid {box lo} ∪ {0, 1/n, …, 1} ∪ {box hi} per axis, checked affine on
    every Freudenthal simplex of it (module docstring): (grid, or None, problem). The grid:
    dict(Z, out, sizes, shift, coarse (values at the inner vertices, C order), slack (the
    first-order effect of pre-activations counted as 0), rounding (NumPy's evaluation))."""
    net, reach = net_reach
    D = net[0][0].shape[0]
    inner = np.arange(n + 1) / n
    axis = np.concatenate([[box[0]] if box[0] < 0 else [], inner, [box[1]] if box[1] > 1 else []])
    sizes = (axis.size,) * D
    units = sum(W.shape[-1] if not grouped else W.shape[0] * W.shape[2] for W, _, grouped in net[:-1])
    entries = float(units) * axis.size ** D
    if entries > MAX_KUHN_ENTRIES:
        return None, (f"not checked: {units} units × {axis.size ** D} grid vertices = {entries:.2g} "
                      f"pre-activations exceed this checker's limit {MAX_KUHN_ENTRIES:.0e}")
    Z = np.stack(np.meshgrid(*([axis] * D), indexing="ij"), -1).reshape(-1, D)
    pre, out = _forward(net, Z)
    scales = _scales(net, Z)
    taus = [SIGN_THRESHOLD * s for s in scales]
    bad = _mixed_sign(pre, taus, reach, _simplices(sizes))
    if bad >= 0:
        return None, ("the block is not affine on a simplex of its claimed grid "
                      f"(a unit changes sign inside simplex {bad})")
    # first-order effect of the pre-activations counted as 0: Σ 2τ_j·gain_j
    gain = np.abs(net[-1][0][:, 0])
    slack = 0.0
    for l in range(len(pre) - 1, -1, -1):
        slack += float(np.sum(2 * taus[l] * gain))
        if l:
            gain = _back(net[l][0], net[l][2], gain)
    shift = int(box[0] < 0)
    inner_idx = np.indices((n + 1,) * D).reshape(D, -1).T + shift
    flat = np.ravel_multi_index(inner_idx.T, sizes)
    return dict(Z=Z, out=out, sizes=sizes, shift=shift, coarse=out[flat], slack=slack,
                rounding=64 * U * (float(np.max(np.abs(out))) + 1.0), D=D), None


def certify_kuhn(net_reach, G, lipschitz: float, n: int, box: tuple[float, float], tolerance: float,
                 max_fine: int = 200_000) -> StepBound:
    """The OnBox certificate of a block network (module docstring)."""
    grid, problem = _kuhn_grid(net_reach, n, box)
    if problem:
        return StepBound(upper=math.inf, problem=problem)
    Z, out, sizes, shift, coarse = grid["Z"], grid["out"], grid["sizes"], grid["shift"], grid["coarse"]
    slack, rounding, D = grid["slack"], grid["rounding"], grid["D"]
    axis_size = sizes[0]
    C = kuhn_error_constant(D)
    best = None
    m = 1
    while True:
        pts, vals = _kuhn_interpolate(coarse, n, m, D)
        err = np.abs(vals - evaluate_padded(G, pts))
        upper = float(np.max(err)) + C * lipschitz / (n * m) + slack + rounding
        i = int(np.argmax(err))
        best = StepBound(upper=upper, lower=float(err[i]), at=pts[i].tolist(), rounding=slack + rounding)
        if upper <= tolerance or err[i] > tolerance or (2 * n * m + 1) ** D > max_fine:
            break
        m *= 2
    if axis_size > n + 1:  # the shell: net(z) = net(clip z) at its vertices, or the coarse bound there
        clip_idx = np.ravel_multi_index(
            np.clip(np.indices(sizes).reshape(D, -1) - shift, 0, n) + shift, sizes)
        diff = np.abs(out - out[clip_idx])
        if np.any(diff > rounding):
            zc = np.clip(Z, 0.0, 1.0)
            shell_err = np.abs(out - evaluate_padded(G, zc))
            h = max(1.0 / n, -box[0], box[1] - 1.0)
            upper = float(np.max(shell_err)) + C * lipschitz * h + slack + rounding
            if upper > best.upper:
                j = int(np.argmax(shell_err))
                best = StepBound(upper=upper, lower=max(best.lower, float(shell_err[j])), at=Z[j].tolist(),
                                   rounding=slack + rounding)
    return best


@dataclass(frozen=True)
class KuhnCells:
    """Per-cell certificates of a Kuhn block (for the global certificate's box bounds).

    Cell c = c/n + [0, 1/n]^D (C order over (n,)*D). ``err[c]`` ≥ sup over the cell of
    |net(z) − G(z)| (real arithmetic, G as evaluated plus ``EVAL_ULPS_OF_F`` ulps); ``lo[c]``,
    ``hi[c]`` enclose net on the cell. ``clip_exact``: on the claim's shell (box \\ [0,1]^D)
    net(z) = net(clip z) up to ``shell_slack``; outside ``box`` nothing is known."""

    n: int
    box: tuple[float, float]
    err: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    clip_exact: bool
    shell_slack: float
    fine: int  # m: the fine grid's spacing is 1/(n·m)


def _cell_windows(values: np.ndarray, n: int, m: int, D: int, reduce) -> np.ndarray:
    """Per cell of spacing 1/n, ``reduce`` (np.max / np.min) of a fine-grid array ((n·m+1,)*D)
    over the cell's closed window of (m+1)^D fine points."""
    v = values.reshape((n * m + 1,) * D)
    for a in range(D):
        w = np.lib.stride_tricks.sliding_window_view(v, m + 1, axis=a)
        w = np.take(w, np.arange(n) * m, axis=a)  # windows starting at each cell's first fine index
        v = reduce(w, axis=-1)
    return v


def kuhn_cells(net_reach, G, lipschitz: float, n: int, box: tuple[float, float],
               max_fine: int = 1 << 20, target_h: float | None = None):
    """(KuhnCells, None) or (None, problem), for the block network ``net_reach``
    (:func:`kuhn_block_network`) against G (L_∞-Lipschitz ``lipschitz``) on the grid 1/n.

    Sound for the same reason as :func:`certify_kuhn`: the block is checked affine on every
    Freudenthal simplex of the grid (else a problem is returned); then on the fine grid of
    spacing 1/(n·m) (nested triangulation) it is the Kuhn interpolant of its coarse vertex
    values, and on each fine simplex sup |net − G| ≤ max over its vertices |net − G| +
    C_D·L/(n·m). Each cell is the union of its fine simplices, so its bound is the max over
    its (m+1)^D fine points plus C_D·L/(n·m), plus ``slack`` and ``rounding``. The range of
    net over a cell is the min/max of its 2^D corner values (affine on each simplex, whose
    vertices are corners), widened by slack + rounding. m doubles while the fine grid has at
    most ``max_fine`` points and C_D·L/(n·m) > ``target_h``."""
    grid, problem = _kuhn_grid(net_reach, n, box)
    if problem:
        return None, problem
    D, coarse, slack, rounding = grid["D"], grid["coarse"], grid["slack"], grid["rounding"]
    C = kuhn_error_constant(D)
    m = 1
    while (2 * n * m + 1) ** D <= max_fine and (target_h is None or C * lipschitz / (n * m) > target_h):
        m *= 2
    pts, vals = _kuhn_interpolate(coarse, n, m, D)
    gv = evaluate_padded(G, pts)
    g_round = EVAL_ULPS_OF_F * 2 * U * (float(np.max(np.abs(gv))) + 1.0)
    err = _cell_windows(np.abs(vals - gv), n, m, D, np.max)
    err = (err + C * lipschitz / (n * m) + slack + rounding + g_round) * (1 + 8 * U)
    corner = coarse.reshape((n + 1,) * D)
    lo = _cell_windows(corner, n, 1, D, np.min) - slack - rounding
    hi = _cell_windows(corner, n, 1, D, np.max) + slack + rounding
    clip_exact, sizes, shift = True, grid["sizes"], grid["shift"]
    if sizes[0] > n + 1:
        out = grid["out"]
        clip_idx = np.ravel_multi_index(np.clip(np.indices(sizes).reshape(D, -1) - shift, 0, n) + shift, sizes)
        clip_exact = bool(np.all(np.abs(out - out[clip_idx]) <= rounding))
    # net − net∘clip is affine on each shell simplex: its sup is at the vertices (≤ rounding as
    # computed, each evaluation ±rounding) plus the pre-activation slack of both terms
    return KuhnCells(n=n, box=tuple(box), err=err, lo=lo, hi=hi, clip_exact=clip_exact,
                     shell_slack=3 * rounding + 2 * slack, fine=m), None


def network_lipschitz(net_reach) -> float:
    """An upper bound on the block network's Lipschitz constant from ‖·‖_∞ on z to its output:
    Σ over input coordinates of the |weight|-path sums (ReLU is 1-Lipschitz; |W| products
    bound every linear piece's gradient entrywise)."""
    net, _ = net_reach
    gain = np.abs(net[-1][0][:, 0])
    for W, _b, grouped in net[-2:0:-1]:
        gain = _back(W, grouped, gain)
    return float(np.sum(_back(net[0][0], net[0][2], gain)))
