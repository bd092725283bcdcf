"""Do the probe families suggested in docs/estimate_quality.md reach the independent max?

    python benchmarks/probe_suggestions.py [--in benchmarks/results/estimate_quality_cpu.json] [--below 0.95]

For every row of the estimate-quality benchmark whose ratio is below ``--below``, rebuild the
configuration, evaluate two suggested probe families *as plain fixed inputs* (no ascent) with
the independent search's evaluator, and print the best value of each family against the
default estimate and the independent max. A family that reaches ≥ 0.95 of the independent max
on its own would close the gap once the verifier evaluates it (and Adam starts from it).

* ``tied_block``: x_(k*) = u on the decoder's cell midpoints and ends (and a coarse grid), with
  a ∈ {1, 2} tokens exactly at u (an exact tie at the top of the read order statistic), the tokens
  above it (if any) on a γ staircase above u, a block of b tokens at u − c₁/β and the rest at
  u − (c₁ + c₂)/β, for c₁, c₂ ∈ {0.5, …, 3} and β every inverse temperature of the construction
  (the L1 worst case of every layer at once, where the decoder's own error has the same sign).
* ``heads_alike`` (d > 1, several heads): one token at (u, …, u) and the other T − 1 tied at
  (u − c/β, …) — every head at its L1 worst case at once — with u at the ends and midpoints of the
  last and first Kuhn cells; and every token identical at z on the box's faces (z_i ∈ {0, 1}
  for one coordinate, the other on the Kuhn cell grid): the decoder's worst points there.
  Variant: x_(1) = 1 (the decoder box's top edge) with x_(2..r−1) on the staircase.
* ``key_tie``: two-hop retrieval (T2) — one token at u, one at u − z*, b tokens at u − z* − c/β₂
  (c ∈ …), the rest at 0, with z* on the ψ decoder's knots within two cells of ψ's argmax (1/2):
  a near tie in layer 2's *computed* key p = ψ̂(m − x) at ψ's worst cell.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from infoflow_jax.core.precision import use_float64  # noqa: E402

use_float64()

from benchmarks.estimate_quality import build  # noqa: E402
from benchmarks.independent_search import Evaluator, scales_of  # noqa: E402

C = (0.5, 1.0, 1.4, 2.0, 2.5, 3.0)


def read_index(built) -> int:
    """The deepest order statistic the decoder reads: k for k-th largest (T3), r for top-r (T4, T5), else 1."""
    p = built.task.hyperparams()
    if built.task.id == "T3" and p.get("k"):
        return int(p["k"])
    return int(p["r"]) if built.task.id in ("T4", "T5") and p.get("r") else 1


def u_values(sc) -> np.ndarray:
    """Cell midpoints and ends of the first and last 6 cells of every decoder, and a 64-grid."""
    vals = [np.linspace(0, 1, 65)]
    for N in sc["cells"]:
        j = np.concatenate([np.arange(6), np.arange(N - 6, N)])
        vals += [(j + 0.5) / N, j / N, (j + 1) / N]
    return np.unique(np.clip(np.concatenate(vals), 0, 1))


def tied_block(built) -> np.ndarray:
    T, sc = built.task.T, scales_of(built)
    kstar, gamma = read_index(built), sc["gamma"] or 0.0
    rows = []
    for u, beta, c1, c2, a, top1 in itertools.product(u_values(sc), sc["betas"], C, C, (1, 2), (False, True)):
        if top1 and kstar == 1:
            continue
        above = [min(1.0, u + (kstar - 1 - j) * gamma) for j in range(kstar - 1)]  # the excluded tokens
        if top1:  # x_(1) at the box's top end (a coupled decoder's edge)
            above[0] = 1.0
        top = above + [u] * a
        if len(top) > T:
            continue
        for b in range(0, T - len(top) + 1):
            rest = T - len(top) - b
            x = top + [max(0.0, u - c1 / beta)] * b + [max(0.0, u - (c1 + c2) / beta)] * rest
            rows.append(x)
    return np.repeat(np.asarray(rows)[..., None], built.task.d, axis=-1)  # d > 1: every coordinate alike


def key_tie(built) -> np.ndarray:
    if built.task.id != "T2":
        return np.zeros((0, built.task.T, 1))
    T, sc = built.task.T, scales_of(built)
    N1, beta2 = built.choices["N1"], built.betas[1]
    zs = np.unique(np.clip(np.concatenate([np.arange(N1 // 2 - 2, N1 // 2 + 3) / N1, [0.5]]), 0, 1))
    rows = []
    for u, z, c in itertools.product(np.linspace(0.5, 1, 33), zs, C):
        for b in range(1, T - 1):
            # dz of c/β₂ in the key p = ψ(m − x) (slope 2) is c/(2β₂) in x
            x = [u, u - z] + [max(0.0, u - z - c / (2 * beta2))] * b + [0.0] * (T - 2 - b)
            rows.append(x)
    return np.asarray(rows)[..., None]


def heads_alike(built) -> np.ndarray:
    T, d, sc = built.task.T, built.task.d, scales_of(built)
    if d == 1:
        return np.zeros((0, T, 1))
    rows = []
    for u, beta, c in itertools.product(u_values(sc), sc["betas"], C):
        rows.append([[u] * d] + [[max(0.0, u - c / beta)] * d] * (T - 1))
    n = max(sc["cells"])
    grid = np.arange(4 * n + 1) / (4 * n)
    for i, e, z in itertools.product(range(d), (0.0, 1.0), grid):
        tok = [z] * d
        tok[i] = e
        rows.append([tok] * T)
    return np.asarray(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--in", dest="inp", default=str(ROOT / "benchmarks" / "results" / "estimate_quality_cpu.json"))
    ap.add_argument("--below", type=float, default=0.95)
    ap.add_argument("--only", default=None, help="comma-separated NAME/T/k/eps, e.g. C4/8/2/0.01 (default: every row)")
    args = ap.parse_args(argv)
    only = None if args.only is None else set(args.only.split(","))
    rows = [r for r in json.loads(Path(args.inp).read_text())["rows"] if r["ratio"] < args.below
            and (only is None or f"{r['name']}/{r['T']}/{r['k']}/{r['eps']:g}" in only)]
    print(f"{'configuration':28s} {'default':>9s} {'independ.':>9s} {'tied_block':>10s} {'key_tie':>9s} "
          f"{'heads_alike':>11s}  "
          "(family best / independent max)")
    for r in rows:
        built = build(r["name"], r["T"], r["k"], r["eps"])
        ev = Evaluator(built)
        best = {}
        for name, fam in (("tied_block", tied_block(built)), ("key_tie", key_tie(built)),
                          ("heads_alike", heads_alike(built))):
            best[name] = float(np.max(ev.values(fam, name))) if fam.shape[0] else float("nan")
        ind = r["independent_max"]
        print(f"{r['name'] + ' T=' + str(r['T']) + ' k=' + str(r['k']) + ' eps=' + format(r['eps'], 'g'):28s} "
              f"{r['err_estimate']:9.3g} {ind:9.3g} {best['tied_block'] / ind:10.3f} {best['key_tie'] / ind:9.3f} "
              f"{best['heads_alike'] / ind:11.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
