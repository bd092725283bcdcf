"""`infoflow predict --against DIR`: fitted slopes against predictions."""

import json

import numpy as np
import pytest
from helpers import run_predict

from infoflow_jax.infoflow.against import compare_results, fit_exponent

EPS = [0.1, 0.05, 0.02, 0.01, 0.003, 0.001]


def rows(name, task, L, exponent, *, T=8, eps=EPS, mutant=None, noise=0.0, seed=0, **extra):
    rng = np.random.default_rng(seed)
    out = []
    for e in eps:
        params = 50.0 * (1 / e) ** exponent * float(np.exp(noise * rng.standard_normal()))
        rec = dict(name=name, task=task, L=L, h=1, T=T, d=1, k=None, r=None, D=None, eps=e,
                   params_theorem=params, mutant=mutant, passed=True)
        rec.update(extra)
        out.append(rec)
    return out


def write(tmp_path, records):
    (tmp_path / "results.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return tmp_path


def test_fit_exponent_recovers_an_exact_power_law():
    slope, lo, hi, n = fit_exponent([10, 100, 1000, 10000], [3e1, 3e2, 3e3, 3e4])
    assert (round(slope, 12), n) == (1.0, 4) and hi - lo < 1e-9


def test_fit_exponent_interval_covers_the_true_slope_under_noise():
    rng = np.random.default_rng(1)
    x = np.logspace(1, 4, 8)
    slope, lo, hi, _ = fit_exponent(x, 2.0 * x**2 * np.exp(0.05 * rng.standard_normal(8)))
    assert lo <= 2.0 <= hi and lo < slope < hi


def test_fit_exponent_needs_two_distinct_eps():
    with pytest.raises(ValueError):
        fit_exponent([10, 10, 10], [1, 2, 3])


def test_agreeing_group_is_marked_agree():
    (c,), skipped = compare_results(rows("C2", "T2", 2, 1.0, noise=0.02))
    assert c.agree and c.predicted == 1 and skipped == 0


def test_group_with_wrong_slope_is_marked_disagree():
    (c,), _ = compare_results(rows("C2-broken", "T2", 2, 2.0))
    assert not c.agree


def test_mutant_rows_are_left_out():
    comps, _ = compare_results(rows("C2", "T2", 2, 1.0) + rows("C2", "T2", 2, 3.0, mutant="beta"))
    assert len(comps) == 1 and comps[0].agree


def test_groups_with_fewer_than_4_eps_are_skipped():
    comps, skipped = compare_results(rows("C1", "T1", 1, 1.0, eps=[0.1, 0.01, 0.001]))
    assert (comps, skipped) == ([], 1)


def test_memorizer_is_compared_with_the_memorization_rate():
    (c,), _ = compare_results(rows("C5-memorizer", "T2", 1, 2.0, T=2, measured=False))
    assert c.agree and c.predicted_formula == "T*d" and c.formula_rows == len(EPS)


def test_against_exit_status_is_1_and_reports_the_disagreeing_group(tmp_path, capsys):
    d = write(tmp_path, rows("C2", "T2", 2, 1.0, noise=0.02) + rows("C2-broken", "T2", 2, 2.0))
    assert run_predict(["--against", str(d)]) == 1
    out = capsys.readouterr().out
    assert "DISAGREE: C2-broken" in out and "1/2 groups agree" in out


def test_against_exit_status_is_0_when_all_groups_agree(tmp_path, capsys):
    d = write(tmp_path, rows("C2", "T2", 2, 1.0) + rows("C3", "T3", 2, 1.0, k=2))
    assert run_predict(["--against", str(d)]) == 0


def test_against_missing_results_file_exits_2(tmp_path, capsys):
    assert run_predict(["--against", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.startswith("infoflow predict: error: --against ")


def test_agreement_tolerance_scales_with_the_predicted_exponent():
    """(n+1)^b pieces give slope b·n/(n+1) pre-asymptotically: ±0.15·b for b > 1, ±0.15 for b ≤ 1."""
    from infoflow_jax.core.rates import exponent_agrees

    assert exponent_agrees(3.0, 2.6, 2.55, 2.65)
    assert not exponent_agrees(3.0, 2.5, 2.45, 2.55)
    assert not exponent_agrees(1.0, 0.8, 0.79, 0.81)
