"""How far a float32 search's values stray from float64 (issue 21): the measurement behind
``core/precision.F32_SEARCH_MIN_EPS``.

    python benchmarks/float32_noise.py [--T 4,64] [--eps 1e-1,1e-2,1e-3,1e-4] [--names C2,C3] > FILE

For every catalog construction (or those of `--names`) at each T (its first default k), each ε: ``verify`` with
``QUICK_BUDGET`` and ``search_dtype="float32"``, the floor and the noise guard switched off so that
every row reports its *noise*: max |err in float32 − err in float64| over every estimator's
re-evaluated candidates (``Estimate.search_noise``; the row then searches again in float64, and
its ``search_note`` carries the number). One line per row: name, T, k, ε, noise, noise/ε.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--eps", default="1e-1,1e-2,1e-3,1e-4")
    ap.add_argument("--T", dest="Ts", default=None, help="sequence lengths, comma-separated (default 4)")
    ap.add_argument("--names", default=None, help="comma-separated constructions (default: every one)")
    args = ap.parse_args(argv)
    Ts = [int(t) for t in (args.Ts or "4").split(",")]
    names = None if args.names is None else set(args.names.split(","))

    from infoflow_jax.core.precision import use_float64

    use_float64()
    import infoflow_jax.core.precision as precision
    import infoflow_jax.verification.verify as vv
    from infoflow_jax.catalog import catalog
    from infoflow_jax.core.errors import InputError
    from infoflow_jax.verification.construction import ConstructionSpec
    from infoflow_jax.verification.estimators import QUICK_BUDGET
    from benchmarks import machine

    precision.F32_SEARCH_MIN_EPS = 0.0  # measure everywhere: every row falls back and reports its noise
    vv.F32_NOISE_FRACTION = 0.0
    budget = replace(QUICK_BUDGET, search_dtype="float32")
    m = machine.describe()
    print(f"# {machine.name(m)}; load at start {m['load_average_start']}")
    for spec in catalog().values():
        if not isinstance(spec, ConstructionSpec) or (names is not None and spec.name not in names):
            continue
        k = spec.default_k[0]
        for T, eps in ((T, float(e)) for T in Ts for e in args.eps.split(",")):
            t0 = time.time()
            try:
                r = vv.verify_construction(spec, T=T, eps=eps, k=k, budget=budget)
            except InputError as exc:
                print(f"{spec.name} T={T} k={k} eps={eps:g} not built: {exc}", flush=True)
                continue
            noise = float(re.search(r"by up to ([0-9.e+-]+)", r.search_note).group(1))
            print(f"{spec.name} T={T} k={k} eps={eps:g} noise={noise:.3g} noise/eps={noise / eps:.3g} "
                  f"({time.time() - t0:.1f} s)", flush=True)
    print(f"# load at end {machine.load_average()}")


if __name__ == "__main__":
    main()
