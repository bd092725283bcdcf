"""The proof check (issue 19): the glue between the steps derived from the weights, not trusted.

Specification: every built-in construction is proof-checked (steps, their composition, the ideal
program) at a small point; the composition's intervals contain what the network and the ideal
program compute on sampled inputs (each rule against brute force); the glue defects — a skeleton
composing to another function, a decoder claimed on an interval its input leaves, an understated
weight, β chosen for fewer tokens — fail the proof check with every other step certified where
they keep it; and a row whose forward pass does not fit in memory is decided by the proof alone.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from infoflow_jax.catalog import lookup
from infoflow_jax.core.precision import within_bound
from infoflow_jax.core.samplers import NumpyRandom, sample, samplers_for
from infoflow_jax.verification.composition import compose
from infoflow_jax.verification.estimators import QUICK_BUDGET
from infoflow_jax.verification.ideal import ideal_forward
from infoflow_jax.verification.proof import proof_check
from infoflow_jax.verification.steps import check_steps
from infoflow_jax.verification.verify import verify

# (name, T, eps, k): a small point of each default grid
REAL = [("C1", 4, 1e-1, None), ("C2", 4, 1e-2, None), ("C3", 8, 1e-1, 2), ("C3", 8, 1e-1, 3),
        ("C4", 4, 1e-2, 2), ("C5", 2, 0.3, None), ("C6-coupled", 8, 0.3, 2), ("C6-decoupled", 8, 1e-2, 2),
        ("C7", 4, 0.1, None), ("C8", 4, 1e-1, 2)]


def build(name, T, eps, k=None, mutant=None):
    spec = lookup(name)
    return spec.build(T, eps, mutant=mutant, **({"k": k} if spec.uses_k else {}))


def check(built):
    steps, _ = check_steps(built)
    return proof_check(built, steps)


@pytest.mark.parametrize("name,T,eps,k", REAL)
def test_every_built_in_construction_is_proof_checked(name, T, eps, k):
    built = build(name, T, eps, k)
    result = check(built)
    assert result.proof_checked is True, result.parts  # steps, derived ≤ claimed bound ≤ ε, ideal ≡ H
    assert 0 < result.derived_bound and within_bound(result.derived_bound, built.bound)


def _inputs(task, n=96, seed=3):
    names = samplers_for(task.domain)
    return np.concatenate([np.asarray(sample(nm, s, n, task.T, task.d, task.domain))
                           for nm, s in zip(names, NumpyRandom(seed).split(len(names)))])


@pytest.mark.parametrize("name,T,eps,k", [("C1", 4, 1e-1, None), ("C2", 4, 1e-1, None), ("C3", 6, 1e-1, 2),
                                          ("C4", 4, 1e-1, 2), ("C8", 4, 1e-1, 2)])
def test_every_slots_real_and_ideal_values_and_their_difference_lie_in_the_composed_intervals(name, T, eps, k):
    """Brute force for the rules: on sampled inputs, the network's residual stream (h), the ideal
    program's slots (h*) and h − h* lie in the intervals the composition carried, wherever it
    claims a finite error."""
    built = build(name, T, eps, k)
    steps, _ = check_steps(built)
    comp = compose(built, steps)
    X = _inputs(built.task)
    _, ideal = ideal_forward(built.compiled, X, slots=True)
    model, layout, slots = built.compiled.model, built.compiled.layout, built.compiled.slots
    states = [np.asarray(s) for s in _residuals(model, X)]
    checked = 0
    for s in slots:
        after = (layout.stage[s] + 1) // 2  # the layer that writes it (0: the embedding)
        real = states[after][:, :, slots.index(s)]
        for cl, rows in (("cls", slice(0, 1)), ("tok", slice(1, None))):
            t = comp.tracks[s][cl]
            if not np.all(np.isfinite(t.err)):
                continue
            h, hs = real[:, rows], ideal[s][:, rows]
            tol = 1e-9
            assert np.all(h >= t.real[0] - tol) and np.all(h <= t.real[1] + tol), (s, cl, "real", t.real)
            assert np.all(hs >= t.ideal[0] - tol) and np.all(hs <= t.ideal[1] + tol), (s, cl, "ideal", t.ideal)
            d = h - hs
            assert np.all(d >= t.err[0] - tol) and np.all(d <= t.err[1] + tol), (s, cl, "err", t.err, d.min(), d.max())
            checked += 1
    assert checked >= 3


def _residuals(model, X):
    import jax

    return jax.vmap(model.residual_stream)(X)


def test_a_soft_maximum_is_never_above_the_maximum_so_its_error_interval_is_one_sided():
    built = build("C1", 8, 1e-1)
    steps, _ = check_steps(built)
    err = compose(built, steps).tracks["m"]["cls"].err
    assert err[1] < 1e-12 < -err[0]


# ----------------------------------------------------------------------------- glue defects
def test_a_skeleton_composing_to_another_function_fails_only_the_ideal_part():
    result = check(build("C1", 8, 1e-1, mutant="skeleton-wrong"))
    assert result.parts["steps"] == "ok" and result.parts["composition"] == "ok"
    assert result.parts["ideal"].startswith("failed: the ideal program is not the target") and not result.proof_checked


def test_a_decoder_claimed_on_an_interval_its_input_leaves_fails_the_proof_with_its_steps_certified():
    result = check(build("C1", 8, 1e-1, mutant="interval-short"))
    assert result.parts["steps"] == "ok" and not result.proof_checked
    assert "not inside one claimed interval" in result.parts["ideal"]


def test_an_understated_weight_fails_the_composition_with_its_steps_certified():
    built = build("C1", 8, 1e-1, mutant="weight-understated")
    result = check(built)
    assert result.parts["steps"] == "ok" and result.parts["composition"].startswith("failed: derived bound")
    assert result.derived_bound == pytest.approx(build("C1", 8, 1e-1).bound, rel=1e-9)  # what the weights do
    assert result.derived_bound > built.bound


def test_beta_chosen_for_fewer_tokens_fails_the_attention_step_at_the_rows_T():
    result = check(build("C1", 64, 1e-1, mutant="beta-for-smaller-T"))
    assert result.parts["steps"] == "failed: attn1:m" and not result.proof_checked


def test_a_block_without_a_claim_in_a_claimed_program_leaves_the_proof_unchecked():
    import dataclasses

    built = build("C1", 4, 1e-1)
    sites = built.compiled.sites
    built.compiled.sites = (dataclasses.replace(sites[0], claim=None),) + sites[1:]
    result = check(built)
    assert result.proof_checked is False and "carries no claim" in result.parts["composition"]


# ----------------------------------------------------------------------------- beyond a forward pass
def test_a_row_whose_forward_pass_does_not_fit_is_decided_by_the_proof_and_says_why():
    rec = verify(build("C2", 64, 1e-1), budget=QUICK_BUDGET, memory=10 ** 5)
    assert rec.err_estimate is None and rec.proof["falsifier"].startswith("skipped:") and "memory" in rec.proof["falsifier"]
    assert rec.passed and rec.proof_checked and rec.expected
    json.dumps(rec.to_json())  # the record stays plain JSON


def test_a_mutant_row_without_a_forward_pass_is_caught_by_the_proof():
    rec = verify(build("C1", 64, 1e-1, mutant="interval-short"), budget=QUICK_BUDGET, memory=10 ** 5)
    assert rec.err_estimate is None and rec.proof_checked is False and rec.expected


def test_a_million_tokens_on_the_command_line_gives_a_proof_checked_row(capsys):
    from infoflow_jax.cli import app

    # 2 GB: the falsifier's sampled inputs alone (8 GB) do not fit, the proof check's few do; the row is
    # decided by the proof, not refused up front
    status = app.main(["verify", "C1", "--T", "1000000", "--eps", "0.1", "--mutant", "none", "--quick", "--json",
                       "--jobs", "1", "--memory", "2G"])
    out = capsys.readouterr()
    rows = [json.loads(line) for line in out.out.splitlines() if line.startswith("{")]
    assert status == 0 and len(rows) == 1 and out.err.count("Traceback") == 0
    assert rows[0]["proof_checked"] is True and rows[0]["err_estimate"] is None
    assert "memory" in rows[0]["proof"]["falsifier"]


def test_a_hundred_thousand_tokens_in_one_gigabyte_give_a_row_that_says_why_the_falsifier_was_skipped(capsys):
    from infoflow_jax.cli import app

    status = app.main(["verify", "C2", "--T", "100000", "--eps", "0.1", "--mutant", "none", "--quick", "--json",
                       "--jobs", "1", "--memory", str(10 ** 9)])
    out = capsys.readouterr()
    rows = [json.loads(line) for line in out.out.splitlines() if line.startswith("{")]
    assert status == 0 and len(rows) == 1 and "Traceback" not in out.err
    assert rows[0]["proof"]["falsifier"].startswith("skipped: T = 100000") and rows[0]["proof_checked"] is True
