"""Sound bounds on a task's target H over a box of inputs, for the global certificate.

    target_bounds(task, lo, hi) → (lo_H, hi_H)   with  lo_H ≤ H(X) ≤ hi_H  for every lo ≤ X ≤ hi

``lo``, ``hi``: (B, T, d) (a batch of boxes), results (B,). One function per task class
(dispatch on the exact class: a subclass may change the target, so it is not trusted):

* order statistics are monotone: the k-th largest of a box ranges exactly over
  [k-th largest of lo, k-th largest of hi] (:func:`~infoflow_jax.core.intervals.kth_largest_bounds`);
  a maximum over tokens of a monotone quantity likewise;
* m − x_t = max(0, max_{s≠t}(x_s − x_t)) (T2) is nondecreasing in every x_s, s ≠ t, and
  nonincreasing in x_t: its range is exact from the box's corners;
* a 1-D function f with Lipschitz constant L on [a, b] lies in the two cones from its ends,

      (f(a) + f(b) − L(b − a))/2 ≤ f ≤ (f(a) + f(b) + L(b − a))/2,

  exact for the identity and for the tent ψ (slopes ±L, one kink); F, ψ, v, G_j use it;
* the coupled decode G_r(u) = Πu/r + Σ_j sin(2πju_j)/(2πjr) (:class:`~infoflow_jax.core.tasks.CoupledG`):
  the product by interval multiplication (exact: multilinear, extremes at corners), each
  sine term by its cone (Lipschitz 1/r); any other G by its sup-norm Lipschitz constant
  around the centre, G(c) ± L·max_j r_j;
* linear features g(x) = ⟨w, x⟩ with w ≥ 0 (T6) are monotone: [g(lo_s), g(hi_s)];
* a user's :class:`~infoflow_jax.core.tasks.FunctionTask`: the automatic interval extension of
  its ``fn`` (:func:`~infoflow_jax.core.interval_jaxpr.interval_extension`: fn's jaxpr
  evaluated on intervals, one sound rule per primitive, float64 rounding included); where a
  primitive of fn has no rule and the task declares a finite ``lipschitz_constant`` L (H's
  constant in the sup-norm on the cube), the fallback H(c) ± L·max_j r_j around the box's
  centre c (radius r), H(c) as fn evaluates it, widened by TARGET_ROUNDING (so conditional on
  fn's float64 value at c being within 2⁻⁴⁰(1 + |H|) of its real value).

The bounds are conditional on the declared Lipschitz constants (proved in the docstrings of
the built-in functions; a user's is only grid-checked, :meth:`LipschitzFn.checked`).

Rounding. H as the verifier evaluates it (float64) and H in real arithmetic both lie in
the bounds: every function value we compute (and every one the target computes) is a few
float64 operations (sums of ≤ T terms, sin, products of ≤ r factors) on inputs in [−1, 2],
with error far below TARGET_ROUNDING = 2⁻⁴⁰ relative to (1 + |value|) — ~10³ times the
worst accumulated rounding of such an expression. Every function range is widened by that
much on both sides (:func:`_widen`); sorting, max, clipping do no arithmetic.

A task without an interval extension here (another class, or a FunctionTask whose fn uses a
primitive without a rule and declares no finite Lipschitz constant) raises
:class:`NotCertifiable`; the certificate is then "open" with that reason ("not certifiable:
primitive <name> in the target").
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import jax.numpy as jnp

from infoflow_jax.core.interval_jaxpr import NotCertifiable, interval_extension
from infoflow_jax.core.intervals import Interval, kth_largest_bounds
from infoflow_jax.core.tasks import (CoupledG, CoupledTopR, DecoupledTopR, DRetrieval, FunctionTask, KthLargest,
                                     LinearFeature, MaxRetrieval, TopKMean, TwoHop)

TARGET_ROUNDING = 2.0 ** -40


def _widen(lo, hi):
    return (lo - TARGET_ROUNDING * (1 + jnp.abs(lo)), hi + TARGET_ROUNDING * (1 + jnp.abs(hi)))


def _lipschitz_of(f, what: str) -> float:
    L = getattr(f, "lipschitz", None)
    try:
        L = float(L)
    except (TypeError, ValueError):
        L = float("nan")
    if not (L >= 0 and L < float("inf")):
        raise NotCertifiable(f"not certifiable: {what} has no finite Lipschitz constant")
    return L


def fn_range(f, a, b, what: str = "F"):
    """[min, max] ⊇ f([a, b]) elementwise for a 1-D Lipschitz f: the two cones from the ends."""
    L = _lipschitz_of(f, what)
    fa, fb = f(a), f(b)
    mid, half = 0.5 * (fa + fb), 0.5 * L * (b - a)
    return _widen(mid - half, mid + half)


def _interval_product(los, his):
    """Bounds on Π_j u_j for u_j ∈ [los[..., j], his[..., j]] (exact: iterated interval products)."""
    plo, phi = los[..., 0], his[..., 0]
    for j in range(1, los.shape[-1]):
        c = jnp.stack([plo * los[..., j], plo * his[..., j], phi * los[..., j], phi * his[..., j]])
        plo, phi = jnp.min(c, 0), jnp.max(c, 0)
    return plo, phi


def multi_range(G, los, his, what: str = "G"):
    """Bounds on G(u) over the box los ≤ u ≤ his (last axis = the arguments of G)."""
    if isinstance(G, CoupledG) and type(G) is CoupledG:
        r = G.r
        plo, phi = _interval_product(los, his)
        lo, hi = plo / r, phi / r
        for j in range(1, r + 1):
            term = _SineTerm(j, r)
            slo, shi = fn_range(term, los[..., j - 1], his[..., j - 1])
            lo, hi = lo + slo, hi + shi
        return _widen(lo, hi)
    L = _lipschitz_of(G, what)
    c = 0.5 * (los + his)
    rad = jnp.max(0.5 * (his - los), axis=-1)
    g = G(c)
    return _widen(g - L * rad, g + L * rad)


@dataclass(frozen=True)
class _SineTerm:
    """u ↦ sin(2πju)/(2πjr): the j-th sine of CoupledG, Lipschitz 1/r."""

    j: int
    r: int

    @property
    def lipschitz(self) -> float:
        return 1.0 / self.r

    def __call__(self, u):
        return jnp.sin(2 * jnp.pi * self.j * u) / (2 * jnp.pi * self.j) / self.r


# ----------------------------------------------------------------------------- per task class
def _max_retrieval(task: MaxRetrieval, lo, hi):
    mlo, mhi = kth_largest_bounds(lo[..., 0], hi[..., 0], 1)
    return fn_range(task.F, mlo, mhi)


def _two_hop(task: TwoHop, lo, hi):
    x_lo, x_hi = lo[..., 0], hi[..., 0]
    T = x_lo.shape[-1]
    if T == 1:
        dlo = dhi = jnp.zeros_like(x_lo)
    else:
        others = ~jnp.eye(T, dtype=bool)  # [t, s]: s ≠ t
        # m − x_t = max(0, max_{s≠t}(x_s − x_t)): monotone in each coordinate, so exact at corners
        dlo = jnp.maximum(0.0, jnp.max(jnp.where(others, x_lo[..., None, :] - x_hi[..., :, None], -jnp.inf), -1))
        dhi = jnp.maximum(0.0, jnp.max(jnp.where(others, x_hi[..., None, :] - x_lo[..., :, None], -jnp.inf), -1))
        # the differences are rounded: widen by one ulp of their magnitude (≤ 2 on the cube)
        dlo, dhi = jnp.maximum(0.0, dlo - 4 * 2.0 ** -53 * 2), dhi + 4 * 2.0 ** -53 * 2
    plo, phi = fn_range(task.psi, dlo, dhi, "psi")
    return fn_range(task.F, jnp.max(plo, -1), jnp.max(phi, -1))


def _kth(task: KthLargest, lo, hi):
    klo, khi = kth_largest_bounds(lo[..., 0], hi[..., 0], task.k)
    return fn_range(task.F, klo, khi)


def _top(lo, hi, r):
    """Bounds on (x_(1), …, x_(r)): each order statistic is monotone."""
    s_lo = -jnp.sort(-lo[..., 0], axis=-1)[..., :r]
    s_hi = -jnp.sort(-hi[..., 0], axis=-1)[..., :r]
    return s_lo, s_hi


def _coupled(task: CoupledTopR, lo, hi):
    s_lo, s_hi = _top(lo, hi, task.r)
    return multi_range(task.G, s_lo, s_hi)


def _decoupled(task: DecoupledTopR, lo, hi):
    s_lo, s_hi = _top(lo, hi, task.r)
    total_lo = total_hi = 0.0
    for j, G in enumerate(task.Gs):
        glo, ghi = fn_range(G, s_lo[..., j], s_hi[..., j], f"G_{j + 1}")
        total_lo, total_hi = total_lo + glo, total_hi + ghi
    return _widen(total_lo, total_hi)


def _d_retrieval(task: DRetrieval, lo, hi):
    u_lo, u_hi = [], []
    for g in task.gs:
        if not isinstance(g, LinearFeature):
            raise NotCertifiable(f"not certifiable: feature {g!r} of task {task.id} is not a LinearFeature")
        w = jnp.asarray(g.w, dtype=lo.dtype)  # w ≥ 0 (LinearFeature checks): g is monotone
        u_lo.append(jnp.max(lo @ w, -1))
        u_hi.append(jnp.max(hi @ w, -1))
    u_lo, u_hi = _widen(jnp.stack(u_lo, -1), jnp.stack(u_hi, -1))
    return multi_range(task.G, u_lo, u_hi)


def _top_k_mean(task: TopKMean, lo, hi):
    s_lo, s_hi = _top(lo, hi, task.k)
    vlo, vhi = fn_range(task.v, s_lo, s_hi, "v")
    mlo, mhi = _widen(jnp.mean(vlo, -1), jnp.mean(vhi, -1))
    return fn_range(task.F, mlo, mhi)


@dataclass(frozen=True)
class FunctionTarget:
    """How a :class:`~infoflow_jax.core.tasks.FunctionTask`'s target is bounded: ``bounds(lo, hi)``
    (B, T, d) → (B,), (B,), and ``note``, what the certificate's record says about it."""

    bounds: Callable
    note: str


