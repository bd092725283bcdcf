"""Proof-step checks: real constructions are step-certified, mutants and hand edits fail the step
they break, and every certificate is sound (never below the error it claims to bound)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infoflow_jax.catalog import lookup
from infoflow_jax.cli.verify import TABLE
from infoflow_jax.core.pwl import layer_ffn_weights
from infoflow_jax.core.relu_net import apply_layer
from infoflow_jax.core.samplers import sample
from infoflow_jax.verification.estimators import Budget
from infoflow_jax.verification.records import expected_outcome
from infoflow_jax.verification.steps import check_steps, first_failing
from infoflow_jax.verification.verify import verify

TINY = Budget(samples=64, starts=4, steps=20)

# (name, T, eps, k): a small point of each default grid
REAL = [("C1", 4, 1e-1, None), ("C2", 4, 1e-2, None), ("C3", 4, 1e-2, 2), ("C3", 8, 1e-1, 3),
        ("C8", 4, 1e-1, 2), ("C6-decoupled", 8, 1e-2, 2), ("C6-coupled", 8, 0.3, 2), ("C7", 4, 0.1, None),
        ("C5", 2, 0.3, None), ("C4", 4, 1e-2, 2)]


def build(name, T, eps, k=None, mutant=None):
    spec = lookup(name)
    return spec.build(T, eps, mutant=mutant, **({"k": k} if spec.uses_k else {}))


def _put(param, value):
    param.set_value(jnp.asarray(value)) if hasattr(param, "set_value") else setattr(param, "value", jnp.asarray(value))


def _ffn_output(model, layer, slots, assign: dict, out: str, Z: np.ndarray) -> np.ndarray:
    """The compiled FFN of ``layer`` on residual rows whose slots ``assign[slot] = column of Z``."""
    H = np.zeros((Z.shape[0], len(slots)))
    for slot, col in assign.items():
        H[:, slots.index(slot)] = Z[:, col]
    h = jnp.asarray(H)
    parts = layer_ffn_weights(model, layer)
    for i, (W, b, grouped) in enumerate(parts):
        h = apply_layer(jnp.asarray(W), jnp.asarray(b), h, grouped)
        if i < len(parts) - 1:
            h = jax.nn.relu(h)
    return np.asarray(h)[:, slots.index(out)]


@pytest.mark.parametrize("name,T,eps,k", REAL)
def test_real_construction_is_step_certified(name, T, eps, k):
    steps, certified = check_steps(build(name, T, eps, k))
    assert certified is True, [s for s in steps if not s["ok"]]


MUTANTS = [(name, T, eps, k, m) for name, T, eps, k in REAL if (name, k) != ("C3", 3)
           for m in lookup(name).mutants]


@pytest.mark.parametrize("name,T,eps,k,mutant", MUTANTS)
def test_shipped_mutant_fails_a_step_the_global_check_or_the_proof_check(name, T, eps, k, mutant):
    built = build(name, T, eps, k, mutant)
    _, certified = check_steps(built)
    if certified is False:
        return
    rec = verify(built, budget=TINY)  # glue defects keep every step: the falsifier or the proof check catches them
    assert not rec.passed or rec.proof_checked is False


def test_one_weakened_self_exclusion_position_fails_the_c4_attention_step():
    """C4 at T = 8: token 5's self-penalty halved (one weight of W_Q): the per-position reading
    of the layer-1 head sees it, and only that step fails."""
    built = build("C4", 8, 1e-2, 2)
    Wq = built.compiled.model.blocks[0].attn.Wq
    W = np.array(Wq[...])
    row = built.compiled.slots.index("pos5")
    col = int(np.flatnonzero(W[0, row])[0])
    W[0, row, col] /= 2
    _put(Wq, W)
    steps, certified = check_steps(built)
    assert not certified and [s["name"] for s in steps if not s["ok"]] == ["attn1:M"]


def test_a_one_cell_bump_in_a_decoder_fails_exactly_that_step():
    """C2's F decoder gets a hat of height 2×tolerance over two cells near the end of its range
    (three output weights changed): the ffn2 step, and only it, fails."""
    built = build("C2", 4, 1e-2)
    N2, tol = built.choices["N2"], next(s.claim.tolerance for s in built.compiled.sites if s.outputs == ("y",))
    W2 = built.compiled.model.blocks[1].ffn.W[1]
    W = np.array(W2[...])
    reads_r = np.array(built.compiled.model.blocks[1].ffn.W[0][...])[built.compiled.slots.index("r")]
    rows = np.flatnonzero(reads_r)  # the decoder's units, knots j/N2 in order
    j = int(0.9 * N2)
    a = 2 * tol * N2  # slope change a on cells j, j+1: a hat of height a/N2 = 2·tol
    W[rows[j], built.compiled.slots.index("y")] += a
    W[rows[j + 1], built.compiled.slots.index("y")] -= 2 * a
    W[rows[j + 2], built.compiled.slots.index("y")] += a
    _put(W2, W)
    steps, certified = check_steps(built)
    assert not certified and [s["name"] for s in steps if not s["ok"]] == ["ffn2:y"]
    assert next(s for s in steps if s["name"] == "ffn2:y")["attained"] >= 1.9 * tol


def test_an_edited_readout_weight_fails_the_readout_step():
    built = build("C1", 4, 1e-1)
    _put(built.compiled.model.w, 1.01 * np.asarray(built.compiled.model.w[...]))
    steps, certified = check_steps(built)
    assert not certified and [s["name"] for s in steps if not s["ok"]] == ["readout"]


def test_a_moved_hat_threshold_in_a_kuhn_block_is_not_affine_per_simplex():
    """C7: one hat unit's bias 1 → 1.5 puts kinks inside simplices; the Kuhn step fails."""
    built = build("C7", 4, 0.1)
    b = built.compiled.model.blocks[0].ffn.b[-2]  # the hat layer: Λ_v = relu(b_v − M⁺ − M⁻), b_v = 1
    B = np.array(b[...])
    B[B.shape[0] // 2, 0] = 1.5
    _put(b, B)
    steps, certified = check_steps(built)
    failing = [s for s in steps if not s["ok"]]
    assert not certified and [s["name"] for s in failing] == ["ffn1:y"] and "not affine" in failing[0]["detail"]


@pytest.mark.parametrize("name,mutant", [("C1", None), ("C1", "knot-dropped"), ("C2", None), ("C2", "psi-knot-dropped")])
def test_one_input_certificate_bounds_the_densely_sampled_error(name, mutant):
    built = build(name, 4, 1e-2, mutant=mutant)
    steps, _ = check_steps(built)
    for site, step in zip(built.compiled.sites, steps):
        if site.kind != "ffn":
            continue
        (lo, hi), = site.claim.intervals
        z = np.concatenate([np.linspace(lo, hi, 20001), np.random.default_rng(0).uniform(lo, hi, 20000)])
        reads = dict(site.claim.input.coeffs)  # m − x or a single slot: put z on the positive slot
        slot = next(s for s, c in reads.items() if c == 1.0)
        net = _ffn_output(built.compiled.model, site.layer, built.compiled.slots, {slot: 0}, site.outputs[0], z[:, None])
        sampled = np.max(np.abs(net - np.asarray(site.claim.target(z))))
        assert sampled <= step["certified_error"], (step["name"], sampled, step["certified_error"])


@pytest.mark.parametrize("mutant", [None, "vertex-shifted"])
def test_kuhn_certificate_bounds_the_densely_sampled_error(mutant):
    built = build("C6-coupled", 8, 0.3, 2, mutant)
    steps, _ = check_steps(built)
    site = built.compiled.sites[-1]
    lo, hi = site.claim.box
    g = np.linspace(lo, hi, 301)
    Z = np.concatenate([np.stack(np.meshgrid(g, g), -1).reshape(-1, 2),
                        np.random.default_rng(1).uniform(lo, hi, (20000, 2))])
    net = _ffn_output(built.compiled.model, site.layer, built.compiled.slots, {"m1": 0, "z": 1}, "y", Z)
    sampled = np.max(np.abs(net - np.asarray(site.claim.target(np.clip(Z, 0.0, 1.0)))))
    cert = next(s["certified_error"] for s in steps if s["name"] == "ffn2:y")
    assert sampled <= cert, (sampled, cert)


@pytest.mark.parametrize("mutant", [None, "beta-small"])
def test_attention_certificate_bounds_the_sampled_retrieval_error(mutant):
    built = build("C1", 16, 1e-1, mutant=mutant)
    steps, _ = check_steps(built)
    X = jnp.concatenate([sample(s, jax.random.PRNGKey(0), 512, 16, 1, built.task.domain)
                         for s in ("many_near_max", "near_tie", "uniform")])
    m = jax.vmap(lambda x: built.compiled.read_slot(x, "m", 1)[0])(X)
    sampled = float(jnp.max(jnp.abs(m - jnp.max(X[..., 0], axis=-1))))
    assert sampled <= steps[0]["certified_error"]


def test_steps_that_claim_more_than_their_bound_term_fail():
    built = build("C1", 4, 1e-1)
    built = dataclasses.replace(built, bound_terms={k: v / 2 for k, v in built.bound_terms.items()})
    steps, certified = check_steps(built)
    assert certified is False and {s["name"] for s in steps if not s["ok"]} == {f"term:{t}" for t in built.bound_terms}


def test_a_real_row_that_is_not_step_certified_is_unexpected_and_a_mutant_failing_a_step_is_caught():
    assert not expected_outcome({"passed": True, "mutant": None, "step_certified": False})
    assert expected_outcome({"passed": True, "mutant": "m", "step_certified": False})
    assert expected_outcome({"passed": True, "mutant": None})  # records without step checks


def test_the_record_and_the_table_name_the_first_failing_step():
    rec = verify(build("C1", 4, 1e-1, mutant="beta-small"), budget=TINY)
    assert rec.step_certified is False and first_failing(rec.steps) == "attn1:m"
    assert "attn1:m" in TABLE.row(rec)


def test_a_kuhn_block_too_large_to_check_is_reported_not_certified_instead_of_exhausting_memory():
    from infoflow_jax.verification.steps import check_steps

    steps, certified = check_steps(lookup("C7").build(16, 0.1, D=3, d=2))  # ~24 GB if attempted
    assert certified is False
    assert any(s["detail"] and s["detail"].startswith("not checked:") and not s["ok"] for s in steps)
