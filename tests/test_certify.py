"""The global certificate (`infoflow certify`): sound box bounds, the branch-and-bound verdicts, the CLI.

(tests/test_intervals.py covers the model's interval bounds, ``output_bounds``; here: the
target bounds, the linear bounds through deep FFNs, the box error bound, the reductions.)
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infoflow_jax.core.precision import use_float64

use_float64()

from infoflow_jax.catalog import lookup  # noqa: E402
from infoflow_jax.core.domains import Margin  # noqa: E402
from infoflow_jax.core.intervals import Interval, bound_plan  # noqa: E402
from infoflow_jax.core.linear_bounds import linear_ffn_bounds, read_coordinates  # noqa: E402
from infoflow_jax.core.tasks import (CoupledTopR, DecoupledTopR, DRetrieval, FunctionTask, KthLargest,  # noqa: E402
                                     MaxRetrieval, TopKMean, TwoHop)
from infoflow_jax.verification.certify import (box_program, linear_reads, certify, certify_built,  # noqa: E402
                                               model_permutation_invariant, tighten)
from infoflow_jax.verification.estimators import QUICK_BUDGET  # noqa: E402
from infoflow_jax.verification.target_bounds import target_bounds  # noqa: E402

TASKS = [MaxRetrieval(3), TwoHop(3), KthLargest(3, k=2), CoupledTopR(3, r=2, gamma=0.2),
         DecoupledTopR(3, r=2, gamma=0.2), DRetrieval(3, d=2, D=2), TopKMean(3, k=2, gamma=0.1)]


def _box_and_points(seed: int, T: int, d: int, n: int = 64):
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(0, 1, (2, T, d))
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    if rng.uniform() < 0.5:  # narrow boxes too (the bounds must hold at every scale)
        hi = lo + (hi - lo) * 1e-3
    pts = lo + (hi - lo) * rng.uniform(0, 1, (n, T, d))
    pts[0], pts[1] = lo, hi  # the corners, where the order statistics attain their extremes
    return lo, hi, pts


@pytest.mark.parametrize("task", TASKS, ids=lambda t: type(t).__name__)
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1))
def test_no_sampled_point_of_a_box_has_a_target_outside_the_target_bounds(task, seed):
    lo, hi, pts = _box_and_points(seed, task.T, task.d)
    tlo, thi = (float(v[0]) for v in target_bounds(task, lo[None], hi[None]))
    values = np.asarray(task.target(jnp.asarray(pts)))
    assert np.all(tlo <= values) and np.all(values <= thi)


def _random_deep_ffn(rng, E: int):
    widths = [E, 5, 7, 4, E]
    Ws = tuple(jnp.asarray(rng.normal(size=(a, b)) * rng.uniform(0.3, 3)) for a, b in zip(widths[:-1], widths[1:]))
    bs = tuple(jnp.asarray(rng.normal(size=(b,))) for b in widths[1:])
    return Ws, bs


def _ffn(Ws, bs, h):
    z = h
    for i, (W, b) in enumerate(zip(Ws, bs)):
        z = z @ W + b
        if i < len(Ws) - 1:
            z = jax.nn.relu(z)
    return z


_linear = jax.jit(lambda Ws, bs, lo, hi: tuple(vars(linear_ffn_bounds(Ws, bs, (False,) * 4, Interval(lo, hi))).values()))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1), scale=st.sampled_from([1.0, 1e-2, 1e-5]))
def test_no_sampled_point_of_a_box_leaves_the_linear_bounds_of_a_random_deep_relu_net(seed, scale):
    rng = np.random.default_rng(seed)
    Ws, bs = _random_deep_ffn(rng, 3)
    c = rng.normal(size=(2, 3))
    r = np.abs(rng.normal(size=(2, 3))) * scale
    lo, hi = jnp.asarray(c - r), jnp.asarray(c + r)
    blo, bhi = _linear(Ws, bs, lo, hi)
    pts = jnp.asarray(c + r * rng.uniform(-1, 1, (256, 2, 3)))
    y = _ffn(Ws, bs, pts)
    assert bool(jnp.all((blo <= y) & (y <= bhi)))


def test_read_coordinates_are_the_nonzero_rows_of_the_first_layer():
    W = np.zeros((5, 3))
    W[1, 0], W[4, 2] = 1.0, -2.0
    assert read_coordinates(W) == (1, 4)


@pytest.fixture(scope="module")
def c1():
    return lookup("C1").build(2, 0.1)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1))
def test_no_sampled_point_of_a_box_has_an_error_above_the_box_upper_bound(c1, seed):
    graphdef, state = c1.split()
    plan = bound_plan(graphdef, state)
    program = box_program(graphdef, c1.task, c1.task.domain, linear_reads(plan))
    lo, hi, pts = _box_and_points(seed, 2, 1, n=32)
    upper = float(program(plan, state, jnp.asarray(np.repeat(lo[None], 32, 0)),
                          jnp.asarray(np.repeat(hi[None], 32, 0)))[0][0])
    err = np.abs(np.asarray(jax.vmap(c1.predict)(jnp.asarray(pts))) - np.asarray(c1.task.target(jnp.asarray(pts))))
    assert np.all(err <= upper)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1))
def test_tightening_to_a_margin_chain_keeps_every_point_of_the_domain_in_the_box(seed):
    T, dom = 3, Margin(0.2, 3)
    lo, hi, pts = _box_and_points(seed, T, 1, n=512)
    pts = np.sort(pts, axis=1)[:, ::-1]  # the sorted region x_1 ≥ x_2 ≥ x_3
    inside = pts[np.asarray(dom.contains(jnp.asarray(pts), tol=0.0))]
    inside = inside[np.all((inside >= lo) & (inside <= hi), axis=(1, 2))]
    tlo, thi, empty = tighten(lo[None], hi[None], np.arange(T)[None], np.array([0.2, 0.2]))
    assert not (len(inside) and empty[0])
    assert np.all((inside >= tlo[0]) & (inside <= thi[0]))


def test_a_box_with_no_point_of_the_margin_chain_is_empty():
    lo = np.array([[[0.5], [0.45]]])
    hi = np.array([[[0.55], [0.5]]])
    assert tighten(lo, hi, np.array([[0, 1]]), np.array([0.2]))[2][0]


def test_permutation_invariance_is_read_from_the_model_configuration():
    assert model_permutation_invariant(lookup("C1").build(2, 0.1).compiled.model.cfg)
    assert not model_permutation_invariant(lookup("C4").build(2, 0.1, k=2).compiled.model.cfg)  # positional


@pytest.fixture(scope="module")
def c1_record(c1):
    return certify(c1, budget_seconds=120, budget=QUICK_BUDGET)


def test_certify_certifies_C1_at_T2_eps_1e_1(c1_record):
    assert c1_record.certificate == "certified"
    assert c1_record.certified_upper <= c1_record.bound <= c1_record.eps


def test_certified_upper_is_at_least_the_estimate(c1_record):
    assert c1_record.err_estimate <= c1_record.certified_upper


@pytest.mark.parametrize("mutant", ["knot-dropped", "beta-small"])
def test_a_shipped_mutant_of_C1_is_never_certified(mutant):
    built = lookup("C1").build(2, 0.1, mutant=mutant)
    record = certify(built, budget_seconds=20, budget=QUICK_BUDGET)
    assert record.certificate in ("refuted", "open")


def test_a_refuted_mutant_carries_a_witness_whose_error_exceeds_the_bound():
    built = lookup("C1").build(2, 0.1, mutant="knot-dropped")
    cert = certify_built(built, budget_seconds=20)
    if cert.status == "refuted":
        X = jnp.asarray(cert.witness)
        assert abs(float(built.predict(X)) - float(built.task.target(X))) > built.bound
    else:
        assert cert.status == "open"


@dataclasses.dataclass(frozen=True)
class _SubclassedMaxRetrieval(MaxRetrieval):
    """A subclass may change the target: bounds are dispatched on the exact class, so it has none."""


def test_a_task_without_interval_extension_is_open_with_the_reason_not_a_crash(c1):
    cert = certify_built(dataclasses.replace(c1, task=_SubclassedMaxRetrieval(2)), budget_seconds=5)
    assert cert.status == "open" and "has no interval extension" in cert.reason


def test_a_user_task_whose_fn_has_a_primitive_without_a_rule_is_open_naming_it(c1):
    # (a user's fn is otherwise bounded automatically: tests/test_certify_function_task.py)
    user = FunctionTask(T=2, fn=lambda X: jax.scipy.special.erfinv(0.5 * jnp.max(X[..., 0], -1)))
    cert = certify_built(dataclasses.replace(c1, task=user), budget_seconds=5)
    assert f"{cert.status}: {cert.reason}" == "open: not certifiable: primitive erf_inv in the target"


@pytest.mark.parametrize("argv, names", [
    (["certify", "C1", "--budget-seconds", "0"], "budget-seconds"),
    (["certify", "C1", "--eps", "0"], "eps"),
    (["certify", "C1", "--T", "0"], "T"),
    (["certify", "L1-softmax-max"], "name"),
    (["certify", "C1", "--mutant", "nope"], "mutant"),
])
def test_bad_input_to_certify_exits_2_with_one_line_naming_the_argument(argv, names, capsys):
    from infoflow_jax.cli.app import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and names in err[0]


@pytest.mark.slow
def test_certify_acceptance_grid_certifies_every_real_construction_and_no_mutant():
    from infoflow_jax.cli.app import main

    assert main(["certify", "C1", "C2", "C3", "C4", "C6-coupled", "C6-decoupled", "C7",
                 "--T", "2", "--k", "2", "--eps", "1e-1", "--mutant", "all", "--json", "--quick"]) == 0


# ----------------------------------------------------------------------------- the retrieve-then-decode split
from infoflow_jax.core.model import apply  # noqa: E402
from infoflow_jax.verification.certify_split import prepare_split, split_bounds  # noqa: E402


@pytest.fixture(scope="module")
def c7():
    return lookup("C7").build(2, 0.1)


def _with_split(built):
    """(graphdef, state, split) of a build (split None when the bound does not apply)."""
    graphdef, state = built.split()
    return graphdef, state, prepare_split(built, graphdef, state)[0]


@pytest.fixture(scope="module")
def c7_split(c7):
    return _with_split(c7)


_split_program = jax.jit(jax.vmap(split_bounds, in_axes=(None, None, 0, 0)))
_model_batch = jax.jit(jax.vmap(apply, in_axes=(None, None, 0)), static_argnums=0)


def _split_violations(built, graphdef, state, split, seed: int, n_boxes: int = 64, n_points: int = 48):
    """Sampled points (corners included) whose |Ĥ − H| exceeds their box's split upper bound,
    or whose Ĥ leaves its box's Ĥ range."""
    rng = np.random.default_rng(seed)
    T, d = built.task.T, built.task.d
    width = 10.0 ** rng.uniform(-3, -0.3, (n_boxes, 1, 1))
    c = rng.uniform(0, 1, (n_boxes, T, d))
    lo, hi = np.clip(c - width / 2, 0, 1), np.clip(c + width / 2, 0, 1)
    up, net_lo, net_hi = (np.asarray(a) for a in _split_program(split, bound_plan(graphdef, state),
                                                                  jnp.asarray(lo), jnp.asarray(hi)))
    t = rng.uniform(0, 1, (n_boxes, n_points, T, d))
    t[:, :2] = np.round(t[:, :2])  # corners: ties and extremes of the softmax sit there
    pts = (lo[:, None] + (hi - lo)[:, None] * t).reshape(-1, T, d)
    y = np.asarray(_model_batch(graphdef, state, jnp.asarray(pts))).reshape(n_boxes, n_points)
    h = np.asarray(built.task.target(jnp.asarray(pts))).reshape(n_boxes, n_points)
    bad_err = np.abs(y - h) > up[:, None]
    bad_range = (y < net_lo[:, None]) | (y > net_hi[:, None])
    return int(np.sum(bad_err)), int(np.sum(bad_range))