@functools.lru_cache(maxsize=64)
def function_target(task: FunctionTask) -> FunctionTarget:
    """The automatic interval extension of ``task.fn`` on one (T, d) input; where a primitive has
    no rule, the declared-Lipschitz fallback H(c) ± L·radius if L = ``task.lipschitz`` is finite;
    else :class:`NotCertifiable` ("not certifiable: primitive <name> in the target")."""
    try:
        ext = interval_extension(task.fn, (task.T, task.d))
    except NotCertifiable as exc:
        L = task.lipschitz
        if not (L >= 0 and L < float("inf")):
            raise
        return FunctionTarget(functools.partial(_lipschitz_fallback, task.fn, L),
                              f"target: declared Lipschitz constant {L:g} around each box's centre "
                              f"(fallback: {exc})")
    n = len(ext.jaxpr.jaxpr.eqns)
    return FunctionTarget(ext, f"target: automatic interval extension of fn ({n} equations)")


def _lipschitz_fallback(fn, L: float, lo, hi):
    """H(c) ± L·‖r‖_∞ ⊇ H(box) for H L-Lipschitz in the sup-norm; c, r the box's centre and radius
    (r rounded up), H(c) as fn evaluates it, widened by TARGET_ROUNDING."""
    c, r = Interval(lo, hi).centre_radius()
    rad = jnp.max(r.reshape(r.shape[:-2] + (-1,)), axis=-1)
    g = fn(c)
    return _widen(g - L * rad, g + L * rad)  # the rounding of L·rad is far below TARGET_ROUNDING


