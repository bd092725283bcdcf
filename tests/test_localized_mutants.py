"""Localized defects are caught, and they are real defects.

Every shipped localized mutant (a one-cell decoder bump, an end-of-range ramp, a weakened
self-exclusion band or position, a random or corner Kuhn vertex moved; height 2.2× the claimed
bound, placed by ``mutant_seed``) must be (1) really broken — an independent dense search, which
shares nothing with the verifier's estimators, finds an error above the claimed bound — and
(2) caught by ``verify`` at its default budget: it fails the global check or a proof-step check.
CI runs one small configuration per class; the slow suite runs seeds 0–4 of every shipped
(construction, localized mutant).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infoflow_jax.catalog import lookup
from infoflow_jax.core.precision import use_float64
from infoflow_jax.verification.construction import error_function
from infoflow_jax.verification.estimators import DEFAULT_BUDGET, QUICK_BUDGET, ascend
from infoflow_jax.core.numpy_forward import numpy_ffn, numpy_weights
from infoflow_jax.verification.probes import (cube_probes, finest_scale, knot_probes, pre_ffn_residuals,
                                              structural_probes)
from infoflow_jax.verification.padding import PaddedDomain, padded_error_function, with_mask
from infoflow_jax.verification.verify import verify

use_float64()

# (construction, mutant, T, eps, k): every shipped localized mutant at a small configuration
LOCALIZED = [
    ("C1", "cell-bump", 8, 0.01, None),
    ("C1", "end-ramp", 8, 0.01, None),
    ("C2", "cell-bump", 8, 0.01, None),
    ("C3", "cell-bump", 8, 0.01, 2),
    ("C3", "exclusion-weakened", 8, 0.1, 2),
    ("C3", "exclusion-weakened", 16, 0.1, 2),  # T·d > 13: no exhaustive grid
    ("C3", "exclusion-weakened", 8, 0.1, 3),
    ("C4", "cell-bump", 8, 0.01, 2),
    ("C4", "position-weakened", 8, 0.01, 2),
    ("C5", "vertex-moved", 2, 0.1, None),
    ("C5", "corner-vertex-moved", 2, 0.1, None),
    ("C6-decoupled", "cell-bump", 8, 0.01, 2),
    ("C6-decoupled", "exclusion-weakened", 8, 0.01, 2),
    ("C6-coupled", "vertex-moved", 8, 0.3, 2),
    ("C6-coupled", "exclusion-weakened", 8, 0.3, 2),
    ("C7", "vertex-moved", 4, 0.1, None),
    ("C7", "corner-vertex-moved", 4, 0.1, None),
    ("C8", "cell-bump", 8, 0.01, 2),
    ("C8", "exclusion-weakened", 8, 0.1, 2),
    # T·d > 13: no exhaustive grid; the probes and the polish must find them
    ("C1", "cell-bump", 16, 0.01, None),
    ("C1", "end-ramp", 16, 0.01, None),
    ("C4", "position-weakened", 16, 0.01, 2),
    ("C6-coupled", "vertex-moved", 16, 0.3, 2),
    ("C6-coupled", "exclusion-weakened", 16, 0.3, 2),
    ("C7", "corner-vertex-moved", 8, 0.1, None),
    ("C8", "cell-bump", 16, 0.01, 2),
]
# one class each in CI, at the smallest configurations (compilation dominates there)
CI_ONE_PER_CLASS = [("C1", "cell-bump", 4, 0.01, None), ("C3", "exclusion-weakened", 4, 0.1, 2),
                    ("C4", "position-weakened", 4, 0.01, 2), ("C5", "corner-vertex-moved", 2, 0.1, None)]


def build(name, mutant, T, eps, k, seed):
    spec = lookup(name)
    return spec.build(T, eps, mutant=mutant, mutant_seed=seed, **({"k": k} if spec.uses_k else {}))


def caught(record) -> bool:
    """A mutant is caught when it fails the global check or a proof-step check."""
    return (not record.passed) or record.step_certified is False


# ----------------------------------------------------------------------------- independent dense search
def dense_inputs(T: int, d: int, n_line: int = 2001, n_random: int = 20000, seed: int = 12345) -> np.ndarray:
    """Inputs of an exhaustive-along-lines search that shares nothing with the estimators: for every
    position p, token p = t (others 0; others t − 0.3; one other at 1; one other at t − g, g = 0.1…0.4,
    the rest 0) on a dense t-grid, all tokens
    equal t, a dense 2-D grid of token 1's first two coordinates (d ≥ 2) and of tokens 1, 2 (others 0),
    and uniform points."""
    t = np.linspace(0.0, 1.0, n_line)
    out = []
    for p in range(T):
        for c in range(d):
            for others in ("zero", "below", "one-high", 0.1, 0.2, 0.3, 0.4):
                X = np.zeros((n_line, T, d))
                if others == "below":
                    X[:] = np.clip(t - 0.3, 0, 1)[:, None, None]
                if others == "one-high":
                    X[:, (p + 1) % T, c] = 1.0
                if isinstance(others, float):  # a runner-up `others` below the moving token
                    X[:, (p + 1) % T, c] = np.clip(t - others, 0, 1)
                X[:, p, c] = t
                out.append(X)
    out.append(np.broadcast_to(t[:, None, None], (n_line, T, d)).copy())
    g = np.linspace(0.0, 1.0, 141)
    a, b = np.meshgrid(g, g, indexing="ij")
    if d >= 2:
        X = np.zeros((a.size, T, d))
        X[:, 0, 0], X[:, 0, 1] = a.ravel(), b.ravel()
        out.append(X)
    if T >= 2:
        X = np.zeros((a.size, T, d))
        X[:, 0, 0], X[:, 1, 0] = a.ravel(), b.ravel()
        out.append(X)
    out.append(np.random.default_rng(seed).random((n_random, T, d)))
    return np.concatenate(out)


@functools.lru_cache(maxsize=64)
def _batched_err(graphdef, task):
    err = error_function(graphdef, task)
    return jax.jit(jax.vmap(err, in_axes=(None, 0)))


def dense_error(built) -> float:
    """max |Ĥ − H| over :func:`dense_inputs`, retracted onto the task's domain."""
    T, d = built.task.T, built.task.d
    X = np.asarray(built.task.domain.retract(dense_inputs(T, d)))
    graphdef, state = built.split()
    f = _batched_err(graphdef, built.task)
    chunk = 4096
    pad = -len(X) % chunk
    X = np.concatenate([X, X[:pad]]) if pad else X
    return float(max(np.max(np.asarray(f(state, jnp.asarray(X[i:i + chunk])))) for i in range(0, len(X), chunk)))


