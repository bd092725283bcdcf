"""Every row of the THEORY §5 prediction table (d = 1), reproduced by the planner."""

import math

import pytest

from infoflow_jax.infoflow import (
    build_task,
    coupled_top_r_graph,
    d_retrieval_graph,
    decoupled_top_r_graph,
    kth_largest_graph,
    max_retrieval_graph,
    plan,
    two_hop_graph,
)

TS = [4, 16]
LS = [1, 2, 3, 4]
HS = [1, 2, 3]
RANKS = [1, 2, 3, 4]


@pytest.mark.parametrize("T", TS)
@pytest.mark.parametrize("h", HS)
@pytest.mark.parametrize("L", LS)
def test_T1_max_needs_one_layer_and_has_exponent_1(T, L, h):
    p = plan(max_retrieval_graph(), L, h, T)
    assert (p.needed_L, p.exponent_formula, p.exponent) == (1, "1", 1)


@pytest.mark.parametrize("T", TS)
@pytest.mark.parametrize("h", HS)
@pytest.mark.parametrize("L", LS)
def test_T2_two_hop_is_T_below_two_layers_and_1_from_two(T, L, h):
    p = plan(two_hop_graph(), L, h, T)
    assert p.needed_L == 2
    if L < 2:
        assert (p.exponent_formula, p.exponent, p.fits) == ("T*d", T, False)
    else:
        assert (p.exponent_formula, p.exponent, p.fits) == ("1", 1, True)


@pytest.mark.parametrize("T", TS)
@pytest.mark.parametrize("h", HS)
@pytest.mark.parametrize("L", LS)
@pytest.mark.parametrize("k", RANKS)
def test_T3_kth_largest_needs_k_layers_then_exponent_1(k, L, h, T):
    p = plan(kth_largest_graph(k), L, h, T)
    assert p.needed_L == k
    assert p.exponent == (T if L < k else 1)
    assert p.exponent_formula == ("T*d" if L < k else "1")


@pytest.mark.parametrize("T", TS)
@pytest.mark.parametrize("h", HS)
@pytest.mark.parametrize("L", LS)
@pytest.mark.parametrize("r", RANKS)
def test_T4_coupled_top_r_needs_r_layers_then_exponent_r(r, L, h, T):
    p = plan(coupled_top_r_graph(r), L, h, T)
    assert p.needed_L == r
    assert p.exponent == (T if L < r else r)
    assert p.exponent_formula == ("T*d" if L < r else "r")


@pytest.mark.parametrize("T", TS)
@pytest.mark.parametrize("h", HS)
@pytest.mark.parametrize("L", LS)
@pytest.mark.parametrize("r", RANKS)
def test_T5_decoupled_top_r_needs_r_layers_then_exponent_1(r, L, h, T):
    p = plan(decoupled_top_r_graph(r), L, h, T)
    assert p.needed_L == r
    assert p.exponent == (T if L < r else 1)
    assert p.exponent_formula == ("T*d" if L < r else "1")


@pytest.mark.parametrize("T", TS)
@pytest.mark.parametrize("h", HS)
@pytest.mark.parametrize("L", LS)
@pytest.mark.parametrize("D", [1, 2, 3])
def test_T6_depth_times_heads_at_least_D_gives_exponent_D_else_T(D, L, h, T):
    p = plan(d_retrieval_graph(D), L, h, T)
    assert p.needed_L == math.ceil(D / h)
    if L * h >= D:
        assert (p.exponent_formula, p.exponent, p.fits) == ("D", D, True)
    else:
        assert (p.exponent_formula, p.exponent, p.fits) == ("T*d", T, False)


@pytest.mark.parametrize("h", HS)
@pytest.mark.parametrize("D", [1, 2, 3])
def test_T6_one_layer_recovers_head_count_result(D, h):
    p = plan(d_retrieval_graph(D), 1, h, 16)
    assert p.exponent == (D if h >= D else 16)


@pytest.mark.parametrize("task", ["T4", "T5"])
def test_top_r_with_r_equal_1_is_like_T1(task):
    for L in LS:
        assert plan(build_task(task, r=1), L, 1, 8).exponent == plan(max_retrieval_graph(), L, 1, 8).exponent


def test_memorization_fallback_exponent_scales_with_d():
    p = plan(two_hop_graph(d=3), 1, 1, 4)
    assert (p.exponent_formula, p.exponent) == ("T*d", 12)


def test_schedule_respects_heads_and_dependencies_for_every_table_task():
    for graph in [max_retrieval_graph(), two_hop_graph(), kth_largest_graph(3), coupled_top_r_graph(4),
                  decoupled_top_r_graph(2), d_retrieval_graph(3)]:
        for h in HS:
            p = plan(graph, 4, h, 16)
            layer_of = {n: i for i, layer in enumerate(p.schedule) for n in layer}
            assert all(len(layer) <= h for layer in p.schedule)
            assert set(layer_of) == {r.name for r in graph.retrievals}
            for b, preds in graph.retrieval_dependencies.items():
                assert all(layer_of[a] < layer_of[b] for a in preds)
