"""Figure of an information flow: layers (rows) × positions (CLS + a few tokens).

Arrows show attention steps, coloured and labelled by mode (max retrieval,
k-th retrieval in one step, uniform aggregation); grey lines are the residual
stream.  Each node is annotated with its information set; ★n marks the token
that wins retrieval n (chosen for illustration -- the winner depends on the
input).  The box above the CLS states the final decode and the exponent.
Uses the Agg backend (no display needed).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import FancyArrowPatch  # noqa: E402

from infoflow_jax.core.figures import save_figure  # noqa: E402

from .infosets import ALL_TOKENS, CLS, TOKEN, InfoFlow, pointer  # noqa: E402
from .planner import positions_label  # noqa: E402

__all__ = ["plot_flow", "MODE_STYLE"]

MODE_STYLE = {
    "max": dict(color="#1f5fbf", linestyle="-", label="max retrieval (exponent 0)"),
    "kth": dict(color="#e07b00", linestyle="-", label="k-th retrieval in one step (T·d)"),
    "uniform-set": dict(color="#2e7d32", linestyle="-", label="uniform over a flagged set (exponent 0)"),
    "uniform": dict(color="#c62828", linestyle="--",
                    label="uniform aggregation → memorization (T·d)"),
}
_ILLUSTRATIVE_WINNERS = (3, 1, 4, 2, 5, 6, 7, 8)
_DX, _DY = 1.9, 2.0
_SET_BOX = dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.9)


def _winner(index: int, n_tokens: int) -> int:
    """Token (1-based) drawn as the argmax of the index-th retrieval."""
    w = _ILLUSTRATIVE_WINNERS[index % len(_ILLUSTRATIVE_WINNERS)]
    return (w - 1) % n_tokens + 1


def plot_flow(flow: InfoFlow, path: str | Path | None = None, *, n_tokens: int = 4):
    """Draw ``flow``; save to ``path`` (format from the extension) if given.

    Returns the matplotlib Figure (closed after saving when ``path`` is given).
    """
    plan, graph = flow.plan, flow.plan.graph
    L = plan.L
    n_tokens = max(1, min(n_tokens, plan.T))
    xs = {CLS: 0.0}
    for j in range(1, n_tokens + 1):
        xs[j] = _DX * (j + 0.35)
    x_max = xs[n_tokens] + (0.9 if plan.T > n_tokens else 0.4)
    y = lambda layer: layer * _DY  # noqa: E731

    width = 2.6 + 1.45 * (n_tokens + 1)
    height = 2.6 + 1.55 * (L + 1)
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_xlim(-2.2, x_max + 0.6)
    ax.set_ylim(-0.9, y(L) + 1.45)
    ax.axis("off")

    order = {r.name: i for i, r in enumerate(graph.retrievals)}
    winners = {r.name: _winner(order[r.name], n_tokens) for r in graph.retrievals}

    # residual stream and row labels
    for layer in range(L + 1):
        ax.text(-1.35, y(layer), "input" if layer == 0 else f"layer {layer}",
                ha="right", va="center", fontsize=10, color="#444", fontweight="bold")
        if layer:
            for x in xs.values():
                ax.plot([x, x], [y(layer - 1), y(layer)], color="#cccccc", lw=1.2, zorder=0)
    if plan.T > n_tokens:
        for layer in range(L + 1):
            ax.text(x_max - 0.1, y(layer), "⋯", ha="center", va="center", fontsize=14,
                    color="#777")

    # arrows
    labelled: set[tuple[int, str]] = set()
    for tr in flow.transfers:
        style = MODE_STYLE[tr.mode]
        y0, y1 = y(tr.layer - 1), y(tr.layer)
        if tr.source == ALL_TOKENS:
            sources = [xs[j] for j in range(1, n_tokens + 1)]
            targets = [xs[CLS]]
        else:
            sources = [xs[winners[tr.node]]]
            targets = []
            if CLS in tr.receivers:
                targets.append(xs[CLS])
            if TOKEN in tr.receivers:
                targets += [xs[j] for j in range(1, n_tokens + 1)]
        for sx in sources:
            for tx in targets:
                if sx == tx:
                    continue
                ax.add_patch(FancyArrowPatch(
                    (sx, y0), (tx, y1), arrowstyle="-|>", mutation_scale=11,
                    color=style["color"], linestyle=style["linestyle"], lw=1.3,
                    shrinkA=13, shrinkB=13, alpha=0.85, zorder=1,
                    connectionstyle="arc3,rad=0.0"))
        key = (tr.layer, tr.node)
        if key not in labelled:
            labelled.add(key)
            if tr.source == ALL_TOKENS:
                text = "uniform aggregation\n(memorize all T·d inputs)"
                lx, ly = xs[CLS] + 1.25, (y0 + y1) / 2 + 0.15
            else:
                node = graph.node(tr.node)
                kind = {"max": "max", "uniform-set": "mean over set"}.get(tr.mode, f"rank-{node.rank}")
                where = positions_label(graph, tr.node) if plan.fits else "tokens"
                what = node.formula if node.formula and len(node.formula) <= 30 else tr.node
                text = f"{kind} @{where}: {what}"
                sx = sources[0]
                if CLS in tr.receivers and TOKEN not in tr.receivers:
                    # along the arrow to CLS, near its source (arrows converge at CLS)
                    lx, ly = sx + 0.3 * (xs[CLS] - sx), y0 + 0.3 * (y1 - y0)
                else:  # broadcast to every token: on the winner's own column
                    lx, ly = sx, y0 + 0.55 * (y1 - y0)
            ax.text(lx, ly, text, ha="center", va="center", fontsize=8.5,
                    color=style["color"], zorder=4,
                    bbox=dict(boxstyle="round,pad=0.2", fc="white", ec=style["color"], lw=0.8))

    # per-token scores computed by the FFN (a decode at every token)
    if plan.fits:
        for step in plan.steps:
            if step.node.endswith(".score") and step.layer >= 1:
                node = graph.node(step.node[: -len(".score")])
                text = f"FFN at every token: {node.score or 'score of ' + node.name}"
                ax.text(xs[n_tokens] + 0.35, y(step.layer) + 0.45, text, ha="right", va="center",
                        fontsize=8, color="#2e7d32", style="italic", zorder=4)

    # winner stars (the token whose input is retrieved)
    for tr in flow.transfers:
        if tr.source == ALL_TOKENS:
            continue
        wx, wy = xs[winners[tr.node]], y(tr.layer - 1)
        ax.text(wx - 0.42, wy + 0.34, pointer(tr.node), ha="center", va="center",
                fontsize=8.5, color=MODE_STYLE[tr.mode]["color"], fontweight="bold", zorder=5)

    # nodes with their information sets
    for layer in range(L + 1):
        cls_set = flow.at(CLS, layer)
        tok_set = flow.at(TOKEN, layer)
        ax.scatter([xs[CLS]], [y(layer)], s=560, c="#ffd54f", edgecolors="#8d6e00",
                   linewidths=1.2, zorder=3)
        ax.text(xs[CLS], y(layer), "CLS", ha="center", va="center", fontsize=7.5, zorder=4)
        ax.text(xs[CLS], y(layer) - 0.36, "I = " + cls_set.describe(), ha="center", va="top",
                fontsize=8.5, color="#5d4300", zorder=4, bbox=_SET_BOX)
        for j in range(1, n_tokens + 1):
            ax.scatter([xs[j]], [y(layer)], s=470, c="#bbdefb", edgecolors="#1f5fbf",
                       linewidths=1.0, zorder=3)
            ax.text(xs[j], y(layer), f"x{j}" if layer == 0 else f"{j}", ha="center",
                    va="center", fontsize=8, zorder=4)
            ax.text(xs[j], y(layer) - 0.36, tok_set.describe(token=j), ha="center", va="top",
                    fontsize=8, color="#0d3c7a", zorder=4, bbox=_SET_BOX)

    # final decode at CLS
    ok = plan.fits and plan.exponent_formula != "T*d"
    dec_color = "#2e7d32" if ok else "#c62828"
    decode_text = flow.decode
    if not plan.fits:
        missing = [n for layer_nodes in plan.min_schedule[L:] for n in layer_nodes]
        if missing:
            decode_text = (f"✗ {', '.join(missing)} cannot be retrieved in L={L} "
                           f"(needs L={plan.needed_L}); instead:\n" + decode_text)
    ax.text(xs[CLS] - 0.4, y(L) + 0.75, decode_text, ha="left", va="center", fontsize=9,
            color=dec_color, zorder=5,
            bbox=dict(boxstyle="round,pad=0.3", fc="#f9fbe7" if ok else "#ffebee", ec=dec_color))

    if plan.fits:
        value = f"{plan.exponent:g}"
        shown = value if plan.exponent_formula == value else f"{plan.exponent_formula} = {value}"
        verdict = f"schedule fits (needed L = {plan.needed_L}) → exponent {shown}"
    else:
        verdict = (f"no schedule fits (needed L = {plan.needed_L}) → CLS memorizes, "
                   f"exponent T·d = {plan.exponent:g}")
    title = (f"{graph.label} {graph.name}: L={L}, h={plan.h}, T={plan.T}, d={plan.d}\n"
             f"{verdict}")
    ax.set_title(title, fontsize=11.5, color=dec_color if not plan.fits else "black")

    handles = [Line2D([0], [0], color="#cccccc", lw=1.5, label="residual stream")]
    used = {tr.mode for tr in flow.transfers}
    for mode, st in MODE_STYLE.items():
        if mode in used:
            handles.append(Line2D([0], [0], color=st["color"], linestyle=st["linestyle"],
                                  lw=1.5, label=st["label"]))
    handles.append(Line2D([0], [0], marker="$★$", color="w", markerfacecolor="#333",
                          markeredgecolor="#333", markersize=9,
                          label="★n: token that wins retrieval n (illustrative)"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=2,
              fontsize=8, frameon=False)
    reason = textwrap.fill(plan.reason, width=int(14 * width))
    fig.text(0.5, 0.005, reason, ha="center", va="bottom", fontsize=7, color="#555")
    fig.tight_layout(rect=(0, 0.07 + 0.012 * reason.count("\n"), 1, 1))
    if path is not None:
        save_figure(fig, path, dpi=130)
    return fig
