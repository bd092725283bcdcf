"""Lemmas L1–L3 of THEORY §3: bounds as functions, in one place.

Every construction's claimed bound is assembled from these formulas; nothing
else in the package restates them.
"""

from __future__ import annotations

import math

import numpy as np

from infoflow_jax.core.errors import InputError, check_int_range, check_positive


# ----------------------------------------------------------------------------- L1
def e_max(T: int, beta: float) -> float:
    """L1: 0 ≤ max v − Σ_s softmax(βv)_s v_s ≤ e_max(T, β) for v ∈ [0,1]^T, where

        e_max(T, β) = min{ (T−1)/(eβ), (1 + ln((T−1)β))/β }   (0 if T = 1).

    Proof sketch. With δ_s = max v − v_s ≥ 0 the gap is Σ_s p_s δ_s ≤ Σ_{s≠s*} δ_s e^{−βδ_s}
    (p_s ≤ e^{−βδ_s} since the normaliser is ≥ 1). (i) δe^{−βδ} ≤ 1/(eβ) termwise.
    (ii) Split at τ = ln((T−1)β)/β: terms with δ ≤ τ weigh in at most τ in total
    (Σ p_s ≤ 1); terms with δ > τ at most (T−1)·1·e^{−βτ} = 1/β since δ ≤ 1.

    Scores outside [0,1]. Bound (i) holds for any v ∈ R^T. Bound (ii) also holds
    when the extra tokens have δ_s ≥ 1 (e.g. excluded tokens, pushed down by
    K ≥ 1): δe^{−βδ} ≤ e^{−β} ≤ e^{−βτ} there, provided τ ≤ 1 and β ≥ 1
    (:func:`e_max_holds_beyond_unit_range`).
    """
    check_int_range("T", T, 1)
    check_positive("beta", beta)
    if T == 1:
        return 0.0
    b1 = (T - 1) / (math.e * beta)
    arg = (T - 1) * beta
    b2 = (1.0 + math.log(arg)) / beta if arg > 1 else math.inf
    return min(b1, b2)


def e_max_holds_beyond_unit_range(T: int, beta: float) -> bool:
    """Whether L1's bound also covers extra tokens with score gap δ ≥ 1 (see :func:`e_max`)."""
    return T == 1 or (beta >= 1.0 and math.log(max((T - 1) * beta, 1.0)) <= beta)


def beta_for_soft_max(T: int, target: float) -> float:
    """Smallest β (to 1e-9 relative) with e_max(T, β) ≤ target. e_max is decreasing in β."""
    check_positive("eps", target)
    if T == 1:
        return 1.0
    lo, hi = 1e-9, 1.0
    while e_max(T, hi) > target:
        hi *= 2.0
        if hi > MAX_BETA:  # the target is a share of the user's ε: name that
            raise InputError("eps", f"{target:.3g} (an attention step's share of eps)",
                             f"large enough that beta <= {MAX_BETA:.0e} meets it (e_max(T={T}, beta) <= share)")
    # bisection on the monotone e_max; then round up so the bound is met strictly
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        if e_max(T, mid) > target:
            lo = mid
        else:
            hi = mid
        if hi / lo < 1 + 1e-12:
            break
    return max(hi, 1.0)


def l1_attained(T: int, beta: float) -> tuple[float, float]:
    """W(T, β) and its δ*: the configuration "one value at 1, the other T−1 at 1−δ" gives

        W(T, β) = sup_{δ∈[0,1]} (T−1)·δ·e^{−βδ} / (1 + (T−1)e^{−βδ}),

    a lower bound on the true worst case of L1. Returns (W, δ*).
    """
    check_int_range("T", T, 1)
    check_positive("beta", beta)
    if T == 1:
        return 0.0, 0.0
    n = T - 1
    g = lambda dl: -(n * dl * math.exp(-beta * dl) / (1.0 + n * math.exp(-beta * dl)))
    # the maximiser lies in (0, (1 + ln(1 + n))/β]; bracket generously, then polish
    grid = np.linspace(1e-12, 1.0, 20001)
    vals = np.array([-g(t) for t in grid])
    i = int(np.argmax(vals))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    from scipy.optimize import minimize_scalar  # here: scipy.optimize costs ~1 s to import, and only L1's check needs it

    res = minimize_scalar(g, bounds=(lo, hi), method="bounded", options={"xatol": 1e-15})
    dl = float(res.x) if -res.fun >= vals[i] else float(grid[i])
    return float(-g(dl)), dl


