"""Structural probes: inputs read off a built construction's compiled program, for ANY construction.

The samplers and the ascent look where the volume is; a defect confined to a small region
(one decoder cell, one corner of the cube, one Kuhn vertex, one position) is where they do
not. These probes go there on purpose. They are generated from the compiled program — its
weights and its sites (:attr:`~infoflow_jax.core.slots.CompiledProgram.sites`: every FFN
block with the forms it reads) — never from the construction's intent, so a user's
construction and every mutant get them too:

* ``corners`` (:func:`cube_probes`): corners and faces of [0,1]^{T×d}: all-zeros, all-ones,
  one-hot patterns and their complements, two-hot patterns, random {0,1} patterns; faces are
  corners with one or two coordinates free (uniform in [0,1]).
* ``positions`` (:func:`position_probes`, position-dependent models only: a positional code or
  a position-dependent input embedding): every position as the maximum, as the runner-up, and
  in near ties (gaps 10^{-1..-4}) with another position.
* ``knots`` (:func:`knot_probes`): for every FFN block, inputs X at which the block's input
  u(X) (read at CLS in the last layer, where only CLS is read; at a token elsewhere) lands on
  a kink of one of its first-layer ReLU units: for a one-input block that is every breakpoint
  t_i = −b_i/w_i, and we add every cell midpoint and both ends of the breakpoint range; for a
  multi-input block, the unit's hyperplane w·u + b = 0. Found without compiling anything: the
  pre-FFN residuals are computed in NumPy (:func:`pre_ffn_residuals`) along random monotone
  paths in the domain (all tokens ramped; one token lifted over random others; one token
  lifted alone), a sign change of u(X) − z located on a path (for a one-input block, every
  path segment covers an interval of the sorted targets), then solved by false position.
  EVERY target is solved when that fits SOLVE_WORK (a decoder at ε = 1e-3 has thousands of
  cells, and a defect confined to one of them shows only where its input lands in that cell),
  and the solutions are screened in NumPy: the N_KNOTS of largest error |Ĥ − H| are kept.
* ``kuhn`` (:func:`kuhn_probes`, blocks with an :class:`~infoflow_jax.core.claims.OnBox` claim,
  whose grid n is stated): inputs driving the block's D inputs to grid vertices v/n (every
  vertex when they fit, corners first) and to the worst point of a simplex,
  (base + σ(f*))/n with f* = :func:`~infoflow_jax.core.kuhn.kuhn_worst_case_point`, by a damped
  Newton solve in the D most sensitive input coordinates (finite differences, NumPy).

Every kind has a FIXED size (independent of T, d and the weights; missing solutions are
filled by cycling the ones found, then uniform points), so the builds of a family at several
T carry probes of one shape: a T-padded sweep bucket (:mod:`~infoflow_jax.verification.padding`,
:func:`~infoflow_jax.verification.padding.with_mask`) stays one bucket. Every probe is a point
of the task's domain (retracted; the estimator retracts again, which is the identity there).

:func:`finest_scale` is where the polish (:func:`~infoflow_jax.verification.estimators.ascend`)
stops: min(1/β over heads, smallest breakpoint spacing of one-input blocks, the margin γ).

Cost (NumPy, on the host): ~50 paths × 33 points plus ≤ N_KNOT_SOLVE targets × ~4 false-position
steps of the pre-FFN forward and one screening forward each (≤ SOLVE_WORK multiply-adds), and
≤ 64 Kuhn targets × 10 Newton steps × (D + 1) forwards; the number of paths and of solved targets
shrinks with the forward's cost (T², FFN widths) so that one build's probes stay ≲ 1–2 s (at
least 1 path and 4 targets; the rest cycled).
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np

from infoflow_jax.core.claims import OnBox
from infoflow_jax.core.kuhn import kuhn_worst_case_point
from infoflow_jax.core.numpy_forward import numpy_weights, pre_ffn_residuals, predict_np
from infoflow_jax.core.pwl import FastFFN, PiecewiseLinear, distinct_rows, layer_ffn_weights

N_CORNERS = 256
N_POSITIONS = 128
N_KNOTS = 256
N_KUHN = 64
N_PATHS = 48
PATH_POINTS = 33
N_KNOT_SOLVE = 1 << 15  # knot targets one build may solve (every knot and midpoint of a decoder of N ≤ 16 000)
SOLVE_WORK = 2e9  # multiply-adds the root-finding and screening of every knot target may spend (else a random subset is solved)
CROSSING_ELEMENTS = 4e6  # (path, point, position, target) entries one chunk of the crossing search holds
ROOT_COST = 5  # forwards one knot target costs: about 4 root-finding steps and its screening
ROOT_STEPS = 48  # root-finding steps at most per knot target (half of them bisections; most stop after 2–5)
KNOT_TOL = 1e-10  # |u − z| at which a knot target counts as reached (relative to 1 + |z|)
NEWTON_STEPS = 10
NEAR_TIE_GAPS = (1e-1, 1e-2, 1e-3, 1e-4)
FORWARD_WORK = 4e7  # multiply-adds one path search may spend (sizes the number of paths)
# Above this many multiply-adds for one path (PATH_POINTS NumPy forwards), the searched probes
# (knots, Kuhn points) are skipped: at T = 1024–4096 one path costs 7e10–3e11 and its (B, T, T)
# scores tens of GB. The default grids stay far below (largest: C2 T = 64 ε = 1e-3, 4.3e8).
MAX_PATH_WORK = 2e9
SEED_OFFSET = 7919  # the probes' own stream, apart from the samplers' (same seed)


# ----------------------------------------------------------------------------- helpers
def _fixed(rows: list[np.ndarray], n: int, T: int, d: int, rng) -> np.ndarray:
    """Exactly n inputs (n, T, d): the rows found, cycled; uniform points when none was found."""
    X = np.concatenate(rows) if rows else np.zeros((0, T, d))
    if X.shape[0] == 0:
        return rng.random((n, T, d))
    if X.shape[0] >= n:
        return X[:n]
    return X[np.arange(n) % X.shape[0]]


def searchable(cfg, T: int) -> bool:
    """Whether one path of the probe searches (PATH_POINTS NumPy forwards) fits MAX_PATH_WORK."""
    return forward_cost(cfg, T) * PATH_POINTS <= MAX_PATH_WORK


def forward_cost(cfg, T: int, weights=None) -> float:
    """Multiply-adds of :func:`pre_ffn_residuals` for one input (attention and every FFN but the last).
    With ``weights`` (:func:`~infoflow_jax.core.numpy_forward.numpy_weights`), a piecewise-linear layer counts its dense remainder and
    ACTIVATION_WORK per one-input group (projection, search, interpolation) instead of its hidden units."""
    att = sum((T + 1) * T * cfg.E * 2 for _ in cfg.layers)
    per = [sum(s.n_in * s.n_out for s in layer.ffn) for layer in cfg.layers[:-1]]
    if weights is not None:
        per = [2 * cfg.E * int(f.W1r.shape[1]) + (2 * cfg.E + ACTIVATION_WORK) * int(f.U.shape[1])
               if isinstance(f, FastFFN) else w for w, (_, f) in zip(per, weights[1])]
    return float(att + (T + 1) * sum(per) + 1)


def _form_matrix(compiled, forms) -> np.ndarray:
    """(E, D): column j reads form j off a residual row."""
    M = np.zeros((len(compiled.slots), len(forms)))
    for j, form in enumerate(forms):
        for slot, c in form.as_dict().items():
            M[compiled.slots.index(slot), j] += c
    return M


def _ffn_sites(compiled):
    return [s for s in compiled.sites if s.kind == "ffn" and s.inputs]


def _block_net(compiled, site):
    """The first layer (W (D, n_units), b) of the block at ``site``, read off the compiled weights:
    rows of the residual → the block's units, composed with the forms it reads."""
    V, b1, exact = _block_fit(compiled, site)
    return V[:, exact], b1[exact]


