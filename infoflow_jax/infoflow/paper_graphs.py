"""Task graphs of the papers' experiments (issue 12), for the InfoFlow planner.

* ``headcount(D)``: y = Σ_{i≤D} max_t a_iᵀx^(t). D independent max retrievals at
  the readout position, one decoupled sum: fits iff L·h ≥ D (then exponent 1), else the
  memorization fallback T·d. The papers' theorem (one layer needs h ≥ D) is the L = 1 case;
  L·h ≥ D for L ≥ 2 is InfoFlow's own prediction beyond it.
* ``intrinsic(D)``: F = Σ_{i≤D} max_{s,t} x(s)ᵀA_i x(t). Per i, every token s first
  retrieves u_i(s) = max_t x(s)ᵀA_i x(t) (a query-dependent bilinear score, which one head
  computes exactly: score coupling 0), then the readout retrieves m_i = max_s u_i(s): a
  chain of two retrievals, D times. With heads (h₁, h₂) it fits iff h₁ ≥ D and h₂ ≥ D
  (see :mod:`infoflow_jax.infoflow.layer_heads`).
* ``triangle``: F = min_{t1<t2<t3} ‖x(t1)+x(t2)+x(t3)‖. **Not expressible** as retrievals:
  a retrieval maximises a per-token score built from a fixed number of earlier retrieved
  quantities, while the best triple is a coupled choice among C(T, 3) candidates; no fixed
  set of retrieved quantities determines it. The graph therefore states InfoFlow's only route,
  memorization: the readout gathers all T tokens (uniform aggregation, dimension T·d) and
  decodes them jointly, exponent T·d = 2T, growing with T at any depth and head count.
* ``maxpos``: y = max_t aᵀx^(t), one max retrieval of the whole token (dimension d)
  at the readout: L = 1, h = 1 fits; the argmax token is what the head retrieves. The
  second-largest token is :func:`~infoflow_jax.infoflow.tasks.kth_largest_graph` (k = 2), which
  needs L = 2 (or T·d in one step): at L = 1 it is not retrieved.
* ``fixedpos``: F = x(1)+x(2)+x(3) with positional codes: one retrieval whose score is a
  positional code, equal on positions 1–3 (a three-way tie, so the head averages them with
  weight 1/3 each), then a linear decode 3·s: L = 1, h = 1, exponent 1.
"""

from __future__ import annotations

from infoflow_jax.core.errors import check_int_range
from .graph import TaskBuilder, TaskGraph

__all__ = ["headcount", "intrinsic_dim", "triangle_centre", "max_position", "fixed_position_sum"]


def headcount(D: int, d: int = 1) -> TaskGraph:
    """y = Σ_i max_t a_iᵀx^(t): D parallel retrievals (one head each), a decoupled sum."""
    check_int_range("D", D, 1)
    b = TaskBuilder("head count", d=d, task_id="HC",
                    description="Σ_{i≤D} max_t a_iᵀx^(t)").with_hyperparams(D=D)
    for i in range(1, D + 1):
        b = b.retrieve(f"m{i}", formula=f"m{i} = max_t a{i}ᵀx^(t)")
    b = b.decode("y", [f"m{i}" for i in range(1, D + 1)], coupled=False, coupling="1",
                 formula="Σ_i m_i")
    return b.build()


def intrinsic_dim(D: int, d: int = 1) -> TaskGraph:
    """F = Σ_i max_s u_i(s), u_i(s) = max_t x(s)ᵀA_i x(t): D two-retrieval chains."""
    check_int_range("D", D, 1)
    b = TaskBuilder("intrinsic dimension", d=d, task_id="ID",
                    description="Σ_{i≤D} max_{s,t} x(s)ᵀA_i x(t)").with_hyperparams(D=D)
    for i in range(1, D + 1):
        b = b.retrieve(f"u{i}", uses=["x"], score_coupling=0,
                       score=f"x(s)ᵀA{i} x(t) (query x(s))",
                       formula=f"u{i}(s) = max_t x(s)ᵀA{i} x(t), at every token s")
    for i in range(1, D + 1):
        b = b.retrieve(f"m{i}", uses=[f"u{i}"], score_coupling=0, score=f"u{i}(s)",
                       formula=f"m{i} = max_s u{i}(s)")
    b = b.decode("F", [f"m{i}" for i in range(1, D + 1)], coupled=False, coupling="1",
                 formula="Σ_i m_i")
    return b.build()


def triangle_centre(d: int = 2) -> TaskGraph:
    """Memorization route only: gather all tokens (dimension T·d), decode them jointly."""
    b = TaskBuilder("triangle centre", d=d, task_id="TRI",
                    description="min_{t1<t2<t3} ‖x(t1)+x(t2)+x(t3)‖")
    b = b.retrieve("X", dim="T*d", score="a positional code (uniform aggregation)",
                   formula="X = (x(1), …, x(T)) gathered by uniform aggregation: a min over "
                           "triples is no max of a per-token score")
    b = b.decode("F", ["X"], coupled=True, coupling="T*d",
                 formula="min over triples of ‖x(t1)+x(t2)+x(t3)‖, coupled over all T·d inputs")
    return b.build(fallback_note="A min over triples is a coupled choice among C(T,3) "
                                 "candidates; InfoFlow has no retrieval route for it.")


def max_position(d: int = 1) -> TaskGraph:
    """y = aᵀx^(t*), t* = argmax_t aᵀx^(t): one retrieval of the whole argmax token."""
    b = TaskBuilder("max-position probe", d=d, task_id="MAXPOS",
                    description="max_t aᵀx^(t) (probe: x^(t*) and x^(t2))")
    b = b.retrieve("xstar", dim="d", formula="x^(t*) = the token with the largest aᵀx")
    return b.decode("y", ["xstar"], coupling="1", formula="aᵀx^(t*) (linear)").build()


def fixed_position_sum(d: int = 1) -> TaskGraph:
    """F = x(1)+x(2)+x(3): a positional three-way tie (weights 1/3), a linear decode."""
    b = TaskBuilder("fixed-position aggregation", d=d, task_id="FIXPOS",
                    description="x(1) + x(2) + x(3)")
    b = b.retrieve("s", dim="d", score="positional code, equal on positions 1–3",
                   formula="s = (x(1)+x(2)+x(3))/3 (a three-way tie: weight 1/3 each)")
    return b.decode("F", ["s"], coupling="1", formula="3·s (linear)").build()
