"""The planner with a head count per layer, (h₁, …, h_L) (issue 12: the papers' (h₁, h₂)).

:func:`~infoflow_jax.infoflow.planner.plan` takes the same h in every layer. Here layer ℓ
runs at most h_ℓ retrievals; the precedence rule is unchanged (a retrieval whose per-token
score uses another's result comes in a later layer). A schedule exists iff an exhaustive
search over layer-by-layer choices finds one (graphs of ≤ 24 retrievals; choosing, at each
layer, a subset of the available retrievals of size ≤ h_ℓ).

Prediction: if a schedule fits, the exponent is the planner's schedule exponent (it does not
depend on the head counts, only on the decodes); otherwise memorization, T·d.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

from infoflow_jax.core.errors import InputError, check_int_range
from .graph import TaskGraph
from .modes import MEMORIZATION_FORMULA
from .planner import EXACT_SEARCH_MAX_NODES, plan

__all__ = ["LayeredPlan", "schedule_with_heads", "plan_with_heads"]


@dataclass(frozen=True)
class LayeredPlan:
    """Prediction for heads (h₁, …, h_L): fits, schedule, exponent and why."""

    heads: tuple[int, ...]
    T: int
    fits: bool
    schedule: tuple[tuple[str, ...], ...]
    exponent_formula: str
    exponent: float
    reason: str


def schedule_with_heads(graph: TaskGraph, heads: tuple[int, ...]):
    """A schedule of all retrievals with ≤ heads[ℓ] in layer ℓ, or None if there is none."""
    heads = tuple(check_int_range("h", h, 1) for h in heads)
    if not heads:
        raise InputError("heads", heads, "at least one layer")
    deps = {k: frozenset(v) for k, v in graph.retrieval_dependencies.items()}
    names = tuple(r.name for r in graph.retrievals)
    if len(names) > EXACT_SEARCH_MAX_NODES:
        raise InputError("graph", graph.name, f"at most {EXACT_SEARCH_MAX_NODES} retrievals")

    @lru_cache(maxsize=None)
    def solve(done: frozenset, layer: int):
        remaining = [n for n in names if n not in done]
        if not remaining:
            return ((),) * (len(heads) - layer)
        if layer == len(heads) or len(remaining) > sum(heads[layer:]):
            return None
        avail = [n for n in remaining if deps[n] <= done]
        for size in range(min(heads[layer], len(avail)), 0, -1):
            for combo in combinations(avail, size):
                rest = solve(done | frozenset(combo), layer + 1)
                if rest is not None:
                    return (combo,) + rest
        return None

    return solve(frozenset(), 0)


def plan_with_heads(graph: TaskGraph, heads: tuple[int, ...], T: int) -> LayeredPlan:
    """InfoFlow's prediction for ``graph`` on a TF with heads[ℓ] heads in layer ℓ."""
    heads = tuple(heads)
    check_int_range("T", T, 1)
    sched = schedule_with_heads(graph, heads)
    label = "(" + ", ".join(map(str, heads)) + ")"
    if sched is not None:
        base = plan(graph, len(heads), max(heads), T)  # fits too (more heads): same decodes
        body = "; ".join(f"layer {i}: {', '.join(l) or '—'}" for i, l in enumerate(sched, 1))
        return LayeredPlan(heads, T, True, sched, base.exponent_formula, base.exponent,
                           f"heads {label}: schedule {body}; exponent {base.exponent_formula}")
    n = len(graph.retrievals)
    memo = graph.evaluate(MEMORIZATION_FORMULA, T)
    return LayeredPlan(heads, T, False, (), MEMORIZATION_FORMULA, memo,
                       f"heads {label}: no assignment of the {n} retrievals to layers with "
                       f"these head counts respects the dependencies; memorization, T*d")