def _block_fit(compiled, site):
    """(V (D, all units), b (all units), exact): the layer's first layer read through the block's
    forms, and which units read nothing but those forms (W1 = M·V exactly for them)."""
    # the compiled FFN is block-structured; read the block's units through its input forms
    M = _form_matrix(compiled, site.inputs)
    W1 = np.asarray(compiled.model.blocks[site.layer].ffn.W[0][...])
    b1 = np.asarray(compiled.model.blocks[site.layer].ffn.b[0][...])
    if W1.ndim == 3:  # grouped first layer: flatten to dense (E_in, units)
        G, g_in, g_out = W1.shape
        dense = np.zeros((G * g_in, G * g_out))
        for g in range(G):
            dense[g * g_in:(g + 1) * g_in, g * g_out:(g + 1) * g_out] = W1[g]
        W1, b1 = dense, b1.reshape(-1)
    # units that read only this block's forms: W1 = M·V for some V (least squares, exact for them)
    V, *_ = np.linalg.lstsq(M, W1, rcond=None)
    exact = np.all(np.abs(M @ V - W1) <= 1e-9 * (1 + np.abs(W1)), axis=0) & np.any(np.abs(W1) > 0, axis=0)
    return V, b1, exact


# ----------------------------------------------------------------------------- corners and faces
def cube_probes(T: int, d: int, rng: np.random.Generator, n_probes: int = N_CORNERS) -> np.ndarray:
    """Corners ({0,1} patterns) and faces (one or two coordinates free) of [0,1]^{T×d}: (n_probes, T, d).

    Order (truncated to ``n_probes``): zeros, ones, one-hots and their complements, then half the
    remainder faces (half of those with one free coordinate), two-hot corners (all pairs when
    they fit, else random ones), random corners."""
    n = T * d
    hot = np.arange(n)
    if 2 + 2 * n > n_probes // 2:  # too many one-hots: a random subset, with their complements
        hot = rng.choice(n, (n_probes // 2 - 2) // 2, replace=False)
    eye = np.zeros((hot.size, n))  # only the one-hots kept: never the n × n identity (n = T·d reaches 10⁶)
    eye[np.arange(hot.size), hot] = 1.0
    corners = [np.zeros((1, n)), np.ones((1, n)), eye, 1 - eye]
    head = np.concatenate(corners)
    left = n_probes - head.shape[0]
    n_faces = left // 2
    base = np.concatenate([head, (rng.random((n_faces, n)) < 0.5).astype(float)])
    faces = base[rng.integers(0, base.shape[0], n_faces)].copy()
    free = rng.integers(0, n, (n_faces, 2))
    free[: n_faces // 2, 1] = free[: n_faces // 2, 0]
    faces[np.arange(n_faces)[:, None], free] = rng.random((n_faces, 2))
    n_two = left - n_faces
    pairs = (np.array(list(itertools.combinations(range(n), 2))) if n * (n - 1) // 2 <= n_two
             else np.sort(np.stack([i := rng.integers(0, n, n_two), (i + rng.integers(1, max(n, 2), n_two)) % n], 1), 1))
    two = np.zeros((len(pairs), n))
    if len(pairs):
        two[np.arange(len(pairs))[:, None], pairs.reshape(-1, 2)] = 1.0
    extra = (rng.random((max(n_two - len(pairs), 0), n)) < rng.random((max(n_two - len(pairs), 0), 1))).astype(float)
    out = np.concatenate([head, faces, two[:n_two], extra])
    return out[:n_probes].reshape(-1, T, d)


# ----------------------------------------------------------------------------- positions
def position_dependent(cfg) -> bool:
    return cfg.positional != "none" or bool(cfg.position_input)


def position_probes(T: int, d: int, rng: np.random.Generator, n_probes: int = N_POSITIONS) -> np.ndarray:
    """Every position t as the maximum (1 on a random coordinate), as the runner-up to a random
    partner s ≠ t (0.9 against 1), and in a near tie 0.9 − δ against 0.9 for δ ∈ NEAR_TIE_GAPS; the
    other tokens uniform below 0.8. Positions cycle so that exactly ``n_probes`` come out."""
    kinds = [(1.0, None), (1.0, 0.9), (0.9, 1.0)] + [(0.9 - g, 0.9) for g in NEAR_TIE_GAPS] + \
            [(0.9, 0.9 - g) for g in NEAR_TIE_GAPS]
    i = np.arange(n_probes)
    t = i % T
    kind = (i // T) % len(kinds)
    s = (t + rng.integers(1, max(T, 2), n_probes)) % T
    c = rng.integers(0, d, n_probes)
    X = rng.random((n_probes, T, d)) * 0.8
    top = np.array([kinds[j][0] for j in kind])
    second = np.array([np.nan if kinds[j][1] is None else kinds[j][1] for j in kind])
    X[i, t, c] = top
    has = ~np.isnan(second) & (s != t)
    X[i[has], s[has], c[has]] = second[has]
    return X


# ----------------------------------------------------------------------------- knots
class KnotTargets(NamedTuple):
    """One row per knot target: block ``site[j]``'s input u should satisfy ``w[j, :D]·u = z[j]``
    (``w`` zero-padded to the largest D); ``bend[j]`` ranks a one-input block's targets (0 elsewhere)."""
    site: np.ndarray
    w: np.ndarray
    z: np.ndarray
    bend: np.ndarray


def _kinks(v: np.ndarray, b: np.ndarray) -> np.ndarray:
    """t_j = −b_j/v_j of one-input units (v_j ≠ 0), rounded to 12 decimals (units of one knot agree)."""
    return np.round(-b / v, 12)


def _kink_sizes(compiled, site, fit, t: np.ndarray) -> np.ndarray:
    """|jump of the slope| of a one-input block's output at each breakpoint t_i (the norm over the
    slots it writes of Σ_{units kinking at t_i} v_j·W2[j]); ``fit`` is :func:`_block_fit`'s; zeros when
    its layer is not one Dense hidden layer (a grouped or deeper FFN: no ranking)."""
    parts = layer_ffn_weights(compiled.model, site.layer)
    if len(parts) != 2 or parts[0][2] or parts[1][2]:
        return np.zeros(t.size)
    V, b1, exact = fit
    units = np.flatnonzero(exact & (np.abs(V[0]) > 0))
    outs = [compiled.slots.index(o) for o in site.outputs]
    jump = V[0, units, None] * parts[1][0][units][:, outs]  # (units, slots)
    at = np.searchsorted(t, _kinks(V[0, units], b1[units]))
    kink = np.zeros((t.size, len(outs)))
    np.add.at(kink, np.clip(at, 0, t.size - 1), jump)
    return np.linalg.norm(kink, axis=1)


def knot_targets(compiled) -> KnotTargets:
    """Every FFN block's knot targets (:class:`KnotTargets`).

    One-input blocks: w = 1 and z every breakpoint, cell midpoint and both range ends; the bend of
    a breakpoint is |Δslope|·(mean of its two cells' widths), the height by which the block's output
    leaves a straight line there, and a midpoint takes its larger end's. A smooth decoder bends by
    ~|f''|h²; a defect confined to a cell, by its own height: ranking by bend finds it first.
    Multi-input blocks: w·u = −b for each first-layer unit (its kink hyperplane).
    Arrays, not a list per knot: a decoder has N ∝ 1/ε knots (16 568 for C2 at ε = 1e-3)."""
    sites, ws, zs, bends = [], [], [], []
    for i, site in enumerate(_ffn_sites(compiled)):
        fit = _block_fit(compiled, site)
        V, b = fit[0][:, fit[2]], fit[1][fit[2]]  # as _block_net: the units that read only this block
        if V.shape[0] == 1:
            live = np.abs(V[0]) > 0
            t = np.unique(_kinks(V[0, live], b[live]))
            h = np.diff(t)
            width = (np.concatenate([h[:1], h]) + np.concatenate([h, h[-1:]])) / 2 if h.size else np.zeros(t.size)
            bend_t = _kink_sizes(compiled, site, fit, t) * width
            z = np.concatenate([t, (t[1:] + t[:-1]) / 2])
            bend = np.concatenate([bend_t, np.maximum(bend_t[1:], bend_t[:-1])])
            z, first = np.unique(z, return_index=True)
            bend, w = bend[first], np.ones((z.size, 1))
        else:
            keep = np.any(V != 0, axis=0)
            w, z = V[:, keep].T, -b[keep]
            bend = np.zeros(z.size)
        sites.append(np.full(z.size, i))
        ws.append(w)
        zs.append(np.asarray(z, np.float64))
        bends.append(bend)
    if not sites:
        return KnotTargets(np.zeros(0, int), np.zeros((0, 1)), np.zeros(0), np.zeros(0))
    D = max(w.shape[1] for w in ws)
    w = np.concatenate([np.pad(w, ((0, 0), (0, D - w.shape[1]))) for w in ws])
    return KnotTargets(np.concatenate(sites), w, np.concatenate(zs), np.concatenate(bends))


def _solve_order(t_site: np.ndarray, bend: np.ndarray, n_solve: int, rng) -> np.ndarray:
    """The targets to solve, at most ``n_solve``: all when they fit. Else each block gets an equal
    share (a block with fewer targets gets all of them, its unused share going to the others), and
    within a block its range ends come first, then alternately its largest bend and a random one."""
    blocks = [np.flatnonzero(t_site == si) for si in np.unique(t_site)]
    if t_site.size <= n_solve:
        return np.concatenate(blocks)
    share, left = {}, n_solve
    for n_left, b in enumerate(sorted(blocks, key=len)):  # fewest targets first
        share[b[0]] = min(b.size, left // (len(blocks) - n_left))
        left -= share[b[0]]
    chosen = []
    for b in blocks:
        ends = np.array([b[0], b[-1]]) if b.size > 1 else b[:1]
        inner = b[1:-1]
        by_bend = inner[np.argsort(-bend[inner], kind="stable")]
        mixed = np.empty(2 * inner.size, int)
        mixed[0::2], mixed[1::2] = by_bend, rng.permutation(inner)
        _, first = np.unique(mixed, return_index=True)
        chosen.append(np.concatenate([ends, mixed[np.sort(first)]])[:share[b[0]]])
    return np.concatenate(chosen)


def _paths(T: int, d: int, n: int, rng):
    """n monotone paths in the cube, as (start (n, T, d), end (n, T, d), moved token (n,))."""
    kind = np.arange(n) % 3
    A = rng.random((n, T, d)) * rng.random((n, 1, 1)) * 0.5
    B = np.clip(A + rng.random((n, T, d)) * (1 - A), 0, 1)
    tok = rng.integers(0, T, n)
    co = rng.integers(0, d, n)
    ramp = kind == 0
    B[ramp & (np.arange(n) % 2 == 0)] = 1.0  # every second ramp ends at the all-ones corner
    A[ramp & (np.arange(n) % 6 == 0)] = 0.0  # and some start at zero: all tokens equal along it
    lift = ~ramp
    B[lift] = A[lift]
    A[kind == 2] = 0.0  # one token lifted alone: the others at 0
    B[kind == 2] = 0.0
    rows = np.flatnonzero(lift)
    A[rows, tok[rows], co[rows]] = 0.0
    B[rows, tok[rows], co[rows]] = 1.0
    return A, B, np.where(lift, tok, -1)


def _crossings(U: np.ndarray, own: np.ndarray | None, rng) -> tuple[np.ndarray, np.ndarray]:
    """For each target j of U (paths, points, positions, targets) = u − z along the paths: whether
    u − z changes sign between two consecutive points somewhere, and one such (path, point, position)
    drawn uniformly (flat index into U's first three axes, minus the last point). ``own`` (paths, 1,
    positions, 1): where the moved token is read; crossings there are preferred when a target has one."""
    change = (np.sign(U[:, :-1]) * np.sign(U[:, 1:]) <= 0) & np.isfinite(U[:, :-1]) & np.isfinite(U[:, 1:])
    if own is not None:
        change = np.where(np.any(change & own, axis=(0, 1, 2), keepdims=True), change & own, change)
    flat = change.reshape(-1, U.shape[-1])
    return flat.any(axis=0), np.argmax(rng.random(flat.shape) * flat, axis=0)


def _pick_covering(a: np.ndarray, b: np.ndarray, segs: np.ndarray, targets: np.ndarray, rng,
                   rounds: int = 64) -> np.ndarray:
    """For each target index i, a segment s of ``segs`` with a[s] ≤ i < b[s], drawn uniformly and
    independently per target (−1 where none covers it): a uniform draw among the segments starting
    at or before i, kept when it reaches past i (rejection; ``rounds`` tries, then the covering
    segment painted last in a random order)."""
    owner = np.full(targets.size, -1)
    if not segs.size or not targets.size:
        return owner
    S = segs[np.argsort(a[segs], kind="stable")]
    K = np.searchsorted(a[S], targets, "right")  # segments starting at or before each target
    todo = np.flatnonzero(K > 0)
    for _ in range(rounds):
        if not todo.size:
            break
        pick = S[(rng.random(todo.size) * K[todo]).astype(int)]
        ok = b[pick] > targets[todo]
        owner[todo[ok]] = pick[ok]
        todo = todo[~ok]
    if todo.size:  # few covering segments among many that start before: paint them
        painted = np.full(int(targets.max()) + 1, -1)
        for sg in rng.permutation(segs):
            painted[a[sg]:b[sg]] = sg
        owner[todo] = painted[targets[todo]]
    return owner


def _covering_segments(R: np.ndarray, z: np.ndarray, own: np.ndarray | None, rng):
    """For targets z of a one-input block whose input along the paths is R (paths, points,
    positions): the targets some path segment [R_g, R_{g+1}] covers (as indices into z) and, for
    each, one covering segment (path, point g, position) drawn uniformly and independently — among
    the moved token's positions (``own``, as in :func:`_crossings`) when one of those covers it.
    Every segment covers an interval of the sorted targets, so this costs a search per segment and
    a few draws per target, not one test per (segment, target) pair."""
    order = np.argsort(z, kind="stable")
    zs = z[order]
    lo, hi = np.minimum(R[:, :-1], R[:, 1:]), np.maximum(R[:, :-1], R[:, 1:])  # (paths, points − 1, positions)
    ok = np.isfinite(lo) & np.isfinite(hi)
    a = np.where(ok, np.searchsorted(zs, np.where(ok, lo, 0.0), "left"), 0).ravel()
    b = np.where(ok, np.searchsorted(zs, np.where(ok, hi, 0.0), "right"), 0).ravel()
    segs = np.flatnonzero(b > a)
    idx = np.arange(z.size)
    owner = np.full(z.size, -1)
    if own is not None:
        mine = np.broadcast_to(own[..., 0], lo.shape).ravel()[segs]
        owner = _pick_covering(a, b, segs[mine], idx, rng)
    rest = np.flatnonzero(owner < 0)
    owner[rest] = _pick_covering(a, b, segs, rest, rng)
    hit = owner >= 0
    return order[hit], np.unravel_index(owner[hit], lo.shape)


def _bracketed_roots(residual, lo, hi, r_lo, r_hi, tol, steps: int = ROOT_STEPS) -> np.ndarray:
    """t ∈ [lo, hi] with |residual(rows, t)| ≤ tol, one per row, on brackets where the residual
    changes sign: false-position steps alternating with bisection steps (false position converges
    in a few steps on a smooth residual; bisection halves the bracket every other step even where it
    does not, e.g. at a jump of a retracted path). A row stops once within tol (that t is returned);
    after ``steps`` evaluations the rest return their bracket's midpoint (as bisection would: at a
    jump, the input next to it)."""
    lo, hi, r_lo, r_hi = (np.array(a, np.float64) for a in (lo, hi, r_lo, r_hi))
    out = np.where(np.abs(r_lo) <= tol, lo, np.where(np.abs(r_hi) <= tol, hi, np.nan))
    active = np.flatnonzero(np.isnan(out))
    for step in range(steps):
        if not active.size:
            break
        a, b, ra, rb = lo[active], hi[active], r_lo[active], r_hi[active]
        mid = (a + b) / 2
        if step % 2 == 0:  # false position (the secant through the bracket's ends)
            den = rb - ra
            t = np.where(den != 0, b - rb * (b - a) / np.where(den == 0, 1.0, den), mid)
            t = np.where((t > a) & (t < b), t, mid)
        else:
            t = mid
        r = residual(active, t)
        left = np.sign(r) * np.sign(ra) <= 0  # the sign changes on [a, t]: t becomes hi
        hi[active], r_hi[active] = np.where(left, t, b), np.where(left, r, rb)
        lo[active], r_lo[active] = np.where(left, a, t), np.where(left, ra, r)
        done = np.abs(r) <= tol[active]
        out[active[done]] = t[done]
        active = active[~done]
    out[active] = (lo[active] + hi[active]) / 2
    return out


def knot_probes(built, rng: np.random.Generator, n_probes: int = N_KNOTS, weights=None) -> np.ndarray | None:
    """Inputs (n_probes, T, d) at which an FFN block's input sits on a kink, midpoint or end (above);
    None when the program has no FFN block.

    Every target is solved when its root-finding and screening fit SOLVE_WORK multiply-adds (and there are at most
    N_KNOT_SOLVE of them): a decoder at ε = 1e-3 has thousands of knots, and a defect confined to
    ONE cell shows only where its input lands in that cell. The solutions are then screened in NumPy
    (error |Ĥ − H| at each) and the n_probes worst kept. Otherwise as many as fit, shared between
    the blocks and ranked by bend (:func:`_solve_order`)."""
    compiled, task = built.compiled, built.task
    T, d, domain = task.T, task.d, task.domain
    t_site, t_w, t_z, bend = knot_targets(compiled)
    if not t_site.size or not searchable(compiled.model.cfg, T):
        return None
    model = compiled.model
    sites = _ffn_sites(compiled)
    last = model.cfg.L - 1
    W = numpy_weights(model) if weights is None else weights
    mats = [_form_matrix(compiled, s.inputs) for s in sites]
    cost = forward_cost(model.cfg, T, W)
    n_paths = int(np.clip(FORWARD_WORK / (PATH_POINTS * cost), 1, N_PATHS))
    A, B, tok = _paths(T, d, n_paths, rng)
    ts = np.linspace(0.0, 1.0, PATH_POINTS)
    line = lambda A, B, t: domain.retract(A + t[..., None, None] * (B - A))
    Xp = line(A[:, None], B[:, None], np.broadcast_to(ts, (n_paths, PATH_POINTS))).reshape(-1, T, d)
    Hs = [H.reshape(n_paths, PATH_POINTS, H.shape[1], -1) for H in pre_ffn_residuals(model, Xp, W)]
    n_solve = int(np.clip(SOLVE_WORK / (ROOT_COST * cost), 4, N_KNOT_SOLVE))
    order = _solve_order(t_site, bend, n_solve, rng)
    found = []  # per block: (target indices, path, position, point) of the targets crossed by a path
    for si in np.unique(t_site[order]):
        mine = order[t_site[order] == si]  # in the order drawn
        site = sites[si]
        D = mats[si].shape[1]
        pos = np.array([0]) if site.layer == last else np.arange(1, T + 1)
        # prefer the moved token's position when the block runs at tokens
        own = None if site.layer == last else (pos[None, :] - 1 == tok[:, None])[:, None, :, None]
        R = np.einsum("ngpe,ed->ngpd", Hs[site.layer][:, :, pos], mats[si])  # the block's inputs on the paths
        if D == 1:  # one input, targets z on a line: every path segment covers an interval of them
            jz, (p, g, q) = _covering_segments(R[..., 0], t_z[mine], own, rng)
            found.append((mine[jz], p, pos[q], g, R[p, g, q, 0] - t_z[mine[jz]], R[p, g + 1, q, 0] - t_z[mine[jz]]))
            continue
        chunk = max(1, int(CROSSING_ELEMENTS // (n_paths * PATH_POINTS * pos.size)))
        for c in range(0, mine.size, chunk):
            js = mine[c:c + chunk]
            U = R @ t_w[js, :D].T - t_z[js]  # paths, points, positions, targets
            hit, flat = _crossings(U, own, rng)
            p, g, q = np.unravel_index(flat[hit], (n_paths, PATH_POINTS - 1, pos.size))
            col = np.flatnonzero(hit)
            found.append((js[hit], p, pos[q], g, U[p, g, q, col], U[p, g + 1, q, col]))
    j = np.concatenate([f[0] for f in found]) if found else np.zeros(0, int)
    if not j.size:
        return _fixed([], n_probes, T, d, rng)
    p, pos, g, r_lo, r_hi = (np.concatenate([f[i] for f in found]) for i in (1, 2, 3, 4, 5))
    layer = np.array([s.layer for s in sites])[t_site[j]]
    readers = np.zeros((j.size, model.cfg.E))  # (m, E): w·u read off a residual row
    for si in np.unique(t_site[j]):
        at = t_site[j] == si
        readers[at] = t_w[j[at], :mats[si].shape[1]] @ mats[si].T

    def residual(rows, t):
        Hl = pre_ffn_residuals(model, line(A[p[rows]], B[p[rows]], t), W, upto=int(layer[rows].max()))
        H = np.zeros((rows.size, readers.shape[1]))
        for l in np.unique(layer[rows]):
            at = layer[rows] == l
            H[at] = Hl[l][np.flatnonzero(at), pos[rows][at]]
        return np.einsum("me,me->m", H, readers[rows]) - t_z[j[rows]]

    t = _bracketed_roots(residual, ts[g], ts[g + 1], r_lo, r_hi, tol=KNOT_TOL * (1.0 + np.abs(t_z[j])))
    X = line(A[p], B[p], t)
    return screened(built, X, rng, n_probes, W)


# ----------------------------------------------------------------------------- Kuhn blocks
def kuhn_points(n: int, D: int, rng, n_points: int) -> np.ndarray:
    """Target points in [0,1]^D: grid vertices v/n (corners {0,1}^D first, then every vertex when
    they fit, else random ones) and, alternating with them, the worst point (base + σ(f*))/n of
    random simplices (cell base, permutation σ)."""
    half = n_points // 2
    corners = np.array(list(itertools.product((0, n), repeat=D)), float) if 2 ** D <= half else \
        rng.integers(0, 2, (half, D)) * float(n)
    V = (n + 1) ** D
    verts = (np.indices((n + 1,) * D).reshape(D, -1).T.astype(float) if V <= half - len(corners)
             else rng.integers(0, n + 1, (max(half - len(corners), 0), D)).astype(float))
    vertices = np.concatenate([corners, verts])[:half] / n
    f = kuhn_worst_case_point(D)
    base = rng.integers(0, n, (n_points - len(vertices), D))
    perm = np.argsort(rng.random((len(base), D)), axis=1)
    worst = (base + f[perm]) / n
    return np.concatenate([vertices, worst])


def kuhn_probes(built, rng: np.random.Generator, n_probes: int = N_KUHN, weights=None) -> np.ndarray | None:
    """Inputs (n_probes, T, d) driving every OnBox (Kuhn) block's D inputs to vertices and simplex
    worst points (:func:`kuhn_points`): damped Newton in the D coordinates of X to which the block's
    inputs are most sensitive at a random start (finite differences, NumPy); None without such a block."""
    compiled, task = built.compiled, built.task
    T, d, domain = task.T, task.d, task.domain
    sites = [s for s in _ffn_sites(compiled) if isinstance(s.claim, OnBox)]
    if not sites or not searchable(compiled.model.cfg, T):
        return None
    model = compiled.model
    W = numpy_weights(model) if weights is None else weights
    last = model.cfg.L - 1
    per = max(n_probes // len(sites), 1)
    out = []
    for site in sites:
        M = _form_matrix(compiled, site.inputs)
        D = M.shape[1]
        Z = kuhn_points(site.claim.n, D, rng, per)
        m = len(Z)
        pos = 0 if site.layer == last else 1
        read = lambda X: pre_ffn_residuals(model, X, W, upto=site.layer)[site.layer][:, pos] @ M  # (B, D)
        # start: tokens sorted descending at random (a typical point of every margin domain)
        X = domain.retract(-np.sort(-rng.random((m, T, d)), axis=1))
        h = 1e-6
        u0 = read(X)
        # sensitivity of each block input to each coordinate at the starts (one FD pass, batched)
        n = T * d
        if n * m <= 65536:
            bumps = X[:, None] + h * np.eye(n).reshape(1, n, T, d)
            J = (read(bumps.reshape(-1, T, d)).reshape(m, n, D) - u0[:, None]) / h  # (m, n, D)
        else:
            J = np.abs(rng.random((m, n, D)))
        coords = np.zeros((m, D), int)
        taken = np.zeros((m, n), bool)
        for j in range(D):
            score = np.where(taken, -1.0, np.abs(J[:, :, j]))
            coords[:, j] = np.argmax(score, axis=1)
            taken[np.arange(m), coords[:, j]] = True
        for _ in range(NEWTON_STEPS):
            flat = X.reshape(m, n)
            u = read(X)
            cols = []
            for j in range(D):
                Y = flat.copy()
                Y[np.arange(m), coords[:, j]] += h
                cols.append((read(Y.reshape(m, T, d)) - u) / h)
            Jm = np.stack(cols, axis=-1)  # (m, D inputs, D coords)
            delta = np.einsum("mij,mj->mi", np.linalg.pinv(Jm), Z - u)
            delta = np.clip(delta, -0.25, 0.25)
            flat = flat.copy()
            flat[np.arange(m)[:, None], coords] += delta
            X = domain.retract(flat.reshape(m, T, d))
        out.append(X)
    return _fixed(out, n_probes, T, d, rng)


# ----------------------------------------------------------------------------- ties
TIE_STEPS = (0.5, 1.0, 1.4, 2.0, 2.5, 3.0)  # gaps c/β, in softmax temperatures
N_TIES = 256
SCREEN_WORK = 1e9  # multiply-adds the NumPy screening of one kind may spend (≤ N_SCREEN candidates; ≳ 0.3 s)
N_SCREEN = 8192
# Inputs the structural probes may hold at once (every family at its size, one screening batch
# besides): the memory plan counts them before any is built (at T = 10⁶ they are 12 GB).
MAX_PROBE_INPUTS = N_CORNERS + N_POSITIONS + N_KNOTS + N_KUHN + 4 * N_TIES
ACTIVATION_WORK = 20
EDGE_CELLS = 6  # cells at each end of a decoder's breakpoint range (where the error of a max-read peaks)


def _one_input_breakpoints(compiled) -> list[np.ndarray]:
    """The sorted breakpoints t_i = −b_i/w_i of every one-input FFN block (a 1-D decoder's cells)."""
    out = []
    for site in _ffn_sites(compiled):
        V, b = _block_net(compiled, site)
        if V.shape[0] == 1:
            live = np.abs(V[0]) > 0
            t = np.unique(_kinks(V[0, live], b[live]))
            if t.size:
                out.append(t)
    return out


KEY_CELLS = 2  # breakpoints each side of an extremum of a one-input block's output (its worst cells)


def _one_input_outputs(compiled):
    """For every one-input block in a layer whose FFN is one Dense hidden layer, and every slot it
    writes: its output as a :class:`~infoflow_jax.core.pwl.PiecewiseLinear` of its input z
    (g(z) = Σ_j s_j·relu(a_j z + b_j), from the compiled weights; the output bias left out)."""
    out = []
    for site in _ffn_sites(compiled):
        parts = layer_ffn_weights(compiled.model, site.layer)
        if len(site.inputs) != 1 or len(parts) != 2 or parts[0][2] or parts[1][2]:
            continue
        V, b1, exact = _block_fit(compiled, site)  # a Dense first layer: unit j is row j of W2
        units, W2 = np.flatnonzero(exact), parts[1][0]
        for slot in site.outputs:
            s = W2[units, compiled.slots.index(slot)]
            if np.any(s != 0):
                out.append(PiecewiseLinear.from_units(V[0, units], b1[units], s))
    return out


def key_gaps(compiled) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z, step, weight): gaps z at and around the interior extrema of every one-input block's
    output g — the breakpoints within KEY_CELLS of each local maximum or minimum of g over its
    breakpoints, and the midpoints of the pieces right of them — with step = 1/|g'| on the pieces
    beside z (a shift of c·step/β in z moves g by c/β) and a drawing weight, 2·KEY_CELLS + 1 for
    the extremum's own breakpoint and the midpoint of the piece right of it (a flat top's middle:
    an odd tent's kink is not a breakpoint), 1 for the others.

    Why: when a later layer's key is g read off a difference of inputs (two-hop retrieval reads
    ψ(m − x)), the tokens that tie in that key sit at g's extremum, where g's decoder error is
    largest too; a tie in the *input* never puts them there."""
    zs, steps, weights = [np.zeros(0)], [np.zeros(0)], [np.zeros(0)]
    for pl in _one_input_outputs(compiled):
        t, v, slope = (np.asarray(a, np.float64) for a in (pl.breakpoints, pl.values, pl.slopes))
        if t.size < 3:
            continue
        inner = np.arange(1, t.size - 1)
        up = (v[inner] >= v[inner - 1]) & (v[inner] >= v[inner + 1])
        down = (v[inner] <= v[inner - 1]) & (v[inner] <= v[inner + 1])
        ext = inner[(up | down) & ~((v[inner] == v[inner - 1]) & (v[inner] == v[inner + 1]))]
        if ext.size == 0 or ext.size > 8:  # none, or a wiggling decoder: no distinguished cell
            continue
        near = np.unique(np.clip((ext[:, None] + np.arange(-KEY_CELLS, KEY_CELLS + 1)).reshape(-1), 0, t.size - 1))
        beside = np.abs(np.stack([slope[near], slope[near + 1]]))  # the pieces left and right of t_i
        g1 = np.where(beside > 0, beside, np.inf).min(axis=0)
        keep = np.isfinite(g1)
        mid = (t[near] + t[np.minimum(near + 1, t.size - 1)]) / 2
        w = np.where(np.isin(near, ext), 2.0 * KEY_CELLS + 1, 1.0)[keep]
        zs += [t[near][keep], mid[keep]]
        steps += [1.0 / g1[keep]] * 2
        weights += [w, w]
    return np.concatenate(zs), np.concatenate(steps), np.concatenate(weights)


def tie_scales(built) -> dict:
    """The scalars the tie probes are built from, read off the build (never its name):

    * ``betas``: the inverse temperatures ``built.betas`` (else ‖W_Q W_Kᵀ‖₂ per head);
    * ``cells``: values in [0,1] at the ends and midpoints of the first and last EDGE_CELLS cells of
      every one-input block (its breakpoints) and of every OnBox (Kuhn) block's grid, and a 65-point grid;
    * ``mids``: the midpoint of every cell of a one-input or OnBox block in [0, 1] (where a
      piecewise-linear decoder's own error peaks);
    * ``knots``: every breakpoint of a one-input block in (0, 1] (gaps z for nested ties);
    * ``key_z``, ``key_step``, ``key_weight``: :func:`key_gaps` in (0, 1] (ties in a computed key);
    * ``gamma``, ``k``: the domain's margin and index (0 and 1 on the cube);
    * ``grid``: the finest OnBox grid n (16 without one)."""
    betas = [float(b) for b in (built.betas or []) if b]
    if not betas:
        for blk in built.compiled.model.blocks:
            Wq, Wk = np.asarray(blk.attn.Wq[...]), np.asarray(blk.attn.Wk[...])
            betas += [float(np.linalg.norm(Wq[h] @ Wk[h].T, 2)) for h in range(Wq.shape[0]) if Wq[h].size]
        betas = [b for b in betas if b > 0] or [1.0]
    cells, knots, mids = [np.linspace(0.0, 1.0, 65)], [np.zeros(0)], [np.zeros(0)]
    for t in _one_input_breakpoints(built.compiled):
        t = t[(t >= 0) & (t <= 1)]
        if t.size < 2:
            continue
        e = np.concatenate([t[:EDGE_CELLS + 1], t[-EDGE_CELLS - 1:]])
        m = (t[1:] + t[:-1]) / 2  # every cell's midpoint (a decoder of fewer than EDGE_CELLS cells has only those)
        cells += [e, m[:EDGE_CELLS], m[-EDGE_CELLS:]]
        knots.append(t[t > 0])
        mids.append(m)
    dom = built.task.domain
    ns = [s.claim.n for s in _ffn_sites(built.compiled) if isinstance(s.claim, OnBox)]
    for n in ns:  # a Kuhn block's grid cells at both ends of the box (vertices and cell midpoints)
        j = np.concatenate([np.arange(EDGE_CELLS + 1), n - np.arange(EDGE_CELLS + 1)])
        cells += [j / n, (j + 0.5) / n]
        mids.append((np.arange(n) + 0.5) / n)
    mids = np.unique(np.concatenate(mids))
    kz, ks, kw = key_gaps(built.compiled)
    inside = (kz > 0) & (kz <= 1)
    return dict(betas=np.unique(betas), cells=np.unique(np.clip(np.concatenate(cells), 0, 1)),
                mids=mids,
                knots=np.unique(np.concatenate(knots)), key_z=kz[inside], key_step=ks[inside],
                key_weight=kw[inside], gamma=float(getattr(dom, "gamma", 0.0) or 0.0),
                k=int(getattr(dom, "k", 1) or 1), grid=int(max(ns)) if ns else 16)


def _pick(rng, n: int, *choices) -> list[np.ndarray]:
    """n random draws from each of the given value sets (one independent index per set)."""
    return [np.asarray(c)[rng.integers(0, len(c), n)] for c in choices]


def worst_tie_gap(n) -> np.ndarray:
    """c*(n) = 1 + W(n/e): the gap c/β at which n tokens tied below the maximum pull a softmax's
    average furthest from the maximum (L1: max over δ of n·δ·e^{−βδ}/(1 + n·e^{−βδ}))."""
    from scipy.special import lambertw  # here: importing scipy.special is a cost only the tie probes need

    return 1.0 + np.real(lambertw(np.asarray(n, np.float64) / np.e))


def tied_block_candidates(T: int, d: int, sc: dict, rng, n: int) -> np.ndarray:
    """(n, T, d): x_(k') = u with a ∈ {1, 2} tokens exactly at u (a tie at the read order statistic
    k' ∈ 1..k), the k' − 1 tokens above on a γ staircase (x_(1) optionally at 1), a block of b tokens
    at u − c₁/β and the rest at u − (c₁ + c₂)/β: every softmax at its L1 worst gap at once, with u
    on a decoder's edge cells; c₁ on the TIE_STEPS lattice, or for half of them near
    :func:`worst_tie_gap` (b). Half of them snap each token above to the first cell midpoint at least
    γ above the one below (and half of those move u anywhere in its cell). Every coordinate alike; a
    quarter in a random token order."""
    u, beta, c1, c2, a, top1, kk = _pick(rng, n, sc["cells"], sc["betas"], TIE_STEPS, TIE_STEPS, (1, 2),
                                         (False, True), np.arange(1, sc["k"] + 1))
    above = kk - 1
    a = np.minimum(a, T - above)
    b = (rng.random(n) * (T - above - a + 1)).astype(int)
    # half of them: the block's gap at L1's worst for its size, c*(b) = 1 + W(b/e), times 2^U (U in ±½)
    c1 = np.where(rng.random(n) < 0.5, worst_tie_gap(np.maximum(b, 1)) * 2.0 ** rng.uniform(-0.5, 0.5, n), c1)
    j = np.arange(T)[None, :]
    stair = np.minimum(1.0, u[:, None] + (above[:, None] - j) * sc["gamma"])
    if sc["mids"].size:
        # half of them: each token above at the first cell midpoint ≥ γ above the one below (every
        # read value at its decoder's worst point within the margin), u anywhere in its cell for half
        snap = rng.random(n) < 0.5
        i = np.clip(np.searchsorted(sc["mids"], u), 1, max(sc["mids"].size - 1, 1))
        width = np.abs(np.diff(sc["mids"])[np.minimum(i - 1, sc["mids"].size - 2)]) if sc["mids"].size > 1 else 0.0
        u = np.where(snap & (rng.random(n) < 0.5), np.clip(u + rng.uniform(-0.5, 0.5, n) * width, 0, 1), u)
        level, snapped = u.copy(), [u]
        for _ in range(int(above.max(initial=0))):
            nxt = sc["mids"][np.minimum(np.searchsorted(sc["mids"], level + sc["gamma"]), sc["mids"].size - 1)]
            level = np.minimum(1.0, np.maximum(level + sc["gamma"], nxt))
            snapped.append(level)
        snapped = np.stack(snapped, axis=1)  # (n, 1 + max above): level q is q steps above u
        q = np.clip(above[:, None] - j, 0, snapped.shape[1] - 1)
        stair = np.where(snap[:, None], np.take_along_axis(snapped, q, axis=1), stair)
    stair = np.where(top1[:, None] & (j == 0), 1.0, stair)
    lo1 = np.maximum(0.0, u - c1 / beta)[:, None]
    lo2 = np.maximum(0.0, u - (c1 + c2) / beta)[:, None]
    x = np.where(j < above[:, None], stair, np.where(j < (above + a)[:, None], u[:, None],
                 np.where(j < (above + a + b)[:, None], lo1, lo2)))
    return _shuffle_some(np.repeat(x[..., None], d, axis=-1), rng)


def nested_tie_candidates(T: int, d: int, sc: dict, rng, n: int) -> np.ndarray:
    """(n, T, d): one token at u, one at u − z with z a decoder breakpoint (a tie in a *computed*
    quantity, such as a later layer's key read through that decoder), b ≥ 1 tokens beside it at
    u − z ∓ s·c/β (s ∈ {1/2, 1}), the rest at 0. Half of them (when the program has such a block)
    take z and s from :func:`key_gaps` (z by an extremum of a block's output, s = 1/|slope| there),
    half of those b = T − 2 (every other token in the block), and c = :func:`worst_tie_gap` (b)·2^U,
    U uniform in [−1, 2]."""
    if not sc["knots"].size:
        return np.zeros((0, T, d))
    u, z, c, s, beta = _pick(rng, n, np.concatenate([np.linspace(0.5, 1, 33), sc["cells"]]), sc["knots"],
                             TIE_STEPS, (0.5, 1.0), sc["betas"])
    b = 1 + (rng.random(n) * max(T - 2, 0)).astype(int)
    if sc["key_z"].size:
        key = rng.random(n) < 0.5
        i = rng.choice(sc["key_z"].size, n, p=sc["key_weight"] / sc["key_weight"].sum())
        z, s = np.where(key, sc["key_z"][i], z), np.where(key, sc["key_step"][i], s)
        b = np.where(key & (rng.random(n) < 0.5), max(T - 2, 1), b)
        # the key's own temperature is β times the query's weight on it, unknown here: c*(b) times a
        # continuous factor in [1/2, 4] instead of the lattice (the worst gap is sharp in z, not in c)
        c = np.where(key, worst_tie_gap(b) * 2.0 ** rng.uniform(-1.0, 2.0, n), c)
    # the block on one side of u − z (mostly further from u), or its tokens on both sides at random
    side = np.where(rng.random((n, 1)) < 0.75, 1.0, -1.0) * np.ones((1, T))
    both = rng.random(n) < 0.5
    side[both] = np.where(rng.random((int(both.sum()), T)) < 0.5, 1.0, -1.0)
    j = np.arange(T)[None, :]
    second = np.maximum(0.0, u - z)[:, None]
    block = np.clip((u - z)[:, None] - side * (s * c / beta)[:, None], 0.0, 1.0)
    x = np.where(j == 0, u[:, None], np.where(j == 1, second, np.where(j < (2 + b)[:, None], block, 0.0)))
    return _shuffle_some(np.repeat(x[..., None], d, axis=-1), rng)


def heads_alike_candidates(T: int, d: int, sc: dict, rng, n: int) -> np.ndarray:
    """(n, T, d), d > 1: one token at (u, …, u) and the other T − 1 tied at u − c/β in every coordinate
    (every head at its worst gap at once); and, half of them, every token identical at a point of a
    face of the box (one coordinate in {0, 1}, the others on the (4n)-grid of the finest Kuhn grid n)."""
    if d == 1:
        return np.zeros((0, T, d))
    h = n // 2
    u, beta, c = _pick(rng, h, sc["cells"], sc["betas"], TIE_STEPS)
    low = np.maximum(0.0, u - c / beta)
    one = np.where(np.arange(T)[None, :] == 0, u[:, None], low[:, None])
    tied = np.repeat(one[..., None], d, axis=-1)
    grid = np.arange(4 * sc["grid"] + 1) / (4 * sc["grid"])
    z = grid[rng.integers(0, len(grid), (n - h, d))]
    z[np.arange(n - h), rng.integers(0, d, n - h)] = rng.integers(0, 2, n - h)
    face = np.repeat(z[:, None, :], T, axis=1)
    return np.concatenate([tied, face])


def _shuffle_some(X: np.ndarray, rng) -> np.ndarray:
    """A quarter of the rows in a random token order (position-dependent models see other orders)."""
    q = X.shape[0] // 4
    perm = np.argsort(rng.random((q, X.shape[1])), axis=1)
    X = X.copy()
    X[:q] = np.take_along_axis(X[:q], perm[..., None], axis=1)
    return X


def screened(built, X: np.ndarray, rng, n_probes: int, weights=None) -> np.ndarray:
    """The n_probes candidates of largest error |Ĥ − f| (NumPy forward, :func:`predict_np`), in the domain."""
    T, d, domain = built.task.T, built.task.d, built.task.domain
    if X.shape[0] == 0:
        return _fixed([], n_probes, T, d, rng)
    X = np.ascontiguousarray(domain.retract(X), np.float64)
    X = X[distinct_rows(X)[0]]  # each distinct candidate once, in drawing order (lattice draws repeat)
    if X.shape[0] <= n_probes:  # nothing to choose from (a costly forward): spare the screening
        return _fixed([X], n_probes, T, d, rng)
    err = np.abs(predict_np(built.compiled.model, X, weights) - np.asarray(built.task.target(X), np.float64))
    err = np.where(np.isfinite(err), err, np.inf)  # a non-finite output is the worst case there is
    order = np.argsort(-err, kind="stable")
    return _fixed([X[order[:n_probes]]], n_probes, T, d, rng)


def tie_probes(built, rng: np.random.Generator, n_probes: int = N_TIES, weights=None) -> dict[str, np.ndarray]:
    """``probe:ties`` (:func:`tied_block_candidates`), ``probe:nested_ties``
    (:func:`nested_tie_candidates`, a program with a one-input block) and ``probe:heads_alike``
    (:func:`heads_alike_candidates`, d > 1): per kind, up to N_SCREEN random candidates (fewer when the
    forward is costly, at least n_probes), of which the n_probes largest errors are kept."""
    T, d = built.task.T, built.task.d
    sc = tie_scales(built)
    cfg = built.compiled.model.cfg
    # one input's forward: the pre-FFN residuals plus the last FFN at CLS (a grouped layer is G small matmuls)
    # (+ ACTIVATION_WORK per hidden value: a wide grouped layer is bound by memory, not by multiply-adds)
    W = forward_cost(cfg, T) + sum(s.n_in * s.n_out / s.groups + ACTIVATION_WORK * s.n_out for s in cfg.layers[-1].ffn)
    n_screen = int(np.clip(SCREEN_WORK / W, n_probes, N_SCREEN))
    kinds = {"probe:ties": tied_block_candidates}
    if sc["knots"].size:
        kinds["probe:nested_ties"] = nested_tie_candidates
    if d > 1:
        kinds["probe:heads_alike"] = heads_alike_candidates
    weights = numpy_weights(built.compiled.model) if weights is None else weights
    return {name: screened(built, gen(T, d, sc, rng, n_screen), rng, n_probes, weights)
            for name, gen in kinds.items()}


# ----------------------------------------------------------------------------- all of them
def structural_probes(built, *, seed: int = 0) -> dict[str, np.ndarray]:
    """name → (B, T, d) points of the domain: ``probe:corners``, ``probe:positions`` (position-dependent
    models), ``probe:knots`` (a program with an FFN block), ``probe:kuhn`` (an OnBox block); fixed sizes."""
    rng = np.random.default_rng(seed + SEED_OFFSET)
    T, d, domain = built.task.T, built.task.d, built.task.domain
    probes = {"probe:corners": cube_probes(T, d, rng)}
    if position_dependent(built.compiled.model.cfg):
        probes["probe:positions"] = position_probes(T, d, rng)
    W = numpy_weights(built.compiled.model)  # once: every NumPy forward below reads it
    knots = knot_probes(built, rng, weights=W)
    if knots is not None:
        probes["probe:knots"] = knots
    kuhn = kuhn_probes(built, rng, weights=W)
    if kuhn is not None:
        probes["probe:kuhn"] = kuhn
    probes.update(tie_probes(built, rng, weights=W))
    return {k: np.asarray(domain.retract(np.asarray(v, np.float64))) for k, v in probes.items()}


def finest_scale(built, floor: float = 1e-9) -> float:
    """min(1/β_h over heads, smallest breakpoint spacing of a one-input block, the domain's margin γ),
    ≥ ``floor``; β_h = ‖W_Q W_Kᵀ‖₂ of head h, the largest score per unit of residual (for a head
    scoring β·⟨one, x⟩ that is β·|one|·|x| = β)."""
    model, compiled = built.compiled.model, built.compiled
    scales = [1.0]
    for blk in model.blocks:
        Wq, Wk = np.asarray(blk.attn.Wq[...]), np.asarray(blk.attn.Wk[...])
        for h in range(Wq.shape[0]):
            beta = np.linalg.norm(Wq[h] @ Wk[h].T, 2) if Wq[h].size and Wk[h].size else 0.0
            if beta > 0:
                scales.append(1.0 / beta)
    for site in _ffn_sites(compiled):
        V, b = _block_net(compiled, site)
        if V.shape[0] == 1:
            live = np.abs(V[0]) > 0
            gaps = np.diff(np.unique(-b[live] / V[0, live]))
            gaps = gaps[gaps > 1e-12]
            if gaps.size:
                scales.append(float(gaps.min()))
        elif isinstance(site.claim, OnBox):
            scales.append(1.0 / site.claim.n)
    gamma = getattr(built.task.domain, "gamma", None)
    if gamma:
        scales.append(float(gamma))
    return max(float(min(scales)), floor)
