"""Summaries and figures of the papers' runs (issue 12), with InfoFlow's prediction per cell.

A *cell* is one configuration up to the seed: (task, D, d, L, heads per layer, T, E, W,
residual, layer_norm, positional). Per cell: the number of seeds, the median and the range
of ``best_test_nmse``, and the planner's prediction (:func:`prediction`), plus the probe
ratios (maxpos) and the attention by position (fixedpos) where recorded.

The papers' numbers (:data:`PAPER_VALUES`) come from summaries of the papers, not their
full text: orders of magnitude and locations of transitions, not exact values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from infoflow_jax.core.figures import pyplot, save_figure
from infoflow_jax.infoflow.layer_heads import plan_with_heads
from infoflow_jax.infoflow.tasks import build_task
from infoflow_jax.verification.store import TRAIN_RESULTS, read_results

__all__ = ["PAPER_VALUES", "ORDER_OF_MAGNITUDE", "SEPARATION", "LEARNED", "paper_comparison",
           "prediction", "summarize", "format_summary", "plot_headcount", "plot_triangle",
           "intrinsic_separation", "format_separation", "write_paper_report"]

#: (task, D, L, heads, T, E-note) → reported best validation NMSE, from the papers' summaries.
#: T = None: the summary does not say at which T. E-note "E=32" marks the fixed-width variant.
PAPER_VALUES = {
    ("headcount", 4, 1, (1,), 8, ""): 7.0e-2,
    ("headcount", 4, 1, (1,), 128, ""): 1.45e-1,
    ("headcount", 4, 1, (3,), 128, ""): 1.6e-3,
    ("headcount", 4, 1, (4,), 8, ""): 6.1e-5,
    ("headcount", 4, 1, (4,), 128, ""): 5.2e-6,
    ("headcount", 4, 1, (3,), None, "E=32"): 4.8e-4,
    ("headcount", 4, 1, (4,), None, "E=32"): 5.7e-7,
    ("headcount", 3, 1, (2,), None, ""): 1.1e-3,
    ("headcount", 3, 1, (3,), None, ""): 2.1e-7,
    ("headcount", 4, 2, (1, 1), None, ""): 4.3e-4,
    ("headcount", 4, 2, (2, 2), None, ""): 3.8e-6,
    **{("intrinsic", D, 2, hh, 64, ""): v
       for D, vals in {2: (5.9e-5, 5.9e-2, 3.7e-2), 3: (6.4e-5, 2.6e-2, 2.1e-2),
                       4: (6.9e-5, 1.4e-2, 1.3e-2), 5: (4.7e-4, 4.5e-3, 7.2e-3),
                       6: (2.0e-3, 6.3e-3, 7.7e-3)}.items()
       for hh, v in zip(((D, D), (D - 1, D), (D, D - 1)), vals)},
    **{("triangle", None, 2, hh, T, f"E={E}"): v
       for T, vals in {8: (0.086, 0.072, 0.080), 16: (0.84, 0.85, 0.86)}.items()
       for (hh, E), v in zip((((2, 2), 24), ((4, 4), 24), ((4, 4), 48)), vals)},
    ("triangle", None, 2, None, 3, ""): 1e-3,
    ("triangle", None, 2, None, 32, ""): 0.96,
    ("triangle", None, 2, None, 64, ""): 0.985,
}

_GRAPH = {"headcount": "headcount", "intrinsic": "intrinsic", "triangle": "triangle",
          "maxpos": "maxpos", "fixedpos": "fixedpos"}


def prediction(rec: dict) -> dict:
    """The planner's prediction for a record's (task, D, d, heads per layer, T)."""
    d = rec.get("d") or 1
    graph = build_task(_GRAPH[rec["task"]], D=rec.get("D"), d=d)
    heads = tuple(rec.get("heads") or (rec["h"],) * rec["L"])
    p = plan_with_heads(graph, heads, rec["T"])
    value = int(p.exponent) if float(p.exponent).is_integer() else p.exponent
    text = (f"fits, b = {p.exponent_formula}" if p.fits and p.exponent_formula != "T*d"
            else f"b = T·d = {value}" + ("" if p.fits else " (no schedule: memorization)"))
    return {"fits": p.fits, "exponent_formula": p.exponent_formula, "exponent": value,
            "text": text, "reason": p.reason}


_CELL_KEYS = ("task", "D", "d", "L", "heads", "T", "E", "W", "residual", "layer_norm",
              "positional", "steps", "lr", "n_train", "ffn", "query_init")
#: keys added with issue 23, read from the record's config; older records get these values
_CELL_DEFAULTS = {"ffn": 0, "query_init": "normal"}


def _cell(rec: dict) -> tuple:
    def get(k):
        if k == "heads":
            return tuple(rec[k])
        if k in rec:
            return rec[k]
        return rec.get("config", {}).get(k, _CELL_DEFAULTS.get(k))
    return tuple(get(k) for k in _CELL_KEYS)


def summarize(records: list[dict]) -> list[dict]:
    """One row per cell (records of the papers' protocol only), in first-seen order."""
    cells: dict[tuple, list[dict]] = {}
    for r in records:
        if r.get("protocol") == "papers":
            cells.setdefault(_cell(r), []).append(r)
    rows = []
    for key, recs in cells.items():
        nmse = np.array([r["best_test_nmse"] for r in recs])
        row = dict(zip(_CELL_KEYS, key))
        row.update(n=len(recs), median=float(np.median(nmse)), lo=float(nmse.min()),
                   hi=float(nmse.max()), seconds=float(sum(r["seconds"] for r in recs)),
                   prediction=prediction(recs[0]))
        if "probe_ratio_argmax" in recs[0]:
            row["probe_ratio_argmax"] = float(np.median([r["probe_ratio_argmax"] for r in recs]))
            row["probe_ratio_second"] = float(np.median([r["probe_ratio_second"] for r in recs]))
        if "attn_by_position" in recs[0]:
            row["attn_by_position"] = np.median(
                np.array([r["attn_by_position"] for r in recs]), axis=0).tolist()
        rows.append(row)
    return rows


def _heads(row) -> str:
    return "(" + ",".join(map(str, row["heads"])) + ")"


def format_summary(rows: list[dict]) -> str:
    """Markdown table: cell, seeds, median [min, max] best NMSE, InfoFlow's prediction."""
    lines = ["| task | D | L | heads | T | E | seeds | best NMSE median [min, max] | InfoFlow | extra |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        extra = ""
        if "probe_ratio_argmax" in r:
            extra = (f"probe ratio argmax {r['probe_ratio_argmax']:.3f}, "
                     f"second {r['probe_ratio_second']:.3f}")
        if "attn_by_position" in r:
            a = r["attn_by_position"]
            extra = "attention " + ", ".join(f"{x:.3f}" for x in a[:4]) + (", …" if len(a) > 4 else "")
        lines.append(f"| {r['task']} | {r['D'] if r['D'] is not None else '–'} | {r['L']} | "
                     f"{_heads(r)} | {r['T']} | {r['E']} | {r['n']} | {r['median']:.2e} "
                     f"[{r['lo']:.2e}, {r['hi']:.2e}] | {r['prediction']['text']} | {extra} |")
    return "\n".join(lines)


def plot_headcount(rows: list[dict], path: str | Path, D: int = 4) -> Path | None:
    """NMSE against h, one panel per T, L = 1 and L = 2, with the papers' values overlaid."""
    plt = pyplot()

    rows = [r for r in rows if r["task"] == "headcount" and r["D"] == D]
    Ts = sorted({r["T"] for r in rows})
    if not Ts:
        return None
    fig, axes = plt.subplots(1, len(Ts), figsize=(4.2 * len(Ts), 3.6), sharey=True, squeeze=False)
    for ax, T in zip(axes[0], Ts):
        for L, color in ((1, "C0"), (2, "C1")):
            rs = sorted((r for r in rows if r["T"] == T and r["L"] == L), key=lambda r: r["heads"][0])
            if not rs:
                continue
            h = np.array([r["heads"][0] for r in rs])
            med = np.array([r["median"] for r in rs])
            err = np.array([[m - r["lo"] for m, r in zip(med, rs)], [r["hi"] - m for m, r in zip(med, rs)]])
            ax.errorbar(h, med, yerr=err, marker="o", color=color, capsize=3,
                        label=f"ours, L={L} (median, range)")
        for (task, pD, L, heads, pT, note), v in PAPER_VALUES.items():
            if task != "headcount" or pD != D or (pT is not None and pT != T):
                continue
            ax.scatter([heads[0]], [v], marker="*" if pT == T else "x", s=80,
                       color="C0" if L == 1 else "C1", zorder=5,
                       label=f"paper, L={L}" + (f" T={pT}" if pT else " (T not stated)")
                       + (f" {note}" if note else ""))
        ax.axvline(D - 0.5, color="grey", ls=":", lw=1)
        ax.set_xticks(range(1, 7))
        ax.set_yscale("log")
        ax.set_xlabel("heads h (per layer)")
        ax.set_title(f"head count D={D}, T={T}")
    axes[0][0].set_ylabel("best validation NMSE")
    handles, labels = [], []
    for ax in axes[0]:
        for hd, lb in zip(*ax.get_legend_handles_labels()):
            if lb not in labels:
                handles.append(hd)
                labels.append(lb)
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.16, 1, 1))
    return save_figure(fig, path)


