"""Report for a trained-network run (``DIR/train.jsonl``, manifest kind "train").

:func:`write_training_report` writes ``DIR/report_train.md`` and PNG figures:
test error against ``params_theorem`` for every (task, L) cell, one line per T,
log-log; and the agreement table with the InfoFlow cells of THEORY §5.

The agreement rule
------------------
THEORY §7: where InfoFlow predicts an exponent that grows with T (memorization,
"T·d"), the error should *stall as T grows at fixed width*; where it predicts a
T-independent exponent (1, r, D), the error should *keep falling with width,
independently of T*. Per cell and per error metric (test RMSE of the best
weights, and the sup-error estimate):

* per T, ``slope(T)`` = least-squares slope of log(error) on log(params_theorem)
  over the widths (median over seeds first);
* ``ratio`` = error(T_max) / error(T_min) at the largest width trained at both;
* ``noise`` = the largest factor by which a point lies off its per-T log-log
  line, and the median seed-to-seed spread (max/min over seeds) where there
  are several seeds.

Observation, in this order:

1. *insufficient*: fewer than 2 values of T, or a T with fewer than 2 widths;
2. *noisy*: noise ≥ :data:`NOISE_FACTOR`;
3. *falls, T-independent*: every slope ≤ :data:`FALL_SLOPE` and ratio ≤ :data:`T_FLAT_RATIO`;
4. *degrades with T*: ratio ≥ :data:`T_GROWTH_RATIO`, or slope(T_max) ≥
   :data:`STALL_SLOPE` while slope(T_min) ≤ :data:`FALL_SLOPE`;
5. *stalls at every T*: every slope ≥ :data:`STALL_SLOPE` (and not 4);
6. *mixed*: anything else.

Verdict: a T-independent prediction agrees with 3 and disagrees with 4 and 5;
a T-dependent prediction agrees with 4 and disagrees with 3; every other
combination is inconclusive (5 cannot tell "hard at every T" from "not
trained enough", so it does not count for a T-dependent prediction).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from infoflow_jax.core.figures import pyplot, save_figure
from infoflow_jax.core.rates import fit_slope

__all__ = [
    "FALL_SLOPE",
    "STALL_SLOPE",
    "T_GROWTH_RATIO",
    "T_FLAT_RATIO",
    "NOISE_FACTOR",
    "METRICS",
    "Observation",
    "Prediction",
    "observe",
    "verdict",
    "predict_cell",
    "agreement_rows",
    "format_agreement_table",
    "write_training_report",
]

# --- the thresholds of the agreement rule, defined once -----------------------------------
#: "keeps falling with width": slope of log error on log params at most this. Over one
#: decade of params the error then falls by ≥ 10^0.2 ≈ 1.6×; the value lies between
#: InfoFlow's rate for exponent 1 (slope −1) and for exponent T ≥ 8 (−1/T ≥ −0.125).
FALL_SLOPE = -0.2
#: "stalls": slope at least this: < 1.26× gain per decade of params.
STALL_SLOPE = -0.1
#: "error grows with T at fixed width": the error at the largest width is ≥ 2× larger at
#: T_max than at T_min (NOISE_FACTOR guards against seed noise of that size).
T_GROWTH_RATIO = 2.0
#: "independent of T": that ratio at most 1.5 (softmax max retrieval itself degrades like
#: ln T / β, so exact T-independence is not expected of a finite-β network).
T_FLAT_RATIO = 1.5
#: a curve whose points lie off their log-log line by ≥ 2×, or seeds that differ by ≥ 2×,
#: is too noisy to classify: the effects above are themselves factors of ~2.
NOISE_FACTOR = 2.0

#: metric name → (record key, transform, axis label)
METRICS = {
    "rmse": ("best_test_mse", math.sqrt, "test RMSE (best weights, float64)"),
    "sup": ("sup_error_estimate", lambda v: v, "sup-error estimate (float64)"),
}

CELL_KEYS = ("task", "k", "r", "D", "gamma", "d", "L", "h", "E")

FALLS = "falls, T-independent"
DEGRADES = "degrades with T"
STALLS = "stalls at every T"
MIXED = "mixed"
NOISY = "noisy"
INSUFFICIENT = "insufficient"


# ---------------------------------------------------------------------------- observation


@dataclass
class Observation:
    category: str
    slopes: dict = field(default_factory=dict)  # T -> slope
    ratio: float | None = None
    ratio_width: Any = None
    noise: float | None = None  # largest off-line factor
    seed_spread: float | None = None
    reason: str = ""


def _fit_slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope of y on x (:func:`infoflow_jax.core.rates.fit_slope`) and the largest |residual|."""
    f = fit_slope(x, y)
    if not np.isfinite(f.slope):
        return float("nan"), 0.0
    return f.slope, float(np.max(np.abs(np.asarray(y) - (f.intercept + f.slope * np.asarray(x)))))


