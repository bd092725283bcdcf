"""Information sets I_i^l per position class and layer (THEORY §5, "State").

Definition (as implemented).  Positions come in two classes: the readout
position ``CLS`` and a generic token ``t`` (all tokens behave alike, so one
class describes them all).  An information set is a set of *sources*:

* ``"t"`` -- the token's own input x_t (``I_t^0 = {t}``; ``I_CLS^0 = ∅``);
* ``"★n"`` -- the input of the token s* that won retrieval n (its argmax);
  s* depends on the data, so it is kept symbolic;
* ``"[T]"`` -- all T tokens at once (uniform aggregation).

Update at layer l (residual stream: I_i^l ⊇ I_i^{l−1}):

* a max (or one-step k-th) retrieval n performed at position i adds
  ``I_{s*}^{l−1}`` with ``t`` renamed to ``★n``: the winner's own input plus
  everything the winner already held (the pointers it had retrieved before);
* uniform aggregation (the memorization fallback, at CLS in layer 1) adds
  ``[T]``.

Each added source is an :class:`InfoItem` annotated with its mode and layer.
When the plan fits, positions follow the plan's schedule.  When it does not
fit, the CLS memorizes in layer 1 and the tokens still carry out the first L
layers of the minimal schedule at token positions -- what they *can* gather --
which shows the missing link.

Example (T2).  L=2: ``I_t^1 = {t, ★m}`` (itself plus the argmax of x), CLS
holds nothing after layer 1 and ``I_CLS^2 = {★r, ★m}``, i.e. the argmax t* of
ψ(m − x_t) and, through t*, the argmax of x: exactly what r needs.  L=1:
``I_t^1 = {t, ★m}`` but ``I_CLS^1 = {[T]}`` by uniform aggregation (the only
route, exponent T·d).  :meth:`InfoSet.resolve` turns sources into concrete
token indices for a given input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from .graph import CLS as _CLS_NEED, TOKENS as _TOKENS_NEED, TaskGraph
from .planner import Plan

__all__ = [
    "CLS",
    "TOKEN",
    "SELF",
    "ALL_TOKENS",
    "pointer",
    "InfoItem",
    "InfoSet",
    "Transfer",
    "InfoFlow",
    "information_flow",
    "format_flow",
]

CLS = "CLS"
TOKEN = "token"
SELF = "t"
ALL_TOKENS = "[T]"
MEMORIZE = "memorize"


def pointer(node: str) -> str:
    """Source label of the argmax token of retrieval ``node``: ``"★node"``."""
    return f"★{node}"


@dataclass(frozen=True)
class InfoItem:
    """One source in an information set and how it got there."""

    source: str
    mode: str
    layer: int
    via: str | None


@dataclass(frozen=True)
class InfoSet:
    """I_i^l for position class ``position`` ("CLS" or "token") after layer ``layer``."""

    position: str
    layer: int
    items: tuple[InfoItem, ...]

    @property
    def sources(self) -> frozenset[str]:
        return frozenset(i.source for i in self.items)

    @property
    def added(self) -> tuple[InfoItem, ...]:
        """Items that arrived in this layer."""
        return tuple(i for i in self.items if i.layer == self.layer)

    def item(self, source: str) -> InfoItem:
        for i in self.items:
            if i.source == source:
                return i
        raise KeyError(source)

    def describe(self, token: int | None = None) -> str:
        """``"{t, ★m}"``; with ``token=j`` the self source is written ``j``."""
        if not self.items:
            return "∅"
        names = [
            (str(token) if (i.source == SELF and token is not None) else
             ("1..T" if i.source == ALL_TOKENS else i.source))
            for i in self.items
        ]
        return "{" + ", ".join(names) + "}"

    def resolve(self, T: int, argmax: Mapping[str, int], token: int | None = None) -> frozenset[int]:
        """Concrete token indices (1-based) for one input.

        ``argmax`` maps retrieval names to the winning token of that input;
        ``token`` is the index of this token (ignored for CLS).
        """
        out: set[int] = set()
        for src in self.sources:
            if src == SELF:
                if token is None:
                    raise ValueError("token index needed to resolve 't'")
                out.add(token)
            elif src == ALL_TOKENS:
                out.update(range(1, T + 1))
            else:
                out.add(argmax[src[1:]])
        return frozenset(out)


@dataclass(frozen=True)
class Transfer:
    """An attention step drawn as arrows: at ``layer``, positions in
    ``receivers`` get ``carried`` from ``source`` (a ★pointer or [T])."""

    layer: int
    node: str
    mode: str
    source: str
    receivers: tuple[str, ...]
    carried: tuple[str, ...]


@dataclass(frozen=True)
class InfoFlow:
    """Information sets for layers 0..L of both position classes, the attention
    transfers that produced them, and the final decode at CLS."""

    plan: Plan
    sets: tuple[InfoSet, ...]
    transfers: tuple[Transfer, ...]
    decode: str

    @property
    def L(self) -> int:
        return self.plan.L

    def at(self, position: str, layer: int) -> InfoSet:
        for s in self.sets:
            if s.position == position and s.layer == layer:
                return s
        raise KeyError((position, layer))


def _order_key(graph: TaskGraph):
    order = {pointer(r.name): i for i, r in enumerate(graph.retrievals)}

    def key(item: InfoItem):
        if item.source == SELF:
            return (0, 0)
        if item.source == ALL_TOKENS:
            return (1, 0)
        return (2, order.get(item.source, 10**6))

    return key


def information_flow(plan: Plan) -> InfoFlow:
    """Compute I_i^l for i ∈ {CLS, token}, l = 0..L, from a plan."""
    graph = plan.graph
    key = _order_key(graph)
    state: dict[str, dict[str, InfoItem]] = {
        CLS: {},
        TOKEN: {SELF: InfoItem(SELF, "input", 0, None)},
    }
    sets = [InfoSet(CLS, 0, ()), InfoSet(TOKEN, 0, tuple(state[TOKEN].values()))]
    transfers: list[Transfer] = []
    if plan.fits:
        layers = plan.schedule
    else:
        layers = plan.min_schedule[: plan.L] + ((),) * max(0, plan.L - len(plan.min_schedule))
    for layer in range(1, plan.L + 1):
        before = {pos: dict(items) for pos, items in state.items()}
        for name in layers[layer - 1]:
            node = graph.node(name)
            need = graph.needed_at[name]
            receivers = []
            if _CLS_NEED in need and plan.fits:
                receivers.append(CLS)
            if _TOKENS_NEED in need:
                receivers.append(TOKEN)
            if not receivers:
                continue
            carried = [pointer(name)] + [
                s for s in before[TOKEN] if s != SELF and s != pointer(name)
            ]
            for pos in receivers:
                for src in carried:
                    if src not in state[pos]:
                        state[pos][src] = InfoItem(src, node.mode_key, layer, name)
            transfers.append(
                Transfer(layer, name, node.mode_key, pointer(name), tuple(receivers),
                         tuple(carried))
            )
        if not plan.fits and layer == 1:
            state[CLS][ALL_TOKENS] = InfoItem(ALL_TOKENS, "uniform", 1, MEMORIZE)
            transfers.append(Transfer(1, MEMORIZE, "uniform", ALL_TOKENS, (CLS,), (ALL_TOKENS,)))
        for pos in (CLS, TOKEN):
            sets.append(InfoSet(pos, layer, tuple(sorted(state[pos].values(), key=key))))
    if plan.fits:
        out = graph.node(graph.output)
        kind = "coupled over" if out.coupled else f"decoupled into {out.parts} parts of"
        decode = f"{out.formula or out.name}: decode {kind} {out.coupling} → exponent {plan.exponent_formula}"
    else:
        decode = "memorized sequence: decode coupled over T·d variables → exponent T*d"
    return InfoFlow(plan, tuple(sets), tuple(transfers), decode)


def format_flow(flow: InfoFlow) -> str:
    """Plain-text table of the information sets, one row per layer, with the
    mode of each addition."""
    lines = [f"{'layer':>5}  {'CLS':<34}  token t"]
    for layer in range(flow.L + 1):
        cells = []
        for pos in (CLS, TOKEN):
            s = flow.at(pos, layer)
            text = s.describe()
            new = [f"{i.source}:{i.mode}" + (f"({i.via})" if i.via else "") for i in s.added
                   if layer > 0]
            if new:
                text += "  +" + " ".join(new)
            cells.append(text)
        lines.append(f"{layer:>5}  {cells[0]:<34}  {cells[1]}")
    lines.append(f"decode at CLS: {flow.decode}")
    return "\n".join(lines)
