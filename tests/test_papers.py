"""The papers' experiments (issue 12): targets, planner predictions, specs, a tiny training run."""

from __future__ import annotations

import itertools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infoflow_jax.core.errors import InputError
from infoflow_jax.infoflow.layer_heads import plan_with_heads, schedule_with_heads
from infoflow_jax.infoflow.planner import plan
from infoflow_jax.infoflow.tasks import build_task
from infoflow_jax.training.paper_model import PaperArch, paper_param_count, forward, init_params
from infoflow_jax.training.paper_tasks import (FixedPositionSum, HeadCount, IntrinsicDim, MaxPosition,
                                      TriangleCentre, argmax_tokens, make_paper_task)
from infoflow_jax.core.precision import use_float64
from infoflow_jax.training.papers import (is_paper_spec, load_paper_spec,
                                          parse_paper_spec, run_paper_protocol, train_seeds)

ROOT = Path(__file__).resolve().parents[1]
use_float64()


# ---------------------------------------------------------------------------- targets


def test_headcount_target_sums_the_per_direction_maxima_on_a_hand_checked_input():
    task = HeadCount(T=3, D=2, d=2)
    object.__setattr__(task, "directions", np.array([[1.0, 0.0], [0.0, 1.0]]))
    X = jnp.array([[1.0, -2.0], [3.0, 0.5], [-1.0, 4.0]])
    # max_t x_1 = 3, max_t x_2 = 4
    assert float(task.target(X)) == pytest.approx(7.0)


def test_headcount_directions_are_unit_vectors_fixed_by_the_task_seed():
    a, b = HeadCount(T=4, D=4, d=8), HeadCount(T=16, D=4, d=8)
    assert np.allclose(np.linalg.norm(a.directions, axis=1), 1.0)
    assert np.array_equal(a.directions, b.directions)
    assert not np.array_equal(a.directions, HeadCount(T=4, D=4, d=8, task_seed=1).directions)


def test_intrinsic_target_takes_the_max_over_all_ordered_pairs_including_s_equal_t():
    task = IntrinsicDim(T=2, D=1, d=2)
    object.__setattr__(task, "forms", np.array([[[0.0, 1.0], [0.0, 0.0]]]))  # x(s)_1 · x(t)_2
    X = jnp.array([[2.0, -1.0], [-3.0, 5.0]])
    # pairs: (1,1) 2·-1=-2, (1,2) 2·5=10, (2,1) -3·-1=3, (2,2) -3·5=-15 → 10
    assert float(task.target(X)) == pytest.approx(10.0)


def test_intrinsic_target_matches_a_loop_over_pairs_and_forms():
    task = IntrinsicDim(T=5, D=3)
    X = np.asarray(task.sample(jax.random.PRNGKey(0), 1))[0]
    loop = sum(max(X[s] @ task.forms[i] @ X[t] for s in range(5) for t in range(5))
               for i in range(3))
    assert float(task.target(jnp.asarray(X))) == pytest.approx(loop, rel=1e-12)


def test_triangle_target_is_the_norm_of_the_sum_of_the_best_distinct_triple():
    task = TriangleCentre(T=4)
    X = jnp.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -0.5]])
    # triples: (0,1,2) ‖(0,2)‖=2, (0,1,3) 0.5, (0,2,3) ‖(1,1.5)‖, (1,2,3) ‖(-1,1.5)‖ → 0.5
    assert float(task.target(X)) == pytest.approx(0.5)


def test_triangle_at_T3_is_the_norm_of_the_sum_of_all_three_tokens():
    task = TriangleCentre(T=3)
    X = jnp.array([[3.0, 0.0], [0.0, 4.0], [0.0, 0.0]])
    assert float(task.target(X)) == pytest.approx(5.0)


def test_triangle_inputs_have_norms_clamped_to_0_2_and_4():
    X = TriangleCentre(T=64).sample(jax.random.PRNGKey(1), 512)
    r = np.linalg.norm(np.asarray(X), axis=-1)
    assert r.min() >= 0.2 - 1e-12 and r.max() <= 4.0 + 1e-12
    assert (r > 3.999).any() and (r < 0.2001).any()  # both clamps are active


def test_triangle_needs_at_least_three_tokens():
    with pytest.raises(InputError):
        TriangleCentre(T=2)


def test_maxpos_argmax_tokens_are_the_largest_and_second_largest_by_score():
    task = MaxPosition(T=3, d=2)
    object.__setattr__(task, "directions", np.array([[1.0, 0.0]]))
    X = jnp.array([[[0.5, 7.0], [2.0, 8.0], [-1.0, 9.0]]])
    first, second = argmax_tokens(task, X)
    assert np.array_equal(np.asarray(first), [[2.0, 8.0]])
    assert np.array_equal(np.asarray(second), [[0.5, 7.0]])
    assert float(task.target(X)[0]) == 2.0


def test_fixedpos_target_sums_positions_one_to_three():
    X = jnp.arange(10.0)[:, None]
    assert float(FixedPositionSum(T=10).target(X)) == 0.0 + 1.0 + 2.0


