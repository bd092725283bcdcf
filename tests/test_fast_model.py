"""The exact fast forward (core/fast_model.py) is the dense model, to float64 rounding, for any weights."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import dense_and_fast
from flax import nnx

import constructions
from infoflow_jax.core.fast_model import MIN_FAST_UNITS, apply_fast, fast_plan
from infoflow_jax.core.samplers import NumpyRandom
from infoflow_jax.verification.estimators import Budget, draw
from infoflow_jax.verification.verify import verify

SPECS = {spec.name: spec for spec in constructions.CATALOG}
UNIT_ROUNDOFF = 2.0 ** -53
TINY_BUDGET = Budget(samples=64, grid_points=81, starts=4, steps=20, chunk=64)


def small_build(name, T=4):
    """A catalog entry at small T, its coarsest default ε (C5's memorizer table grows like
    (1/ε)^T, so it is built at T = 2, as in test_pwl)."""
    spec = SPECS[name]
    kw = {"k": spec.default_k[0]} if spec.uses_k else {}
    return spec.build(2 if name == "C5" else T, max(spec.default_eps), **kw)


def samples_and_probes(built, n=32, seed=1):
    """n inputs per sampler of the task's domain (the estimators' own draw) and every
    probe of the construction (its proof's likely worst cases: ties, near-ties, extremes)."""
    task = built.task
    Xs, _ = draw(NumpyRandom(seed), None, domain=task.domain, T=task.T, d=task.d, budget=Budget(samples=n, starts=0))
    Xs = [jnp.asarray(X) for X in Xs] + [task.domain.retract(jnp.asarray(P)) for P in built.probes.values()]
    return jnp.concatenate(Xs)


def rounding_tolerance(betas, reference):
    """Both paths round differently (the fast one sums breakpoint values in extended precision):
    a rounding-level difference δ in a residual slot moves the next softmax by at most β·δ, so
    the allowance is 64 ulps, amplified by 1 + Σβ, relative to the size of the values compared."""
    amplification = 1.0 + sum(float(b) for b in betas if b is not None)
    return 64 * UNIT_ROUNDOFF * amplification * max(1.0, float(np.max(np.abs(np.asarray(reference)))))


def assert_same_values_and_gradients(graphdef, state, betas, Xs, what):
    plan = fast_plan(graphdef, state)
    (dv, dg), (fv, fg) = dense_and_fast((graphdef, state), plan, Xs)
    for name, fast, dense in (("values", fv, dv), ("gradients w.r.t. X", fg, dg)):
        err = float(jnp.max(jnp.abs(fast - dense)))
        tol = rounding_tolerance(betas, dense)
        assert err <= tol, f"{what}: {name} differ by {err:.3g} > {tol:.3g}"
    return plan


@pytest.mark.parametrize("name", ["C1", "C2", "C4"])
def test_fast_forward_equals_dense_in_values_and_gradients_on_samples_and_probes(name):
    built = small_build(name)
    graphdef, state = built.split()
    plan = assert_same_values_and_gradients(graphdef, state, built.betas, samples_and_probes(built), name)
    assert plan.largest_group >= MIN_FAST_UNITS  # the fast path really ran: an L3 decoder became one group


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in SPECS if n not in ("C1", "C2", "C4")])
def test_fast_forward_equals_dense_on_every_other_built_in_construction(name):
    built = small_build(name)
    graphdef, state = built.split()
    assert_same_values_and_gradients(graphdef, state, built.betas, samples_and_probes(built), name)


def test_gradients_agree_at_exact_ties_where_pre_activations_sit_on_a_kink():
    """C4's probes hold three equal zeros: a decoder's input is then exactly one of its
    breakpoints, where the dense relu reports derivative 0 for the unit switching on; the fast
    path must report the same slope there (slopes_at), not the slope of the next piece."""
    built = small_build("C4")
    graphdef, state = built.split()
    X = jnp.zeros((8, 4, 1)).at[:, 0, 0].set(jnp.linspace(0.1, 0.9, 8))
    assert_same_values_and_gradients(graphdef, state, built.betas, X, "C4 at exact ties")


def edited(graphdef, state, edit):
    """The weights after ``edit(model)`` mutates a merged copy (the original state is untouched)."""
    model = nnx.clone(nnx.merge(graphdef, state))
    edit(model)
    return nnx.split(model)


def set_param(p, value):
    p.set_value(jnp.asarray(value)) if hasattr(p, "set_value") else setattr(p, "value", jnp.asarray(value))


