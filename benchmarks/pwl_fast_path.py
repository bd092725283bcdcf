"""Dense evaluation of a one-input ReLU block against its piecewise-linear fast path.

    python benchmarks/pwl_fast_path.py [--scalars 98304] [--repeats 3] [--out benchmarks/results/pwl_fast_path.json]

The block is an L3 decoder of F(u) = sin(2πu)/2 + u with N units (N − 1 cells), as the
constructions compile it. Dense: relu(z a + b)·s, O(N) per scalar, in chunks that keep
each (chunk × N) activation matrix under ~64 MB (one jit, ``lax.map`` over chunks).
Fast: :class:`infoflow_jax.core.pwl.PiecewiseLinear` built from the same weights, one
``searchsorted`` and an interpolation, O(log N) per scalar. Both jitted, compiled before
timing; best of ``repeats`` wall times (30 for the millisecond fast path), measured side by
side in one run, float64. Writes the machine (``benchmarks/machine.py``: CPU model, cores,
JAX backend and device, versions, load at start and end), times, ratios and the max
|fast − dense| to JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from infoflow_jax.core.precision import use_float64  # noqa: E402

use_float64()

from benchmarks import machine as mach  # noqa: E402
from benchmarks.measure import repeat_times  # noqa: E402
from infoflow_jax.core.decoders import piecewise_linear_decoder  # noqa: E402
from infoflow_jax.core.functions import DEFAULT_F  # noqa: E402
from infoflow_jax.core.pwl import PiecewiseLinear  # noqa: E402

UNITS = (415, 1657, 16568)


def dense_fn(a, b, s, chunk):
    def one_chunk(zc):
        return jax.nn.relu(zc[:, None] * a + b) @ s

    @jax.jit
    def run(z):
        return jax.lax.map(one_chunk, z.reshape(-1, chunk)).reshape(-1)

    return run


def measure(n_units: int, z, repeats: int) -> dict:
    first, second = piecewise_linear_decoder(DEFAULT_F, n_units - 1)
    a, b, s = first.W[0], first.b, second.W[:, 0]
    chunk = int(min(z.size, max(256, 2 ** int(np.log2(8e6 / n_units)))))
    dense = dense_fn(jnp.asarray(a), jnp.asarray(b), jnp.asarray(s), chunk)
    pl = PiecewiseLinear.from_units(a, b, s)
    fast = jax.jit(pl.evaluate)
    diff = float(jnp.max(jnp.abs(dense(z) - fast(z))))
    # the fast path takes milliseconds: more repeats cost nothing and steady its minimum on a shared machine
    t_dense = repeat_times(dense, z, repeats=repeats)["min_s"]
    t_fast = repeat_times(fast, z, repeats=max(repeats, 30))["min_s"]
    return {"units": n_units, "breakpoints": int(pl.breakpoints.shape[0]), "dense_chunk": chunk,
            "dense_s": t_dense, "fast_s": t_fast, "speedup": t_dense / t_fast, "max_abs_diff": diff}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scalars", type=int, default=98304, help="number of scalars evaluated (a multiple of 256)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "pwl_fast_path.json"))
    args = ap.parse_args(argv)
    if args.scalars < 256 or args.scalars % 256:
        print(f"--scalars = {args.scalars} is out of range: must be a positive multiple of 256", file=sys.stderr)
        return 2
    z = jnp.asarray(np.random.default_rng(0).uniform(-0.1, 1.1, size=args.scalars))
    machine = mach.describe()
    rows = [measure(n, z, args.repeats) for n in UNITS]
    machine["load_average_end"] = mach.load_average()
    result = {"benchmark": "pwl_fast_path", "scalars": args.scalars, "repeats": args.repeats,
              "dtype": "float64", "machine": machine, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'units':>7} {'dense s':>10} {'fast s':>10} {'speedup':>9} {'max|diff|':>10}")
    for r in rows:
        print(f"{r['units']:>7} {r['dense_s']:>10.4f} {r['fast_s']:>10.5f} {r['speedup']:>8.0f}x {r['max_abs_diff']:>10.2g}")
    print(f"machine: {mach.name(machine)}, load {machine['load_average_start'][0]:.1f} -> "
          f"{machine['load_average_end'][0]:.1f}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
