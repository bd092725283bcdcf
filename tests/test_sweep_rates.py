"""Rate fits (THEORY §6) and the report built from records."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from infoflow_jax.sweep import rates
from infoflow_jax.sweep.rates import expected_exponent, fit_rates, fit_slope


def test_fit_slope_matches_textbook_t_interval():
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    y = np.array([0.1, 1.9, 4.2, 5.8, 8.1])
    f = fit_slope(x, y)
    res = stats.linregress(x, y)
    half = stats.t.ppf(0.975, len(x) - 2) * res.stderr
    assert f.slope == pytest.approx(res.slope) and f.stderr == pytest.approx(res.stderr)
    assert (f.lo, f.hi) == pytest.approx((res.slope - half, res.slope + half))


def test_fit_agrees_inside_interval_or_within_tolerance():
    f = rates.Fit(slope=1.2, lo=1.18, hi=1.22, intercept=0.0, n=5, stderr=0.01)
    assert f.agrees(1.1) and not f.agrees(1.0) and f.agrees(1.19)


def _records(name="C1", T=4, b=1.0, noise=0.02, eps=(1e-1, 3e-2, 1e-2, 3e-3, 1e-3)):
    rng = np.random.default_rng(0)
    out = []
    for e in eps:
        p = 10 * (1 / e) ** b * math.exp(noise * rng.standard_normal())
        out.append({"name": name, "T": T, "k": None, "gamma": None, "eps": e, "mutant": None, "measured": True,
                    "params_theorem": p, "err_estimate": 0.3 * e * math.exp(noise * rng.standard_normal()),
                    "bound": e, "passed": True, "dtype": "float64", "task": "T1"})
    return out


def test_rate_fit_recovers_exponent_one_of_synthetic_construction():
    (row,) = fit_rates(_records())
    assert row.sufficient and row.passed
    assert row.params_fit.lo <= 1.0 <= row.params_fit.hi or abs(row.params_fit.slope - 1) <= 0.15
    assert row.expected_err_slope == -1.0 and row.err_ok


def test_rate_fit_flags_a_wrong_exponent():
    (row,) = fit_rates(_records(b=2.0))
    assert row.params_ok is False and row.passed is False


def test_rate_fit_marks_too_few_eps_insufficient():
    (row,) = fit_rates(_records(eps=(1e-1, 1e-2, 1e-3)))
    assert not row.sufficient and row.passed is None


def test_mutants_are_left_out_of_rate_fits():
    recs = _records() + [dict(r, mutant="knot-dropped", err_estimate=5.0) for r in _records()]
    (row,) = fit_rates(recs)
    assert row.err_ok


def test_expected_exponent_read_from_the_registry_else_the_catalog():
    class Spec:
        expected_exponent = staticmethod(lambda T, k: T)

    assert expected_exponent("C5", T=3, k=None, registry={"C5": Spec()}) == 3.0
    assert expected_exponent("C2") == 1.0 and expected_exponent("C9") is None


def test_report_has_rate_table_with_expected_exponents_and_figures(tmp_path):
    from infoflow_jax.sweep.report import FIGURES, write_report

    recs = _records("C1", 4) + _records("C1", 16)
    recs.append(dict(recs[0], mutant="knot-dropped", err_estimate=4.0, passed=False))
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (tmp_path / "manifest.json").write_text(json.dumps({"kind": "sweep", "spec": {"name": "t"}, "runs": []}))
    text = write_report(tmp_path).read_text()
    assert "## Fitted rates" in text and "| C1 | 4 |" in text and "**agree**" in text
    for f in FIGURES.values():
        assert (tmp_path / f).stat().st_size > 0


def test_report_hands_training_folder_to_training_report(tmp_path, monkeypatch):
    import infoflow_jax.training.report as tr
    from infoflow_jax.sweep.report import write_report

    (tmp_path / "manifest.json").write_text(json.dumps({"kind": "train"}))
    seen = []
    monkeypatch.setattr(tr, "write_training_report", lambda d: seen.append(d) or (tmp_path / "report_train.md"))
    write_report(tmp_path)
    assert seen == [tmp_path]


def test_one_eligibility_rule_for_both_fits():
    """``infoflow report`` fits measured real rows; ``predict --against`` also keeps formula-only
    rows (their parameter count is the point); neither uses a mutant or a row without ε."""
    from infoflow_jax.core.rates import fit_eligible

    row = _records()[0]
    formula_only = dict(row, measured=False, err_estimate=None)
    assert fit_eligible(row) and fit_eligible(row, measured_only=False)
    assert not fit_eligible(formula_only) and fit_eligible(formula_only, measured_only=False)
    for bad in (dict(row, mutant="knot-dropped"), dict(row, eps=None), dict(row, params_theorem=0)):
        assert not fit_eligible(bad) and not fit_eligible(bad, measured_only=False)
    assert not fit_eligible(dict(row, err_estimate=math.inf))