def observe(curves: dict[int, list[tuple[float, float]]], *, seed_spread: float | None = None,
            widths: dict[int, list] | None = None) -> Observation:
    """Classify one cell from its curves ``{T: [(params, error), …]}``.

    ``widths`` (optional, ``{T: [W, …]}`` parallel to the curves) picks the
    largest width common to T_min and T_max for the ratio; without it the
    largest params value common to both is used. ``seed_spread`` is the median
    max/min ratio over seeds (None for one seed).
    """
    Ts = sorted(T for T, pts in curves.items() if pts)
    if len(Ts) < 2 or any(len(curves[T]) < 2 for T in Ts):
        return Observation(INSUFFICIENT, reason="needs ≥ 2 values of T, each with ≥ 2 widths")
    slopes, worst = {}, 0.0
    for T in Ts:
        pts = sorted(curves[T])
        p = np.log(np.array([a for a, _ in pts], float))
        e = np.log(np.maximum(np.array([b for _, b in pts], float), 1e-300))
        s, r = _fit_slope(p, e)
        slopes[T] = s
        worst = max(worst, r)
    noise = float(math.exp(worst))
    t0, t1 = Ts[0], Ts[-1]
    if widths is not None:
        w0 = dict(zip(widths[t0], (b for _, b in curves[t0])))
        w1 = dict(zip(widths[t1], (b for _, b in curves[t1])))
        common = sorted(set(w0) & set(w1))
        ratio_w = common[-1] if common else None
        ratio = w1[ratio_w] / w0[ratio_w] if common else None
    else:
        c0, c1 = dict(curves[t0]), dict(curves[t1])
        common = sorted(set(c0) & set(c1))
        ratio_w = common[-1] if common else None
        ratio = c1[ratio_w] / c0[ratio_w] if common else None
    obs = Observation(MIXED, slopes, ratio, ratio_w, noise, seed_spread)
    if any(not math.isfinite(s) for s in slopes.values()) or ratio is None or not math.isfinite(ratio):
        obs.category, obs.reason = INSUFFICIENT, "no finite slope or no width common to T_min and T_max"
        return obs
    if noise >= NOISE_FACTOR or (seed_spread is not None and seed_spread >= NOISE_FACTOR):
        obs.category = NOISY
        obs.reason = (f"points off their line by up to {noise:.2f}×" +
                      (f", seed spread {seed_spread:.2f}×" if seed_spread is not None else "") +
                      f" (threshold {NOISE_FACTOR:g}×)")
        return obs
    s0, s1 = slopes[t0], slopes[t1]
    all_fall = all(s <= FALL_SLOPE for s in slopes.values())
    if all_fall and ratio <= T_FLAT_RATIO:
        obs.category = FALLS
        obs.reason = f"every slope ≤ {FALL_SLOPE:g} and ratio {ratio:.2f} ≤ {T_FLAT_RATIO:g}"
    elif ratio >= T_GROWTH_RATIO:
        obs.category = DEGRADES
        obs.reason = f"ratio {ratio:.2f} ≥ {T_GROWTH_RATIO:g}"
    elif s1 >= STALL_SLOPE and s0 <= FALL_SLOPE:
        obs.category = DEGRADES
        obs.reason = f"slope {s0:.2f} at T={t0} but {s1:.2f} ≥ {STALL_SLOPE:g} at T={t1}"
    elif all(s >= STALL_SLOPE for s in slopes.values()):
        obs.category = STALLS
        obs.reason = f"every slope ≥ {STALL_SLOPE:g}, ratio {ratio:.2f} < {T_GROWTH_RATIO:g}"
    else:
        obs.reason = "between the thresholds"
    return obs