def test_the_split_bound_applies_to_C7(c7_split):
    assert c7_split[2] is not None


def test_the_split_bound_does_not_apply_to_a_task_that_is_not_G_of_max_features():
    c2 = lookup("C2").build(2, 0.1)
    split, reason = prepare_split(c2, *c2.split())
    assert split is None and "max-features" in reason


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1))
def test_no_sampled_point_of_a_box_exceeds_the_split_bound_of_C7(c7, c7_split, seed):
    assert _split_violations(c7, *c7_split, seed) == (0, 0)


def test_the_sampling_check_catches_a_split_bound_without_its_decoder_and_retrieval_terms(c7, c7_split):
    graphdef, state, split = c7_split
    broken = dataclasses.replace(split, cell_err=jnp.zeros_like(split.cell_err), lip_G=jnp.asarray(0.0))
    assert _split_violations(c7, graphdef, state, broken, 0)[0] > 0


def _perturbed_kuhn(built, seed: int, scale: float, last_only: bool):
    """The state with the FFN's weights multiplied by (1 + scale·N(0,1)) entrywise (only its
    last layer — the vertex values — when ``last_only``)."""
    rng = np.random.default_rng(seed)
    graphdef, state = built.split()
    n_ffn = len(built.compiled.model.blocks[0].ffn.W)

    def touch(path, x):
        keys = [str(getattr(p, "key", getattr(p, "idx", p))) for p in path]
        if "ffn" not in keys or "W" not in keys:
            return x
        if last_only and str(n_ffn - 1) not in keys:
            return x
        return x * (1 + scale * rng.normal(size=x.shape))

    return graphdef, jax.tree_util.tree_map_with_path(touch, state)


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1), scale=st.sampled_from([1e-6, 1e-2, 0.3]),
       last_only=st.booleans())
