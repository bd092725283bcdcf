"""Tie probes (verification/probes.py): read off the build, points of its domain, screened by error."""

import numpy as np

from infoflow_jax.catalog import lookup
from infoflow_jax.core.precision import use_float64
from infoflow_jax.verification.probes import (_screened, predict_np, structural_probes, tie_scales,
                                              tied_block_candidates)

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
    kept = _screened(built, X, rng, 32)
    e_all = np.sort(np.unique(_err(built, X)))[::-1]
    assert np.min(_err(built, kept)) >= e_all[min(31, e_all.size - 1)] - 1e-12
