"""Tie probes (verification/probes.py): read off the build, points of its domain, screened by error."""

import numpy as np

from infoflow_jax.catalog import lookup
from infoflow_jax.core.precision import use_float64
from infoflow_jax.core.numpy_forward import predict_np
from infoflow_jax.verification.probes import (screened, key_gaps, structural_probes, tie_scales,
                                              tied_block_candidates, worst_tie_gap)

use_float64()


def _err(built, X):
    return np.abs(predict_np(built.compiled.model, X) - np.asarray(built.task.target(X)))


def test_tie_probes_are_points_of_the_domain():
    built = lookup("C3").build(4, 0.1, k=2)
    P = structural_probes(built)["probe:ties"]
    assert P.shape[0] == 256
    assert bool(np.all(np.asarray(built.task.domain.contains(P))))


def test_tie_scales_read_the_domain_margin_and_index():
    built = lookup("C3").build(4, 0.1, k=2)
    sc = tie_scales(built)
    assert sc["gamma"] == built.task.domain.gamma and sc["k"] == built.task.domain.k


def test_screening_keeps_the_largest_errors():
    built = lookup("C3").build(4, 0.1, k=2)
    rng = np.random.default_rng(0)
    X = np.asarray(built.task.domain.retract(tied_block_candidates(4, 1, tie_scales(built), rng, 512)))
    kept = screened(built, X, rng, 32)
    e_all = np.sort(np.unique(_err(built, X)))[::-1]
    assert np.min(_err(built, kept)) >= e_all[min(31, e_all.size - 1)] - 1e-12


def test_worst_tie_gap_maximises_the_pull_of_n_tied_tokens():
    # L1: n tokens tied c/β below the maximum move the softmax average by (n·c·e^{−c}/(1 + n·e^{−c}))/β
    c = np.linspace(0.01, 8, 200_001)
    for n in (1, 2, 6, 100):
        pull = n * c * np.exp(-c) / (1 + n * np.exp(-c))
        assert abs(float(worst_tie_gap(n)) - c[np.argmax(pull)]) < 1e-4


def test_key_gaps_sit_at_the_extremum_of_the_two_hop_key_block():
    # C2's second key is ψ̂(m − x), a tent with its peak at ½ and slope 2 beside it (N₁ odd: ½ is a flat top's middle)
    built = lookup("C2").build(8, 0.01)
    z, step, weight = key_gaps(built.compiled)
    at_peak = np.abs(z - 0.5) < 1e-12
    assert np.any(at_peak) and np.allclose(step[at_peak], 0.5) and weight[at_peak].max() == weight.max()


def test_nested_tie_probes_reach_the_two_hop_key_tie():
    # the worst case of C2 at T = 8: a token ½ below the max (ψ's peak) and six tied a key-temperature
    # further; the reference is the best of that structure over a fine grid of gaps, computed here
    built = lookup("C2").build(8, 0.01)
    u, gaps = 0.9, np.linspace(1e-5, 2e-3, 400)
    ref = np.stack([np.array([u, u - 0.5] + [u - 0.5 - g] * 6) for g in gaps])[..., None]
    found = structural_probes(built)["probe:nested_ties"]
    assert _err(built, found).max() >= 0.95 * _err(built, ref).max()