def test_a_perturbed_kuhn_block_makes_the_split_bound_fall_back_or_stay_sound(c7, seed, scale, last_only):
    graphdef, state = _perturbed_kuhn(c7, seed, scale, last_only)
    split, reason = prepare_split(c7, graphdef, state)
    if split is None:
        assert reason  # fell back, saying why
        return
    assert _split_violations(c7, graphdef, state, split, seed, n_boxes=32) == (0, 0)


def test_a_C7_mutant_is_not_certified_unless_it_fails_a_step():
    record = certify(lookup("C7").build(2, 0.1, mutant="vertex-shifted"), budget_seconds=30, budget=QUICK_BUDGET)
    assert record.certificate != "certified" or record.step_certified is False


@pytest.mark.slow
@pytest.mark.parametrize("mutant", ["head-dropped", "heads-swapped", "vertex-shifted"])
def test_no_C7_mutant_is_certified_unless_it_fails_a_step(mutant):
    record = certify(lookup("C7").build(2, 0.1, mutant=mutant), budget_seconds=120, budget=QUICK_BUDGET)
    assert record.certificate != "certified" or record.step_certified is False


@pytest.mark.slow
def test_certify_certifies_C7_at_T2_eps_1e_1():
    record = certify(lookup("C7").build(2, 0.1), budget_seconds=300, budget=QUICK_BUDGET)
    assert record.certificate == "certified"
    assert record.err_estimate <= record.certified_upper <= record.bound <= record.eps


