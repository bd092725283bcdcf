"""The InfoFlow planner: schedule a task graph onto L layers × h heads (THEORY §5).

Model of one layer: the attention sublayer runs up to h heads; one head
performs one retrieval ``max_s q_s`` *simultaneously at every query position*
that needs it (CLS, all tokens, or both), and the FFN sublayer then computes
the decodes whose inputs are now present (including the next per-token scores).

Constraints:

1. at most h retrievals per layer;
2. if retrieval B's per-token score uses the result of retrieval A (directly or
   through per-token decodes), A is in an earlier layer than B.  The result of
   A must then be retrieved *at every token* (a per-token score needs it at
   every token), which is why it costs a layer before B.

This is unit-time precedence-constrained scheduling on h machines.  The least
depth ``needed_L`` is at least max(longest dependency chain, ⌈n/h⌉); we use
highest-level-first list scheduling (Hu), optimal for chains, independent sets
and in-trees, and when it misses that lower bound an exhaustive search over
"greedy" schedules (optimal for unit tasks).

Prediction:

* if ``L ≥ needed_L`` the schedule fits and the predicted exponent is the
  largest decode coupling (output decode and per-token score decodes), or T·d
  if a node is a k-th retrieval in one step;
* otherwise nothing retrieves the needed quantities in time and the CLS falls
  back to memorization (uniform aggregation + decode coupled over T·d
  variables): exponent ``T*d``.

Memorization is always available (THEORY C5), so the prediction is
min(schedule exponent, T·d).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from typing import Any

from infoflow_jax.core.errors import InputError, check_int_range
from .graph import CLS, TOKENS, Decode, Retrieve, TaskGraph
from .modes import KTH_RETRIEVAL_ONE_STEP, MEMORIZATION_FORMULA

__all__ = [
    "Plan",
    "Step",
    "plan",
    "critical_path",
    "min_schedule",
    "needed_depth",
    "why_depth_fails",
    "positions_label",
]

EXACT_SEARCH_MAX_NODES = 24


@dataclass(frozen=True)
class Step:
    """One scheduled operation: a retrieval (attention) or a decode (FFN) at a layer.

    ``layer`` 0 means the embedding (a decode of the own input only).
    ``positions`` is ``"CLS"``, ``"tokens"`` or ``"all"``.
    """

    layer: int
    node: str
    mode: str
    positions: str
    exponent_formula: str


@dataclass(frozen=True)
class Plan:
    """The planner's prediction for one task graph on one architecture.

    Attributes:
        graph: the task graph.
        L, h, T: layers, heads per layer, sequence length (d is ``graph.d``).
        fits: whether the retrievals can be scheduled into L layers.
        needed_L: least depth at which they can (with h heads per layer).
        schedule: L layers, each a tuple of retrieval names (empty if not fits).
        min_schedule: the schedule at depth ``needed_L``.
        steps: retrievals and decodes with layer, mode and positions (if fits).
        exponent_formula: predicted exponent as a formula ("1", "r", "T*d").
        exponent: the formula evaluated at T, d and the task parameters.
        modes: mode keys used by the prediction.
        fallback: ``"memorization"`` when no schedule fits, else None.
        reason: why this exponent, and why depth ``needed_L − 1`` fails.
    """

    graph: TaskGraph
    L: int
    h: int
    T: int
    fits: bool
    needed_L: int
    schedule: tuple[tuple[str, ...], ...]
    min_schedule: tuple[tuple[str, ...], ...]
    steps: tuple[Step, ...]
    exponent_formula: str
    exponent: float
    modes: tuple[str, ...]
    fallback: str | None
    reason: str

    @property
    def d(self) -> int:
        return self.graph.d

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable record (CLI ``--json``)."""
        exp = self.exponent
        return {
            "task": self.graph.label,
            "task_name": self.graph.name,
            "L": self.L,
            "h": self.h,
            "T": self.T,
            "d": self.d,
            "k": self.graph.param("k"),
            "r": self.graph.param("r"),
            "D": self.graph.param("D"),
            "exponent": int(exp) if float(exp).is_integer() else exp,
            "exponent_formula": self.exponent_formula,
            "needed_L": self.needed_L,
            "fits": self.fits,
            "schedule": [list(layer) for layer in self.schedule],
            "min_schedule": [list(layer) for layer in self.min_schedule],
            "positions": {
                r.name: positions_label(self.graph, r.name) for r in self.graph.retrievals
            },
            "modes": list(self.modes),
            "fallback": self.fallback,
            "reason": self.reason,
        }