def test_make_paper_task_rejects_unknown_tasks_and_missing_D():
    with pytest.raises(InputError):
        make_paper_task("nope", 8)
    with pytest.raises(InputError):
        make_paper_task("headcount", 8)


# ---------------------------------------------------------------------------- planner


@pytest.mark.parametrize("D", [3, 4])
def test_headcount_one_layer_fits_iff_h_at_least_D(D):
    g = build_task("headcount", D=D, d=8)
    for h in range(1, 7):
        p = plan(g, 1, h, 16)
        assert p.fits == (h >= D)
        assert p.exponent == (1 if h >= D else 16 * 8)


def test_headcount_two_layers_fit_iff_L_times_h_at_least_D():
    g = build_task("headcount", D=4, d=8)
    assert [plan(g, 2, h, 8).fits for h in (1, 2, 3)] == [False, True, True]


@pytest.mark.parametrize("D", [2, 3, 4, 5])
def test_intrinsic_fits_with_heads_D_D_but_not_with_one_head_fewer_in_either_layer(D):
    g = build_task("intrinsic", D=D, d=4)
    assert plan_with_heads(g, (D, D), 64).fits
    assert not plan_with_heads(g, (D - 1, D), 64).fits
    assert not plan_with_heads(g, (D, D - 1), 64).fits
    assert plan_with_heads(g, (D - 1, D), 64).exponent == 64 * 4


def test_intrinsic_needs_two_layers_even_with_many_heads():
    g = build_task("intrinsic", D=2, d=4)
    assert not plan(g, 1, 8, 16).fits and plan(g, 2, 2, 16).fits


def test_layered_schedule_respects_dependencies_and_per_layer_head_counts():
    g = build_task("intrinsic", D=3, d=4)
    sched = schedule_with_heads(g, (3, 3))
    assert [len(layer) for layer in sched] == [3, 3]
    assert all(n.startswith("u") for n in sched[0])


def test_layered_plan_with_equal_heads_agrees_with_the_planner():
    for task, kw in [("T2", {}), ("T3", {"k": 3}), ("headcount", {"D": 3}), ("T6", {"D": 4})]:
        g = build_task(task, **kw)
        for L, h in itertools.product((1, 2, 3), (1, 2, 3)):
            assert plan_with_heads(g, (h,) * L, 8).fits == plan(g, L, h, 8).fits


def test_triangle_prediction_is_memorization_growing_with_T_at_any_depth():
    g = build_task("triangle", d=2)
    for L, h in ((1, 1), (2, 4), (3, 8)):
        assert [plan(g, L, h, T).exponent for T in (3, 8, 16)] == [6, 16, 32]


def test_maxpos_argmax_is_retrieved_in_one_layer_but_second_largest_is_not():
    assert plan(build_task("maxpos", d=4), 1, 1, 16).exponent == 1
    assert not plan(build_task("T3", k=2, d=4), 1, 1, 16).fits


def test_fixedpos_fits_one_layer_one_head_with_exponent_one():
    p = plan(build_task("fixedpos"), 1, 1, 10)
    assert p.fits and p.exponent == 1


# ---------------------------------------------------------------------------- model and specs


def test_paper_model_with_a_zero_last_readout_layer_outputs_the_readout_bias():
    arch = PaperArch(d=3, T=5, L=2, h=2, E=8, W=16)
    shapes = jax.eval_shape(lambda k: init_params(arch, k, jnp.float64), jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    p = jax.tree.map(lambda a: jnp.asarray(rng.standard_normal(a.shape)), shapes)
    p["w2"] = jnp.zeros_like(p["w2"])  # what init_params gives with out_scale = 0
    p["b2"] = jnp.asarray(0.7)
    X = jax.random.normal(jax.random.PRNGKey(1), (5, 3))
    y = jax.jit(forward, static_argnums=0)(arch, p, X)
    assert float(y) == 0.7  # out_scale = 0: w2 = 0


def test_paper_model_parameter_count_matches_the_initialised_arrays():
    for arch in (PaperArch(d=8, T=8, L=1, h=3, E=32, W=64),
                 PaperArch(d=4, T=16, L=2, h=2, h_last=3, E=24, W=32, layer_norm=True,
                           positional="onehot")):
        p = jax.eval_shape(lambda k: init_params(arch, k), jax.random.PRNGKey(0))
        n = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(p))
        unused_ln = 0 if arch.layer_norm else 2 * arch.E * arch.L
        assert paper_param_count(arch) == n - unused_ln


