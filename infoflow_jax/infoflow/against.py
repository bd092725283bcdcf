"""Compare InfoFlow predictions with exponents fitted from sweep results (THEORY §6).

Input: ``DIR/results.jsonl`` (read by :func:`~infoflow_jax.verification.store.read_results`), one
JSON object per line with at least
``name, task, L, h, T, d, k, r, D, eps, params_theorem, mutant`` (and
optionally ``measured``, ``passed``).  Which rows a fit may use is
:func:`~infoflow_jax.core.rates.fit_eligible` (the rule of ``infoflow report`` too): mutant rows
(``mutant`` not null) are negative controls and are left out.  Formula-only rows (``measured: false``,
e.g. the C5 memorizer beyond what fits in memory) are kept -- they carry the
memorizer's exponent, which is what the "T" cells are checked against -- and
the group is marked ``formula``.

For every group (name, task, L, h, T, d, k, r, D) with ≥ 4 distinct ε we fit
the slope b of log(params_theorem) on log(1/ε) by least squares with a 95%
Student-t confidence interval (:func:`fit_exponent`), and compare it with the
planner's prediction at (L, h, T, d).  Constructions that are memorizers by
design (name containing "memoriz" or equal to "C5") are compared with the
memorization rate T·d.  Agreement: the prediction lies in the interval or
within ±0.15 of the slope.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from infoflow_jax.core.rates import MIN_DISTINCT_EPS, TOLERANCE, exponent_agrees, fit_eligible, fit_exponent
from .modes import MEMORIZATION_FORMULA, evaluate_formula
from .planner import plan
from .tasks import build_task

__all__ = [
    "AGREEMENT_TOLERANCE",
    "MIN_DISTINCT_EPS",
    "GROUP_KEYS",
    "fit_exponent",
    "group_results",
    "GroupComparison",
    "compare_results",
    "format_comparison",
]

AGREEMENT_TOLERANCE = TOLERANCE  # the one agreement rule's tolerance (core/rates.py)
GROUP_KEYS = ("name", "task", "L", "h", "T", "d", "k", "r", "D")



def group_results(rows: Iterable[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    """Non-mutant rows with positive eps and params, grouped by :data:`GROUP_KEYS`."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        if fit_eligible(row, measured_only=False):
            key = tuple(row.get(k) for k in GROUP_KEYS)
            groups.setdefault(key, []).append(row)
    return groups


@dataclass(frozen=True)
class GroupComparison:
    """One group's fitted slope against its predicted exponent."""

    key: dict[str, Any]
    n: int
    eps_min: float
    eps_max: float
    slope: float
    lo: float
    hi: float
    predicted: float | None
    predicted_formula: str | None
    basis: str
    formula_rows: int
    agree: bool
    error: str | None = None


def _is_memorizer(name: Any) -> bool:
    text = str(name or "").lower()
    return "memoriz" in text or "memoris" in text or text == "c5"


def _predict(key: dict[str, Any]) -> tuple[float, str, str]:
    d = int(key["d"] if key["d"] is not None else 1)
    T, L, h = key["T"], key["L"], key["h"] if key["h"] is not None else 1
    graph = build_task(str(key["task"]), k=key["k"], r=key["r"], D=key["D"], d=d)
    if _is_memorizer(key["name"]):
        return evaluate_formula(MEMORIZATION_FORMULA, {"T": T, "d": d}), MEMORIZATION_FORMULA, \
            "memorizer"
    p = plan(graph, L, h, T)
    return p.exponent, p.exponent_formula, "planner"


def compare_results(rows: Iterable[dict[str, Any]]) -> tuple[list[GroupComparison], int]:
    """Fit and compare every group with ≥ 4 distinct ε.

    Returns (comparisons, number of groups skipped for too few ε).
    """
    out, skipped = [], 0
    for key_tuple, group in sorted(group_results(rows).items(), key=lambda kv: str(kv[0])):
        key = dict(zip(GROUP_KEYS, key_tuple))
        eps = np.array([float(r["eps"]) for r in group])
        params = np.array([float(r["params_theorem"]) for r in group])
        if len(np.unique(eps)) < MIN_DISTINCT_EPS:
            skipped += 1
            continue
        slope, lo, hi, n = fit_exponent(1.0 / eps, params)
        formula_rows = sum(1 for r in group if r.get("measured", True) is False)
        try:
            predicted, formula, basis = _predict(key)
            error = None
        except (ValueError, TypeError, KeyError) as exc:
            predicted, formula, basis, error = None, None, "error", str(exc)
        agree = predicted is not None and exponent_agrees(predicted, slope, lo, hi, AGREEMENT_TOLERANCE)
        out.append(GroupComparison(key, n, float(eps.min()), float(eps.max()), slope, lo, hi,
                                   predicted, formula, basis, formula_rows, agree, error))
    return out, skipped


def _fmt(v: Any) -> str:
    return "-" if v is None else str(v)


def format_comparison(comparisons: list[GroupComparison], skipped: int) -> str:
    """Table: group, n, ε range, predicted, fitted slope [95% CI], agreement."""
    header = (f"{'name':<24} {'task':<4} {'L':>2} {'h':>2} {'T':>4} {'d':>2} {'k':>2} {'r':>2} "
              f"{'D':>2} {'n':>3} {'eps range':<17} {'predicted':<14} "
              f"{'fitted [95% CI]':<26} agree")
    lines = [header, "-" * len(header)]
    for c in comparisons:
        k = c.key
        if c.predicted is None:
            pred = "error"
        else:
            pred = f"{c.predicted_formula}={c.predicted:g}"
            if c.basis == "memorizer":
                pred += " (mem)"
        ci = f"{c.slope:.3f} [{c.lo:.3f}, {c.hi:.3f}]"
        mark = "yes" if c.agree else "NO"
        if c.formula_rows:
            mark += f" (formula rows: {c.formula_rows}/{c.n})"
        lines.append(
            f"{str(k['name'])[:24]:<24} {_fmt(k['task']):<4} {_fmt(k['L']):>2} {_fmt(k['h']):>2} "
            f"{_fmt(k['T']):>4} {_fmt(k['d']):>2} {_fmt(k['k']):>2} {_fmt(k['r']):>2} "
            f"{_fmt(k['D']):>2} {c.n:>3} {c.eps_min:.1e}..{c.eps_max:.1e} {pred:<14} "
            f"{ci:<26} {mark}"
        )
        if c.error:
            lines.append(f"    error: {c.error}")
    n_agree = sum(c.agree for c in comparisons)
    lines.append(
        f"{n_agree}/{len(comparisons)} groups agree (tolerance: 95% CI or ±{AGREEMENT_TOLERANCE}·max(1, b)); "
        f"{skipped} group(s) skipped with < {MIN_DISTINCT_EPS} distinct eps"
    )
    bad = [c for c in comparisons if not c.agree]
    for c in bad:
        lines.append(
            f"DISAGREE: {c.key['name']} {c.key['task']} L={c.key['L']} h={c.key['h']} "
            f"T={c.key['T']}: predicted {c.predicted_formula}={_fmt(c.predicted)}, "
            f"fitted {c.slope:.3f} [{c.lo:.3f}, {c.hi:.3f}]"
        )
    return "\n".join(lines)