def verdict(prediction_kind: str, obs: Observation) -> str:
    """``agree`` / ``disagree`` / ``inconclusive`` for a prediction kind "T" (grows with T) or "const"."""
    if prediction_kind == "const":
        if obs.category == FALLS:
            return "agree"
        if obs.category in (DEGRADES, STALLS):
            return "disagree"
        return "inconclusive"
    if prediction_kind == "T":
        if obs.category == DEGRADES:
            return "agree"
        if obs.category == FALLS:
            return "disagree"
        return "inconclusive"
    raise ValueError(f"prediction kind {prediction_kind!r}: must be 'T' or 'const'")


# ---------------------------------------------------------------------------- prediction


@dataclass
class Prediction:
    kind: str  # "T" (exponent grows with T) or "const"
    formula: str
    exponents: dict  # T -> exponent
    source: str  # "planner" or "local THEORY §5 table"


def _local_formula(task: str, L: int, h: int, k, r, D) -> str:
    """THEORY §5 prediction table, used only if infoflow_jax.infoflow is unavailable."""
    if task == "T1":
        return "1"
    if task == "T2":
        return "1" if L >= 2 else "T*d"
    if task == "T3":
        return "1" if L >= k else "T*d"
    if task == "T4":
        return "r" if L >= r else "T*d"
    if task == "T5":
        return "1" if L >= r else "T*d"
    if task == "T6":
        return "D" if L * h >= D else "T*d"
    raise ValueError(task)


def predict_cell(task: str, L: int, h: int, Ts: Iterable[int], *, k=None, r=None, D=None,
                 d: int = 1) -> Prediction:
    """InfoFlow's exponent for a cell at each T (planner if importable, else THEORY §5 table)."""
    Ts = sorted(Ts)
    try:
        from infoflow_jax.infoflow.planner import plan
        from infoflow_jax.infoflow.tasks import build_task

        graph = build_task(task, k=k, r=r, D=D, d=d)
        plans = {T: plan(graph, L, h, T) for T in Ts}
        exps = {T: float(p.exponent) for T, p in plans.items()}
        formula = plans[Ts[-1]].exponent_formula
        source = "planner"
    except ImportError:
        formula = _local_formula(task, L, h, k, r, D)
        value = {"1": lambda T: 1.0, "r": lambda T: float(r), "D": lambda T: float(D),
                 "T*d": lambda T: float(T * d)}[formula]
        exps = {T: value(T) for T in Ts}
        source = "local THEORY §5 table"
    kind = "T" if len(set(exps.values())) > 1 or "T" in formula else "const"
    return Prediction(kind, formula, exps, source)


# ---------------------------------------------------------------------------- grouping


def _cell_key(rec: dict) -> tuple:
    return tuple(rec.get(k) for k in CELL_KEYS)


def cell_label(key: tuple) -> str:
    c = dict(zip(CELL_KEYS, key))
    parts = [c["task"]]
    for n in ("k", "r", "D"):
        if c[n] is not None:
            parts.append(f"{n}={c[n]}")
    if c["gamma"] is not None:
        parts.append(f"γ={c['gamma']:g}")
    parts.append(f"L={c['L']}")
    if c["h"] != 1:
        parts.append(f"h={c['h']}")
    return " ".join(parts)


