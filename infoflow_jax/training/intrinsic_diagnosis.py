"""Why the intrinsic-dimension cells learn nothing at T = 16 (issue 23): a resumable diagnosis.

The task (:class:`~infoflow_jax.training.paper_tasks.IntrinsicDim`): F = Σ_{i≤D} m_i,
m_i = max_{s,t} x(s)ᵀA_i x(t), x(t) ~ N(0, I_4). InfoFlow's schedule for heads (D, D): in
layer 1, head i at every token s retrieves its partner t*_i(s) = argmax_t x(s)ᵀA_i x(t),
and the token then holds u_i(s) = x(s)ᵀA_i x(t*_i(s)); in layer 2 the readout retrieves
max_s u_i(s) = m_i. With one head fewer in either layer some m_i has no retrieval, and the
only route left is memorization (b = T·d).

**Hypotheses, fixed before the runs.** The cells of ``sweeps/infoflow_cpu.toml`` (1500 steps of
batch 64, AdamW lr 1e-3, attention-only layers with a residual) end at NMSE 0.13–0.35 in
every cell. Candidate causes, each one a variant below, on the pair (2, 2) against (1, 2)
at D = 2, T = 16, seeds 0, 1, 2, everything else as in the CPU spec:

* budget: the same protocol at 10× the steps (``base_15k``);
* learning rate: 3e-4 and 3e-3 at 10× the steps (``lr3e-4_15k``, ``lr3e-3_15k``);
* initialisation: every W_Q starts at 0, so that no head is locked by the random sign of
  its initial score (the T1 control's second fix, docs/training.md) (``qzero_15k``);
* architecture: the planner's layer model (docs/infoflow.md §3) has an FFN after every
  attention; the papers' model here has none. Without it, a token's state after layer 1
  is linear in what it retrieved, e.g. x(s) + V x(t*(s)); the readout's layer-2 score is
  linear in that state, so it cannot be the product u_i(s) = x(s)ᵀA_i x(t*(s)), and the
  (D, D) schedule has no exact realisation: every cell is then a memorization cell and
  should stall alike. The variant adds a per-token GELU block of width 64 after each
  attention (``ffn_1500``, ``ffn_15k``);
* data: the target's statistics (:func:`target_statistics`): skew, kurtosis, and the share
  of Var(y) that simple predictors explain, as floors to read the NMSEs against.

**Second round, added after the first** (so not fixed in advance; docs/experiments.md keeps
the order). With the FFN at 10× the steps, the (2, 2) networks fit their 8000 training
samples 2–3× better than they generalise (training-subset NMSE 0.015–0.033, validation
0.03–0.10), and layer 1 does not retrieve the partners. Two causes are tested:

* the training set: 64 000 samples instead of 8000, the same steps (15 epochs instead of 120)
  (``ffn_n64k_15k``);
* the initial query, now with the FFN (``ffn_qzero_15k``).

**The adopted protocol** combines the three changes that helped on their own: the FFN (the
(2, 2) schedule has no realisation without it), 64 000 samples (no overfitting), W_Q = 0 at
start (with the FFN, one (2, 2) seed of three reached 5e-3, both forms' u_i readable off
layer 1). The combination (``ffn_qzero_n64k_15k``) was not run before
sweeps/intrinsic_cpu.toml: that spec's D = 2 cells are its first and only measurement.

**Third round: the budget** (``ffn_qzero_n64k_60k``), fixed before its run. The adopted protocol
gave only 1.2–2.2× separation at D = 2, and every spec network had its best weights in the last
10 % of the schedule. The variant is that protocol at 4× the steps (60 000; cosine to 0 over
them), nothing else changed, on all three cells (2, 2), (1, 2), (2, 1), seeds 0, 1, 2. Two
outcomes are told apart in advance:

* if the small gap is a budget effect, the (2, 2) median falls ≥ 10× below both the (1, 2)
  and the (2, 1) medians;
* if the (2, 2) networks still do not retrieve every form in layer 1 (u-probe error ≤ 0.1 for
  each of the two forms), they keep the (D−1)-chain route of the other cells, and the gap
  stays small (of the order of the 1.2–2.2× measured at 15 000 steps).

Its (2, 1) cell is run only for this variant (:data:`VARIANT_CELLS`); the other variants keep
their two cells, so their configurations and hashes are unchanged.

Every run is recorded (``variant`` added to the papers' record) in ``OUT/train.jsonl``;
rerunning into OUT skips what is recorded, so an interrupted diagnosis resumes.

``python -m infoflow_jax.training.intrinsic_diagnosis run --out DIR [--variants a,b] [--smoke]``
``python -m infoflow_jax.training.intrinsic_diagnosis stats --out FILE.json [--n N]``
``python -m infoflow_jax.training.intrinsic_diagnosis report DIR… [--figure PNG]``

This is a module of the training layer, not a script under ``benchmarks/``: it trains with
:func:`~infoflow_jax.training.papers.train_seeds` and writes the papers' run folder, and its
smoke mode is a test (tests/test_intrinsic_diagnosis.py).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

from infoflow_jax.core.figures import pyplot, save_figure
from infoflow_jax.core.precision import use_float64
from infoflow_jax.training.harness import open_run_folder
from infoflow_jax.verification.store import TRAIN_RESULTS, read_jsonl, read_results
from infoflow_jax.training.paper_tasks import IntrinsicDim
from infoflow_jax.training.papers import PaperConfig, PaperSpec, train_seeds

__all__ = ["BASE", "CELLS", "ALL_CELLS", "SEEDS", "VARIANTS", "VARIANT_CELLS", "PROTOCOL_VARIANT", "diagnosis_configs", "run_diagnosis",
           "target_statistics", "summarize_diagnosis", "format_diagnosis", "format_probes", "plot_curves",
           "main"]

#: the CPU spec's intrinsic-dimension protocol at D = 2, T = 16 (sweeps/infoflow_cpu.toml, before issue 23)
BASE = dict(task="intrinsic", D=2, T=16, L=2, E=32, W=64, residual=True, layer_norm=False,
            n_train=8000, n_val=2000, steps=1500, batch=64, lr=1e-3, weight_decay=1e-2,
            warmup=0, eval_every=250, dtype="float32")
#: the cell pair: heads (h₁, h₂); every variant's cells unless :data:`VARIANT_CELLS` names others
CELLS = {"(2,2)": (2, 2), "(1,2)": (1, 2)}
#: every cell a variant may run
ALL_CELLS = {**CELLS, "(2,1)": (2, 1)}
SEEDS = (0, 1, 2)
#: variant name → (what it changes, overrides of BASE)
VARIANTS = {
    "base_1500": ("the CPU spec's protocol (1500 steps)", {}),
    "base_15k": ("10× the steps", dict(steps=15000, eval_every=500)),
    "lr3e-4_15k": ("lr 3e-4, 10× the steps", dict(steps=15000, eval_every=500, lr=3e-4)),
    "lr3e-3_15k": ("lr 3e-3, 10× the steps", dict(steps=15000, eval_every=500, lr=3e-3)),
    "qzero_15k": ("W_Q = 0 at start, 10× the steps", dict(steps=15000, eval_every=500,
                                                        query_init="zero")),
    "ffn_1500": ("FFN (width 64) after each attention", dict(ffn=64)),
    "ffn_15k": ("FFN (width 64) after each attention, 10× the steps",
                dict(steps=15000, eval_every=500, ffn=64)),
    # second round (after the first's results)
    "ffn_n64k_15k": ("FFN, 64 000 training samples, 10× the steps",
                     dict(steps=15000, eval_every=500, ffn=64, n_train=64000)),
    "ffn_qzero_15k": ("FFN, W_Q = 0 at start, 10× the steps",
                      dict(steps=15000, eval_every=500, ffn=64, query_init="zero")),
    # the adopted protocol (sweeps/intrinsic_cpu.toml)
    "ffn_qzero_n64k_15k": ("FFN, W_Q = 0 at start, 64 000 samples, 10× the steps",
                           dict(steps=15000, eval_every=500, ffn=64, query_init="zero",
                                n_train=64000)),
    # third round: the adopted protocol at 4× its steps (pre-registered in the docstring)
    "ffn_qzero_n64k_60k": ("FFN, W_Q = 0 at start, 64 000 samples, 40× the steps",
                           dict(steps=60000, eval_every=2000, ffn=64, query_init="zero",
                                n_train=64000)),
}
#: variant → its cells, where not :data:`CELLS`
VARIANT_CELLS = {"ffn_qzero_n64k_60k": ("(2,2)", "(1,2)", "(2,1)")}
#: the variant that sweeps/intrinsic_cpu.toml adopts as its protocol (docs/experiments.md says why)
PROTOCOL_VARIANT = "ffn_qzero_n64k_15k"
#: a few seconds: the same code path at toy sizes (tests, and a check before a long run)
SMOKE = dict(T=4, E=8, W=8, n_train=64, n_val=32, steps=20, eval_every=10, batch=8)


def diagnosis_configs(variants=None, *, smoke: bool = False,
                      cells=None) -> list[tuple[str, PaperConfig]]:
    """(variant, configuration) for every variant × cell × seed, in that order. A variant's
    cells are :data:`VARIANT_CELLS`' entry, else :data:`CELLS`; ``cells`` (names of
    :data:`ALL_CELLS`) keeps only those among them."""
    names = list(VARIANTS) if variants is None else list(variants)
    unknown = [v for v in names if v not in VARIANTS] + [c for c in cells or () if c not in ALL_CELLS]
    if unknown:
        raise ValueError(f"unknown variant(s) or cell(s) {unknown}; known: "
                         f"{', '.join(VARIANTS)}; {', '.join(ALL_CELLS)}")
    out = []
    for name in names:
        own = VARIANT_CELLS.get(name, tuple(CELLS))
        chosen = [ALL_CELLS[k] for k in own if cells is None or k in cells]
        out += [(name, h, seed) for h, seed in itertools.product(chosen, SEEDS)]
    return [(name, _config(name, h1, h2, seed, smoke)) for name, (h1, h2), seed in out]


def _config(name: str, h1: int, h2: int, seed: int, smoke: bool) -> PaperConfig:
    kw = {**BASE, **VARIANTS[name][1], "h": h1, "h_last": h2, "seed": seed}
    if smoke:  # toy sizes; a variant with more steps or data keeps more, so hashes differ
        more = 1 if kw["steps"] <= BASE["steps"] else 2 if kw["steps"] <= 10 * BASE["steps"] else 4
        kw.update(SMOKE, steps=SMOKE["steps"] * more,
                  n_train=SMOKE["n_train"] * max(1, kw["n_train"] // BASE["n_train"]))
    return PaperConfig(**kw)


def run_diagnosis(out_dir, variants=None, *, smoke: bool = False, progress: bool = True,
                  cells=None) -> list[dict]:
    """Train every (variant, cell) not yet in ``out_dir/train.jsonl``, seeds side by side;
    return all records of the requested variants and cells."""
    pairs = diagnosis_configs(variants, smoke=smoke, cells=cells)
    raw = {"kind": "papers", "name": "intrinsic_diagnosis", "smoke": smoke,
           "variants": {v: VARIANTS[v][1] for v in dict.fromkeys(v for v, _ in pairs)},
           "base": BASE, "cells": {k: list(v) for k, v in CELLS.items()},
           "variant_cells": {v: list(c) for v, c in VARIANT_CELLS.items()}, "seeds": list(SEEDS)}
    spec = PaperSpec(name="intrinsic_diagnosis", raw=raw, configs=tuple(c for _, c in pairs))
    store = open_run_folder(out_dir, spec, None, protocol="papers")
    done = {r.get("config_hash") for r in store.records}
    groups: dict[tuple, list] = {}
    for v, c in pairs:
        if c.config_hash() not in done:
            groups.setdefault((v, c.group_key()), []).append(c)
    status = "interrupted"
    try:
        for (v, _), cfgs in groups.items():
            if progress:
                print(f"[{v}] {cfgs[0].label()} seeds {[c.seed for c in cfgs]}", file=sys.stderr,
                      flush=True)
            for rec in train_seeds(cfgs):
                store.append({"variant": v, **rec})
                if progress:
                    print(f"  seed {rec['seed']}: best NMSE {rec['best_test_nmse']:.4g} "
                          f"({rec['cpu_seconds']:.0f} s CPU per seed)", file=sys.stderr, flush=True)
        status = "complete"
    finally:
        store.finish({"configs_total": len(pairs)}, status)
    wanted = {c.config_hash() for _, c in pairs}
    return [r for r in read_results(out_dir, TRAIN_RESULTS) if r.get("config_hash") in wanted]


# ---------------------------------------------------------------------------- target statistics


def _r2(F_fit, y_fit, F_test, y_test, lam: float = 1e-6) -> float:
    """Out-of-sample share of variance explained by ridge regression (with intercept)."""
    A = np.c_[F_fit, np.ones(len(F_fit))]
    B = np.c_[F_test, np.ones(len(F_test))]
    coef = np.linalg.solve(A.T @ A + lam * len(A) * np.eye(A.shape[1]), A.T @ y_fit)
    return float(1.0 - np.mean((B @ coef - y_test) ** 2) / np.var(y_test))


def _pooled(X) -> np.ndarray:
    """Permutation-invariant per-token statistics: mean_t x(t), mean_t x(t)x(t)ᵀ (upper
    triangle), max_t ‖x(t)‖², mean_t ‖x(t)‖⁴ — what a uniform attention head can average."""
    n, T, d = X.shape
    iu = np.triu_indices(d)
    second = np.einsum("nsd,nse->nde", X, X)[:, iu[0], iu[1]] / T
    norms = np.sum(X ** 2, axis=-1)
    return np.c_[X.mean(axis=1), second, norms.max(axis=1), (norms ** 2).mean(axis=1)]


def target_statistics(T: int = 16, D: int = 2, n: int = 40000, seed: int = 1) -> dict:
    """Moments of y and the NMSE floors 1 − R² of simple predictors (fit on 3/4 of n
    inputs, scored on the rest):

    * ``linear``: y affine in the T·d raw inputs (by the symmetry x → −x, R² ≈ 0);
    * ``pooled_linear`` / ``pooled_quadratic``: affine / quadratic in :func:`_pooled`, a
      predictor that retrieves nothing (uniform attention + MLP can compute it);
    * ``diagonal_max``: affine in Σ_i max_s x(s)ᵀA_i x(s) (pairs s = t only);
    * ``one_chain_missing``: m_1 … m_{D−1} exact, m_D through the pooled quadratic features:
      roughly what a network that performs every retrieval but one's can reach.
    """
    import jax
    import jax.numpy as jnp

    use_float64()
    task = IntrinsicDim(T=T, D=D)
    X = np.asarray(task.sample(jax.random.PRNGKey(seed), n), dtype=np.float64)
    y = np.asarray(task.target(jnp.asarray(X)))
    pair = np.einsum("nsd,ide,nte->nist", X, task.forms, X)
    m = pair.max(axis=(2, 3))
    diag = np.einsum("nsd,ide,nse->nis", X, task.forms, X).max(axis=-1).sum(axis=1)
    P = _pooled(X)
    Q = np.c_[P, np.stack([P[:, i] * P[:, j]
                           for i, j in itertools.combinations_with_replacement(range(P.shape[1]), 2)], 1)]
    k = 3 * n // 4
    Q = (Q - Q[:k].mean(0)) / Q[:k].std(0)
    fits = {"linear": X.reshape(n, -1), "pooled_linear": P, "pooled_quadratic": Q,
            "diagonal_max": diag[:, None], "one_chain_missing": np.c_[m[:, :D - 1], Q]}
    yc = y - y.mean()
    return {"T": T, "D": D, "n": n, "seed": seed, "mean": float(y.mean()), "var": float(y.var()),
            "skew": float(np.mean(yc ** 3) / y.var() ** 1.5),
            "excess_kurtosis": float(np.mean(yc ** 4) / y.var() ** 2 - 3.0),
            "var_share_m": (m.var(axis=0) / y.var()).tolist(),
            "nmse_floor": {"constant": 1.0, **{k_: 1.0 - _r2(F[:k], y[:k], F[k:], y[k:])
                                               for k_, F in fits.items()}}}


# ---------------------------------------------------------------------------- report


def summarize_diagnosis(records: list[dict]) -> list[dict]:
    """One row per (variant, cell), in first-seen order: median / range over seeds of the best
    validation NMSE and of the last training-subset NMSE, CPU seconds, attention masses."""
    cells: dict[tuple, list[dict]] = {}
    for r in records:
        cells.setdefault((r.get("variant", "?"), r["D"], tuple(r["heads"])), []).append(r)
    rows = []
    for (v, D, heads), rs in cells.items():
        best = np.array([r["best_test_nmse"] for r in rs])
        fit = np.array([r["train_trace"][-1][1] for r in rs]) if "train_trace" in rs[0] else None
        row = {"variant": v, "D": D, "heads": heads, "n": len(rs), "seeds": [r["seed"] for r in rs],
               "steps": rs[0]["steps"], "n_train": rs[0]["n_train"], "lr": rs[0]["lr"], "ffn": rs[0]["config"].get("ffn", 0),
               "query_init": rs[0]["config"].get("query_init", "normal"),
               "median": float(np.median(best)), "lo": float(best.min()), "hi": float(best.max()),
               "best_step": [r["best_step"] for r in rs],
               "fit_median": float(np.median(fit)) if fit is not None else None,
               "cpu_seconds": float(sum(r["cpu_seconds"] for r in rs)), "T": rs[0]["T"]}
        for key in ("partner_mass", "pair_mass"):
            if key in rs[0]:
                # per form i, the best head's mass; median over seeds
                per_seed = np.array([np.max(np.array(r[key]), axis=0) for r in rs])
                row[key] = np.median(per_seed, axis=0).tolist()
        rows.append(row)
    return rows


def format_diagnosis(rows: list[dict]) -> str:
    """Markdown: one line per (variant, D, heads), with the ratio to (D, D) on the other lines."""
    lines = ["| variant | D | heads | steps | n_train | lr | FFN | W_Q init | best val NMSE median [min, max] "
             "| train NMSE (last) | separation | layer-1 partner mass / form (chance 1/T) "
             "| layer-2 pair mass / form | CPU s (3 seeds) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    ref = {(r["variant"], r["D"]): r["median"] for r in rows if tuple(r["heads"]) == (r["D"],) * 2}
    for r in rows:
        key = (r["variant"], r["D"])
        sep = (f"{r['median'] / ref[key]:.2f}×" if tuple(r["heads"]) != (r["D"],) * 2
               and key in ref else "")
        fmt = lambda xs: ", ".join(f"{x:.2f}" for x in xs) if xs else "–"  # noqa: E731
        fit = f"{r['fit_median']:.3g}" if r["fit_median"] is not None else "–"
        lines.append(
            f"| {r['variant']} | {r['D']} | ({','.join(map(str, r['heads']))}) | {r['steps']} | {r['n_train']} | {r['lr']:g} | "
            f"{r['ffn'] or '–'} | {r['query_init']} | {r['median']:.3g} [{r['lo']:.3g}, {r['hi']:.3g}] | "
            f"{fit} | {sep} | {fmt(r.get('partner_mass'))} | {fmt(r.get('pair_mass'))} | "
            f"{r['cpu_seconds']:.0f} |")
    return "\n".join(lines)


def format_probes(records: list[dict]) -> str:
    """Markdown, one line per record with probes: per form i, the best layer-1 head's weight
    on the partner t*_i(s), the best layer-2 head's weight on the pair {s*_i, t*_i}, and the
    error of the linear read of u_i(s) off layer 1 (trained; at initialisation in brackets)."""
    lines = ["| run | D | heads | seed | best val NMSE | layer-1 partner mass / form (init) "
             "| layer-2 pair mass / form (init) | u_i(s) probe error / form (init) |",
             "|---|---|---|---|---|---|---|---|"]

    def per_form(r, key, best=True):
        if key not in r:
            return "–"
        now, init = np.array(r[key]), np.array(r.get(key + "_init", r[key]))
        if best:
            now, init = now.max(axis=0), init.max(axis=0)
        return ", ".join(f"{a:.2f} ({b:.2f})" for a, b in zip(now, init))

    for r in records:
        if "partner_mass" not in r:
            continue
        lines.append(f"| {r.get('variant', 'spec')} | {r['D']} | ({','.join(map(str, r['heads']))}) | "
                     f"{r['seed']} | {r['best_test_nmse']:.3g} | {per_form(r, 'partner_mass')} | "
                     f"{per_form(r, 'pair_mass')} | {per_form(r, 'u_probe_error', best=False)} |")
    return "\n".join(lines)


def plot_curves(records: list[dict], path, floors: dict | None = None):
    """Validation (solid) and training-subset (dashed) NMSE against steps, one panel per
    variant, one colour per cell, one line per seed; optional horizontal floors."""
    plt = pyplot()

    variants = list(dict.fromkeys(r.get("variant", "?") for r in records))
    ncol = min(4, len(variants))
    nrow = -(-len(variants) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.0 * nrow), sharey=True,
                             squeeze=False)
    colors = {}
    for ax, v in zip(axes.flat, variants):
        for r in (r for r in records if r.get("variant", "?") == v):
            key = "(" + ",".join(map(str, r["heads"])) + ")"
            c = colors.setdefault(key, f"C{len(colors)}")
            ev = np.array(r["eval_trace"])
            ax.plot(np.maximum(ev[:, 0], 1), ev[:, 1], color=c, lw=1,
                    label=f"{key} val" if r["seed"] == 0 else None)
            if "train_trace" in r:
                tr = np.array(r["train_trace"])
                ax.plot(np.maximum(tr[:, 0], 1), tr[:, 1], color=c, lw=0.8, ls="--",
                        label=f"{key} train" if r["seed"] == 0 else None)
        for i, (name, val) in enumerate((floors or {}).items()):
            ax.axhline(val, color="grey", lw=0.7, ls=[":", "-."][i % 2],
                       label=name if ax is axes.flat[0] else None)
        ax.set_yscale("log")
        ax.set_title(v, fontsize=9)
        ax.set_xlabel("step")
    for ax in axes.flat[len(variants):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("NMSE")
    handles, labels = [], []
    for ax in axes.flat:
        for hd, lb in zip(*ax.get_legend_handles_labels()):
            if lb not in labels:
                handles.append(hd)
                labels.append(lb)
    axes.flat[0].legend(handles, labels, fontsize=6)
    fig.suptitle("intrinsic dimension D=2, T=16: validation (solid) and training-subset "
                 "(dashed) NMSE, seeds 0–2", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m infoflow_jax.training.intrinsic_diagnosis",
                                description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train the variants (resumable)")
    r.add_argument("--out", required=True)
    r.add_argument("--variants", default=None, help="comma-separated; default: all")
    r.add_argument("--cells", default=None, help="';'-separated, e.g. '(2,2);(1,2)'; default: all")
    r.add_argument("--smoke", action="store_true", help="toy sizes (seconds)")
    s = sub.add_parser("stats", help="the target's statistics and NMSE floors")
    s.add_argument("--out", required=True)
    s.add_argument("--n", type=int, default=40000)
    s.add_argument("--T", type=int, nargs="+", default=[16, 64])
    s.add_argument("--D", type=int, nargs="+", default=[2, 3])
    g = sub.add_parser("report", help="table and figure of run folders")
    g.add_argument("runs", nargs="+", help="run folders or records files (.jsonl)")
    g.add_argument("--figure", default=None)
    g.add_argument("--stats", default=None, help="a stats JSON: draw its T=16, D=2 floors")
    args = p.parse_args(argv)
    if args.cmd == "run":
        variants = args.variants.split(",") if args.variants else None
        cells = args.cells.split(";") if args.cells else None
        recs = run_diagnosis(args.out, variants, smoke=args.smoke, cells=cells)
        print(format_diagnosis(summarize_diagnosis(recs)))
    elif args.cmd == "stats":
        out = [target_statistics(T, D, args.n) for T in args.T for D in args.D]
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(json.dumps(o) for o in out) + "\n")
        for o in out:
            print(json.dumps(o))
    else:
        recs = []
        for d in map(Path, args.runs):  # a run folder or a records file (docs/data/*.jsonl)
            path = d if d.suffix == ".jsonl" else d / TRAIN_RESULTS
            label = d.stem if d.suffix == ".jsonl" else d.name
            recs += [{"variant": label, **r} for r in read_jsonl(path)]
        print(format_diagnosis(summarize_diagnosis(recs)))
        print()
        print(format_probes(recs))
        if args.figure:
            floors = None
            if args.stats:
                st = [json.loads(x) for x in Path(args.stats).read_text().splitlines() if x.strip()]
                st = next((o for o in st if o["T"] == 16 and o["D"] == 2), None)
                if st:
                    floors = {"no retrieval (pooled quadratic)": st["nmse_floor"]["pooled_quadratic"],
                              "one chain missing": st["nmse_floor"]["one_chain_missing"]}
            d2 = [r for r in recs if r["D"] == 2 and r["T"] == 16]
            print(f"wrote {plot_curves(d2, args.figure, floors)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