def positions_label(graph: TaskGraph, name: str) -> str:
    """``"CLS"``, ``"tokens"`` or ``"all"``: where a node must be computed."""
    need = graph.needed_at[name]
    if need == {CLS, TOKENS}:
        return "all"
    return CLS if CLS in need else TOKENS


# --------------------------------------------------------------------------
# Scheduling
# --------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _levels(graph: TaskGraph) -> dict[str, int]:
    """Level of a retrieval = number of retrievals on the longest chain starting
    at it (itself included) -- the Hu priority."""
    deps = graph.retrieval_dependencies
    succ: dict[str, list[str]] = {r.name: [] for r in graph.retrievals}
    for b, preds in deps.items():
        for a in preds:
            succ[a].append(b)
    level: dict[str, int] = {}
    for r in reversed(graph.retrievals):
        level[r.name] = 1 + max((level[s] for s in succ[r.name]), default=0)
    return level


def critical_path(graph: TaskGraph) -> tuple[str, ...]:
    """A longest chain of retrievals, each needing the previous one's result."""
    deps = graph.retrieval_dependencies
    level = _levels(graph)
    start = max(graph.retrievals, key=lambda r: level[r.name]).name
    chain = [start]
    while True:
        nxt = [b for b, preds in deps.items() if chain[-1] in preds]
        if not nxt:
            return tuple(chain)
        chain.append(max(nxt, key=lambda b: level[b]))


def _list_schedule(graph: TaskGraph, h: int) -> tuple[tuple[str, ...], ...]:
    deps = {k: set(v) for k, v in graph.retrieval_dependencies.items()}
    level = _levels(graph)
    order = {r.name: i for i, r in enumerate(graph.retrievals)}
    done: set[str] = set()
    layers: list[tuple[str, ...]] = []
    while len(done) < len(order):
        avail = [n for n in order if n not in done and deps[n] <= done]
        avail.sort(key=lambda n: (-level[n], order[n]))
        chosen = tuple(sorted(avail[:h], key=order.__getitem__))
        layers.append(chosen)
        done.update(chosen)
    return tuple(layers)


def _exact_schedule(graph: TaskGraph, h: int, depth: int) -> tuple[tuple[str, ...], ...] | None:
    """A schedule in ≤ depth layers, or None.  Searches greedy schedules only
    (each layer takes min(h, #available) nodes), which is without loss of
    generality for unit-time tasks."""
    deps = {k: frozenset(v) for k, v in graph.retrieval_dependencies.items()}
    level = _levels(graph)
    order = {r.name: i for i, r in enumerate(graph.retrievals)}
    names = sorted(order, key=lambda n: (-level[n], order[n]))
    n_total = len(names)

    @lru_cache(maxsize=None)
    def solve(done: frozenset[str], layers_left: int):
        remaining = [n for n in names if n not in done]
        if not remaining:
            return ()
        if layers_left == 0 or math.ceil(len(remaining) / h) > layers_left:
            return None
        if max(level[n] for n in remaining) > layers_left:
            return None
        avail = [n for n in remaining if deps[n] <= done]
        for combo in combinations(avail, min(h, len(avail))):
            rest = solve(done | frozenset(combo), layers_left - 1)
            if rest is not None:
                return (tuple(sorted(combo, key=order.__getitem__)),) + rest
        return None

    if n_total > EXACT_SEARCH_MAX_NODES:
        return None
    return solve(frozenset(), depth)


