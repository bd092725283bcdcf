"""An independent worst-case search for sup_{X∈Ω} |Ĥ(X) − H(X)|, sharing no code with the verifier.

Used by :mod:`benchmarks.estimate_quality` to judge the default estimate of
:func:`infoflow_jax.verify`. Nothing here comes from ``verification/estimators.py``,
``verification/probes.py`` or ``core/samplers.py``: the starts are generated here (NumPy),
the domain is enforced by this module's own retraction (:func:`retraction`), the local
search is SciPy's L-BFGS-B and a batched compass (pattern) search of this module. What is
shared with the verifier is only the *definition* of the error: the model's plain forward
``core.model.apply`` and the task's exact target ``task.target``.

    err(X) = |Ĥ(X) − H(X)|,   result = max over every X evaluated (a lower bound of the sup)

Phases, each time-boxed inside ``seconds``:

1. **Structured starts** (:func:`structured_starts`), from the construction's scales
   (1/β per layer, decoder cells 1/N from ``built.choices``, margin γ): one token at a
   value a and the rest at 0 or at a − δ; two tokens in a near tie at gap δ (δ at every scale)
   with the rest at 0, random below, or tied below; all tokens equal; top tokens on a margin
   staircase a, a − g, …; values a on a fine grid that contains every decoder knot, cell
   midpoint and cell end (± a small offset); corners and faces of the cube.
2. **Stratified random starts**: Latin-hypercube uniform, edge-heavy Beta(0.3, 0.3), values
   snapped to knots, sorted staircases with random gaps at every scale.
3. **L-BFGS-B** (``scipy.optimize.minimize``, box [0,1], objective err∘retraction, gradient by
   ``jax.grad``) from the best distinct starts.
4. **Compass search** (batched, all 2·T·d moves ±h per round) from the best points, with h
   halving from 0.1 down to an eighth of the construction's finest scale.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import minimize

from infoflow_jax.core.domains import Cube, Margin, TopSetMargin
from infoflow_jax.core.model import apply
from infoflow_jax.verification.memory import bytes_per_input  # sizing only: how many inputs fit in MEMORY

BATCH = 512  # most inputs per jitted evaluation (a fixed shape: one compilation per configuration)
MEMORY = 1 << 30  # activation bytes one batch may take (the machine is shared): wide Kuhn FFNs get smaller batches


# ----------------------------------------------------------------------------- the domain
def retraction(domain):
    """A map R: R^{T×d} → Ω, identity on Ω, written here (not the library's ``retract``).

    Cube: clip. Margin(γ, k): clip, sort descending, then *lower* the top k from the top down,
    t_1 = clip(s_1, (k−1)γ, 1), t_j = max(min(s_j, t_{j−1} − γ), (k−j)γ), and cap the rest at t_k
    (the library raises from the bottom up; a different retraction reaches the boundary from the
    other side). TopSetMargin(γ, k): clip; with a = x_(k), b = x_(k+1), move the top k up to at
    least mid + γ/2 and the rest down to at most mid − γ/2, mid = clip((a+b)/2, γ/2, 1 − γ/2).
    Works on one input (T, d) or a batch (..., T, d), in NumPy or jax.numpy."""
    if isinstance(domain, Cube):
        return lambda X: _xp(X).clip(X, 0.0, 1.0)
    if isinstance(domain, Margin):
        g, k = float(domain.gamma), int(domain.k)

        def margin(X):
            xp = _xp(X)
            x = xp.clip(X, 0.0, 1.0)[..., 0]
            order = xp.argsort(-x, axis=-1, stable=True)
            s = xp.take_along_axis(x, order, axis=-1)
            top = [xp.clip(s[..., 0], (k - 1) * g, 1.0)]
            for j in range(1, k):
                top.append(xp.maximum(xp.minimum(s[..., j], top[-1] - g), (k - 1 - j) * g))
            rest = xp.minimum(s[..., k:], top[-1][..., None])
            new = xp.concatenate([xp.stack(top, axis=-1), rest], axis=-1)
            inverse = xp.argsort(order, axis=-1, stable=True)
            return xp.take_along_axis(new, inverse, axis=-1)[..., None]
        return margin
    if isinstance(domain, TopSetMargin):
        g, k = float(domain.gamma), int(domain.k)

        def top_set(X):
            xp = _xp(X)
            x = xp.clip(X, 0.0, 1.0)[..., 0]
            order = xp.argsort(-x, axis=-1, stable=True)
            s = xp.take_along_axis(x, order, axis=-1)
            mid = xp.clip((s[..., k - 1] + s[..., k]) / 2, g / 2, 1 - g / 2)[..., None]
            rank = xp.argsort(order, axis=-1, stable=True)
            new = xp.where(rank < k, xp.maximum(x, mid + g / 2), xp.minimum(x, mid - g / 2))
            return new[..., None]
        return top_set
    raise ValueError(f"independent search: no retraction written for domain {type(domain).__name__}")


def in_domain(domain, X, tol: float = 1e-12) -> bool:
    """Membership, checked here: inside the cube, and the margin's gaps where it has them."""
    X = np.asarray(X)
    ok = bool(np.all((X >= -tol) & (X <= 1 + tol)))
    if isinstance(domain, (Margin, TopSetMargin)):
        s = -np.sort(-X[..., 0], axis=-1)
        if isinstance(domain, Margin):
            gaps = s[: domain.k - 1] - s[1: domain.k]
        else:
            gaps = s[domain.k - 1: domain.k] - s[domain.k: domain.k + 1]
        ok = ok and bool(np.all(gaps >= domain.gamma - tol))
    return ok


def _xp(X):
    return np if isinstance(X, np.ndarray) else jnp


# ----------------------------------------------------------------------------- scales of a construction
def scales_of(built) -> dict:
    """The construction's fine scales: 1/β per attention layer, decoder cell widths 1/N (1-D,
    from every N-like choice) and 1/n (Kuhn), the margin γ of the task's domain."""
    betas = [float(b) for b in (built.betas or []) if b]
    cells = []
    for key, val in (built.choices or {}).items():
        if key.startswith("N") or key == "n":
            for v in (val if isinstance(val, (list, tuple)) else [val]):
                if isinstance(v, (int, np.integer)) and v > 0:
                    cells.append(int(v))
    dom = built.task.domain
    gamma = float(dom.gamma) if isinstance(dom, (Margin, TopSetMargin)) else None
    finest = min([1 / b for b in betas] + [1 / n for n in cells] + ([gamma] if gamma else []) + [1e-2])
    return {"betas": betas, "cells": sorted(set(cells)), "gamma": gamma, "finest": finest}


def value_grid(sc: dict, rng, max_values: int = 4000) -> np.ndarray:
    """Scalars a ∈ [0,1]: every decoder knot j/N, cell midpoint and quarter, knots ± 1e-9 and ± a
    tenth of a cell, the ends 0 and 1, and a uniform grid; subsampled to ``max_values``."""
    vals = [np.linspace(0, 1, 257), np.array([0.0, 1.0, 1e-9, 1 - 1e-9])]
    for N in sc["cells"]:
        knots = np.arange(N + 1) / N
        vals += [knots, knots + 0.5 / N, knots + 0.25 / N, knots + 0.75 / N, knots - 1e-9, knots + 1e-9,
                 knots + 0.1 / N, knots - 0.1 / N]
    a = np.unique(np.clip(np.concatenate(vals), 0.0, 1.0))
    if a.size > max_values:  # keep the ends, sample the rest
        keep = rng.choice(a.size - 2, max_values - 2, replace=False) + 1
        a = np.unique(np.concatenate([a[[0, -1]], a[keep]]))
    return a


def gap_scales(sc: dict) -> np.ndarray:
    """Gaps δ for near ties: exact, float64-tiny, multiples of 1/β, of γ, of the cell width, decades."""
    g = [0.0, 1e-15, 1e-12, 1e-9, 1e-6, 1e-4, 1e-3, 1e-2, 3e-2, 0.1, 0.3, 0.5, 1.0]
    for b in sc["betas"]:
        g += [c / b for c in (0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.4, 2.0, 2.5, 3.0, 5.0, 10.0, 30.0)]
    for N in sc["cells"]:
        g += [c / N for c in (0.25, 0.5, 1.0, 2.0)]
    if sc["gamma"]:
        g += [c * sc["gamma"] for c in (0.5, 0.75, 0.99, 1.0, 1.01, 1.25, 1.5, 2.0)]
    return np.unique(np.clip(g, 0.0, 1.0))


# ----------------------------------------------------------------------------- structured starts
def structured_starts(T: int, d: int, sc: dict, rng, cap: int = 60_000) -> dict[str, np.ndarray]:
    """Families of (n, T, d) inputs that the theory singles out (see the module docstring).
    Each family is capped (random subsample) so the whole fits the time box."""
    A, G = value_grid(sc, rng), gap_scales(sc)
    fam: dict[str, np.ndarray] = {}

    def put(name, X):
        X = np.asarray(X, dtype=np.float64).reshape(-1, T, d)
        if X.shape[0] > cap:
            X = X[rng.choice(X.shape[0], cap, replace=False)]
        fam[name] = X

    def tokens(vals):  # scalar token values (n, T) → (n, T, d): every coordinate alike
        return np.repeat(vals[..., None], d, axis=-1)

    pos = np.arange(T)
    # one token at a, the rest at 0 (every position)
    one_hot = (pos[None, :, None] == pos[None, None, :])  # (1, p, T)
    put("one_token_at_a_rest_0", tokens((A[:, None, None] * one_hot).reshape(-1, T)))
    # one token at a, the rest at a − δ (every position)
    n = min(A.size * G.size, cap // max(T, 1) + 1)
    aa = rng.choice(A, n)
    dd = rng.choice(G, n)
    rest = np.clip(aa - dd, 0.0, 1.0)
    X = np.where(one_hot, aa[:, None, None], rest[:, None, None]).reshape(-1, T)
    put("one_token_at_a_rest_at_a_minus_delta", tokens(X))
    # all tokens equal to a
    put("all_equal", tokens(np.repeat(A[:, None], T, axis=1)))
    if T >= 2:
        # two tokens in a near tie at gap δ, the rest at 0 / random below / at a − δ − δ'
        m = cap
        aa, dd, d2 = rng.choice(A, m), rng.choice(G, m), rng.choice(G, m)
        p = np.argsort(rng.random((m, T)), axis=1)  # random positions of the top two
        rank = np.argsort(p, axis=1)
        second = np.clip(aa - dd, 0, 1)
        below = [np.zeros((m, T)), second[:, None] * rng.random((m, T)),
                 np.clip(second - d2, 0, 1)[:, None] * np.ones((1, T))]
        style = rng.integers(0, 3, m)
        base = np.choose(style[:, None] * np.ones((1, T), int), below)
        X = np.where(rank == 0, aa[:, None], np.where(rank == 1, second[:, None], base))
        put("near_tie_top2", tokens(X))
        # the pair (a, a − z) with z on the value grid: a decoder reading m − x_t (two-hop) at every knot
        aa, zz = rng.choice(A, m), rng.choice(A, m)
        X = np.where(rank == 0, aa[:, None], np.where(rank == 1, np.clip(aa - zz, 0, 1)[:, None],
                                                      np.clip(aa - zz, 0, 1)[:, None] * rng.random((m, 1))))
        put("pair_a_and_a_minus_z", tokens(X))
        # staircase: the top j tokens at a, a − g, a − 2g, … (g near γ or any gap scale), the rest tied
        # with the last step, below it by δ, or at 0
        j = rng.integers(2, T + 1, m)
        gsc = [sc["gamma"]] if sc["gamma"] else []
        gg = np.where(rng.random(m) < (0.7 if gsc else 0.0), (gsc or [0.1])[0] * (1 + rng.choice([0, 1e-9, 1e-3, 0.05, 0.5], m)),
                      rng.choice(G, m))
        aa = np.maximum(rng.choice(A, m), np.minimum(1.0, gg * (j - 1)))
        steps = aa[:, None] - gg[:, None] * np.minimum(rank, (j - 1)[:, None])
        last = aa - gg * (j - 1)
        tail = np.choose(rng.integers(0, 3, m)[:, None] * np.ones((1, T), int),
                         [np.ones((m, T)) * last[:, None], np.clip(last - rng.choice(G, m), 0, 1)[:, None] * np.ones((1, T)),
                          np.zeros((m, T))])
        put("staircase", tokens(np.clip(np.where(rank < j[:, None], steps, tail), 0, 1)))
        # levels: j tokens above on a staircase (gap γ, a tie, or any gap), a tied tokens at u, a block of
        # b tokens at u − δ₁ and the rest at u − δ₁ − δ₂ (or 0): the L1 worst case of every layer stacked
        # under the order statistic a decoder reads, δ at every scale (1/β, cells, γ) and every grid value
        # (then u − δ₁ is a second-hop partner at distance z = δ₁, and the block a tie in its computed key)
        jj = rng.integers(0, min(3, T), m)
        tie = rng.integers(1, 4, m)
        step = np.choose(rng.integers(0, 3, m), [np.full(m, sc["gamma"] or 0.0), np.zeros(m), rng.choice(G, m)])
        uu = rng.choice(A, m)
        d1 = np.where(rng.random(m) < 0.5, rng.choice(G, m), rng.choice(A, m))
        d2 = np.where(rng.random(m) < 0.7, rng.choice(G, m), 1.0)
        bb = rng.integers(0, T + 1, m)
        r = rank  # random positions; rank 0 is the top
        lvl_above = uu[:, None] + step[:, None] * (jj[:, None] - r)
        lvl = np.where(r < jj[:, None], lvl_above,
                       np.where(r < (jj + tie)[:, None], uu[:, None],
                                np.where(r < (jj + tie + bb)[:, None], (uu - d1)[:, None], (uu - d1 - d2)[:, None])))
        put("levels", tokens(np.clip(lvl, 0, 1)))
    # corners and faces of the cube: coordinates in {0,1}, one or two of them free on the value grid
    nd = T * d
    if nd <= 14:
        corners = ((np.arange(2 ** nd)[:, None] >> np.arange(nd)[None, :]) & 1).astype(float)
    else:
        corners = (rng.random((cap // 4, nd)) < rng.random((cap // 4, 1))).astype(float)
    put("corners", corners)
    m = cap
    F = corners[rng.integers(0, corners.shape[0], m)].copy()
    free1, free2 = rng.integers(0, nd, m), rng.integers(0, nd, m)
    F[np.arange(m), free1] = rng.choice(A, m)
    two = rng.random(m) < 0.5
    F[np.arange(m)[two], free2[two]] = rng.choice(A, two.sum())
    put("faces", F)
    if d > 1:  # per-coordinate structure: one coordinate's pattern, the others random or fixed
        m = cap
        X = rng.random((m, T, d))
        c = rng.integers(0, d, m)
        aa, dd = rng.choice(A, m), rng.choice(G, m)
        col = np.where(rank_of(rng, m, T) == 0, aa[:, None], np.clip(aa - dd, 0, 1)[:, None] * rng.random((m, 1)) ** 0.1)
        X[np.arange(m), :, c] = col
        put("per_coordinate_near_tie", X)
        put("per_coordinate_knots", np.clip(rng.choice(A, (m, T, d)), 0, 1))
    return fam


def rank_of(rng, m: int, T: int) -> np.ndarray:
    """Random ranks 0..T−1 of the T positions, one permutation per row."""
    return np.argsort(np.argsort(rng.random((m, T)), axis=1), axis=1)


def random_starts(T: int, d: int, sc: dict, rng, n: int) -> dict[str, np.ndarray]:
    """Stratified random inputs: Latin-hypercube uniform, Beta(0.3, 0.3) (edge-heavy), values
    snapped to the value grid, and sorted staircases with random gaps at every scale."""
    nd = T * d
    lhs = (np.argsort(rng.random((n, nd)), axis=0) + rng.random((n, nd))) / n
    A, G = value_grid(sc, rng), gap_scales(sc)
    gaps = rng.choice(G, (n, T))
    tops = rng.random((n, 1))
    stair = np.clip(tops - np.cumsum(gaps, axis=1) + gaps[:, :1], 0, 1)
    perm = np.argsort(rng.random((n, T)), axis=1)
    stair = np.take_along_axis(stair, perm, axis=1)
    return {"latin_hypercube": lhs.reshape(n, T, d),
            "beta_edges": rng.beta(0.3, 0.3, (n, T, d)),
            "snapped_to_knots": rng.choice(A, (n, T, d)),
            "random_staircase": np.repeat(stair[..., None], d, axis=-1)}


# ----------------------------------------------------------------------------- evaluation
@dataclass
class Evaluator:
    """err(X) = |apply(graphdef, state, R(X)) − target(R(X))| with R the retraction: batched
    (jitted, fixed batch shape), and value-and-gradient for one input (for L-BFGS-B)."""

    built: object
    count: int = 0
    best: float = -math.inf
    best_X: np.ndarray | None = None
    best_how: str = ""

    def __post_init__(self):
        graphdef, state = self.built.split()
        target, R = self.built.task.target, retraction(self.built.task.domain)
        self.R = R

        def err(X):
            Y = R(X)
            return jnp.abs(apply(graphdef, state, Y) - target(Y))

        self._batch = jax.jit(jax.vmap(err))
        per = bytes_per_input(self.built.compiled.model.cfg, self.built.task.T, self.built.task.d)
        self.batch = int(max(1, min(BATCH, MEMORY // max(per, 1))))
        self._vg = jax.jit(jax.value_and_grad(err))
        self.shape = (self.built.task.T, self.built.task.d)

    def values(self, X: np.ndarray, how: str) -> np.ndarray:
        """err on every row of X (n, T, d); NaN counts as +∞ (a NaN output is an error)."""
        n = X.shape[0]
        out = np.empty(n)
        B = self.batch
        for i in range(0, n, B):
            chunk = X[i:i + B]
            pad = B - chunk.shape[0]
            if pad:
                chunk = np.concatenate([chunk, np.repeat(chunk[:1], pad, axis=0)])
            out[i:i + B] = np.asarray(self._batch(jnp.asarray(chunk)))[: B - pad]
        out = np.where(np.isnan(out), np.inf, out)
        self.count += n
        if n:
            j = int(np.argmax(out))
            self._offer(out[j], X[j], how)
        return out

    def value_and_grad(self, x: np.ndarray):
        v, g = self._vg(jnp.asarray(x.reshape(self.shape)))
        self.count += 1
        v, g = float(v), np.asarray(g, dtype=np.float64).ravel()
        return v, np.where(np.isfinite(g), g, 0.0)

    def _offer(self, v, X, how):
        v = float(v)
        if v > self.best:
            self.best, self.best_X, self.best_how = v, np.asarray(self.R(np.asarray(X))), how


@dataclass
class SearchResult:
    value: float  # the largest |Ĥ − H| found
    X: np.ndarray  # the input attaining it (in the domain)
    how: str  # the family / phase that found it
    evaluations: int
    seconds: float
    phases: dict = field(default_factory=dict)  # best value after each phase


def distinct_best(X: np.ndarray, v: np.ndarray, m: int, scale: float) -> np.ndarray:
    """The m best rows of X by v, skipping rows within ``scale`` (sup norm) of one already kept."""
    keep: list[int] = []
    for i in np.argsort(-v):
        if not np.isfinite(v[i]) and keep:
            continue
        if all(np.max(np.abs(X[i] - X[j])) > scale for j in keep):
            keep.append(int(i))
        if len(keep) >= m:
            break
    return np.asarray(keep, dtype=int)


def search(built, seconds: float, seed: int = 0, progress=None) -> SearchResult:
    """Run the four phases within ``seconds`` (wall; compilation included) and return the max."""
    t0 = time.perf_counter()
    deadline = t0 + seconds
    rng = np.random.default_rng(seed)
    T, d = built.task.T, built.task.d
    sc = scales_of(built)
    ev = Evaluator(built)
    phases = {}
    say = progress or (lambda msg: None)

    # phase 1: structured starts (up to 35% of the time), phase 2: random (up to 50%); each family is
    # subsampled so that every family of a phase fits its share at the measured evaluation rate
    t1 = time.perf_counter()
    ev.values(np.full((1, T, d), 0.5), "warm-up")  # compiles
    t2 = time.perf_counter()
    ev.values(rng.random((ev.batch, T, d)), "warm-up")
    rate = ev.batch / max(time.perf_counter() - t2, 1e-6)  # inputs per second, compiled
    pool_X, pool_v = [], []
    for phase, frac, families in (("structured", 0.35, lambda: structured_starts(T, d, sc, rng)),
                                  ("random", 0.5, lambda: random_starts(T, d, sc, rng, 8192))):
        fams = families()
        share = max(0.0, t0 + frac * seconds - time.perf_counter()) / len(fams)
        for name, X in fams.items():
            cap = max(64, int(0.8 * rate * share))
            if X.shape[0] > cap:
                X = X[rng.choice(X.shape[0], cap, replace=False)]
            v = ev.values(X, f"{phase}:{name}")
            pool_X.append(X)
            pool_v.append(v)
        phases[phase] = ev.best
        say(f"{phase}: {ev.best:.4g} ({ev.best_how}); {rate:.3g} inputs/s, compile {t2 - t1:.1f} s")
    X = np.concatenate(pool_X)
    v = np.concatenate(pool_v)
    starts = X[distinct_best(X, v, 24, 1e-3)]

    # phase 3: L-BFGS-B from the best distinct starts (up to 75% of the time)
    n = T * d
    local = []
    for i, x0 in enumerate(starts):
        if time.perf_counter() > t0 + 0.75 * seconds:
            break

        def neg(x):
            val, g = ev.value_and_grad(x)
            if not math.isfinite(val):
                return -1e300, np.zeros_like(g)
            return -val, -g
        res = minimize(neg, x0.ravel(), jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0)] * n,
                       options={"maxiter": 200, "ftol": 1e-15, "gtol": 1e-12})
        xr = res.x.reshape(T, d)
        ev.values(xr[None], f"lbfgsb from start {i}")
        local.append(xr)
    phases["lbfgsb"] = ev.best
    say(f"lbfgsb: {ev.best:.4g}")

    # phase 4: batched compass search from the best points, then perturbations of the best at every
    # scale (basin hopping), until the deadline
    P = np.concatenate([np.asarray(local).reshape(-1, T, d), starts[:8]])
    Pv = ev.values(P, "compass start")
    P = P[np.argsort(-Pv)[:12]]
    hop = 0
    while time.perf_counter() < deadline:
        compass(ev, P, h_max=0.1 if hop == 0 else 0.02, h_min=sc["finest"] / 8, deadline=deadline, tag=f"hop {hop}")
        hop += 1
        kicks = np.array([0.1, 0.03, 0.01, sc["finest"], sc["finest"] / 4, 1e-6])
        best = np.asarray(ev.best_X)
        P = ev.R(best[None] + kicks[rng.integers(0, kicks.size, (12, 1, 1))] * rng.standard_normal((12, T, d)))
    phases["compass"] = ev.best
    phases["hops"] = hop
    say(f"compass: {ev.best:.4g} ({ev.best_how})")
    return SearchResult(ev.best, ev.best_X, ev.best_how, ev.count, time.perf_counter() - t0, phases)


def compass(ev: Evaluator, P: np.ndarray, *, h_max: float, h_min: float, deadline: float, tag: str) -> None:
    """Compass search from every row of P (m, T, d) at once: each round evaluates all 2·T·d moves
    ±h·e_i of every point, each point takes its best move if it improves, h halves when none does."""
    m, T, d = P.shape
    n = T * d
    moves = np.concatenate([np.eye(n), -np.eye(n)]).reshape(2 * n, T, d)
    P = P.copy()
    Pv = ev.values(P, f"compass {tag}")
    h = h_max
    while time.perf_counter() < deadline and h >= h_min:
        for _ in range(20):
            cand = ev.R(P[:, None] + h * moves[None]).reshape(-1, T, d)
            cv = ev.values(cand, f"compass {tag} h={h:.2g}").reshape(m, -1)
            j = np.argmax(cv, axis=1)
            gain = cv[np.arange(m), j]
            better = gain > Pv
            if not better.any() or time.perf_counter() > deadline:
                break
            P[better] = cand.reshape(m, -1, T, d)[np.arange(m), j][better]
            Pv[better] = gain[better]
        h /= 2
