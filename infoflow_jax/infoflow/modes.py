"""The InfoFlow mode/rate table (THEORY.md §5) -- the one place where rates live.

A *mode* is a way in which a position acquires information (an attention
pattern) or turns acquired information into a value (an FFN decode).  Each mode
has a *parameter exponent*: its contribution b to a parameter count
``params ~ eps^{-b}`` needed for sup-norm precision eps.  Inverse temperatures
(β) are free: a magnitude is one parameter (THEORY §1).

======================================  ===================================  ==========
mode                                    effect on the information set I_i     exponent
======================================  ===================================  ==========
max retrieval (one head)                I_i ∪ I_{s*}, s* = argmax of a score  0
k-th retrieval in one step, k ≥ 2       I_i ∪ I_{s*}                          T*d
uniform aggregation / memorization      I_i ∪ [T], needs E ≥ T·d              0 (*)
decode, coupled over r scalars          --                                    r
decode, decoupled into r parts          --                                    1 (count ×r)
uniform over a flagged set (C8)         I_i ∪ ⋃_{s∈S} I_s                     0 (**)
======================================  ===================================  ==========

(**) added with C8 (soft top-k attention), not in THEORY §5's table; it delivers
one scalar (a mean over the set), so the decode after it is 1-D.

(*) uniform aggregation is free as attention, but what it delivers is the whole
sequence, so the decode that follows is coupled over r = T·d variables:
the composite *memorization* route costs ``MEMORIZATION_FORMULA = "T*d"``.

Formulas are strings in the symbols ``T`` (sequence length), ``d`` (input
dimension), ``r`` (number of coupled scalar variables) and ``s`` (smoothness),
and task parameters such as ``k``, ``D``; :func:`evaluate_formula` evaluates
them safely (no ``eval``).
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass
from typing import Mapping

__all__ = [
    "Mode",
    "MAX_RETRIEVAL",
    "KTH_RETRIEVAL_ONE_STEP",
    "UNIFORM_AGGREGATION",
    "DECODE_COUPLED",
    "DECODE_DECOUPLED",
    "UNIFORM_OVER_SET",
    "LOCAL_INPUT_MODE",
    "MODES",
    "MEMORIZATION_FORMULA",
    "evaluate_formula",
    "formula_symbols",
    "mode_by_key",
    "mode_table",
]


@dataclass(frozen=True)
class Mode:
    """One row of the rate table.

    Attributes:
        key: short identifier used in plans, information sets and JSON.
        name: human-readable name (as in THEORY §5).
        effect: what the mode does to the information set I_i^l.
        exponent_formula: the parameter exponent b as a formula string
            (``"0"``, ``"T*d"``, ``"r"``, ``"1"``).
        count_factor: multiplier on the parameter *count* that does not change
            the exponent (``"r"`` for r decoupled decoders), as a formula.
        assumptions: when the rate holds.
    """

    key: str
    name: str
    effect: str
    exponent_formula: str
    count_factor: str = "1"
    assumptions: str = ""

    def exponent(self, **symbols: float) -> float:
        """Evaluate :attr:`exponent_formula` at the given symbol values."""
        return evaluate_formula(self.exponent_formula, symbols)


LOCAL_INPUT_MODE = Mode(
    key="input",
    name="own input (embedding)",
    effect="I_s^0 = {s} for a token s, I_CLS^0 = ∅",
    exponent_formula="0",
    assumptions="The embedding A·φ(x_s) + p(s) puts x_s (or a fixed feature of it) at token s.",
)

MAX_RETRIEVAL = Mode(
    key="max",
    name="max retrieval (one head)",
    effect="I_i ∪ I_{s*}, s* = argmax_s of a score available at every token",
    exponent_formula="0",
    assumptions=(
        "The score q_s is computed at every token before the layer (from the token's own input "
        "and quantities that token already holds) and is linear in the residual stream. "
        "Softmax with inverse temperature β returns max_s q_s up to e_max(T, β) (THEORY L1) "
        "or the argmax token's value under a margin γ (L2); precision costs only a larger β, "
        "which is one parameter whatever its size."
    ),
)

KTH_RETRIEVAL_ONE_STEP = Mode(
    key="kth",
    name="k-th retrieval in one step (k ≥ 2)",
    effect="I_i ∪ I_{s*}, s* = position of the k-th largest score",
    exponent_formula="T*d",
    assumptions=(
        "One softmax step concentrates on the maximum, not on the k-th largest score; "
        "selecting rank k ≥ 2 without an earlier exclusion layer forces the position to "
        "hold (a function coupled over) the whole sequence, i.e. memorization (THEORY §0, "
        "Mechanism 1). With k layers of exclusion (THEORY C3) the cost is that of max retrieval."
    ),
)

UNIFORM_AGGREGATION = Mode(
    key="uniform",
    name="uniform aggregation / memorization",
    effect="I_i ∪ [T] (all tokens), needs width E ≥ T·d",
    exponent_formula="0",
    assumptions=(
        "β = 0 attention with one-hot positions writes T·x_s⊗e_s, so the position holds the "
        "whole sequence exactly (THEORY C5). The attention is free, but every later decode is "
        "coupled over the T·d input variables, so the route costs T*d."
    ),
)

DECODE_COUPLED = Mode(
    key="decode-coupled",
    name="decode, coupled over r scalars",
    effect="no change to I (turns held values into a new value)",
    exponent_formula="r",
    assumptions=(
        "A Lipschitz function of r scalar variables on a box, approximated by the Kuhn "
        "piecewise-linear interpolant (THEORY L4): (n+1)^r·O(r) parameters for error L/n, "
        "exponent r. r counts scalar variables after free linear preprocessing (ψ(m − x_t) "
        "is a function of 1 variable); a d-dimensional quantity counts d times; with "
        "smoothness s the rate is r/s in general (r·d/s for r quantities of dimension d). "
        "r = 1 is the 1-D decoder of L3 (exponent 1); r = 0 is an exact fixed-size map "
        "(e.g. the two-ReLU clip that sets an exclusion flag)."
    ),
)

DECODE_DECOUPLED = Mode(
    key="decode-decoupled",
    name="decode, decoupled into r parts",
    effect="no change to I",
    exponent_formula="1",
    count_factor="r",
    assumptions=(
        "A sum Σ_j G_j(u_j) of r one-variable Lipschitz parts: r independent L3 decoders "
        "with error budget ε/r each, r·O(r/ε) parameters -- exponent 1, the count grows "
        "with r (THEORY C6). If a part has p > 1 variables its exponent is p."
    ),
)

UNIFORM_OVER_SET = Mode(
    key="uniform-set",
    name="uniform over a flagged set (one head)",
    effect="I_i ∪ ⋃_{s∈S} I_s, S = the tokens whose flag (computed before the layer) is set",
    exponent_formula="0",
    assumptions=(
        "Every token holds an exact flag f_s ∈ {0, 1} before the layer (e.g. C3's exclusion flags, "
        "a two-ReLU map of a retrieved threshold); one head with score β·K·f_s gives the |S| flagged "
        "tokens equal weights and the rest total weight ρ ≤ (T−|S|)e^{−βK}/|S| (L2), so it delivers the "
        "*mean* of a per-token value over S up to ρ·range -- one scalar, which the next decode reads "
        "as one variable. Precision costs only β (THEORY C8). Not in THEORY §5's table: added with C8."
    ),
)
"""The mode C8 adds (soft top-k attention); kept out of :data:`MODES`, which is THEORY §5's table."""

