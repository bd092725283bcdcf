"""Task graphs: a task as a DAG of retrieval and decode nodes (THEORY §5).

A task H(X) on X = (x_1, …, x_T), x_s ∈ [0,1]^d, is described by

* **retrieval nodes** ``R = max_s q_s``: the maximum over tokens of a per-token
  score q_s. The score is a function of the token's own input x_s and of
  earlier quantities listed in ``uses`` (retrieved values, or per-token
  decodes).  Because q_s is needed *at every token s*, every retrieved value
  it uses must be held by every token, i.e. must itself have been retrieved at
  all token positions in an earlier layer.  ``rank = k ≥ 2`` marks a node that
  takes the k-th largest score *in one step* (mode ``kth``, exponent T·d).
* **decode nodes** ``u = G(u_1, …, u_r)``: an FFN computing a Lipschitz function
  of r retrieved or local quantities (``"x"`` = the token's own input),
  ``coupled`` (one r-variate function, exponent r) or decoupled
  (Σ_j G_j(u_j), exponent 1, count ×r).

Exactly one decode is the **output**, computed at the CLS position.  Where a
node is needed (``needed_at``) follows from its consumers: the output is needed
at CLS; whatever a retrieval's score uses is needed at every token; a decode's
inputs are needed wherever the decode is.

Example (three-hop retrieval, needs L = 3)::

    graph = (TaskBuilder("three-hop")
             .retrieve("m1", formula="m1 = max_s x_s")
             .retrieve("m2", uses=["m1"], formula="m2 = max_t ψ(m1 − x_t)")
             .retrieve("m3", uses=["m2"], formula="m3 = max_t ψ(m2 − x_t)")
             .decode("y", ["m3"], formula="y = F(m3)")
             .build())
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterable, Union

from .modes import evaluate_formula

__all__ = [
    "LOCAL_INPUT",
    "CLS",
    "TOKENS",
    "GraphError",
    "Retrieve",
    "Decode",
    "Node",
    "TaskGraph",
    "TaskBuilder",
]

LOCAL_INPUT = "x"
"""Name of the token's own input x_s in ``uses`` / ``inputs`` lists."""

CLS = "CLS"
TOKENS = "tokens"


class GraphError(ValueError):
    """A malformed task graph (unknown reference, cycle, unused node, …)."""