def plot_triangle(rows: list[dict], path: str | Path) -> Path | None:
    """Triangle centre: NMSE against T (ours per heads/E, median and range), papers' values."""
    plt = pyplot()

    rows = [r for r in rows if r["task"] == "triangle"]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(5, 3.6))
    groups = sorted({(r["heads"], r["E"]) for r in rows})
    for i, (heads, E) in enumerate(groups):
        rs = sorted((r for r in rows if (r["heads"], r["E"]) == (heads, E)), key=lambda r: r["T"])
        T = np.array([r["T"] for r in rs])
        med = np.array([r["median"] for r in rs])
        err = np.array([[m - r["lo"] for m, r in zip(med, rs)], [r["hi"] - m for m, r in zip(med, rs)]])
        ax.errorbar(T, med, yerr=err, marker="o", capsize=3, color=f"C{i}",
                    label=f"ours, heads {heads}, E={E}")
    pts = sorted((k[4], v) for k, v in PAPER_VALUES.items() if k[0] == "triangle")
    ax.scatter([p[0] for p in pts], [p[1] for p in pts], marker="*", s=80, color="k", zorder=5,
               label="paper (summaries)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("T")
    ax.set_ylabel("best validation NMSE")
    ax.set_title("triangle centre (InfoFlow: T·d, memorization)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def write_paper_report(run_dir: str | Path) -> Path:
    """``run_dir/report_papers.md`` (summary table) and the figures that apply."""
    run_dir = Path(run_dir)
    rows = summarize(read_results(run_dir, TRAIN_RESULTS))
    figs = [p for p in (plot_headcount(rows, run_dir / "fig_headcount.png"),
                        plot_triangle(rows, run_dir / "fig_triangle.png")) if p is not None]
    text = ["# Papers' experiments: run summary", "",
            "Paper values come from summaries of the papers (orders of magnitude).", "",
            format_summary(rows), ""]
    text += [f"![{p.stem}]({p.name})" for p in figs]
    path = run_dir / "report_papers.md"
    path.write_text("\n".join(text) + "\n")
    return path


#: a paper's number is an order of magnitude: ours "reproduces" it within this factor
ORDER_OF_MAGNITUDE = 10.0
#: intrinsic dimension: (D, D) "separates" when its median is this factor below the medians of
#: both (D−1, D) and (D, D−1) (the issue's acceptance; the paper's gap is ~10³)
SEPARATION = 10.0
#: a cell whose median best NMSE is at or below this has learned the task (used only to call
#: a missing separation a disagreement: every cell learned, including the ones InfoFlow says cannot)
LEARNED = 1e-3


def intrinsic_separation(rows: list[dict]) -> list[dict]:
    """Per intrinsic-dimension protocol (every cell key but the heads) and D: the (D, D)
    median, the (D−1, D) and (D, D−1) medians, the separation min(others) / (D, D), and
    InfoFlow's verdict for "(D, D) fits, the others memorize":

    * ``agrees``: separation ≥ :data:`SEPARATION`;
    * ``disagrees``: separation < SEPARATION although every cell's median is ≤ :data:`LEARNED`
      (the cells InfoFlow says cannot fit, fit);
    * ``inconclusive``: otherwise ((D, D) itself has not learned the task well enough for
      its gap to the others to be read as the prediction's failure).
    """
    groups: dict[tuple, dict] = {}
    for r in rows:
        if r["task"] != "intrinsic" or r["L"] != 2:
            continue
        key = tuple(r[k] for k in _CELL_KEYS if k != "heads")
        groups.setdefault(key, {})[tuple(r["heads"])] = r
    out = []
    for key, cells in groups.items():
        D = dict(zip([k for k in _CELL_KEYS if k != "heads"], key))["D"]
        dd, others = cells.get((D, D)), [cells.get((D - 1, D)), cells.get((D, D - 1))]
        if dd is None or any(o is None for o in others):
            continue
        ratio = min(o["median"] for o in others) / dd["median"]
        if ratio >= SEPARATION:
            verdict = "agrees"
        elif max(c["median"] for c in (dd, *others)) <= LEARNED:
            verdict = "disagrees"
        else:
            verdict = "inconclusive"
        out.append({"D": D, "T": dd["T"], "steps": dd["steps"], "ffn": dd["ffn"],
                    "n_train": dd["n_train"], "DD": dd, "Dm1_D": others[0], "D_Dm1": others[1],
                    "separation": ratio, "verdict": verdict})
    return out


def format_separation(seps: list[dict]) -> str:
    """Markdown: per D and protocol, the three cells and the separation verdict."""
    cell = lambda r: f"{r['median']:.3g} [{r['lo']:.3g}, {r['hi']:.3g}] ({r['n']})"  # noqa: E731
    lines = ["| D | T | steps | FFN | n_train | (D, D) | (D−1, D) | (D, D−1) | separation "
             "| InfoFlow's prediction |", "|---|---|---|---|---|---|---|---|---|---|"]
    for s in seps:
        lines.append(f"| {s['D']} | {s['T']} | {s['steps']} | {s['ffn'] or '–'} | {s['n_train']} | "
                     f"{cell(s['DD'])} | {cell(s['Dm1_D'])} | {cell(s['D_Dm1'])} | "
                     f"{s['separation']:.2f}× | {s['verdict']} |")
    return "\n".join(lines)


def _matches(row: dict, key: tuple, exact_T: bool) -> bool:
    task, D, L, heads, T, note = key
    if row["task"] != task or row["L"] != L or (D is not None and row["D"] != D):
        return False
    if heads is not None and tuple(row["heads"]) != tuple(heads):
        return False
    if note.startswith("E=") and row["E"] != int(note[2:]):
        return False
    return (T is None or row["T"] == T) if exact_T else True


def paper_comparison(rows: list[dict]) -> list[dict]:
    """For each paper number: our matching cell (same task, D, L, heads, T, E-variant) if run,
    else the nearest-T cell as a proxy; the InfoFlow prediction; the order-of-magnitude verdict.

    Verdict: "reproduced" when our median is within ×10 of the paper's number, "not
    reproduced" otherwise, "not run" when no cell of ours has the paper's T (a proxy at
    another T is shown but not judged). Cells whose T the summary does not give are judged
    against every T we ran (the worst and best of ours must both be within ×10).
    """
    out = []
    for key, value in PAPER_VALUES.items():
        exact = [r for r in rows if _matches(r, key, True)]
        task, D, L, heads, T, note = key
        proxy = [] if exact else sorted((r for r in rows if _matches(r, key, False)),
                                        key=lambda r: abs(r["T"] - (T or 0)))
        verdict, ours = "not run", None
        if exact:
            meds = [r["median"] for r in exact]
            ours = exact
            within = all(abs(np.log10(m / value)) <= np.log10(ORDER_OF_MAGNITUDE) for m in meds)
            verdict = "reproduced" if within else "not reproduced"
        out.append({"key": key, "paper": value, "ours": ours, "proxy": proxy[:1],
                    "verdict": verdict})
    return out


def _key_prediction(key: tuple) -> str:
    """The planner's prediction at a paper cell, as a formula (T and d may not be stated)."""
    task, D, L, heads, T, _ = key
    heads = heads or (2,) * L  # triangle: every head count gives the same prediction
    rec = {"task": task, "D": D, "d": {"headcount": 8, "intrinsic": 4}.get(task, 2),
           "heads": list(heads), "L": L, "h": heads[0], "T": T or 8}
    p = prediction(rec)
    return (f"fits, b = {p['exponent_formula']}" if p["fits"] and p["exponent_formula"] != "T*d"
            else "b = T·d" + ("" if p["fits"] else " (no schedule: memorization)"))


def format_paper_comparison(comp: list[dict]) -> str:
    """Markdown: paper number, ours (median [range], seeds), InfoFlow, verdict."""
    lines = ["| task | D | L | heads | T | variant | paper | ours: median [min, max] (seeds), ×ours/paper "
             "| InfoFlow | verdict |", "|---|---|---|---|---|---|---|---|---|---|"]
    for c in comp:
        task, D, L, heads, T, note = c["key"]
        cells = c["ours"] or c["proxy"]
        if cells:
            tag = "" if c["ours"] else "proxy: "
            ours = "; ".join(f"{tag}{r['median']:.2g} [{r['lo']:.2g}, {r['hi']:.2g}] ({r['n']}), "
                             f"T={r['T']}, E={r['E']}, ×{r['median'] / c['paper']:.3g}"
                             for r in cells)
        else:
            ours = "—"
        pred = _key_prediction(c["key"])
        hd = "(" + ",".join(map(str, heads)) + ")" if heads else "all"
        lines.append(f"| {task} | {D if D is not None else '–'} | {L} | {hd} | "
                     f"{T if T is not None else 'not stated'} | {note or '–'} | {c['paper']:.2g} | "
                     f"{ours} | {pred} | {c['verdict']} |")
    return "\n".join(lines)


def fill_cells(markdown_path: str | Path, comparison_table: str) -> None:
    """Replace every ``<!-- cells:TASK -->…<!-- /cells -->`` block of a markdown file with
    the header and TASK's rows of ``comparison_table``."""
    import re

    lines = comparison_table.splitlines()
    head, rows = lines[:2], lines[2:]
    path = Path(markdown_path)

    def block(m):
        task = m.group(1)
        body = head + [r for r in rows if r.startswith(f"| {task} |")]
        return f"<!-- cells:{task} -->\n" + "\n".join(body) + "\n<!-- /cells -->"

    path.write_text(re.sub(r"<!-- cells:(\w+) -->.*?<!-- /cells -->", block, path.read_text(),
                           flags=re.S))


def main(argv=None) -> int:
    """``python -m infoflow_jax.training.paper_report RUN_DIR… [--figures DIR]``: comparison table and figures."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m infoflow_jax.training.paper_report")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--figures", metavar="DIR", default=None)
    p.add_argument("--fill", metavar="MARKDOWN", default=None,
                   help="replace each <!-- cells:TASK --> … <!-- /cells --> block with TASK's rows")
    args = p.parse_args(argv)
    records = [r for d in args.runs for r in read_results(d, TRAIN_RESULTS)]
    rows = summarize(records)
    print(format_summary(rows))
    print()
    print(format_paper_comparison(paper_comparison(rows)))
    seps = intrinsic_separation(rows)
    if seps:
        print()
        print(format_separation(seps))
    if args.fill:
        fill_cells(args.fill, format_paper_comparison(paper_comparison(rows)))
        print(f"filled {args.fill}")
    if args.figures:
        for f in (plot_headcount(rows, Path(args.figures) / "headcount_nmse_vs_h.png"),
                  plot_triangle(rows, Path(args.figures) / "triangle_nmse_vs_T.png")):
            if f is not None:
                print(f"wrote {f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
