"""Your own construction, checked end to end: the complete example of docs/own_construction.md.

    python verify/own_construction.py [--quick]

Task (not in the catalog): the soft-MIN retriever, H(X) = F(min_s x_s) on [0,1]^T, F = sin(2u)/2
(Lipschitz 1). Construction, as its proof reads (one layer, one head):

  slot m ← soft-max over tokens of (1 − x), inverse temperature β    |m − max(1 − x)| ≤ e_max(T, β)   (L1)
  slot y ← Ĝ(m), L3 decoder of G(u) = F(1 − u) with N cells          |Ĝ − G| ≤ L_F/(2N)              (L3)

  so |y − F(min x)| ≤ L_F·e_max(T, β) + L_F/(2N): give each term ε/2.

Parameters (theorem count) 2N + O(1) with N = ⌈L_F/ε⌉: exponent 1, independent of T.
The script verifies it at one point, sweeps ε at two T, fits the exponent, checks that a
mutant (β a hundredfold too small, claim unchanged) FAILS, and registers it in the catalog.
Exit status 0 iff every real row passes, the exponent is 1 ± 0.15 and the mutant fails.
"""

from __future__ import annotations

import argparse
import sys

import jax.numpy as jnp

import infoflow_jax as ifj
from infoflow_jax.verification.mutants import BETA_SMALL

F = ifj.LipschitzFn(lambda u: 0.5 * jnp.sin(2.0 * u), 1.0, "sin(2u)/2")
G = ifj.LipschitzFn(lambda u: F(1.0 - u), F.lipschitz, "F(1 − u)")  # the decoder sees m = max(1 − x)
MUTANTS = {"beta-small": BETA_SMALL.description}


def soft_min_task(T: int) -> ifj.FunctionTask:
    return ifj.FunctionTask(T=T, fn=lambda X: F(jnp.min(X[..., 0], axis=-1)), lipschitz_constant=F.lipschitz,
                            task_id="Tmin", title="min retrieval")


def build(T: int, eps: float, *, mutant: str | None = None, beta: float | None = None, k=None) -> ifj.Built:
    L_F = F.lipschitz
    N = ifj.knots_for(L_F, eps / 2)  # L_F/(2N) ≤ ε/2
    beta = beta if beta is not None else ifj.beta_for_soft_max(T, eps / (2 * L_F))  # L_F·e_max ≤ ε/2
    terms = {"attention L_F·e_max(T,β)": L_F * ifj.e_max(T, beta), "decoder L_F/(2N)": ifj.pl_decoder_error(L_F, N)}
    beta_used = BETA_SMALL(beta) if mutant == "beta-small" else beta  # a mutant keeps the claim

    prog = ifj.Program()
    one, x = prog.constant("one"), prog.token_input("x")
    layer = prog.layer()
    layer.attend(ifj.max_retrieval(query=beta_used * one, key=one - x, into="m",
                                   note="m ← soft-max over tokens of 1 − x"))
    layer.ffn(ifj.FFNBlock((prog["m"],), tuple(ifj.piecewise_linear_decoder(G, N)), ("y",),
                           note=f"y ← Ĝ(m), L3 decoder, N={N}"))
    prog.readout(prog["y"])
    return ifj.Built(name="Cmin", task=soft_min_task(T), compiled=prog.compile(), eps=eps,
                     bound=sum(terms.values()), bound_terms=terms, betas=[beta], choices={"N": N}, mutant=mutant)


SPEC = ifj.ConstructionSpec(name="Cmin", task_id="Tmin", summary="one-layer soft-min retriever, O(1/ε) params",
                            build=build, mutants=MUTANTS, layers=lambda k: 1, expected_exponent=1.0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small estimator budget")
    args = ap.parse_args(argv)
    ifj.use_float64()
    budget = ifj.QUICK_BUDGET if args.quick else ifj.DEFAULT_BUDGET
    ok = True

    # 1. one configuration
    built = build(16, 1e-2)
    print("\n".join(built.compiled.trace))  # the proof, as the program reads
    rec = ifj.verify(built, budget=budget)
    print(f"T=16 eps=1e-2: estimate {rec.err_estimate:.3e} ({rec.estimator}) <= bound {rec.bound:.3e} <= eps: "
          f"{'PASS' if rec.passed else 'FAIL'}")
    ok &= rec.passed

    # 2. a grid of eps at two T; the exponent of params_theorem in 1/eps
    for T in (4, 64):
        rows = ifj.verify_grid(build, T=T, eps=[1e-1, 3e-2, 1e-2, 3e-3, 1e-3], budget=budget)
        fit = ifj.fit_exponent([1 / r.eps for r in rows], [r.params_theorem for r in rows])
        slope = fit[0]
        agrees = abs(slope - 1.0) <= 0.15
        print(f"T={T}: {sum(r.passed for r in rows)}/{len(rows)} rows pass; params "
              f"{[r.params_theorem for r in rows]}; exponent {slope:.3f} (expected 1 ± 0.15: "
              f"{'agrees' if agrees else 'DISAGREES'})")
        ok &= all(r.passed for r in rows) and agrees

    # 3. a mutant must fail: the verifier can tell a broken build from a sound one
    bad = ifj.verify(build(16, 1e-2, mutant="beta-small"), budget=budget)
    print(f"mutant beta-small: estimate {bad.err_estimate:.3e} vs bound {bad.bound:.3e}: "
          f"{'caught (FAIL, as expected)' if not bad.passed else 'NOT CAUGHT'}")
    ok &= not bad.passed

    # 4. register it: sweeps and lookups find it by name; registering again replaces it
    ifj.register(SPEC)
    ifj.register(SPEC)
    print(f"catalog: {', '.join(ifj.catalog())}")
    print("own construction:", "verified" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
