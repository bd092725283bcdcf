"""The shipped task graphs T1–T7 of THEORY §2 (T7: issue 13), and task lookup by id or name.

All tasks act on scalar inputs (d = 1) in THEORY; for d > 1, T1–T5 read a
scalar linear feature of x_s (a key projection, free), so only the
memorization fallback T·d sees d.  T6 is defined for any d: its scores
g_i(x_s) are linear key projections by default (``nonlinear_scores=True`` adds
a per-token d-variate decode of each g_i, exponent d).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from infoflow_jax.core.errors import InputError, check_int_range
from .graph import TaskBuilder, TaskGraph

__all__ = [
    "TaskSpec",
    "TASKS",
    "max_retrieval_graph",
    "two_hop_graph",
    "kth_largest_graph",
    "coupled_top_r_graph",
    "decoupled_top_r_graph",
    "d_retrieval_graph",
    "top_k_mean_graph",
    "resolve_task_id",
    "build_task",
]

_RANK_NOTE = (
    "(Retrieving a lower rank in one step instead -- a k-th retrieval in one step -- "
    "costs T*d as well.)"
)


def max_retrieval_graph(d: int = 1) -> TaskGraph:
    """T1: H(X) = F(max_s x_s).  One max retrieval at CLS, a 1-D decode: L=1, b=1."""
    return (
        TaskBuilder("max retrieval", d=d, task_id="T1", description="F(max_s x_s)")
        .retrieve("m", formula="m = max_s x_s")
        .decode("y", ["m"], formula="F(m)")
        .build()
    )


def two_hop_graph(d: int = 1) -> TaskGraph:
    """T2: H(X) = F(max_t ψ(m − x_t)), m = max_s x_s.

    m is used by the per-token score ψ(m − x_t), so every token must retrieve m
    (layer 1) before CLS retrieves r (layer 2): needed L = 2, then b = 1.
    """
    return (
        TaskBuilder("two-hop retrieval", d=d, task_id="T2",
                    description="F(max_t ψ(m − x_t)), m = max_s x_s")
        .retrieve("m", formula="m = max_s x_s")
        .retrieve("r", uses=["m"], score_coupling=1, score="ψ(m − x_t)",
                  formula="r = max_t ψ(m − x_t)")
        .decode("y", ["r"], formula="F(r)")
        .build()
    )


def _exclusion_chain(builder: TaskBuilder, n: int) -> TaskBuilder:
    """THEORY C3: m_1 = max_s x_s; m_j = max_s (x_s − K·f_s) with the flag
    f_s = clip((x_s − m_{j−1} + γ/2)/(γ/2), 0, 1) marking the top j−1 tokens.
    The flag is an exact two-ReLU map of (m_{j−1}, x_s): score coupling 0."""
    builder = builder.retrieve("m1", formula="m1 = max_s x_s = x_(1)")
    for j in range(2, n + 1):
        builder = builder.retrieve(
            f"m{j}",
            uses=[f"m{j - 1}"],
            score_coupling=0,
            score=f"x_s − K·f_s, f_s = clip((x_s − m{j - 1} + γ/2)/(γ/2))",
            formula=f"m{j} = max_s (x_s − K·f_s), f_s = [x_s ≥ m{j - 1}] (flags top {j - 1}) = x_({j})",
        )
    return builder


def kth_largest_graph(k: int, d: int = 1, *, one_step: bool = False) -> TaskGraph:
    """T3: H(X) = F(x_(k)) on the margin domain Ω_{γ,k}.

    Default: C3's chain of k max retrievals, retrieval j using at every token
    the exclusion flags set from retrieval j−1 -- needed L = k, b = 1.
    ``one_step=True``: a single rank-k retrieval (mode "k-th retrieval in one
    step"), which fits in one layer but costs T·d.
    """
    check_int_range("k", k, 1)
    b = TaskBuilder("k-th largest", d=d, task_id="T3", description=f"F(x_({k}))").with_hyperparams(k=k)
    if one_step and k > 1:
        b = b.retrieve("xk", rank=k, formula=f"xk = x_({k}) in one step")
        return b.decode("y", ["xk"], formula="F(x_(k))").build()
    b = _exclusion_chain(b, k)
    return b.decode("y", [f"m{k}"], formula="F(x_(k))").build(fallback_note=_RANK_NOTE)


def coupled_top_r_graph(r: int, d: int = 1) -> TaskGraph:
    """T4: H(X) = G(x_(1), …, x_(r)) on Ω_{γ,r}: C6's r exclusion layers, one
    decode coupled over r scalars -- needed L = r, b = r."""
    check_int_range("r", r, 1)
    b = TaskBuilder("coupled top-r decode", d=d, task_id="T4",
                    description="G(x_(1), …, x_(r))").with_hyperparams(r=r)
    b = _exclusion_chain(b, r)
    b = b.decode("y", [f"m{j}" for j in range(1, r + 1)], coupled=True, coupling="r",
                 formula="G(x_(1), …, x_(r))")
    return b.build(fallback_note=_RANK_NOTE)


def decoupled_top_r_graph(r: int, d: int = 1) -> TaskGraph:
    """T5: H(X) = Σ_j G_j(x_(j)) on Ω_{γ,r}: r exclusion layers, r decoupled
    1-D decoders -- needed L = r, b = 1 (count ×r)."""
    check_int_range("r", r, 1)
    b = TaskBuilder("decoupled top-r decode", d=d, task_id="T5",
                    description="Σ_j G_j(x_(j))").with_hyperparams(r=r)
    b = _exclusion_chain(b, r)
    b = b.decode("y", [f"m{j}" for j in range(1, r + 1)], coupled=False, coupling="1",
                 formula="Σ_j G_j(x_(j))")
    return b.build(fallback_note=_RANK_NOTE)


def d_retrieval_graph(D: int, d: int = 1, *, nonlinear_scores: bool = False) -> TaskGraph:
    """T6: H(X) = G(max_s g_1(x_s), …, max_s g_D(x_s)).

    D independent max retrievals (one head each), needed only at CLS, and one
    decode coupled over D scalars: fits iff L·h ≥ D, then b = D; else T·d.
    """
    check_int_range("D", D, 1)
    b = TaskBuilder("D-retrieval", d=d, task_id="T6",
                    description="G(max_s g_1(x_s), …, max_s g_D(x_s))").with_hyperparams(D=D)
    for i in range(1, D + 1):
        if nonlinear_scores:
            b = b.decode(f"g{i}", ["x"], coupling="d", formula=f"g{i}(x_s), per token")
            b = b.retrieve(f"m{i}", uses=[f"g{i}"], score_coupling=0,
                           formula=f"m{i} = max_s g{i}(x_s)")
        else:
            b = b.retrieve(f"m{i}", formula=f"m{i} = max_s g{i}(x_s)")
    b = b.decode("y", [f"m{i}" for i in range(1, D + 1)], coupling="D",
                 formula="G(m1, …, mD)")
    return b.build()


def top_k_mean_graph(k: int, d: int = 1, *, soft: bool = False) -> TaskGraph:
    """T7: H(X) = F((1/k)·Σ_{j≤k} v(x_(j))) on the margin domain.

    Default (the cheapest schedule): C6's chain of k exclusion retrievals, which
    leaves x_(1), …, x_(k) at CLS after k layers, then the decode
    F((1/k)·Σ_j v(m_j)) -- a sum of k one-variable parts (decoupled, exponent 1)
    read by a 1-D F (exponent 1): needed L = k, b = 1.  Fewer layers cannot reach
    x_(k) (each layer removes one rank), so L < k falls back to memorization, T·d.

    ``soft=True``: C8's route, soft top-k attention -- the same chain, retrieved at
    every token so that each token holds its flag f_s = [x_s ≥ x_(k)], then one
    head uniform over the flagged set (mode ``uniform-set``) delivers the mean of
    v(x_s) over the top k, and a 1-D decode F: needed L = k + 1, b = 1.
    """
    check_int_range("k", k, 1)
    b = TaskBuilder("top-k aggregation", d=d, task_id="T7",
                    description="F((1/k)·Σ_{j≤k} v(x_(j)))").with_hyperparams(k=k)
    b = _exclusion_chain(b, k)
    if not soft:
        b = b.decode("s", [f"m{j}" for j in range(1, k + 1)], coupled=False, coupling="1",
                     formula="s = (1/k)·Σ_j v(m_j)")
        return b.decode("y", ["s"], formula="F(s)").build(fallback_note=_RANK_NOTE)
    b = b.decode("v", ["x"], coupling="d", formula="v(x_s), per token")
    b = b.retrieve("u", uses=[f"m{k}", "v"], score_coupling=0, over_set=True,
                   score=f"β·K·f_s, f_s = clip((x_s − m{k} + γ/2)/(γ/2))",
                   formula=f"u = mean of v(x_s) over f_s = 1 (the top {k})")
    return b.decode("y", ["u"], formula="F(u)").build(fallback_note=_RANK_NOTE)


@dataclass(frozen=True)
class TaskSpec:
    """A shipped task: id, canonical name, aliases, parameter names, builder."""

    task_id: str
    name: str
    aliases: tuple[str, ...]
    hyperparams: tuple[str, ...]
    build: Callable[..., TaskGraph]


TASKS: dict[str, TaskSpec] = {
    "T1": TaskSpec("T1", "max", ("max", "max-retrieval"), (), max_retrieval_graph),
    "T2": TaskSpec("T2", "two-hop", ("two-hop", "twohop", "two-hop-retrieval"), (), two_hop_graph),
    "T3": TaskSpec("T3", "kth-largest",
                   ("kth-largest", "k-th-largest", "kth", "k-th", "kth-largest-margin"),
                   ("k",), kth_largest_graph),
    "T4": TaskSpec("T4", "coupled-top-r", ("coupled-top-r", "coupled", "coupled-top-r-decode"),
                   ("r",), coupled_top_r_graph),
    "T5": TaskSpec("T5", "decoupled-top-r",
                   ("decoupled-top-r", "decoupled", "decoupled-top-r-decode"), ("r",),
                   decoupled_top_r_graph),
    "T6": TaskSpec("T6", "d-retrieval", ("d-retrieval", "head-count", "heads"), ("D",),
                   d_retrieval_graph),
    "T7": TaskSpec("T7", "top-k-mean", ("top-k-mean", "top-k", "topk", "top-k-aggregation", "soft-top-k"),
                   ("k",), top_k_mean_graph),
}


from . import paper_graphs as _pg  # noqa: E402  (the papers' tasks, issue 12)

TASKS.update({
    "HC": TaskSpec("HC", "headcount", ("headcount", "head-count-sum", "hc"), ("D",), _pg.headcount),
    "ID": TaskSpec("ID", "intrinsic", ("intrinsic", "intrinsic-dim", "intrinsic-dimension", "id"),
                   ("D",), _pg.intrinsic_dim),
    "TRI": TaskSpec("TRI", "triangle", ("triangle", "triangle-centre", "triangle-center", "tri"),
                    (), _pg.triangle_centre),
    "MAXPOS": TaskSpec("MAXPOS", "maxpos", ("maxpos", "max-position", "max-position-probe"), (),
                       _pg.max_position),
    "FIXPOS": TaskSpec("FIXPOS", "fixedpos", ("fixedpos", "fixed-position",
                                              "fixed-position-aggregation"), (),
                       _pg.fixed_position_sum),
})


def resolve_task_id(task: str) -> str:
    """``"t2"``, ``"two-hop"``, ``"Two_Hop"`` → ``"T2"``; InputError if unknown."""
    key = re.sub(r"[\s_]+", "-", str(task).strip().lower())
    for spec in TASKS.values():
        if key == spec.task_id.lower() or key in spec.aliases:
            return spec.task_id
    allowed = "T1..T7, HC, ID, TRI, MAXPOS, FIXPOS or one of " + ", ".join(s.name for s in TASKS.values())
    raise InputError("task", task, allowed)


def build_task(task: str, *, k: int | None = None, r: int | None = None,
               D: int | None = None, d: int = 1) -> TaskGraph:
    """Build a shipped task graph by id or name; parameters the task does not
    use are ignored, missing ones raise InputError."""
    spec = TASKS[resolve_task_id(task)]
    check_int_range("d", d, 1)
    given = {"k": k, "r": r, "D": D}
    kwargs = {}
    for name in spec.hyperparams:
        if given[name] is None:
            raise InputError(name, None, f"an integer >= 1 (task {spec.task_id} needs {name})")
        kwargs[name] = check_int_range(name, given[name], 1)
    return spec.build(**kwargs, d=d)
