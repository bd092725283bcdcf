"""The falsifier alone finds a one-cell defect at fine scale (issue 19, item 5).

A construction without claims has only the falsifier. At ε = 1e-3 a decoder has thousands of
cells; a defect confined to ONE of them (a tent of 1.2–3× the claimed bound) shows only where the
decoder's input lands in that cell. The knot probes solve every knot and cell midpoint of every
one-input block (:func:`~infoflow_jax.verification.probes.knot_probes`) and keep the worst in
NumPy, so the estimate exceeds the bound for every placement of the defect — judged on
``err_estimate`` alone, not on the proof-step checks (which catch it independently).
"""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infoflow_jax.catalog import lookup
from infoflow_jax.core.precision import use_float64
from infoflow_jax.core.numpy_forward import predict_np
from infoflow_jax.verification.probes import knot_probes, knot_targets
from infoflow_jax.verification.verify import verify

use_float64()

# (construction module, T, k): the decoder read at CLS (C1), the decoder after a two-hop read (C2)
CASES = [("c1_max_retriever", 64, None), ("c2_two_hop_retriever", 16, None)]
HEIGHTS = (1.2, 3.0)  # in units of the claimed bound (the shipped mutants use LOCALIZED_STRENGTH = 2.2)


def _bumped(monkeypatch, module: str, T: int, k, height: float, placement: int):
    mod = importlib.import_module(f"constructions.{module}")
    monkeypatch.setattr(mod, "LOCALIZED_STRENGTH", height)
    return mod.build(T, 1e-3, mutant="cell-bump", mutant_seed=placement, **({} if k is None else {"k": k}))


@pytest.mark.parametrize("module,T,k", CASES)
@pytest.mark.parametrize("height", HEIGHTS)
@pytest.mark.parametrize("placement", range(3))
def test_a_one_cell_defect_at_eps_1e_3_is_found_by_the_falsifier_alone(monkeypatch, module, T, k, height, placement):
    built = _bumped(monkeypatch, module, T, k, height, placement)
    record = verify(built)
    assert record.err_estimate > record.bound, (record.err_estimate / record.bound, record.estimator)


@pytest.mark.slow
@pytest.mark.parametrize("module,T,k", CASES + [("c1_max_retriever", 16, None), ("c2_two_hop_retriever", 64, None),
                                                ("c3_kth_largest", 16, 2), ("c3_kth_largest", 64, 3),
                                                ("c8_soft_topk", 64, 2)])
@pytest.mark.parametrize("height", HEIGHTS)
def test_a_one_cell_defect_is_found_at_ten_placements(monkeypatch, module, T, k, height):
    missed = []
    for placement in range(10):
        record = verify(_bumped(monkeypatch, module, T, k, height, placement))
        if not record.err_estimate > record.bound:
            missed.append((placement, record.err_estimate / record.bound))
    assert not missed, missed


def test_knot_probes_reach_the_worst_cell_of_a_decoder_with_thousands_of_cells(monkeypatch):
    # the probe of largest error puts C1's decoder input inside the bumped cell, at its midpoint
    built = _bumped(monkeypatch, "c1_max_retriever", 64, None, 1.2, 0)
    N = built.choices["N"]
    assert N > 1000
    X = knot_probes(built, np.random.default_rng(0))
    m = np.asarray(jax.vmap(lambda x: built.compiled.read_slot(x, "m", 1)[0])(jnp.asarray(X[:1])))[0]
    clean = lookup("C1").build(64, 1e-3)
    err = abs(predict_np(built.compiled.model, X[:1])[0] - built.task.target(X[:1])[0])
    err_clean = abs(predict_np(clean.compiled.model, X[:1])[0] - clean.task.target(X[:1])[0])
    assert err > built.bound > err_clean
    z = knot_targets(built.compiled).z
    assert np.min(np.abs(z - m)) < 1e-8  # on a knot target (the tent's peak is one: a breakpoint of the bumped decoder)


def test_every_knot_target_of_a_coarse_decoder_is_reached():
    built = lookup("C1").build(16, 0.05)
    z = knot_targets(built.compiled).z
    X = knot_probes(built, np.random.default_rng(0), n_probes=4 * z.size)  # room for every target: none screened out
    m = np.asarray(jax.vmap(lambda x: built.compiled.read_slot(x, "m", 1)[0])(jnp.asarray(X)))
    inside = z[(z >= m.min() - 1e-12) & (z <= m.max() + 1e-12)]
    nearest = np.min(np.abs(inside[:, None] - m[None]), axis=1)
    assert inside.size >= 0.9 * z.size and np.all(nearest < 1e-8), (inside.size, z.size, nearest.max())