@lru_cache(maxsize=None)
def min_schedule(graph: TaskGraph, h: int) -> tuple[tuple[str, ...], ...]:
    """A schedule of all retrievals with the least number of layers (≤ h per layer)."""
    check_int_range("h", h, 1)
    greedy = _list_schedule(graph, h)
    lower = max(len(critical_path(graph)), math.ceil(len(graph.retrievals) / h))
    best = greedy
    for depth in range(lower, len(greedy)):
        found = _exact_schedule(graph, h, depth)
        if found is not None:
            best = found
            break
    return best


def needed_depth(graph: TaskGraph, h: int) -> int:
    """``needed_L``: the least L at which the planner finds a schedule."""
    return len(min_schedule(graph, h))


def why_depth_fails(graph: TaskGraph, h: int, depth: int) -> str:
    """Human-readable reason why ``depth`` layers of h heads cannot schedule the
    graph's retrievals (assumes ``depth < needed_depth(graph, h)``)."""
    chain = critical_path(graph)
    n = len(graph.retrievals)
    layers_for_heads = math.ceil(n / h)
    if len(chain) > depth:
        links = " → ".join(chain)
        at_tokens = [c for c in chain[:-1]]
        return (
            f"the retrievals form a dependency chain {links} of length {len(chain)}: "
            f"each one's per-token score needs the previous result at every token, so "
            f"{', '.join(at_tokens)} must be retrieved by all tokens a layer before the "
            f"retrieval that uses it; the chain needs {len(chain)} layers > {depth}"
        )
    if layers_for_heads > depth:
        return (
            f"{n} retrievals with at most h={h} per layer need ⌈{n}/{h}⌉ = "
            f"{layers_for_heads} layers (L·h = {depth * h} < {n})"
        )
    return (
        f"no assignment of the {n} retrievals to {depth} layer(s) with at most h={h} per "
        f"layer respects the dependencies (exhaustive search)"
    )


# --------------------------------------------------------------------------
# Prediction
# --------------------------------------------------------------------------


def _check_architecture(graph: TaskGraph, L: int, h: int, T: int) -> None:
    check_int_range("L", L, 1)
    check_int_range("h", h, 1)
    check_int_range("T", T, 1)
    for key in ("k", "r"):
        value = graph.param(key)
        if value is not None and value > T:
            raise InputError(key, value, f"an integer with 1 <= {key} <= T (T = {T})")
    for r in graph.retrievals:
        if r.rank > T:
            raise InputError("rank", r.rank, f"an integer with 1 <= rank <= T (T = {T})")


def _fmt_schedule(graph: TaskGraph, schedule) -> str:
    parts = []
    for i, layer in enumerate(schedule, start=1):
        body = ", ".join(f"{n}@{positions_label(graph, n)}" for n in layer) or "—"
        parts.append(f"layer {i}: {body}")
    return "; ".join(parts)


def _steps(graph: TaskGraph, schedule) -> tuple[Step, ...]:
    layer_of: dict[str, int] = {}
    for i, layer in enumerate(schedule, start=1):
        for name in layer:
            layer_of[name] = i
    steps = []
    for node in graph.nodes:
        if isinstance(node, Retrieve):
            formula = KTH_RETRIEVAL_ONE_STEP.exponent_formula if node.rank > 1 else "0"
            steps.append(
                Step(layer_of[node.name], node.name, node.mode_key,
                     positions_label(graph, node.name), formula)
            )
            if node.score_coupling != "0" or node.uses:
                steps.insert(
                    len(steps) - 1,
                    Step(layer_of[node.name] - 1, f"{node.name}.score", "decode-coupled",
                         TOKENS, node.score_coupling),
                )
        else:
            refs = [i for i in node.inputs if i != "x"]
            layer = max((layer_of[r] for r in refs), default=0)
            layer_of[node.name] = layer
            steps.append(
                Step(layer, node.name, node.mode_key, positions_label(graph, node.name),
                     node.coupling)
            )
    return tuple(steps)


