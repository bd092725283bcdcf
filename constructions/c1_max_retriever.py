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
    # glue defects: every step is certified, the proof around them is wrong (issue 19)
    "skeleton-wrong": "the decoder approximates F(1 − m), and claims so: each step holds, their composition is not H",
    "interval-short": "the decoder is claimed (and certified) on m ∈ [0, 0.9], an interval its input leaves",
    "weight-understated": "the attention step's weight claimed L_F/4 (and its term with it): the bound is too small",
    "beta-for-smaller-T": "β chosen for T/8 tokens, the tolerance e_max(T/8, β) claimed: it holds at T/8, not at T",
}
GLUE_MUTANTS = ("skeleton-wrong", "interval-short", "weight-understated", "beta-for-smaller-T")


def build(T: int, eps: float, *, F: LipschitzFn = DEFAULT_F, beta: float | None = None,
          mutant: str | None = None, k=None, mutant_seed: int = 0) -> Built:
    check_int_range("T", T, 1)
    check_open_interval("eps", eps, 0.0, 1.0)
    mutant = check_mutant(SPEC, mutant)
    task = MaxRetrieval(T, F)
    L_F = F.lipschitz
    N = knots_for(L_F, eps / 2)
    T_proof = max(1, T // 8) if mutant == "beta-for-smaller-T" else T  # the T the (mutant's) proof is written for
    beta = beta if beta is not None else beta_for_soft_max(T_proof, eps / (2 * L_F))
    weight = L_F / 4 if mutant == "weight-understated" else L_F
    terms = {"attention L_F·e_max(T,β)": weight * e_max(T_proof, beta), "decoder L_F/(2N)": pl_decoder_error(L_F, N)}
    G = LipschitzFn(lambda u: F(1.0 - u), L_F, f"{F.name}(1 − u)") if mutant == "skeleton-wrong" else F
    interval = (0.0, 0.9) if mutant == "interval-short" else (0.0, 1.0)

    decoder = knot_dropped(F, N) if mutant == "knot-dropped" else piecewise_linear_decoder(G, N)
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
                                      claim=Retrieval("L1", key=x, values=((x, "m"),), tolerance=e_max(T_proof, beta),
                                                      term=names[0], weight=weight,
                                                      statement="L1: |m − max_s x_s| ≤ e_max(T, β) at CLS")))
    prog.layers[0].ffn(FFNBlock((prog["m"],), tuple(decoder), ("y",), note=f"y ← F̂(m), L3 decoder, N={N}",
                                claim=OneInput(G, L_F, intervals=(interval,), tolerance=pl_decoder_error(L_F, N),
                                               term=names[1], input=prog["m"],
                                               statement="|F̂(m) − F(m)| ≤ L_F/(2N) on m ∈ [0,1]")))
    prog.readout(prog["y"])
    return Built(name="C1", task=task, compiled=prog.compile(), eps=eps, bound=sum(terms.values()),
                 bound_terms=terms, betas=[beta], choices={"N": N}, mutant=mutant)


SPEC = ConstructionSpec(
    name="C1", task_id="T1", summary="one-layer max retriever (T1), O(1/ε) params at any T",
    build=build, mutants=MUTANTS, layers=lambda k: 1, expected_exponent=1.0,
)
