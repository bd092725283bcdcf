"""Slope fits and the agreement rule for rates (THEORY §6), in one place.

* :func:`fit_slope` — least-squares line y ≈ a + b·x with a two-sided Student-t
  interval for b (n − 2 degrees of freedom).
* :func:`fit_exponent` — the parameter exponent: slope of log(params) on log(1/ε).
* :func:`fit_eligible` — which rows of a results file a fit may use (``infoflow report``'s rate
  table and ``infoflow predict --against`` alike).
* :func:`exponent_agrees` — a fitted exponent agrees with a predicted b when b
  lies in the interval or within ±0.15·max(1, b) of the slope.

Why the tolerance scales with b. A decoder with (n+1)^b pieces and n ∝ 1/ε has
local slope b·n/(n+1) in log(1/ε): its pre-asymptotic bias grows with b. A fixed
±0.15 would call C5's (n+1)^T memorizer at T = 3, n ≈ 30, a disagreement with
the very formula it instantiates. Issue #3's acceptance (±0.15·T for C5, ±0.15·r
for coupled C6) already states the relative form; for b = 1 it is THEORY's ±0.15.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

TOLERANCE = 0.15
LEVEL = 0.95
MIN_DISTINCT_EPS = 4  # THEORY §6: a fit needs at least 4 values of ε


@dataclass(frozen=True)
class Fit:
    slope: float
    lo: float
    hi: float
    intercept: float
    n: int
    stderr: float

    def agrees(self, expected: float | None, tol: float = TOLERANCE) -> bool | None:
        if expected is None or not math.isfinite(self.slope):
            return None
        return exponent_agrees(expected, self.slope, self.lo, self.hi, tol)


def _positive(row: dict, key: str) -> bool:
    try:
        return float(row[key]) > 0
    except (KeyError, TypeError, ValueError):
        return False


def fit_eligible(row: dict, *, measured_only: bool = True) -> bool:
    """Whether a results row may enter a rate fit: a real row (no ``mutant``: mutants are negative
    controls) with ε > 0 and ``params_theorem`` > 0; with ``measured_only`` (the error-vs-parameter
    fits of ``infoflow report``), also measured (not a formula-only row, ``measured: false``) with
    a finite ``err_estimate``. ``measured_only=False`` keeps formula-only rows: the parameter
    exponent needs only ε and the count (``infoflow predict --against``: the C5 memorizer
    beyond what fits in memory)."""
    if row.get("mutant") is not None or not (_positive(row, "eps") and _positive(row, "params_theorem")):
        return False
    if not measured_only:
        return True
    err = row.get("err_estimate")
    return bool(row.get("measured", True)) and err is not None and math.isfinite(float(err))


def exponent_agrees(expected: float, slope: float, lo: float, hi: float, tol: float = TOLERANCE) -> bool:
    """b ∈ [lo, hi] or |slope − b| ≤ tol·max(1, |b|)."""
    inside = math.isfinite(lo) and math.isfinite(hi) and lo <= expected <= hi
    return bool(inside or abs(slope - expected) <= tol * max(1.0, abs(expected)))


def fit_slope(x, y, level: float = LEVEL) -> Fit:
    """Least-squares line y ≈ a + b·x; b with its two-sided ``level`` Student-t interval.

    se(b)² = (RSS/(n−2)) / Σ(x_i − x̄)²; interval b ∓ t_{n−2,(1+level)/2}·se(b).
    With n = 2 the interval is undefined (nan); fewer points or one x give nan.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    n = int(x.size)
    if n < 2 or np.ptp(x) == 0:
        return Fit(math.nan, math.nan, math.nan, math.nan, n, math.nan)
    A = np.stack([x, np.ones_like(x)], axis=1)
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    b, a = float(coef[0]), float(coef[1])
    if n == 2:
        return Fit(b, math.nan, math.nan, a, n, math.nan)
    resid = y - A @ coef
    s2 = float(resid @ resid) / (n - 2)
    se = math.sqrt(s2 / float(((x - x.mean()) ** 2).sum()))
    from scipy import stats  # here: scipy.stats costs ~1 s to import, and only a fit needs it

    t = float(stats.t.ppf(0.5 + level / 2, n - 2))
    return Fit(b, b - t * se, b + t * se, a, n, se)


def fit_exponent(inv_eps: Sequence[float], params: Sequence[float], confidence: float = LEVEL):
    """Slope of log(params) on log(1/ε) with its interval: ``(b, lo, hi, n)``."""
    x = np.log(np.asarray(inv_eps, dtype=np.float64))
    y = np.log(np.asarray(params, dtype=np.float64))
    if x.size != y.size or x.size < 2 or not np.all(np.isfinite(x)) or not np.all(np.isfinite(y)):
        raise ValueError("fit_exponent needs ≥ 2 finite, positive (1/eps, params) pairs")
    if np.ptp(x) == 0:
        raise ValueError("fit_exponent needs at least two distinct eps")
    f = fit_slope(x, y, confidence)
    lo = -math.inf if math.isnan(f.lo) else f.lo
    hi = math.inf if math.isnan(f.hi) else f.hi
    return f.slope, lo, hi, f.n
