"""Lemma checks: L1's adversarial estimate lands in [0.99·W, e_max]; the temperature mutant is caught."""

import pytest

from infoflow_jax.verification.estimators import Budget
from infoflow_jax.verification.lemma_checks import run_l1, run_l2


@pytest.mark.parametrize("T", [2, 16, 256])
@pytest.mark.parametrize("beta", [10.0, 1e3])
def test_l1_estimate_lies_between_attained_and_bound(T, beta):
    rec = run_l1(T=T, beta=beta)
    assert 0.99 * rec["attained"] <= rec["err_estimate"] <= rec["bound"], rec


@pytest.mark.parametrize("T", [2, 64])
def test_l2_estimate_lies_between_attained_and_bound(T):
    rec = run_l2(T=T, beta=100.0)
    assert rec["passed"], rec


@pytest.mark.parametrize("check,beta", [(run_l1, 10.0), (run_l2, 100.0)])
def test_temperature_mutant_is_reported_failing(check, beta):
    rec = check(T=16, beta=beta, mutant="temperature-off", budget=Budget(samples=256, starts=8, steps=60))
    assert not rec["passed"], rec