# ----------------------------------------------------------------------------- the claims
@pytest.mark.parametrize("case", CI_ONE_PER_CLASS, ids=lambda c: f"{c[0]}-{c[1]}-T{c[2]}")
def test_localized_mutant_is_really_broken_and_caught(case):
    built = build(*case, seed=0)
    true_error = dense_error(built)
    assert true_error > built.bound, f"{case}: dense search {true_error:.3e} ≤ bound {built.bound:.3e}: not a defect"
    record = verify(built, seed=0, budget=DEFAULT_BUDGET)
    assert caught(record), f"{case}: estimate {record.err_estimate:.3e} ≤ bound {record.bound:.3e}, steps certified"


@pytest.mark.parametrize("case", CI_ONE_PER_CLASS[:1], ids=lambda c: f"{c[0]}-{c[1]}-T{c[2]}")
def test_localized_mutant_is_caught_by_a_float32_search_judged_in_float64(case):
    """The float32 search (issue 21) finds what the float64 search finds: the row's falsifier itself
    fails it (not only a step), in float32, with the estimate a float64 evaluation."""
    from dataclasses import replace

    built = build(*case, seed=0)
    record64 = verify(built, seed=0, budget=DEFAULT_BUDGET)
    record = verify(built, seed=0, budget=replace(DEFAULT_BUDGET, search_dtype="float32"))
    assert record.search_dtype == "float32" and record.search_note is None
    assert record.passed == record64.passed and caught(record)
    if not record64.passed:  # the float64 falsifier caught it: so must the float32 search
        assert record.err_estimate > record.bound


@pytest.mark.slow
@pytest.mark.parametrize("case", LOCALIZED, ids=lambda c: f"{c[0]}-{c[1]}-T{c[2]}-k{c[4]}")
def test_every_localized_mutant_is_caught_by_a_float32_search(case):
    from dataclasses import replace

    built = build(*case, seed=0)
    record64 = verify(built, seed=0, budget=DEFAULT_BUDGET)
    record = verify(built, seed=0, budget=replace(DEFAULT_BUDGET, search_dtype="float32"))
    assert caught(record) and record.passed == record64.passed, (record.err_estimate, record64.err_estimate)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("case", LOCALIZED, ids=lambda c: f"{c[0]}-{c[1]}-T{c[2]}-k{c[4]}")
def test_localized_mutant_is_caught_at_five_seeds(case, seed):
    built = build(*case, seed=seed)
    true_error = dense_error(built)
    assert true_error > built.bound, f"{case} seed {seed}: dense {true_error:.3e} ≤ bound {built.bound:.3e}"
    record = verify(built, seed=seed, budget=DEFAULT_BUDGET)
    assert caught(record), f"{case} seed {seed}: estimate {record.err_estimate:.3e} ≤ bound {record.bound:.3e}"