def test_the_sampling_check_catches_a_split_bound_that_overstates_the_heads_beta(c7, c7_split):
    graphdef, state, split = c7_split
    broken = dataclasses.replace(split, beta_hat=3 * split.beta_hat)
    assert _split_violations(c7, graphdef, state, broken, 0)[0] > 0


# ----------------------------------------------------------------------------- the split with a one-input decoder
from infoflow_jax.core.functions import DEFAULT_F  # noqa: E402
from infoflow_jax.core.pwl import PiecewiseLinear  # noqa: E402
from infoflow_jax.verification.certify_cells import one_input_cells  # noqa: E402


@pytest.fixture(scope="module")
def c1_T4():
    return lookup("C1").build(4, 0.1)


@pytest.fixture(scope="module")
def c1_T4_split(c1_T4):
    return _with_split(c1_T4)


def test_the_split_bound_applies_to_C1_retrieve_then_one_input_decode(c1_T4_split):
    assert c1_T4_split[2] is not None and c1_T4_split[2].D == 1


@settings(max_examples=2, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1))
def test_no_sampled_point_of_a_box_exceeds_the_split_bound_of_C1_at_T4(c1_T4, c1_T4_split, seed):
    assert _split_violations(c1_T4, *c1_T4_split, seed) == (0, 0)


