"""Task-graph builder, modes table, planner internals and reasons."""

import itertools
import random

import pytest

from infoflow_jax.infoflow import (
    MODES,
    GraphError,
    TaskBuilder,
    d_retrieval_graph,
    evaluate_formula,
    kth_largest_graph,
    needed_depth,
    plan,
    two_hop_graph,
)
from infoflow_jax.infoflow.graph import Decode, Retrieve, TaskGraph
from infoflow_jax.infoflow.planner import positions_label


def three_hop():
    return (
        TaskBuilder("three-hop")
        .retrieve("m1", formula="m1 = max_s x_s")
        .retrieve("m2", uses=["m1"], formula="m2 = max_t ψ(m1 − x_t)")
        .retrieve("m3", uses=["m2"], formula="m3 = max_t ψ(m2 − x_t)")
        .decode("y", ["m3"], formula="y = F(m3)")
        .build()
    )


def test_user_built_three_hop_needs_three_layers():
    assert needed_depth(three_hop(), h=1) == 3


@pytest.mark.parametrize("T", [4, 16])
def test_user_built_three_hop_is_T_at_two_layers(T):
    assert plan(three_hop(), 2, 1, T).exponent == T


@pytest.mark.parametrize("T", [4, 16])
def test_user_built_three_hop_is_1_at_three_layers(T):
    assert plan(three_hop(), 3, 1, T).exponent == 1


def test_three_hop_extra_heads_do_not_replace_depth():
    assert plan(three_hop(), 2, 3, 16).exponent == 16


def test_kth_largest_is_a_chain_where_each_retrieval_uses_the_previous_flags():
    g = kth_largest_graph(4)
    assert g.retrieval_dependencies == {"m1": (), "m2": ("m1",), "m3": ("m2",), "m4": ("m3",)}


def test_kth_largest_exclusion_results_are_retrieved_by_every_token():
    g = kth_largest_graph(3)
    assert [positions_label(g, n) for n in ("m1", "m2", "m3")] == ["tokens", "tokens", "CLS"]


def test_two_hop_first_retrieval_at_tokens_second_at_cls():
    g = two_hop_graph()
    assert (positions_label(g, "m"), positions_label(g, "r")) == ("tokens", "CLS")


def test_kth_retrieval_in_one_step_fits_one_layer_but_costs_T_times_d():
    p = plan(kth_largest_graph(2, one_step=True), 1, 1, 8)
    assert (p.fits, p.needed_L, p.exponent_formula, p.exponent) == (True, 1, "T*d", 8)
    assert "kth" in p.modes


def test_nonlinear_scores_add_a_per_token_decode_of_dimension_d():
    p = plan(d_retrieval_graph(2, d=3, nonlinear_scores=True), 2, 1, 16)
    assert p.exponent == 3


def test_predicted_exponent_never_exceeds_memorization():
    g = (TaskBuilder("wide").retrieve("a").decode("y", ["a"], coupling=50).build())
    p = plan(g, 1, 1, 4)
    assert (p.exponent_formula, p.exponent) == ("T*d", 4)


def test_reference_to_undefined_node_is_a_graph_error():
    with pytest.raises(GraphError):
        TaskBuilder("bad").retrieve("a", uses=["zz"]).decode("y", ["a"]).build()


def test_node_not_feeding_the_output_is_a_graph_error():
    with pytest.raises(GraphError):
        TaskBuilder("bad").retrieve("a").retrieve("b").decode("y", ["a"]).build()


def test_cls_decode_of_local_input_is_a_graph_error():
    with pytest.raises(GraphError):
        TaskBuilder("bad").retrieve("a").decode("y", ["a", "x"]).build()


def test_graph_errors_are_value_errors():
    assert issubclass(GraphError, ValueError)


def test_modes_table_has_the_five_theory_rates():
    assert [(m.key, m.exponent_formula) for m in MODES] == [
        ("max", "0"), ("kth", "T*d"), ("uniform", "0"), ("decode-coupled", "r"),
        ("decode-decoupled", "1"),
    ]


def test_decoupled_mode_count_factor_is_r():
    assert MODES[-1].count_factor == "r"


def test_mode_exponent_evaluates_its_formula():
    assert MODES[1].exponent(T=4, d=2) == 8 and MODES[3].exponent(r=3) == 3


def test_evaluate_formula_rejects_code():
    with pytest.raises(ValueError):
        evaluate_formula("__import__('os')", {})


def test_reason_for_two_hop_names_the_dependency_chain():
    assert "m → r" in plan(two_hop_graph(), 1, 1, 4).reason


def test_reason_for_d_retrieval_names_the_head_budget():
    assert "L·h = 2 < 3" in plan(d_retrieval_graph(3), 1, 2, 4).reason


def _brute_force_depth(graph: TaskGraph, h: int) -> int:
    names = [r.name for r in graph.retrievals]
    deps = graph.retrieval_dependencies
    for L in range(1, len(names) + 1):
        for assign in itertools.product(range(L), repeat=len(names)):
            layer = dict(zip(names, assign))
            if any(assign.count(i) > h for i in range(L)):
                continue
            if all(layer[a] < layer[b] for b in names for a in deps[b]):
                return L
    raise AssertionError


def _random_graph(rng: random.Random, n: int) -> TaskGraph:
    nodes = []
    for i in range(n):
        uses = tuple(f"q{j}" for j in range(i) if rng.random() < 0.35)
        nodes.append(Retrieve(f"q{i}", uses=uses, score_coupling="1" if uses else "0"))
    nodes.append(Decode("y", tuple(f"q{i}" for i in range(n))))
    return TaskGraph("random", 1, tuple(nodes), "y")


def test_planner_depth_is_optimal_on_random_small_dags():
    rng = random.Random(0)
    for _ in range(15):
        g = _random_graph(rng, rng.randint(2, 5))
        for h in (1, 2, 3):
            assert needed_depth(g, h) == _brute_force_depth(g, h)
