"""`ifj.certify` on a user's own target (a FunctionTask): the automatic interval extension of its
fn, the declared-Lipschitz fallback, and the refusal.

The construction is the one-layer soft-min retriever of verify/own_construction.py (H(X) =
F(min_s x_s), F(u) = sin(2u)/2), rebuilt here from public names so that its decoder can be
bumped: a mutant whose true error is 1.1× the claimed bound must never be certified (the bump
reuses the decoder's units — verification/mutants.py's one_cell_bump would add three, and a
mutant of other widths compiles every program again, ≈ 7 s here).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import infoflow_jax as ifj

ifj.use_float64()

from infoflow_jax.verification.certify import certify_built  # noqa: E402
from infoflow_jax.core.numpy_forward import predict_np  # noqa: E402
from infoflow_jax.verification.target_bounds import NotCertifiable, target_bounds, target_bounds_for  # noqa: E402

F = ifj.LipschitzFn(lambda u: 0.5 * jnp.sin(2.0 * u), 1.0, "sin(2u)/2")
G = ifj.LipschitzFn(lambda u: F(1.0 - u), F.lipschitz, "F(1 − u)")  # the decoder sees m = max(1 − x)
T, EPS = 2, 0.1
TASK = ifj.FunctionTask(T=T, fn=lambda X: F(jnp.min(X[..., 0], axis=-1)), lipschitz_constant=F.lipschitz,
                        task_id="Tmin", title="min retrieval")


def min_retriever(bump=None) -> ifj.Built:
    """verify/own_construction.py's build(T=2, ε=0.1); ``bump(decoder) → decoder`` replaces the
    decoder's network (a mutant: the claim is unchanged)."""
    L_F = F.lipschitz
    N = ifj.knots_for(L_F, EPS / 2)  # L_F/(2N) ≤ ε/2
    beta = ifj.beta_for_soft_max(T, EPS / (2 * L_F))  # L_F·e_max ≤ ε/2
    terms = {"attention L_F·e_max(T,β)": L_F * ifj.e_max(T, beta), "decoder L_F/(2N)": ifj.pl_decoder_error(L_F, N)}
    decoder = tuple(ifj.piecewise_linear_decoder(G, N))
    prog = ifj.Program()
    one, x = prog.constant("one"), prog.token_input("x")
    layer = prog.layer()
    layer.attend(ifj.max_retrieval(query=beta * one, key=one - x, into="m", note="m ← soft-max over tokens of 1 − x"))
    layer.ffn(ifj.FFNBlock((prog["m"],), decoder if bump is None else bump(decoder), ("y",), note="y ← Ĝ(m)"))
    prog.readout(prog["y"])
    return ifj.Built(name="Cmin", task=TASK, compiled=prog.compile(), eps=EPS, bound=sum(terms.values()),
                     bound_terms=terms, betas=[beta], choices={"N": N}, mutant=None if bump is None else "knot-bump")


GRID = np.array(list(itertools.product(np.linspace(0, 1, 401), repeat=T)))[..., None]  # (401², T, 1)


def grid_error(built) -> float:
    """max |Ĥ − H| over a 401 × 401 grid of the cube: a lower bound on the sup error."""
    return float(np.max(np.abs(predict_np(built.compiled.model, GRID) - np.asarray(TASK.fn(jnp.asarray(GRID))))))


def knot_bump(net, height: float, rng: np.random.Generator) -> tuple:
    """The L3 decoder (units relu(u − j/N), j = 0..N, the last at u = 1) plus a tent of height
    ±``height`` over the two cells around one inner knot j/N (knot and sign drawn from ``rng``),
    made from the units already there — (h·N)·(relu(u − t_{j−1}) − 2·relu(u − t_j) + relu(u − t_{j+1}))
    on their output weights — so the mutant has the construction's widths and shares its
    compiled programs (verification/estimators.py, verification/certify.py)."""
    first, last = net
    N = last.W.shape[0] - 1
    j = int(rng.integers(1, N))
    sign = 1.0 if rng.random() < 0.5 else -1.0
    W2 = np.array(last.W, copy=True)
    W2[j - 1:j + 2, 0] += sign * height * N * np.array([1.0, -2.0, 1.0])
    return first, ifj.Dense(W2, last.b)


def bumped(factor: float, seed: int = 0) -> ifj.Built:
    """The construction with a knot bump (:func:`knot_bump`) whose height makes the grid error
    ``factor`` × the claimed bound (so the true error is at least that). Ĥ is affine in the
    height (it only scales output weights): Ĥ_h = Ĥ_0 + h·(Ĥ_1 − Ĥ_0)."""
    base = min_retriever()
    with_height = lambda h: min_retriever(lambda net: knot_bump(net, h, np.random.default_rng(seed)))  # noqa: E731
    y0 = predict_np(base.compiled.model, GRID)
    shape = predict_np(with_height(1.0).compiled.model, GRID) - y0
    e0 = y0 - np.asarray(TASK.fn(jnp.asarray(GRID)))
    lo, hi = 0.0, 4 * base.bound  # max |e0 + h·shape| is convex in h, ≤ bound at 0, > factor·bound at hi
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.max(np.abs(e0 + mid * shape)) < factor * base.bound else (lo, mid)
    return with_height(hi)