def test_the_sampling_check_catches_a_C1_split_bound_without_its_retrieval_term(c1_T4, c1_T4_split):
    graphdef, state, split = c1_T4_split
    broken = dataclasses.replace(split, lip_G=jnp.asarray(0.0))
    assert _split_violations(c1_T4, graphdef, state, broken, 0)[0] > 0


@settings(max_examples=2, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1), scale=st.sampled_from([1e-6, 1e-2, 0.3]),
       last_only=st.booleans())
def test_a_perturbed_one_input_decoder_makes_the_split_bound_fall_back_or_stay_sound(c1_T4, seed, scale,
                                                                                      last_only):
    graphdef, state = _perturbed_kuhn(c1_T4, seed, scale, last_only)  # moved knots, changed values
    split, reason = prepare_split(c1_T4, graphdef, state)
    if split is None:
        assert reason  # fell back, saying why
        return
    assert _split_violations(c1_T4, graphdef, state, split, seed, n_boxes=32) == (0, 0)


@settings(max_examples=2, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1), n=st.sampled_from([1, 7, 64]))
def test_every_sampled_point_of_a_cell_is_within_its_error_and_range_bounds(seed, n):
    rng = np.random.default_rng(seed)
    k = 12  # a random one-hidden-layer ReLU net of one input, knots anywhere
    pl = PiecewiseLinear.from_units(rng.normal(size=k), rng.normal(size=k), rng.normal(size=k))
    cells = one_input_cells(pl, DEFAULT_F, DEFAULT_F.lipschitz, n, max_points=1 << 12)
    z = np.concatenate([rng.uniform(0, 1, 4000), np.arange(n + 1) / n])
    c = np.minimum((z * n).astype(int), n - 1)
    net = np.asarray(pl.evaluate(jnp.asarray(z)))
    err = np.abs(net - np.asarray(DEFAULT_F(jnp.asarray(z))))
    assert np.all(err <= cells.err[c]) and np.all((net >= cells.lo[c]) & (net <= cells.hi[c]))


def test_the_sampling_check_catches_a_C1_split_bound_without_its_decoder_term(c1_T4):
    graphdef, state = _perturbed_kuhn(c1_T4, 0, 0.3, True)  # decoder values off by ~30 %
    split, _ = prepare_split(c1_T4, graphdef, state)
    broken = dataclasses.replace(split, cell_err=jnp.zeros_like(split.cell_err), err_max=jnp.asarray(0.0))
    assert _split_violations(c1_T4, graphdef, state, split, 0) == (0, 0)
    assert _split_violations(c1_T4, graphdef, state, broken, 0)[0] > 0


@pytest.mark.slow
def test_certify_certifies_C1_at_T4_eps_1e_2_by_the_split_bound():
    cert = certify_built(lookup("C1").build(4, 0.01), budget_seconds=60)
    assert cert.status == "certified" and cert.upper <= 0.01


# ----------------------------------------------------------------------------- memory
import infoflow_jax.verification.certify as certify_module  # noqa: E402


def _program_limited_to(monkeypatch, max_boxes: int):
    """box_program whose compiled call fails like XLA out of memory above ``max_boxes`` boxes."""
    real = certify_module.box_program

    def limited(*args, **kwargs):
        program = real(*args, **kwargs)

        def run(plan, state, lo, hi, **kw):
            if lo.shape[0] > max_boxes:
                raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 40611258704 bytes.")
            return program(plan, state, lo, hi, **kw)
        return run

    monkeypatch.setattr(certify_module, "box_program", limited)
    monkeypatch.setattr(certify_module, "prepare_split", lambda *a: (None, "off"))  # interval bounds: many boxes


@pytest.mark.slow
def test_a_batch_that_does_not_fit_in_memory_is_retried_smaller(monkeypatch, c1):
    _program_limited_to(monkeypatch, 256)
    cert = certify_built(c1, budget_seconds=60)
    assert cert.status == "certified" and any("batch reduced to 256" in n for n in cert.notes)


def test_a_model_whose_smallest_batch_does_not_fit_is_open_with_the_reason(monkeypatch, c1):
    _program_limited_to(monkeypatch, 0)
    cert = certify_built(c1, budget_seconds=60)
    assert cert.status == "open" and "does not fit in memory" in cert.reason