MODES: tuple[Mode, ...] = (
    MAX_RETRIEVAL,
    KTH_RETRIEVAL_ONE_STEP,
    UNIFORM_AGGREGATION,
    DECODE_COUPLED,
    DECODE_DECOUPLED,
)
"""The five modes of THEORY §5, in table order."""

MEMORIZATION_FORMULA = "T*d"
"""Exponent of the memorization fallback: uniform aggregation (0) followed by a
decode coupled over r = T·d variables (:data:`DECODE_COUPLED` with r = T*d)."""


def mode_by_key(key: str) -> Mode:
    """Return the mode with this key (including :data:`LOCAL_INPUT_MODE`)."""
    for mode in MODES + (UNIFORM_OVER_SET, LOCAL_INPUT_MODE):
        if mode.key == key:
            return mode
    raise KeyError(f"unknown InfoFlow mode {key!r}")


def mode_table() -> list[dict[str, str]]:
    """The rate table as rows of strings (for docs and the CLI)."""
    return [
        {
            "mode": m.name,
            "key": m.key,
            "effect": m.effect,
            "exponent": m.exponent_formula,
            "count_factor": m.count_factor,
        }
        for m in MODES + (UNIFORM_OVER_SET,)
    ]


# --------------------------------------------------------------------------
# Safe formula evaluation
# --------------------------------------------------------------------------

_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_FUNCS = {"max": max, "min": min}


def formula_symbols(formula: str) -> frozenset[str]:
    """Names used by a formula string, e.g. ``"r*d/s" -> {"r", "d", "s"}``."""
    tree = ast.parse(str(formula), mode="eval")
    return frozenset(
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id not in _FUNCS
    )


def evaluate_formula(formula: str | int | float, symbols: Mapping[str, float] | None = None) -> float:
    """Evaluate an exponent formula such as ``"T*d"`` or ``"max(D, d)"``.

    Only numbers, the symbols given, ``+ - * / **``, unary minus and
    ``max``/``min`` are allowed.  ``s`` (smoothness) defaults to 1.

    >>> evaluate_formula("T*d", {"T": 4, "d": 2})
    8.0
    """
    if isinstance(formula, (int, float)):
        return float(formula)
    values = {"s": 1.0}
    values.update({k: float(v) for k, v in (symbols or {}).items() if v is not None})

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.Name):
            if node.id not in values:
                raise ValueError(f"formula {formula!r} uses {node.id!r}, which has no value")
            return values[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return float(_BINOPS[type(node.op)](ev(node.left), ev(node.right)))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in _FUNCS
            and node.args
            and not node.keywords
        ):
            return float(_FUNCS[node.func.id](ev(a) for a in node.args))
        raise ValueError(f"formula {formula!r}: unsupported expression {ast.dump(node)[:60]}")

    return ev(ast.parse(str(formula), mode="eval"))
