"""C1 — one-layer max retriever for T1: H(X) = F(max_s x_s).

Proof, as the program reads:
  slot m ← soft-max over tokens of x, inverse temperature β     (L1: |m − max x| ≤ e_max(T, β))
  slot y ← F̂(m), L3 decoder with N cells                          (L3: |F̂ − F| ≤ L_F/(2N))
Bound: L_F·e_max(T, β) + L_F/(2N), with β from L_F·e_max ≤ ε/2 and N = ⌈L_F/ε⌉.
Parameters (theorem convention): 2N + O(1), independent of T; exponent b = 1.
"""

from __future__ import annotations


import numpy as np

from infoflow_jax.verification.mutants import BETA_SMALL, LOCALIZED_STRENGTH, end_ramp, knot_dropped, one_cell_bump
from infoflow_jax.verification.construction import Built, ConstructionSpec, check_mutant
from infoflow_jax.core.claims import OneInput, Retrieval
from infoflow_jax.core.decoders import piecewise_linear_decoder
from infoflow_jax.core.errors import check_int_range, check_open_interval
from infoflow_jax.core.functions import DEFAULT_F, LipschitzFn
from infoflow_jax.core.lemmas import beta_for_soft_max, e_max, knots_for, pl_decoder_error
from infoflow_jax.core.slots import FFNBlock, Program, max_retrieval
from infoflow_jax.core.tasks import MaxRetrieval

MUTANTS = {
    "beta-small": BETA_SMALL.description,
    "knot-dropped": "the decoder's most significant breakpoint unit removed",
    "value-sign-flipped": "the attention value is −x instead of x",
    "cell-bump": "a tent of ±2.2×bound confined to one random cell of the decoder (localized)",
    "end-ramp": "a ramp to ±2.2×bound over part of the decoder's last cell (visible only where max x ≈ 1: corners, faces)",
}


def build(T: int, eps: float, *, F: LipschitzFn = DEFAULT_F, beta: float | None = None,
          mutant: str | None = None, k=None, mutant_seed: int = 0) -> Built:
    check_int_range("T", T, 1)
    check_open_interval("eps", eps, 0.0, 1.0)
    mutant = check_mutant(SPEC, mutant)
    task = MaxRetrieval(T, F)
    L_F = F.lipschitz
    N = knots_for(L_F, eps / 2)
    beta = beta if beta is not None else beta_for_soft_max(T, eps / (2 * L_F))
    terms = {"attention L_F·e_max(T,β)": L_F * e_max(T, beta), "decoder L_F/(2N)": pl_decoder_error(L_F, N)}

    decoder = knot_dropped(F, N) if mutant == "knot-dropped" else piecewise_linear_decoder(F, N)
    localized = {"cell-bump": one_cell_bump, "end-ramp": end_ramp}
    if mutant in localized:  # placed by mutant_seed, height in units of the claimed bound
        decoder = localized[mutant](decoder, LOCALIZED_STRENGTH * sum(terms.values()), np.random.default_rng(mutant_seed))
    beta_used = BETA_SMALL(beta) if mutant == "beta-small" else beta
    sign = -1.0 if mutant == "value-sign-flipped" else 1.0

    names = list(terms)
    prog = Program()
    one, x = prog.constant("one"), prog.token_input("x")
    # the claims are the proof's (value x, the chosen β's tolerance), whatever a mutant compiles
    prog.layer().attend(max_retrieval(query=beta_used * one, key=x, value=sign * x, into="m",
                                      note=f"m ← soft-max over tokens of x (β={beta_used:.4g})",
                                      claim=Retrieval("L1", key=x, values=((x, "m"),), tolerance=e_max(T, beta),
                                                      term=names[0], weight=L_F,
                                                      statement="L1: |m − max_s x_s| ≤ e_max(T, β) at CLS")))
    prog.layers[0].ffn(FFNBlock((prog["m"],), tuple(decoder), ("y",), note=f"y ← F̂(m), L3 decoder, N={N}",
                                claim=OneInput(F, L_F, intervals=((0.0, 1.0),), tolerance=pl_decoder_error(L_F, N),
                                               term=names[1], input=prog["m"],
                                               statement="|F̂(m) − F(m)| ≤ L_F/(2N) on m ∈ [0,1]")))
    prog.readout(prog["y"])
    return Built(name="C1", task=task, compiled=prog.compile(), eps=eps, bound=sum(terms.values()),
                 bound_terms=terms, betas=[beta], choices={"N": N}, mutant=mutant)


SPEC = ConstructionSpec(
    name="C1", task_id="T1", summary="one-layer max retriever (T1), O(1/ε) params at any T",
    build=build, mutants=MUTANTS, layers=lambda k: 1, expected_exponent=1.0,
)