def _formula(value: Union[int, str]) -> str:
    if isinstance(value, bool):
        raise GraphError(f"expected an int or a formula string, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise GraphError(f"couplings and dimensions must be ≥ 0, got {value}")
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise GraphError(f"expected an int or a formula string, got {value!r}")


def _sum_formula(dims: Iterable[str]) -> str:
    """Sum of dimension formulas: ``["1", "1", "d"] -> "2+d"``."""
    const, symbolic = 0, []
    for dim in dims:
        if dim.isdigit():
            const += int(dim)
        else:
            symbolic.append(dim if dim.isidentifier() else f"({dim})")
    parts = symbolic + ([str(const)] if const or not symbolic else [])
    return "+".join(parts)


@dataclass(frozen=True)
class Retrieve:
    """``name = max_s q_s`` (or the rank-k score in one step if ``rank ≥ 2``).

    Attributes:
        name: the retrieved quantity.
        uses: quantities the per-token score q_s depends on besides x_s.
        score_coupling: exponent of computing q_s at a token (a per-token decode
            of ``uses`` and x_s): "0" for a linear key projection or an exact
            fixed-size map, "1" for a Lipschitz function of one linear
            combination (ψ(m − x_t)), "d" for a d-variate function of x_s.
        rank: 1 = max retrieval; k ≥ 2 = k-th retrieval in one step.
        dim: dimension of the retrieved value (formula, default "1").
        formula: human-readable definition.
        score: human-readable per-token score q_s (e.g. "ψ(m − x_s)").
        over_set: the head averages a per-token value uniformly over the tokens whose
            (exact) flag is set -- mode ``uniform-set`` (C8) -- instead of taking the max.
    """

    name: str
    uses: tuple[str, ...] = ()
    score_coupling: str = "0"
    rank: int = 1
    dim: str = "1"
    formula: str = ""
    score: str = ""
    over_set: bool = False

    @property
    def mode_key(self) -> str:
        if self.over_set:
            return "uniform-set"
        return "max" if self.rank == 1 else "kth"


@dataclass(frozen=True)
class Decode:
    """``name = G(inputs)``, an FFN decode.

    Attributes:
        name: the decoded quantity.
        inputs: retrieved quantities, other decodes, or ``"x"`` (own input).
        coupled: one function of all inputs (True) or a sum of one-input parts.
        coupling: the exponent of this decode, as a formula: the number of
            coupled scalar variables (coupled), or the largest part dimension
            (decoupled).
        parts: number of decoupled parts (count factor), as a formula.
        formula: human-readable definition.
    """

    name: str
    inputs: tuple[str, ...]
    coupled: bool = True
    coupling: str = "1"
    parts: str = "1"
    formula: str = ""

    @property
    def mode_key(self) -> str:
        return "decode-coupled" if self.coupled else "decode-decoupled"


Node = Union[Retrieve, Decode]


@dataclass(frozen=True)
class TaskGraph:
    """A validated task DAG (nodes in topological order) with its output decode.

    Attributes:
        name: task name ("two-hop retrieval").
        d: input dimension.
        nodes: retrieval and decode nodes; each refers only to earlier nodes.
        output: name of the output decode (computed at CLS).
        hyperparams: task parameters as ``(("k", 3),)``; they are symbols in formulas.
        task_id: "T1".."T7" for shipped tasks, else None.
        description: the target H(X).
        fallback_note: extra text for the reason when no schedule fits.
    """

    name: str
    d: int
    nodes: tuple[Node, ...]
    output: str
    hyperparams: tuple[tuple[str, int], ...] = ()
    task_id: str | None = None
    description: str = ""
    fallback_note: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.d, bool) or not isinstance(self.d, int) or self.d < 1:
            raise GraphError(f"d must be an integer ≥ 1, got {self.d!r}")
        seen: set[str] = set()
        for node in self.nodes:
            if not node.name or node.name == LOCAL_INPUT or node.name in seen:
                raise GraphError(f"node name {node.name!r} is empty, reserved or repeated")
            refs = node.uses if isinstance(node, Retrieve) else node.inputs
            for ref in refs:
                if ref != LOCAL_INPUT and ref not in seen:
                    raise GraphError(
                        f"node {node.name!r} refers to {ref!r}, which is not defined before it"
                    )
            if isinstance(node, Retrieve) and (
                isinstance(node.rank, bool) or not isinstance(node.rank, int) or node.rank < 1
            ):
                raise GraphError(f"retrieval {node.name!r}: rank must be an integer ≥ 1")
            if isinstance(node, Decode) and not node.inputs:
                raise GraphError(f"decode {node.name!r} has no inputs")
            seen.add(node.name)
        if self.output not in seen or not isinstance(self.node(self.output), Decode):
            raise GraphError(f"output {self.output!r} must name a decode node")
        if not self.retrievals:
            raise GraphError("a task graph needs at least one retrieval node")
        needed = self.needed_at
        for node in self.nodes:
            if not needed[node.name]:
                raise GraphError(f"node {node.name!r} does not contribute to the output")
            if isinstance(node, Decode) and CLS in needed[node.name] and LOCAL_INPUT in node.inputs:
                raise GraphError(
                    f"decode {node.name!r} uses the local input 'x' but is needed at CLS, "
                    "which has no input; retrieve it first"
                )

    # -- lookup -------------------------------------------------------------

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    @property
    def retrievals(self) -> tuple[Retrieve, ...]:
        return tuple(n for n in self.nodes if isinstance(n, Retrieve))

    @property
    def decodes(self) -> tuple[Decode, ...]:
        return tuple(n for n in self.nodes if isinstance(n, Decode))

    @property
    def label(self) -> str:
        """``"T2"`` for shipped tasks, else the name."""
        return self.task_id or self.name

    def param(self, name: str) -> int | None:
        return dict(self.hyperparams).get(name)

    def symbols(self, T: int) -> dict[str, float]:
        """Values of all formula symbols: T, d and the task parameters."""
        values: dict[str, float] = {"T": T, "d": self.d}
        values.update(dict(self.hyperparams))
        return values

    def evaluate(self, formula: str, T: int) -> float:
        return evaluate_formula(formula, self.symbols(T))

    # -- derived structure --------------------------------------------------

    @cached_property
    def needed_at(self) -> dict[str, frozenset[str]]:
        """Positions (``"CLS"``, ``"tokens"``) at which each node's value is needed.

        The output is needed at CLS; a retrieval's score is computed at every
        token, so whatever it uses is needed at ``tokens``; a decode's inputs
        are needed wherever the decode is.
        """
        need: dict[str, set[str]] = {n.name: set() for n in self.nodes}
        need[self.output].add(CLS)
        for node in reversed(self.nodes):
            if isinstance(node, Retrieve):
                if need[node.name]:
                    for ref in node.uses:
                        if ref != LOCAL_INPUT:
                            need[ref].add(TOKENS)
            else:
                for ref in node.inputs:
                    if ref != LOCAL_INPUT:
                        need[ref].update(need[node.name])
        return {k: frozenset(v) for k, v in need.items()}

    @cached_property
    def retrieval_dependencies(self) -> dict[str, tuple[str, ...]]:
        """For each retrieval, the retrievals whose results its score needs.

        Found by walking ``uses`` back through decodes, stopping at retrievals.
        """
        direct: dict[str, frozenset[str]] = {}
        for node in self.nodes:
            refs = node.uses if isinstance(node, Retrieve) else node.inputs
            found: set[str] = set()
            for ref in refs:
                if ref == LOCAL_INPUT:
                    continue
                if isinstance(self.node(ref), Retrieve):
                    found.add(ref)
                else:
                    found |= direct[ref]
            direct[node.name] = frozenset(found)
        order = [r.name for r in self.retrievals]
        return {
            r.name: tuple(x for x in order if x in direct[r.name]) for r in self.retrievals
        }

    def dim(self, name: str) -> str:
        """Dimension formula of a quantity (``"x"`` has dimension d)."""
        if name == LOCAL_INPUT:
            return "d"
        node = self.node(name)
        return node.dim if isinstance(node, Retrieve) else "1"