def _function_task(task: FunctionTask, lo, hi):
    return function_target(task).bounds(lo, hi)


@dataclass(frozen=True)
class MaxFeatures:
    """H(X) = G(u(X)), u_i(X) = max_s ⟨w_i, x_s⟩ with w_i ≥ 0, Σ w_i ≤ 1 (so u ∈ [0,1]^D on the
    cube), G L-Lipschitz in ‖·‖_∞ on [0,1]^D: the shape the retrieve-then-decode box bound of
    :mod:`~infoflow_jax.verification.certify_split` needs."""

    G: Callable
    lipschitz: float
    weights: object  # (D, d) array: row i is w_i


def max_features(task) -> MaxFeatures | None:
    """The task's target as G(max-features), read from its exact class: T6 (D-retrieval) and
    T1 (F(max_s x_{s,0}): D = 1, w = e_0, G(u) = F(u_0)); None for any other class (or
    features that are not non-negative linear with sum ≤ 1)."""
    import numpy as np

    if type(task) is MaxRetrieval:
        try:
            L = _lipschitz_of(task.F, "F")
        except NotCertifiable:
            return None
        F = task.F
        return MaxFeatures(G=lambda u: F(u[..., 0]), lipschitz=L, weights=np.eye(1, task.d))
    if type(task) is not DRetrieval:
        return None
    if not all(type(g) is LinearFeature for g in task.gs):
        return None
    W = np.array([np.asarray(g.w, dtype=np.float64) for g in task.gs])
    if W.shape != (task.D, task.d) or np.any(W < 0) or np.any(W.sum(1) > 1.0):
        return None
    try:
        L = _lipschitz_of(task.G, "G")
    except NotCertifiable:
        return None
    return MaxFeatures(G=task.G, lipschitz=L, weights=W)