# ----------------------------------------------------------------------------- L2
def margin_weight_defect(T: int, beta: float, gamma: float) -> float:
    """L2: if the top score beats every other by ≥ γ, ‖softmax(βa) − e_{s*}‖₁ ≤ 2(T−1)e^{−βγ}."""
    check_int_range("T", T, 1)
    return 2.0 * (T - 1) * math.exp(-beta * gamma)


def margin_weight_defect_attained(T: int, beta: float, gamma: float) -> float:
    """L2's defect where it is attained: every other score exactly γ below the top, so
    ‖softmax(βa) − e_{s*}‖₁ = 2q/(1 + q) with q = (T−1)e^{−βγ} (≤ :func:`margin_weight_defect`)."""
    q = 0.5 * margin_weight_defect(T, beta, gamma)
    return 2 * q / (1 + q)


def margin_retrieval_error(T: int, beta: float, gamma: float, value_range: float = 1.0) -> float:
    """L2: a retrieved value of range D is off by at most (T−1)e^{−βγ}·D."""
    return 0.5 * margin_weight_defect(T, beta, gamma) * value_range


def beta_for_margin(T: int, gamma: float, target: float, value_range: float = 1.0) -> float:
    """β with (T−1)e^{−βγ}·D ≤ target: β = ln((T−1)·D/target)/γ (at least 1)."""
    check_positive("gamma", gamma)
    check_positive("target", target)
    if T == 1:
        return 1.0
    return max(1.0, math.log((T - 1) * value_range / target) / gamma) * (1 + 1e-12)


def flagged_set_leakage(T: int, k: int, score_gap: float) -> float:
    """L2 for a flagged set: scores a on k flagged tokens, a − Δ on the T−k others (Δ = βK).
    The unflagged tokens together get softmax weight

        ρ(T, k, Δ) = (T−k) / (k·e^{Δ} + T − k) ≤ (T−k)·e^{−Δ}/k,

    and the flagged ones 1/k − ρ/k each (equal scores, equal weights). So the attention output
    Σ_s w_s v_s is within ρ·D of the flagged mean (1/k)Σ_{flagged} v_s for values of range D:
    u − μ = Σ_s w_s (v_s − μ) = Σ_{unflagged} w_s (v_s − μ) (the flagged terms cancel)."""
    check_int_range("T", T, 1)
    check_int_range("k", k, 1, T)
    q = (T - k) * math.exp(-score_gap)  # the stable form: no overflow for a huge user-given β
    return q / (k + q)


def score_gap_for_flagged_set(T: int, k: int, target: float, value_range: float = 1.0) -> float:
    """Δ = βK with ρ(T, k, Δ)·D ≤ target:
    from (T−k)e^{−Δ}D/k ≤ target, Δ = ln((T−k)D/(k·target)) (at least 1)."""
    check_positive("target", target)
    if T == k or value_range == 0:
        return 1.0
    return max(1.0, math.log((T - k) * value_range / (k * target))) * (1 + 1e-12)


# ----------------------------------------------------------------------------- L3
def pl_decoder_error(lipschitz: float, N: int) -> float:
    """L3: the interpolant of an L-Lipschitz F at N+1 uniform knots on [0,1] errs by ≤ L/(2N)."""
    check_int_range("N", N, 1)
    return lipschitz / (2.0 * N)


MAX_KNOTS = 10_000_000  # an L3 decoder wider than this (≥ 240 MB of weights) is refused up front
MAX_BETA = 1e15  # beyond, β·x loses every digit of x in float64 and scores overflow


def knots_for(lipschitz: float, target: float) -> int:
    """Least N with L/(2N) ≤ target. The target is a share of the user's ε, so a target too small
    for N ≤ :data:`MAX_KNOTS` is an InputError naming ``eps``."""
    check_positive("eps", target)
    N = max(1, math.ceil(lipschitz / (2.0 * target) - 1e-12))
    if N > MAX_KNOTS:
        raise InputError("eps", f"{target:.3g} (a decoder's share of eps)",
                         f">= {lipschitz / (2.0 * MAX_KNOTS):.3g}, so that the decoder needs at most "
                         f"{MAX_KNOTS:,} knots (N = ceil(L/(2·share)) = {N:,} here)")
    return N