def test_localized_mutant_keeps_the_claim_of_the_real_build():
    real, bumped = lookup("C1").build(8, 0.01), build("C1", "cell-bump", 8, 0.01, None, seed=3)
    assert bumped.bound == real.bound and bumped.bound_terms == real.bound_terms


def test_cube_probes_contain_every_one_hot_corner():
    P = cube_probes(3, 2, np.random.default_rng(0)).reshape(-1, 6)
    for i in range(6):
        assert np.any(np.all(P == np.eye(6)[i], axis=1))


def test_structural_probes_have_one_shape_at_every_T():
    shapes = {T: {k: v.shape[0] for k, v in structural_probes(lookup("C3").build(T, 0.1, k=2)).items()}
              for T in (4, 16)}
    assert shapes[4] == shapes[16]


def test_numpy_forward_matches_the_model():
    built = lookup("C3").build(8, 0.1, k=3)
    X = np.random.default_rng(1).random((5, 8, 1))
    H = pre_ffn_residuals(built.compiled.model, X)
    model = built.compiled.model
    y = np.asarray(jax.vmap(model)(jnp.asarray(X)))
    last = H[-1][:, 0]
    y_np = (last + numpy_ffn(numpy_weights(model)[1][-1][1], last)) @ np.asarray(model.w[...]) + float(model.b[...])
    assert np.allclose(y, y_np, atol=1e-12)


def test_knot_probes_drive_the_decoder_input_to_every_knot():
    built = lookup("C1").build(4, 0.1)
    X = knot_probes(built, np.random.default_rng(0))
    m = np.asarray(jax.vmap(lambda x: built.compiled.read_slot(x, "m", 1)[0])(jnp.asarray(X)))
    N = built.choices["N"]
    knots = np.arange(N + 1) / N
    nearest = np.min(np.abs(m[:, None] - knots[None]), axis=0)
    assert np.all(nearest < 1e-6), nearest


def test_probes_on_padded_inputs_give_the_unpadded_error():
    built = lookup("C1").build(4, 0.1)
    P = structural_probes(built)["probe:knots"][:16]
    graphdef, state = built.split()
    plain = jax.vmap(lambda X: error_function(graphdef, built.task)(state, X))(jnp.asarray(P))
    padded = jax.vmap(lambda X: padded_error_function(graphdef, built.task)(state, X))(jnp.asarray(with_mask(P, 7)))
    assert np.allclose(np.asarray(plain), np.asarray(padded), atol=1e-12)


def test_polish_finds_a_spike_narrower_than_adams_first_step():
    """A spike of width 1e-4 (zero gradient outside it), starts 1.5–8 widths away: Adam (first step
    1e-2) stays at 0, the polish (multi-scale moves down to the finest scale) climbs it."""
    width = 1e-4
    err = lambda params, X: jnp.maximum(0.0, 1.0 - jnp.abs(X[0, 0] - 0.3137) / width)  # 0 outside the spike
    offsets = jnp.array([1.5, -1.5, 3.0, -3.0, 5.0, -5.0, 8.0, -8.0]) * width
    X0 = jnp.stack([jnp.array([[0.3137], [0.6]]) + jnp.array([[o], [0.0]]) for o in offsets])
    adam, _, polished, _ = ascend(err, lambda X: jnp.clip(X, 0, 1), None, X0, 5, 1e-2, budget=DEFAULT_BUDGET,
                                  finest_scale=width / 4)
    assert float(jnp.max(adam)) == 0.0 and float(jnp.max(polished)) > 0.5


def test_polish_never_moves_the_padding_mask():
    err = lambda params, X: jnp.sum(X[:, 0])  # gradient pushes the tokens up; the mask must stay
    X0 = jnp.asarray(with_mask(np.full((1, 2, 1), 0.5), 3))
    _, _, _, X = ascend(err, PaddedDomain(lookup("C1").build(2, 0.1).task.domain, "min"), None, X0, 3, 1e-2,
                        budget=QUICK_BUDGET)
    assert np.array_equal(np.asarray(X)[0, :, -1], np.asarray(X0)[0, :, -1])


def test_finest_scale_reaches_the_decoder_cell_and_one_over_beta():
    built = lookup("C1").build(4, 0.01)
    assert finest_scale(built) <= min(1.0 / built.choices["N"], 1.0 / built.betas[0]) * (1 + 1e-9)


def test_every_shipped_localized_mutant_is_checked_here():
    from infoflow_jax.catalog import catalog
    from infoflow_jax.verification.mutants import LOCALIZED_MUTANTS

    shipped = {(name, m) for name, spec in catalog().items() if hasattr(spec, "build")
               for m in getattr(spec, "mutants", {}) if m in LOCALIZED_MUTANTS}
    assert shipped == {(c[0], c[1]) for c in LOCALIZED}