@dataclass(frozen=True)
class TargetBounds:
    """How to bound one task class's target over a box; ``symmetric``: the target's formula is
    invariant under permuting tokens (a function of order statistics or of maxima over tokens)."""

    bounds: Callable
    symmetric: bool
    note: Callable | None = None  # task → what the record says about how H is bounded (may raise NotCertifiable)


TARGET_BOUNDS = {
    MaxRetrieval: TargetBounds(_max_retrieval, True),
    TwoHop: TargetBounds(_two_hop, True),
    KthLargest: TargetBounds(_kth, True),
    CoupledTopR: TargetBounds(_coupled, True),
    DecoupledTopR: TargetBounds(_decoupled, True),
    DRetrieval: TargetBounds(_d_retrieval, True),
    TopKMean: TargetBounds(_top_k_mean, True),
    # a user's fn: no symmetry can be read off it, so the whole cube is searched
    FunctionTask: TargetBounds(_function_task, False, note=lambda task: function_target(task).note),
}


def target_bounds_for(task) -> TargetBounds:
    """The entry for ``task``'s exact class, or :class:`NotCertifiable` naming the task (or, for a
    FunctionTask, the primitive of its fn without a rule)."""
    entry = TARGET_BOUNDS.get(type(task))
    if entry is None:
        raise NotCertifiable(f"not certifiable: task {task.id} ({type(task).__name__}) has no interval extension")
    if entry.note is not None:
        entry.note(task)  # builds the extension now: a refusal is raised here, not inside a compiled call
    return entry


def target_bounds(task, lo, hi):
    """(lo_H, hi_H), shape (B,), with lo_H ≤ H(X) ≤ hi_H for every lo ≤ X ≤ hi (B, T, d)."""
    lo, hi = jnp.asarray(lo), jnp.asarray(hi)
    return target_bounds_for(task).bounds(task, lo, hi)