def _cell_slug(key: tuple) -> str:
    c = dict(zip(CELL_KEYS, key))
    s = c["task"] + "".join(f"_{n}{c[n]}" for n in ("k", "r", "D") if c[n] is not None)
    s += f"_L{c['L']}" + (f"_h{c['h']}" if c["h"] != 1 else "")
    return s


def _metric_value(rec: dict, metric: str) -> float | None:
    key, fn, _ = METRICS[metric]
    v = rec.get(key)
    if v is None or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        return None
    return float(fn(v))


def _aggregate(recs: list[dict], metric: str):
    """{T: {W: (params_theorem, median error over seeds, max/min spread, n_seeds)}} for one cell.

    The median, so that one seed whose training collapsed to the constant predictor
    (seen on CPU: T1, T=16, seed 0) does not decide a point when there are ≥ 3 seeds.
    """
    by = defaultdict(list)
    for rec in recs:
        v = _metric_value(rec, metric)
        if v is None:
            continue
        by[(rec["T"], rec["W"])].append((rec["params_theorem"], max(v, 1e-300)))
    out: dict[int, dict[int, tuple]] = defaultdict(dict)
    for (T, W), vals in by.items():
        errs = np.array([e for _, e in vals])
        params = float(np.median([p for p, _ in vals]))
        out[T][W] = (params, float(np.median(errs)),
                     float(errs.max() / errs.min()) if len(errs) > 1 else None, len(errs))
    return out


def _observe_cell(recs: list[dict], metric: str) -> tuple[Observation, dict]:
    agg = _aggregate(recs, metric)
    curves = {T: [agg[T][W][:2] for W in sorted(agg[T])] for T in agg}
    widths = {T: sorted(agg[T]) for T in agg}
    spreads = [v[2] for T in agg for v in agg[T].values() if v[2] is not None]
    spread = float(np.median(spreads)) if spreads else None
    return observe(curves, seed_spread=spread, widths=widths), agg


def group_cells(records: Iterable[dict]) -> dict[tuple, list[dict]]:
    cells: dict[tuple, list[dict]] = defaultdict(list)
    for rec in records:
        cells[_cell_key(rec)].append(rec)
    return dict(sorted(cells.items(), key=lambda kv: tuple(str(x) for x in kv[0])))


def agreement_rows(records: Iterable[dict]) -> list[dict]:
    """One row per (task, L) cell: prediction, observation per metric, verdict per metric."""
    rows = []
    for key, recs in group_cells(records).items():
        c = dict(zip(CELL_KEYS, key))
        Ts = sorted({r["T"] for r in recs})
        pred = predict_cell(c["task"], c["L"], c["h"], Ts, k=c["k"], r=c["r"], D=c["D"],
                            d=c["d"] or 1)
        row = {"cell": cell_label(key), "key": c, "prediction": pred, "Ts": Ts,
               "n_records": len(recs), "seeds": sorted({r["seed"] for r in recs})}
        for metric in METRICS:
            obs, agg = _observe_cell(recs, metric)
            row[metric] = {"observation": obs, "verdict": verdict(pred.kind, obs), "agg": agg}
        rows.append(row)
    return rows


