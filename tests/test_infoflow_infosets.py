"""Information sets I_i^l (THEORY §5 'State'), as defined in infosets.py."""

import numpy as np
import pytest

from infoflow_jax.infoflow import (
    coupled_top_r_graph,
    d_retrieval_graph,
    information_flow,
    max_retrieval_graph,
    plan,
    two_hop_graph,
)
from infoflow_jax.infoflow.infosets import CLS, TOKEN, format_flow


def flow(graph, L, h=1, T=8):
    return information_flow(plan(graph, L, h, T))


def test_initial_sets_are_own_input_for_tokens_and_empty_for_cls():
    f = flow(two_hop_graph(), 2)
    assert (f.at(TOKEN, 0).sources, f.at(CLS, 0).sources) == ({"t"}, frozenset())


def test_two_hop_L2_token_sees_itself_and_the_argmax_after_layer_1():
    assert flow(two_hop_graph(), 2).at(TOKEN, 1).sources == {"t", "★m"}


def test_two_hop_L2_argmax_arrives_by_max_retrieval_of_m():
    item = flow(two_hop_graph(), 2).at(TOKEN, 1).item("★m")
    assert (item.mode, item.layer, item.via) == ("max", 1, "m")


def test_two_hop_L2_cls_holds_nothing_after_layer_1():
    assert flow(two_hop_graph(), 2).at(CLS, 1).sources == frozenset()


def test_two_hop_L2_cls_holds_both_hops_after_layer_2_by_max_retrieval():
    s = flow(two_hop_graph(), 2).at(CLS, 2)
    assert s.sources == {"★r", "★m"} and {i.mode for i in s.items} == {"max"}


def test_two_hop_L1_cls_gets_all_tokens_only_by_uniform_aggregation():
    s = flow(two_hop_graph(), 1).at(CLS, 1)
    assert s.sources == {"[T]"} and s.item("[T]").mode == "uniform"


def test_two_hop_L1_tokens_still_see_only_themselves_and_the_argmax():
    assert flow(two_hop_graph(), 1).at(TOKEN, 1).sources == {"t", "★m"}


def test_two_hop_L2_cls_set_resolves_to_the_two_argmax_tokens_of_an_input():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=8)
    psi = lambda u: 1 - 2 * np.abs(u - 0.5)  # noqa: E731
    s_m = int(np.argmax(x)) + 1
    s_r = int(np.argmax(psi(x.max() - x))) + 1
    got = flow(two_hop_graph(), 2).at(CLS, 2).resolve(8, {"m": s_m, "r": s_r})
    assert got == {s_m, s_r}


def test_memorizing_cls_set_resolves_to_all_T_tokens():
    assert flow(two_hop_graph(), 1, T=5).at(CLS, 1).resolve(5, {}) == {1, 2, 3, 4, 5}


def test_max_retrieval_L1_cls_holds_the_argmax():
    assert flow(max_retrieval_graph(), 1).at(CLS, 1).sources == {"★m"}


@pytest.mark.parametrize("r", [1, 2, 3])
def test_coupled_top_r_cls_holds_r_pointers_after_r_layers(r):
    assert flow(coupled_top_r_graph(r), r).at(CLS, r).sources == {f"★m{j}" for j in range(1, r + 1)}


def test_d_retrieval_tokens_gain_nothing_because_retrievals_are_needed_only_at_cls():
    f = flow(d_retrieval_graph(3), 2, h=2)
    assert f.at(TOKEN, 2).sources == {"t"} and f.at(CLS, 2).sources == {"★m1", "★m2", "★m3"}


@pytest.mark.parametrize("graph_L", [(two_hop_graph(), 1), (two_hop_graph(), 3), (coupled_top_r_graph(3), 3),
                                     (d_retrieval_graph(3), 1)])
def test_information_sets_grow_monotonically_through_the_residual_stream(graph_L):
    graph, L = graph_L
    f = flow(graph, L)
    for pos in (CLS, TOKEN):
        for layer in range(1, L + 1):
            assert f.at(pos, layer - 1).sources <= f.at(pos, layer).sources


def test_text_rendering_annotates_each_addition_with_its_mode():
    text = format_flow(flow(two_hop_graph(), 1))
    assert "[T]:uniform" in text and "★m:max(m)" in text
