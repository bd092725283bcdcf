"""C2 — the two-layer two-hop retriever for T2, "the O(1/ε) retriever".

Target: H(X) = F(max_t ψ(m − x_t)), m = max_s x_s. Proof, as the program reads:

  layer 1  slot m ← soft-max over tokens of x, at every position (β₁)   |m_t − m| ≤ e_max(T, β₁)       (L1)
           slot p ← ψ̂(m − x), L3 decoder, N₁ cells, constant off [0,1]  |p_t − ψ(m − x_t)| ≤ L_ψ e_max₁ + L_ψ/(2N₁)
  layer 2  slot r ← soft-max over tokens of p, at CLS (β₂)               |r − max p| ≤ e_max(T, β₂)       (L1)
           slot y ← F̂(r), L3 decoder, N₂ cells                           (L3)

Bound: L_F·[e_max(T, β₂) + L_ψ·e_max(T, β₁) + L_ψ/(2N₁)] + L_F/(2N₂), each of the
four terms given ε/4. N₁, N₂ depend on ε only, so params_theorem is independent
of T; exponent b = 1. ψ̂ interpolates values of ψ in [0,1], so p ∈ [0,1] and L1
applies in layer 2.
"""

from __future__ import annotations

import numpy as np

from infoflow_jax.verification.mutants import BETA_SMALL, LOCALIZED_STRENGTH, knot_dropped, one_cell_bump
from infoflow_jax.verification.construction import Built, ConstructionSpec, check_mutant
from infoflow_jax.core.claims import OneInput, Retrieval, clipped
from infoflow_jax.core.decoders import piecewise_linear_decoder
from infoflow_jax.core.errors import InputError, check_int_range, check_open_interval
from infoflow_jax.core.functions import DEFAULT_F, TENT, LipschitzFn
from infoflow_jax.core.lemmas import beta_for_soft_max, e_max, knots_for, pl_decoder_error
from infoflow_jax.core.slots import FFNBlock, Program, max_retrieval
from infoflow_jax.core.tasks import TwoHop

MUTANTS = {
    "beta1-small": "first-layer β a hundredfold too small",
    "psi-knot-dropped": "the ψ decoder's most significant breakpoint unit removed",
    "hop-skipped": "layer 2 retrieves max of x (slot p dropped) instead of max of p",
    "value-sign-flipped": "layer 2 retrieves −p instead of p",
    "cell-bump": "a tent of ±2.2×bound confined to one random cell of the F decoder (localized)",
}