def _fmt(v, spec=".2f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return format(v, spec)


def _prediction_words(pred: Prediction) -> str:
    exps = ", ".join(f"{pred.exponents[T]:g}" for T in sorted(pred.exponents))
    if pred.kind == "T":
        return f"exponent {pred.formula} = {exps} → stalls as T grows"
    return f"exponent {pred.formula} → keeps falling with width, T-independent"


def format_agreement_table(rows: list[dict]) -> str:
    """Markdown table: cell, InfoFlow prediction, per-T slopes, ratio, observation, verdict (both metrics)."""
    head = ("| cell | InfoFlow (source) | metric | slope per T (log err / log params) | "
            "ratio T_max/T_min @W | noise | observation | verdict |\n"
            "|---|---|---|---|---|---|---|---|\n")
    lines = []
    for row in rows:
        pred = row["prediction"]
        for metric in METRICS:
            obs: Observation = row[metric]["observation"]
            slopes = ", ".join(f"T={T}: {_fmt(s)}" for T, s in sorted(obs.slopes.items())) or "–"
            ratio = (f"{_fmt(obs.ratio)} @W={obs.ratio_width}" if obs.ratio is not None else "–")
            noise = _fmt(obs.noise) + (f" / seeds {_fmt(obs.seed_spread)}" if obs.seed_spread else "")
            lines.append(f"| {row['cell']} | {_prediction_words(pred)} ({pred.source}) | {metric} | "
                         f"{slopes} | {ratio} | {noise} | {obs.category} | "
                         f"**{row[metric]['verdict']}** |")
    return head + "\n".join(lines) + "\n"


def format_agreement_text(rows: list[dict]) -> str:
    """Compact plain-text version for the terminal."""
    out = [f"{'cell':<22} {'InfoFlow':<10} {'metric':<5} {'observation':<22} verdict"]
    for row in rows:
        pred = row["prediction"]
        for metric in METRICS:
            obs = row[metric]["observation"]
            out.append(f"{row['cell']:<22} {pred.formula + ' (' + pred.kind + ')':<10} {metric:<5} "
                       f"{obs.category:<22} {row[metric]['verdict']}")
    return "\n".join(out)


# ---------------------------------------------------------------------------- figures


def _plot_cell(ax, agg: dict, title: str, ylabel: str, baselines: dict | None = None):
    import matplotlib.pyplot as plt

    Ts = sorted(agg)
    colors = plt.cm.viridis(np.linspace(0.0, 0.85, max(len(Ts), 1)))
    for color, T in zip(colors, Ts):
        Ws = sorted(agg[T])
        p = [agg[T][W][0] for W in Ws]
        e = [agg[T][W][1] for W in Ws]
        ax.plot(p, e, "o-", color=color, label=f"T={T}")
        if baselines and T in baselines:
            ax.axhline(baselines[T], color=color, ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    from matplotlib.ticker import NullFormatter

    ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlap on a 1-decade axis
    ax.set_xlabel("params_theorem")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)


def _baselines(recs: list[dict]) -> dict:
    out = defaultdict(list)
    for r in recs:
        if r.get("baseline_test_mse") is not None:
            out[r["T"]].append(math.sqrt(r["baseline_test_mse"]))
    return {T: float(np.mean(v)) for T, v in out.items()}


def _write_figures(run_dir: Path, rows: list[dict], cells: dict) -> tuple[list[tuple[str, Path]], Path | None]:
    plt = pyplot()

    figs = []
    for row, (key, recs) in zip(rows, cells.items()):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        base = _baselines(recs)
        for ax, metric in zip(axes, METRICS):
            obs = row[metric]["observation"]
            _plot_cell(ax, row[metric]["agg"],
                       f"{row['cell']} — {metric}: {obs.category} → {row[metric]['verdict']}",
                       METRICS[metric][2], base if metric == "rmse" else None)
        fig.suptitle(f"{row['cell']}: InfoFlow exponent {row['prediction'].formula} "
                     f"(dotted: RMSE of predicting the mean)", fontsize=10)
        fig.tight_layout(rect=(0, 0, 1, 0.95))
        path = run_dir / f"fig_train_{_cell_slug(key)}.png"
        save_figure(fig, path)
        figs.append((row["cell"], path))

    # overview: rows = task variants, columns = L (RMSE)
    variants = sorted({tuple(v for k, v in row["key"].items() if k not in ("L",)) for row in rows},
                      key=lambda t: tuple(str(x) for x in t))
    Ls = sorted({row["key"]["L"] for row in rows})
    overview = None
    if rows:
        fig, axes = plt.subplots(len(variants), len(Ls), figsize=(4.6 * len(Ls), 3.6 * len(variants)),
                                 squeeze=False)
        for ax in axes.flat:
            ax.set_visible(False)
        for row, (key, recs) in zip(rows, cells.items()):
            v = tuple(val for k, val in row["key"].items() if k != "L")
            ax = axes[variants.index(v), Ls.index(row["key"]["L"])]
            ax.set_visible(True)
            obs = row["rmse"]["observation"]
            _plot_cell(ax, row["rmse"]["agg"],
                       f"{row['cell']} [{row['prediction'].formula}]: {row['rmse']['verdict']}",
                       "test RMSE", _baselines(recs))
        fig.suptitle("test RMSE vs params_theorem, one line per T; dotted: RMSE of predicting "
                     "the mean; [InfoFlow exponent]: verdict", fontsize=10)
        fig.tight_layout(rect=(0, 0, 1, 0.97))
        overview = run_dir / "fig_train_overview.png"
        save_figure(fig, overview, dpi=100)
    return figs, overview


# ---------------------------------------------------------------------------- report


def _data_table(row: dict, recs: list[dict]) -> str:
    by = {(r["T"], r["W"], r["seed"]): r for r in recs}
    Ts = sorted({r["T"] for r in recs})
    Ws = sorted({r["W"] for r in recs})
    seeds = sorted({r["seed"] for r in recs})
    head = "| T | " + " | ".join(f"W={W}" for W in Ws) + " | RMSE of mean |\n"
    head += "|---|" + "---|" * (len(Ws) + 1) + "\n"
    lines = []
    base = _baselines(recs)
    for T in Ts:
        cells = []
        for W in Ws:
            rs = [by[(T, W, s)] for s in seeds if (T, W, s) in by]
            if not rs:
                cells.append("–")
                continue
            rm = float(np.median([math.sqrt(r["best_test_mse"]) for r in rs]))
            sups = [r["sup_error_estimate"] for r in rs if r.get("sup_error_estimate") is not None]
            sp = float(np.median(sups)) if sups else None
            cells.append(f"{rm:.3g} / {_fmt(sp, '.3g')} (P={rs[0]['params_theorem']})")
        lines.append(f"| {T} | " + " | ".join(cells) + f" | {_fmt(base.get(T), '.3g')} |")
    return head + "\n".join(lines) + "\n"


RULE_TEXT = f"""\
Per cell (task, L) and per error metric (test RMSE of the best weights on the
held-out sample; sup-error estimate), taking the median over seeds at each point:

* `slope(T)`: least-squares slope of log(error) on log(params_theorem) over the
  FFN widths, at each T;
* `ratio`: error(T_max) / error(T_min) at the largest width trained at both;
* `noise`: the largest factor by which a point lies off its per-T log-log line
  (and, with several seeds, the median max/min spread over seeds).

Thresholds (named constants in `infoflow_jax/training/report.py`):

| constant | value | why |
|---|---|---|
| `FALL_SLOPE` | {FALL_SLOPE} | "keeps falling": ≥ 1.6× less error per decade of params; between InfoFlow's slope for exponent 1 (−1) and for exponent T ≥ 8 (−1/T ≥ −0.125) |
| `STALL_SLOPE` | {STALL_SLOPE} | "stalls": < 1.26× gain per decade of params |
| `T_GROWTH_RATIO` | {T_GROWTH_RATIO} | "error grows with T": ≥ 2× between T_min and T_max at the same width |
| `T_FLAT_RATIO` | {T_FLAT_RATIO} | "independent of T": ≤ 1.5× (a finite-β softmax max itself degrades like ln T / β) |
| `NOISE_FACTOR` | {NOISE_FACTOR} | points ≥ 2× off their line, or seeds ≥ 2× apart, are as large as the effects above |

Observation (first that applies): *insufficient* (< 2 T or < 2 widths);
*noisy* (noise ≥ `NOISE_FACTOR`); *{FALLS}* (every slope ≤ `FALL_SLOPE` and
ratio ≤ `T_FLAT_RATIO`); *{DEGRADES}* (ratio ≥ `T_GROWTH_RATIO`, or slope(T_max)
≥ `STALL_SLOPE` while slope(T_min) ≤ `FALL_SLOPE`); *{STALLS}* (every slope ≥
`STALL_SLOPE`); *mixed* (otherwise).

Verdict: where InfoFlow's exponent does not depend on T (1, r, D) the cell
**agrees** if the observation is *{FALLS}* and **disagrees** if it is
*{DEGRADES}* or *{STALLS}*. Where the exponent grows with T (T·d,
memorization) it **agrees** with *{DEGRADES}* and **disagrees** with
*{FALLS}*; *{STALLS}* is inconclusive there (it cannot tell "hard at every T"
from "not trained enough"). Everything else is **inconclusive**.
"""


def write_training_report(run_dir: str | Path) -> Path:
    """Write ``run_dir/report_train.md`` (+ PNG figures) from ``run_dir/train.jsonl``."""
    from infoflow_jax.verification.store import TRAIN_RESULTS, read_manifest, read_results

    run_dir = Path(run_dir)
    records = read_results(run_dir, TRAIN_RESULTS)
    manifest = read_manifest(run_dir) or {}
    cells = group_cells(records)
    rows = agreement_rows(records)
    figs, overview = _write_figures(run_dir, rows, cells) if records else ([], None)

    dev = manifest.get("device", {})
    vers = manifest.get("versions", {})
    total_s = sum(r.get("seconds", 0.0) for r in records)
    dtypes = sorted({(r.get("dtype"), r.get("eval_dtype")) for r in records}, key=str)
    md = [f"# Trained networks vs InfoFlow — `{manifest.get('name', run_dir.name)}`\n"]
    md.append(f"Run directory `{run_dir}`; {len(records)} trained configurations "
              f"(of {manifest.get('n_configs', '?')} in the spec); "
              f"sum of per-configuration wall time {total_s:.0f} s.\n")
    md.append(f"Device: {dev.get('platform', '?')} ({dev.get('device_kind', '?')}, "
              f"{dev.get('cpu_count', '?')} CPU cores visible); jax {vers.get('jax', '?')}, "
              f"flax {vers.get('flax', '?')}, optax {vers.get('optax', '?')}.\n")
    md.append("Precision: " + "; ".join(f"trained in {a}, evaluated (test MSE, sup error) in {b}"
                                        for a, b in dtypes) + ".\n")
    md.append("THEORY §7: where InfoFlow's exponent grows with T the error should stall as T "
              "grows at fixed width; where it is T-independent the error should keep falling "
              "with width, independently of T. The sup-error estimate is a *lower* estimate "
              "(samplers + adversarial ascent), not a certificate.\n")
    md.append("## Agreement with THEORY §5\n")
    md.append(format_agreement_table(rows))
    if any(len(r["seeds"]) < 2 for r in rows):
        md.append("\nCells with one seed: seed-to-seed noise is not measured there; only the "
                  "off-line scatter guards the classification.\n")
    md.append("\n## The rule\n")
    md.append(RULE_TEXT)
    md.append("\n## Figures\n")
    if overview is not None:
        md.append(f"![overview]({overview.name})\n")
    for label, path in figs:
        md.append(f"### {label}\n\n![{label}]({path.name})\n")
    md.append("\n## Data\n")
    md.append("Each entry: test RMSE / sup-error estimate (P = params_theorem); median over seeds. Last column: RMSE of the constant predictor (mean of the target).\n")
    for row, (key, recs) in zip(rows, cells.items()):
        stopped = sum(1 for r in recs if r.get("stopped_early"))
        md.append(f"\n### {row['cell']}\n\n{_data_table(row, recs)}\n"
                  f"{stopped} of {len(recs)} runs stopped early (patience).\n")
    out = run_dir / "report_train.md"
    out.write_text("\n".join(md))
    return out