def _decode_candidates(graph: TaskGraph, T: int) -> list[tuple[float, str, str, bool]]:
    """(value, formula, description, is_output) for every exponent contribution."""
    out = []
    for node in graph.nodes:
        if isinstance(node, Decode):
            kind = "coupled over" if node.coupled else f"decoupled into {node.parts} parts of"
            desc = f"decode {node.name}" + (f" = {node.formula}" if node.formula else "")
            desc += f", {kind} {node.coupling}"
            out.append((graph.evaluate(node.coupling, T), node.coupling, desc,
                        node.name == graph.output))
        else:
            if node.uses or node.score_coupling != "0":
                desc = f"per-token score of {node.name}, coupled over {node.score_coupling}"
                out.append((graph.evaluate(node.score_coupling, T), node.score_coupling,
                            desc, False))
            if node.rank > 1:
                desc = f"{node.name} is a rank-{node.rank} retrieval in one step"
                out.append((graph.evaluate(MEMORIZATION_FORMULA, T), MEMORIZATION_FORMULA,
                            desc, False))
    return out


def plan(graph: TaskGraph, L: int, h: int, T: int) -> Plan:
    """Predict the parameter exponent of ``graph`` on a TF(L, h) at length T.

    Raises :class:`~infoflow_jax.core.errors.InputError` (a ``ValueError``) for
    L, h, T < 1 or k, r > T.
    """
    _check_architecture(graph, L, h, T)
    best = min_schedule(graph, h)
    needed = len(best)
    memo_value = graph.evaluate(MEMORIZATION_FORMULA, T)
    smaller = (
        f" With L={needed - 1}: {why_depth_fails(graph, h, needed - 1)}." if needed > 1 else ""
    )
    if needed <= L:
        schedule = best + ((),) * (L - needed)
        cands = _decode_candidates(graph, T)
        top = max(c[0] for c in cands)
        winners = [c for c in cands if c[0] == top]
        winner = next((c for c in winners if c[3]), winners[0])
        value, formula, desc = winner[0], winner[1], winner[2]
        modes = sorted({r.mode_key for r in graph.retrievals} | {d.mode_key for d in graph.decodes})
        note = ""
        if value > memo_value:
            note = (f" This exceeds the memorization rate T*d = {memo_value:g}, "
                    f"so memorization is predicted instead.")
            value, formula = memo_value, MEMORIZATION_FORMULA
            modes = ["uniform", "decode-coupled"]
        if formula == MEMORIZATION_FORMULA and not note:
            why_exp = f"Exponent = T*d: {desc}, which forces memorization"
        else:
            why_exp = f"Exponent = largest decode coupling = {formula} ({desc})"
        reason = (
            f"L={L} ≥ needed_L={needed}: schedule {_fmt_schedule(graph, best)}. "
            f"{why_exp}.{note}{smaller}"
        )
        return Plan(graph, L, h, T, True, needed, schedule, best, _steps(graph, best),
                    formula, value, tuple(modes), None, reason)
    why = why_depth_fails(graph, h, L)
    extra = f" {graph.fallback_note}" if graph.fallback_note else ""
    reason = (
        f"L={L} < needed_L={needed}: {why}. No schedule fits, so the CLS falls back to "
        f"memorization (uniform aggregation of all T tokens, then a decode coupled over "
        f"T·d variables): exponent T*d.{extra}"
    )
    return Plan(graph, L, h, T, False, needed, (), best, (), MEMORIZATION_FORMULA, memo_value,
                ("uniform", "decode-coupled"), "memorization", reason)
