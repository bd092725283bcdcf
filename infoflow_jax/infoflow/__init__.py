"""InfoFlow (THEORY §5): task graphs, the mode/rate table, information sets,
the layer/head planner, figures, and comparison with fitted exponents.

Quick use::

    from infoflow_jax.infoflow import build_task, plan, information_flow, plot_flow
    p = plan(build_task("T2"), L=1, h=1, T=16)
    p.exponent_formula, p.exponent, p.needed_L      # ("T*d", 16.0, 2)

Pure Python + numpy (+ matplotlib for figures, scipy for ``fit_exponent``).
"""

from .graph import CLS, LOCAL_INPUT, TOKENS, Decode, GraphError, Retrieve, TaskBuilder, TaskGraph
from .infosets import InfoFlow, InfoItem, InfoSet, Transfer, format_flow, information_flow
from .modes import (
    DECODE_COUPLED,
    DECODE_DECOUPLED,
    KTH_RETRIEVAL_ONE_STEP,
    MAX_RETRIEVAL,
    MEMORIZATION_FORMULA,
    MODES,
    UNIFORM_AGGREGATION,
    Mode,
    evaluate_formula,
    mode_table,
)
from .planner import Plan, Step, critical_path, min_schedule, needed_depth, plan, why_depth_fails
from .tasks import (
    TASKS,
    build_task,
    coupled_top_r_graph,
    d_retrieval_graph,
    decoupled_top_r_graph,
    kth_largest_graph,
    max_retrieval_graph,
    resolve_task_id,
    two_hop_graph,
)


from infoflow_jax.core.rates import fit_exponent  # noqa: E402  (the one fit; re-exported)


def __getattr__(name):
    """``plot_flow`` on first use: :func:`infoflow_jax.infoflow.plot.plot_flow` imports matplotlib."""
    if name == "plot_flow":
        from .plot import plot_flow

        return plot_flow
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CLS", "LOCAL_INPUT", "TOKENS", "Decode", "GraphError", "Retrieve", "TaskBuilder",
    "TaskGraph", "InfoFlow", "InfoItem", "InfoSet", "Transfer", "format_flow",
    "information_flow", "DECODE_COUPLED", "DECODE_DECOUPLED", "KTH_RETRIEVAL_ONE_STEP",
    "MAX_RETRIEVAL", "MEMORIZATION_FORMULA", "MODES", "UNIFORM_AGGREGATION", "Mode",
    "evaluate_formula", "mode_table", "Plan", "Step", "critical_path", "min_schedule",
    "needed_depth", "plan", "why_depth_fails", "TASKS", "build_task", "coupled_top_r_graph",
    "d_retrieval_graph", "decoupled_top_r_graph", "kth_largest_graph", "max_retrieval_graph", "resolve_task_id",
    "two_hop_graph", "plot_flow", "fit_exponent",
]