def build(T: int, eps: float, *, F: LipschitzFn = DEFAULT_F, psi: LipschitzFn = TENT, beta: float | None = None,
          mutant: str | None = None, k=None, mutant_seed: int = 0) -> Built:
    check_int_range("T", T, 1)
    check_open_interval("eps", eps, 0.0, 1.0)
    mutant = check_mutant(SPEC, mutant)
    task = TwoHop(T, F, psi)
    L_F, L_psi = F.lipschitz, psi.lipschitz
    N1 = knots_for(L_F * L_psi, eps / 4)
    N2 = knots_for(L_F, eps / 4)
    psi_values = np.asarray(psi(np.linspace(0, 1, N1 + 1)))
    if psi_values.min() < 0 or psi_values.max() > 1:
        raise InputError("psi", psi.name, "a function with values in [0,1] on [0,1] (layer 2 relies on it)")
    beta1 = beta if beta is not None else beta_for_soft_max(T, eps / (4 * L_F * L_psi))
    beta2 = beta if beta is not None else beta_for_soft_max(T, eps / (4 * L_F))
    terms = {
        "layer-2 attention L_F·e_max(T,β₂)": L_F * e_max(T, beta2),
        "layer-1 attention L_F·L_ψ·e_max(T,β₁)": L_F * L_psi * e_max(T, beta1),
        "ψ decoder L_F·L_ψ/(2N₁)": L_F * pl_decoder_error(L_psi, N1),
        "F decoder L_F/(2N₂)": pl_decoder_error(L_F, N2),
    }

    psi_net = knot_dropped(psi, N1) if mutant == "psi-knot-dropped" else piecewise_linear_decoder(psi, N1)
    b1 = BETA_SMALL(beta1) if mutant == "beta1-small" else beta1

    # each step's claim: the proof's statement (never the mutant's), its tolerance and its bound term
    names = list(terms)
    e1, e2 = e_max(T, beta1), e_max(T, beta2)
    prog = Program()
    one, x = prog.constant("one"), prog.token_input("x")
    l1 = prog.layer()
    l1.attend(max_retrieval(
        query=b1 * one, key=x, into="m", note=f"m ← soft-max over tokens of x, all positions (β₁={b1:.4g})",
        claim=Retrieval("L1", key=x, values=((x, "m"),), queries="all", tolerance=e1, term=names[1],
                        weight=L_F * L_psi, statement="L1: |m_t − max_s x_s| ≤ e_max(T, β₁) at every position")))
    m = prog["m"]
    # m_t − x_t ∈ [−e_max₁, 1]; ψ̂ = ψ̂∘clip there, with values in [0,1] (layer 2's L1 needs them)
    l1.ffn(FFNBlock((m - x,), tuple(psi_net), ("p",), note=f"p ← ψ̂(m − x), L3 decoder, N₁={N1}",
                    claim=OneInput(clipped(psi), L_psi, intervals=((-e1, 1.0),), tolerance=pl_decoder_error(L_psi, N1),
                                   term=names[2], weight=L_F, input=m - x, values_in=(0.0, 1.0),
                                   affine_between=(0.0, 0.5, 1.0) if psi == TENT else None,
                                   statement=f"|ψ̂(z) − ψ(clip z)| ≤ L_ψ/(2N₁) on z ∈ [−e_max₁, 1], ψ̂ ∈ [0,1]")))
    p = prog["p"]
    key2 = x if mutant == "hop-skipped" else p
    value2 = -p if mutant == "value-sign-flipped" else key2
    l2 = prog.layer()
    l2.attend(max_retrieval(query=beta2 * one, key=key2, value=value2, into="r",
                            note=f"r ← soft-max over tokens of {key2} (β₂={beta2:.4g})",
                            claim=Retrieval("L1", key=p, values=((p, "r"),), tolerance=e2, term=names[0], weight=L_F,
                                            statement="L1: |r − max_t p_t| ≤ e_max(T, β₂) at CLS")))
    f_net = tuple(piecewise_linear_decoder(F, N2))
    if mutant == "cell-bump":  # r = max_t ψ̂(m − x_t) reaches all of [0, 1] (T ≥ 2)
        f_net = one_cell_bump(f_net, LOCALIZED_STRENGTH * sum(terms.values()), np.random.default_rng(mutant_seed),
                              within=(0.0, 1.0))
    l2.ffn(FFNBlock((prog["r"],), f_net, ("y",), note=f"y ← F̂(r), L3 decoder, N₂={N2}",
                    claim=OneInput(F, L_F, intervals=((0.0, 1.0),), tolerance=pl_decoder_error(L_F, N2), term=names[3],
                                   input=prog["r"], statement="|F̂(r) − F(r)| ≤ L_F/(2N₂) on r ∈ [0,1]")))
    prog.readout(prog["y"])
    return Built(name="C2", task=task, compiled=prog.compile(), eps=eps, bound=sum(terms.values()),
                 bound_terms=terms, betas=[beta1, beta2], choices={"N1": N1, "N2": N2}, mutant=mutant)


SPEC = ConstructionSpec(
    name="C2", task_id="T2", summary="two-layer two-hop retriever (T2), O(1/ε) params at any T",
    build=build, mutants=MUTANTS, layers=lambda k: 2, expected_exponent=1.0,
)