SMALL = dict(budget=ifj.QUICK_BUDGET, batch=32)  # small estimate; one compiled batch shape (≈ 2 s less here)


def test_the_rebuilt_construction_is_the_one_of_verify_own_construction():
    from verify.own_construction import build

    theirs, ours = build(T, EPS), min_retriever()
    assert theirs.bound == ours.bound
    assert np.array_equal(predict_np(theirs.compiled.model, GRID), predict_np(ours.compiled.model, GRID))


@pytest.fixture(scope="module")
def real_record():
    return ifj.certify(min_retriever(), budget_seconds=60, **SMALL)


def test_a_users_min_retrieval_construction_is_certified_at_T2_eps_1e_1(real_record):
    assert real_record.certificate == "certified"
    assert real_record.err_estimate <= real_record.certified_upper <= real_record.bound <= real_record.eps


def test_the_certificate_of_a_user_task_says_its_target_was_bounded_by_the_automatic_extension(real_record):
    assert "automatic interval extension of fn" in real_record.certificate_note


@pytest.fixture(scope="module")
def mutant():
    return bumped(1.1)


def test_the_bumped_mutant_errs_by_1_1_times_the_claimed_bound(mutant):
    # the premise of the next test: its true error (≥ the grid's) exceeds the bound it claims
    assert grid_error(mutant) >= 1.1 * mutant.bound * (1 - 1e-9)


def test_a_min_retrieval_mutant_erring_by_1_1_times_the_bound_is_never_certified(mutant):
    record = ifj.certify(mutant, budget_seconds=20, **SMALL)
    assert record.certificate in ("refuted", "open")


def test_the_branch_and_bound_alone_never_certifies_the_1_1x_mutant(mutant):
    # without the estimate in front (certify_built): the box bounds themselves must not close
    cert = certify_built(mutant, budget_seconds=60, batch=32)
    assert cert.status in ("refuted", "open")


# ----------------------------------------------------------------------------- fallback and refusal
def with_unsupported_primitive(lipschitz: float) -> ifj.FunctionTask:
    """H = F(min x) + 0·erfinv(x_{1,0}/2): the same target, through a primitive without a rule."""
    fn = lambda X: F(jnp.min(X[..., 0], axis=-1)) + 0.0 * jax.scipy.special.erfinv(0.5 * X[..., 0, 0])  # noqa: E731
    return ifj.FunctionTask(T=T, fn=fn, lipschitz_constant=lipschitz, task_id="Tmin-erfinv")


def _boxes_and_points(seed=0, n=32, m=64):
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(0, 1, (2, n, T, 1))
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    pts = lo[:, None] + (hi - lo)[:, None] * rng.uniform(size=(n, m, T, 1))
    pts[:, 0], pts[:, 1] = lo, hi
    return lo, hi, pts


def test_a_missing_rule_with_a_declared_lipschitz_constant_falls_back_to_it_and_says_so():
    task = with_unsupported_primitive(F.lipschitz)
    note = target_bounds_for(task).note(task)
    assert "declared Lipschitz constant 1" in note and "primitive erf_inv" in note


def test_the_lipschitz_fallback_contains_every_sampled_value():
    task = with_unsupported_primitive(F.lipschitz)
    lo, hi, pts = _boxes_and_points()
    blo, bhi = (np.asarray(v)[:, None] for v in jax.jit(lambda l, h: target_bounds(task, l, h))(lo, hi))
    vals = np.asarray(jax.jit(task.target)(jnp.asarray(pts.reshape(-1, T, 1)))).reshape(pts.shape[:2])
    assert np.all((blo <= vals) & (vals <= bhi))


def test_a_task_whose_fn_has_every_rule_is_bounded_automatically_even_with_a_lipschitz_constant():
    assert "automatic" in target_bounds_for(TASK).note(TASK)


def test_a_missing_rule_without_a_lipschitz_constant_is_not_certifiable_naming_the_primitive():
    task = with_unsupported_primitive(float("nan"))
    with pytest.raises(NotCertifiable) as exc:
        target_bounds_for(task)
    assert str(exc.value) == "not certifiable: primitive erf_inv in the target"


def test_certify_reports_open_with_the_missing_primitive():
    built = min_retriever()
    built = ifj.Built(name="Cmin", task=with_unsupported_primitive(float("nan")), compiled=built.compiled, eps=EPS,
                      bound=built.bound, bound_terms=built.bound_terms, betas=built.betas, choices=built.choices)
    cert = certify_built(built, budget_seconds=5)
    assert f"{cert.status}: {cert.reason}" == "open: not certifiable: primitive erf_inv in the target"