@dataclass(frozen=True)
class TaskBuilder:
    """Immutable, chainable builder of a :class:`TaskGraph`.

    Each method returns a new builder; :meth:`build` validates and returns the
    graph.  See the module docstring for a three-hop example.
    """

    name: str
    d: int = 1
    task_id: str | None = None
    description: str = ""
    hyperparams: tuple[tuple[str, int], ...] = ()
    nodes: tuple[Node, ...] = ()

    def retrieve(
        self,
        name: str,
        *,
        uses: Iterable[str] = (),
        score_coupling: int | str | None = None,
        rank: int = 1,
        dim: int | str = 1,
        formula: str = "",
        score: str = "",
        over_set: bool = False,
    ) -> "TaskBuilder":
        """Add ``name = max_s q_s`` where q_s depends on x_s and ``uses``.

        ``score_coupling`` defaults to 0 when the score is x_s itself (a key
        projection) and to 1 when it uses earlier quantities (a 1-D Lipschitz
        function of a linear combination, as ψ(m − x_t) in two-hop).
        """
        uses = tuple(uses)
        if score_coupling is None:
            score_coupling = 1 if uses else 0
        node = Retrieve(
            name=name,
            uses=uses,
            score_coupling=_formula(score_coupling),
            rank=rank,
            dim=_formula(dim),
            formula=formula or (f"{name} = max_s {score}" if score else ""),
            score=score,
            over_set=over_set,
        )
        return dataclasses.replace(self, nodes=self.nodes + (node,))

    def decode(
        self,
        name: str,
        inputs: Iterable[str],
        *,
        coupled: bool = True,
        coupling: int | str | None = None,
        formula: str = "",
    ) -> "TaskBuilder":
        """Add ``name = G(inputs)``; coupled: exponent = total input dimension
        (override with ``coupling``, e.g. ``"r"`` to keep the formula symbolic);
        decoupled: exponent = largest input dimension, count ×len(inputs)."""
        inputs = tuple(inputs)
        dims = [self._dim(i) for i in inputs]
        if coupling is None:
            if coupled:
                coupling = _sum_formula(dims)
            else:
                coupling = dims[0] if len(set(dims)) == 1 else f"max({', '.join(dims)})"
        node = Decode(
            name=name,
            inputs=inputs,
            coupled=coupled,
            coupling=_formula(coupling),
            parts="1" if coupled else str(len(inputs)),
            formula=formula,
        )
        return dataclasses.replace(self, nodes=self.nodes + (node,))

    def with_hyperparams(self, **values: int) -> "TaskBuilder":
        """Attach task parameters (symbols usable in formulas, e.g. r=3)."""
        return dataclasses.replace(self, hyperparams=self.hyperparams + tuple(sorted(values.items())))

    def build(self, output: str | None = None, *, fallback_note: str = "") -> TaskGraph:
        """Validate and return the graph; the output defaults to the last decode."""
        if output is None:
            decodes = [n.name for n in self.nodes if isinstance(n, Decode)]
            if not decodes:
                raise GraphError("a task graph needs an output decode")
            output = decodes[-1]
        return TaskGraph(
            name=self.name,
            d=self.d,
            nodes=self.nodes,
            output=output,
            hyperparams=self.hyperparams,
            task_id=self.task_id,
            description=self.description,
            fallback_note=fallback_note,
        )

    def _dim(self, name: str) -> str:
        if name == LOCAL_INPUT:
            return "d"
        for node in self.nodes:
            if node.name == name:
                return node.dim if isinstance(node, Retrieve) else "1"
        raise GraphError(f"decode refers to {name!r}, which is not defined before it")
