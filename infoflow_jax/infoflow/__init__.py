"""InfoFlow (THEORY §5): task graphs, the mode/rate table, information sets,
the layer/head planner, figures, and comparison with fitted exponents.

Quick use::

    from infoflow_jax.infoflow import build_task, plan, information_flow, plot_flow
    p = plan(build_task("T2"), L=1, h=1, T=16)
    p.exponent_formula, p.exponent, p.needed_L      # ("T*d", 16.0, 2)

Pure Python + numpy (+ matplotlib for figures, scipy for ``fit_exponent``).
"""

from .graph import CLS, LOCAL_INPUT, TOKENS, Decode, GraphError, Retrieval, TaskBuilder, TaskGraph
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
    coupled_top_r,
    d_retrieval,
    decoupled_top_r,
    kth_largest,
    max_retrieval,
    resolve_task_id,
    two_hop,
)


def plot_flow(*args, **kwargs):
    """Lazy wrapper of :func:`infoflow_jax.infoflow.plot.plot_flow` (imports matplotlib)."""
    from .plot import plot_flow as _plot_flow

    return _plot_flow(*args, **kwargs)


def fit_exponent(*args, **kwargs):
    """Lazy wrapper of :func:`infoflow_jax.infoflow.against.fit_exponent`."""
    from .against import fit_exponent as _fit

    return _fit(*args, **kwargs)


__all__ = [
    "CLS", "LOCAL_INPUT", "TOKENS", "Decode", "GraphError", "Retrieval", "TaskBuilder",
    "TaskGraph", "InfoFlow", "InfoItem", "InfoSet", "Transfer", "format_flow",
    "information_flow", "DECODE_COUPLED", "DECODE_DECOUPLED", "KTH_RETRIEVAL_ONE_STEP",
    "MAX_RETRIEVAL", "MEMORIZATION_FORMULA", "MODES", "UNIFORM_AGGREGATION", "Mode",
    "evaluate_formula", "mode_table", "Plan", "Step", "critical_path", "min_schedule",
    "needed_depth", "plan", "why_depth_fails", "TASKS", "build_task", "coupled_top_r",
    "d_retrieval", "decoupled_top_r", "kth_largest", "max_retrieval", "resolve_task_id",
    "two_hop", "plot_flow", "fit_exponent",
]