@pytest.mark.parametrize("seed", range(2))
def test_random_weight_edits_change_fast_and_dense_identically(seed):
    """Mutant-like edits of C2's compiled weights, random in place and size: every output row
    of a decoder rescaled, every hidden bias shifted (moved knots), one unit's input direction
    tilted by 1e-9 (it leaves its group), attention and embedding weights perturbed. The fast
    plan is re-derived from the edited weights and must equal the edited dense model."""
    built = small_build("C2")
    graphdef, state = built.split()
    rng = np.random.default_rng(seed)

    def edit(model):
        for blk in model.blocks:
            W1, b1, W2 = (np.array(p[...]) for p in (blk.ffn.W[0], blk.ffn.b[0], blk.ffn.W[1]))
            live = np.flatnonzero(np.any(W2 != 0, axis=1))
            W2[live] *= rng.uniform(0.5, 1.5, size=(live.size, 1))
            b1[live] += rng.normal(scale=1e-2, size=live.size)
            j = live[rng.integers(live.size)]
            W1[(np.argmax(np.abs(W1[:, j])) + 1) % W1.shape[0], j] += 1e-9
            for p, v in ((blk.ffn.W[0], W1), (blk.ffn.b[0], b1), (blk.ffn.W[1], W2)):
                set_param(p, v)
            for p in (blk.attn.Wq, blk.attn.Wv):
                set_param(p, np.asarray(p[...]) * (1 + 0.1 * rng.normal(size=p[...].shape)))
        set_param(model.embed.A, np.asarray(model.embed.A[...]) + 0.1 * rng.normal(size=model.embed.A[...].shape))

    Xs = samples_and_probes(built)
    before = jax.vmap(apply_fast, in_axes=(None, 0))(fast_plan(graphdef, state), Xs)
    g2, s2 = edited(graphdef, state, edit)
    plan = assert_same_values_and_gradients(g2, s2, built.betas, Xs, f"edited C2 (seed {seed})")
    assert plan.largest_group >= MIN_FAST_UNITS  # the edits kept the decoders' groups: fast path still used
    after = jax.vmap(apply_fast, in_axes=(None, 0))(plan, Xs)
    assert float(jnp.max(jnp.abs(after - before))) > 1e-3  # the edits are visible on the fast path


@pytest.mark.parametrize("name", ["C1", "C2"])
def test_a_fast_path_record_has_the_dense_records_verdict_and_estimate(name):
    """verify at T = 16 on both paths (the same estimators, seed and budget): same verdict, the
    same estimate to 1e-9 relative; auto mode (fast=None) picks the fast path for an L3 decoder."""
    built = small_build(name, T=16)
    dense = verify(built, fast=False, budget=TINY_BUDGET)
    fast = verify(built, fast=None, budget=TINY_BUDGET)
    assert (dense.path, fast.path) == ("dense", "fast")
    assert fast.passed == dense.passed and fast.passed
    assert abs(fast.err_estimate - dense.err_estimate) <= 1e-9 * dense.err_estimate
    for key, value in dense.estimates.items():
        assert abs(fast.estimates[key] - value) <= 1e-9 * max(value, 1e-300), key


def test_auto_mode_keeps_the_dense_path_without_a_large_one_input_group():
    built = small_build("C6-coupled")
    graphdef, state = built.split()
    assert fast_plan(graphdef, state).largest_group < MIN_FAST_UNITS
    assert verify(built, budget=TINY_BUDGET).path == "dense"


def test_memory_sizes_accept_suffixes_in_powers_of_1024():
    from infoflow_jax.cli.verify import parse_memory

    assert parse_memory("8G") == 8 * 2 ** 30
    assert parse_memory("512M") == 512 * 2 ** 20
    assert parse_memory("8GiB") == parse_memory("8GB") == parse_memory("8g")
    assert parse_memory("1000000") == 1_000_000
    assert parse_memory(None) is None


def test_builds_of_one_structure_at_every_eps_share_one_plan_shape_and_keep_their_values():
    from infoflow_jax.core.fast_model import shared_shape

    X = np.random.default_rng(0).random((40, 4, 1))
    forward = jax.jit(jax.vmap(apply_fast, in_axes=(None, 0)))
    plans = []
    for eps, mutant, compare in ((1e-1, None, True), (1e-2, None, False), (1e-2, "cell-bump", True),
                                 (1e-2, "psi-knot-dropped", False)):
        plan = fast_plan(*SPECS["C2"].build(4, eps, mutant=mutant).split())
        shared = shared_shape(plan)
        if compare:  # (each unshared plan compiles its own forward: two of them are enough)
            assert np.array_equal(np.asarray(forward(plan, X)), np.asarray(forward(shared, X)))
        plans.append(shared)
    shape = lambda p: (jax.tree_util.tree_structure(p), [np.shape(x) for x in jax.tree_util.tree_leaves(p)])
    assert all(shape(p) == shape(plans[0]) for p in plans)