def test_shipped_paper_specs_parse_and_have_the_issue_grids():
    hc = load_paper_spec(ROOT / "sweeps/headcount_cpu.toml")
    cells = {(c.L, c.h, c.T) for c in hc.configs}
    assert cells == set(itertools.product((1, 2), range(1, 7), (8, 16, 32)))
    assert {c.seed for c in hc.configs} == {0, 1, 2} and {c.D for c in hc.configs} == {4}
    assert all(c.residual == (c.L == 2) and not c.layer_norm for c in hc.configs)
    ifl = load_paper_spec(ROOT / "sweeps/infoflow_cpu.toml")
    assert {c.task for c in ifl.configs} >= {"triangle", "maxpos", "fixedpos"}
    intr = load_paper_spec(ROOT / "sweeps/intrinsic_cpu.toml")
    assert {(c.D, c.layer_heads) for c in intr.configs} == {
        (D, hh) for D in (2, 3) for hh in ((D, D), (D - 1, D), (D, D - 1))}
    assert {c.seed for c in intr.configs} == {0, 1, 2} and {c.T for c in intr.configs} == {16}
    for name in ("headcount_gpu.toml", "infoflow_gpu.toml"):
        assert load_paper_spec(ROOT / "sweeps" / name).configs


def test_paper_spec_rejects_unknown_keys_and_lists_outside_the_grid_axes():
    base = {"kind": "papers", "grid": [{"task": "headcount", "D": 2, "T": 4, "L": 1, "h": 1}]}
    assert len(parse_paper_spec(base).configs) == 1
    with pytest.raises(InputError):
        parse_paper_spec({**base, "defaults": {"stepz": 3}})
    with pytest.raises(InputError):
        parse_paper_spec({**base, "defaults": {"lr": [1e-3, 1e-2]}})
    assert not is_paper_spec({"grid": []})


def test_paper_spec_expands_heads_of_the_last_layer_as_a_grid_axis():
    raw = {"kind": "papers", "grid": [{"task": "intrinsic", "D": 2, "T": 8, "L": 2, "h": [1, 2],
                                       "h_last": [1, 2], "seeds": [0, 1]}]}
    cfgs = parse_paper_spec(raw).configs
    assert {c.layer_heads for c in cfgs} == {(1, 1), (1, 2), (2, 1), (2, 2)} and len(cfgs) == 8


# ---------------------------------------------------------------------------- training


TINY_SPEC = {"kind": "papers", "name": "tiny",
             "defaults": {"n_train": 512, "n_val": 256, "E": 16, "W": 32, "steps": 300,
                          "batch": 32, "lr": 3e-3, "eval_every": 100, "seeds": [0, 1]},
             "grid": [{"task": "headcount", "D": 1, "d": 2, "T": 4, "L": 1, "h": 1}]}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    return out, run_paper_protocol(parse_paper_spec(TINY_SPEC), out, progress=False)


def test_tiny_headcount_run_learns_below_a_fifth_of_the_mean_predictor(tiny_run):
    _, recs = tiny_run
    assert len(recs) == 2
    for r in recs:
        assert r["eval_trace"][0][1] == pytest.approx(1.0, abs=0.05)  # starts at the mean
        assert r["best_test_nmse"] < 0.2


def test_records_keep_the_issue_fields(tiny_run):
    _, recs = tiny_run
    for key in ("task", "L", "h", "T", "D", "E", "seed", "best_test_nmse", "best_test_mse",
                "baseline_test_mse", "config_hash", "eval_trace"):
        assert key in recs[0]
    assert recs[0]["best_test_nmse"] == pytest.approx(
        recs[0]["best_test_mse"] / recs[0]["baseline_test_mse"])


def test_rerun_into_the_same_directory_trains_nothing(tiny_run):
    out, recs = tiny_run
    again = run_paper_protocol(parse_paper_spec(TINY_SPEC), out, progress=False)
    assert [r["config_hash"] for r in again] == [r["config_hash"] for r in recs]
    assert len((out / "train.jsonl").read_text().splitlines()) == 2


def test_a_seed_trained_alone_equals_the_same_seed_trained_beside_another(tiny_run):
    _, recs = tiny_run
    seed1 = [c for c in parse_paper_spec(TINY_SPEC).configs if c.seed == 1]
    alone = train_seeds(seed1)[0]
    assert alone["best_test_nmse"] == pytest.approx(recs[1]["best_test_nmse"], rel=1e-4)


def test_infoflow_train_lists_a_papers_spec(tmp_path, capsys):
    from infoflow_jax.cli.train import main

    assert main([str(ROOT / "sweeps/headcount_cpu.toml"), "--out", str(tmp_path), "--list"]) == 0
    assert capsys.readouterr().out.strip().endswith("108 configurations")


def test_infoflow_train_rejects_a_papers_spec_with_zero_heads_with_status_2(tmp_path, capsys):
    from infoflow_jax.cli.train import main

    spec = tmp_path / "bad.toml"
    spec.write_text('kind = "papers"\n[[grid]]\ntask = "headcount"\nD = 2\nT = 4\nL = 1\nh = 0\n')
    assert main([str(spec), "--out", str(tmp_path / "o"), "--list"]) == 2
    assert "h" in capsys.readouterr().err


def test_paper_model_initial_last_readout_layer_is_zero_by_default():
    arch = PaperArch(d=3, T=5, L=1, h=2, E=8, W=16)
    p = jax.jit(lambda k: init_params(arch, k))(jax.random.PRNGKey(0))
    assert not np.any(np.asarray(p["w2"])) and np.any(np.asarray(p["W1"]))
