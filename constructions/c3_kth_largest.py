"""C3 — k-layer k-th largest under margin, for T3 on Ω_{γ,k}: H(X) = F(x_(k)).

Each token carries exclusion flags f_l ∈ {0, 1} (f_l = 1 on the top l tokens).
Proof, as the program reads (K = 2):

  layers l = 1..k−1
      slot m_l ← soft-max over tokens of (x − K·f_{l−1}), every position (β_ex)
                 top score x_(l) beats all others by ≥ γ (unflagged: margin;
                 flagged: ≤ 1 − K = −1), so |m_l − x_(l)| ≤ η := (T−1)e^{−β_ex γ}·3   (L2, value range 3)
                 and m_l ≤ x_(l) (an average of scores ≤ x_(l)).
      slot f_l ← clip((x − m_l + γ/2)/(γ/2), 0, 1)                 (2 ReLUs)
                 = 1 if x ≥ x_(l); = 0 if x ≤ x_(l) − γ, as long as η ≤ γ/2.
                 β_ex is chosen so that η ≤ γ/4: the flags are exact.
  layer k
      slot z ← soft-max over tokens of (x − K·f_{k−1}), at CLS (β)   |z − x_(k)| ≤ e_max(T, β)   (L1:
                 flagged tokens sit ≥ 1 below x_(k), covered by lemmas.e_max_holds_beyond_unit_range)
      slot y ← F̂(z), L3 decoder, N cells.

Bound: L_F·e_max(T, β) + L_F/(2N) (the exclusion layers contribute exactly 0).
Params O(k + 1/ε); exponent b = 1. With k = 2 this is the two-layer k-th largest retriever.
"""

from __future__ import annotations

import numpy as np

from infoflow_jax.verification.mutants import (BETA_SMALL, LOCALIZED_STRENGTH, calibrated_depth, knot_dropped,
                                              one_cell_bump, weakened_band, weakened_flag_net, weakened_input)
from infoflow_jax.verification.construction import Built, ConstructionSpec, check_mutant
from infoflow_jax.core.claims import OneInput, Retrieval, clipped
from infoflow_jax.core.decoders import piecewise_linear_decoder
from infoflow_jax.core.errors import InputError, check_int_range, check_open_interval
from infoflow_jax.core.functions import DEFAULT_F, LipschitzFn
from infoflow_jax.core.lemmas import (beta_for_margin, beta_for_soft_max, e_max, e_max_holds_beyond_unit_range,
                                 knots_for, margin_retrieval_error, pl_decoder_error)
from infoflow_jax.core.slots import FFNBlock, Program, max_retrieval
from infoflow_jax.core.tasks import KthLargest
from constructions.exclusion import K_EXCLUDE, SCORE_RANGE, exclusion_layers


MUTANTS = {
    "beta-small": "exclusion-layer β a hundredfold too small (flags wrong)",
    "flag-dropped": "the last layer scores x instead of x − K·f (exclusion flag dropped)",
    "flag-sign-flipped": "scores x + K·f instead of x − K·f",
    "knot-dropped": "the F decoder's most significant breakpoint unit removed",
    "cell-bump": "a tent of ±2.2×bound confined to one random (reachable) cell of the F decoder (localized)",
    "exclusion-weakened": "one random exclusion layer's flag lowered on a narrow band of token values at the top of "
                          "[0, 1], its depth set so that the error where it shows is 2.2×bound (visible only when the "
                          "top token lies in the band and the other scores are below that)",
}


def default_gamma(k: int) -> float:
    """γ = 1/(2k): inside the allowed (0, 1/k)."""
    return 0.5 / k


def build(T: int, eps: float, *, k: int = 2, gamma: float | None = None, F: LipschitzFn = DEFAULT_F,
          beta: float | None = None, mutant: str | None = None, mutant_seed: int = 0,
          weaken_depth: float | None = None) -> Built:
    check_int_range("T", T, 1)
    check_int_range("k", k, 1, T)
    check_open_interval("eps", eps, 0.0, 1.0)
    mutant = check_mutant(SPEC, mutant)
    gamma = default_gamma(k) if gamma is None else gamma
    task = KthLargest(T, k=k, gamma=gamma, F=F)  # validates 0 < γ < 1/k
    L_F = F.lipschitz
    N = knots_for(L_F, eps / 2)
    beta_ex = beta_for_margin(T, gamma, gamma / 4, SCORE_RANGE)
    beta_last = beta if beta is not None else beta_for_soft_max(T, eps / (2 * L_F))
    if not e_max_holds_beyond_unit_range(T, beta_last):
        raise AssertionError(f"C3: β = {beta_last:g} too small for L1 with excluded tokens")
    assert margin_retrieval_error(T, beta_ex, gamma, SCORE_RANGE) <= gamma / 4
    terms = {"attention L_F·e_max(T,β)": L_F * e_max(T, beta_last), "decoder L_F/(2N)": pl_decoder_error(L_F, N)}

    b_ex = BETA_SMALL(beta_ex) if mutant == "beta-small" else beta_ex
    sign = 1.0 if mutant == "flag-sign-flipped" else -1.0
    prog = Program()
    one, x = prog.constant("one"), prog.token_input("x")
    eta = margin_retrieval_error(T, beta_ex, gamma, SCORE_RANGE)
    rng = np.random.default_rng(mutant_seed)
    if mutant == "exclusion-weakened" and k < 2:
        raise InputError("k", k, "≥ 2 for the exclusion-weakened mutant (k = 1 has no exclusion layer)")
    weaken = None
    if mutant == "exclusion-weakened":  # depth: the error where it shows is 2.2×bound
        layer, band = int(rng.integers(1, k)), weakened_band(rng)
        depth = weaken_depth if weaken_depth is not None else calibrated_depth(
            lambda dp: build(T, eps, k=k, gamma=gamma, F=F, beta=beta, mutant=mutant, mutant_seed=mutant_seed,
                             weaken_depth=dp),
            weakened_input(T, layer, band[0], gamma), LOCALIZED_STRENGTH * sum(terms.values()))
        weaken = {layer: lambda net: weakened_flag_net(net, depth, band)}
    score = exclusion_layers(prog, x, one, k, b_ex, gamma, sign=sign, eta=eta, weaken=weaken)  # layers 1..k−1: x − K·f_{k−1}
    proof = x if k == 1 else x - K_EXCLUDE * prog[f"f{k - 1}"]  # the claims' score, whatever a mutant compiles
    if mutant == "flag-dropped":
        score = x
    decoder = knot_dropped(F, N) if mutant == "knot-dropped" else piecewise_linear_decoder(F, N)
    if mutant == "cell-bump":  # a cell z = x_(k) reaches on Ω_{γ,k}: 0 ≤ z ≤ 1 − (k−1)γ
        decoder = one_cell_bump(decoder, LOCALIZED_STRENGTH * sum(terms.values()), rng, within=(0.0, 1 - (k - 1) * gamma))
    names, e = list(terms), e_max(T, beta_last)
    last = prog.layer()
    last.attend(max_retrieval(query=beta_last * one, key=score, into="z",
                              note=f"z ← soft-max over tokens of ({score}) = x_({k}) (β={beta_last:.4g})",
                              claim=Retrieval("L1", key=proof, values=((proof, "z"),), excluded=k > 1, tolerance=e,
                                              term=names[0], weight=L_F,
                                              statement=f"L1 (flagged tokens ≥ 1 below): |z − x_({k})| ≤ e_max(T, β)")))
    last.ffn(FFNBlock((prog["z"],), tuple(decoder), ("y",), note=f"y ← F̂(z), L3 decoder, N={N}",
                      claim=OneInput(clipped(F), L_F, intervals=((-e, 1.0),), tolerance=pl_decoder_error(L_F, N),
                                     term=names[1], input=prog["z"],
                                     statement="|F̂(z) − F(clip z)| ≤ L_F/(2N) on z ∈ [−e_max, 1]")))
    prog.readout(prog["y"])
    return Built(name="C3", task=task, compiled=prog.compile(), eps=eps, bound=sum(terms.values()),
                 bound_terms=terms, betas=[beta_ex] * (k - 1) + [beta_last],
                 choices={"N": N, "gamma": gamma, "K": K_EXCLUDE}, mutant=mutant)


SPEC = ConstructionSpec(
    name="C3", task_id="T3", summary="k-layer k-th largest under margin γ (T3 on Ω_{γ,k}), O(k + 1/ε) params",
    build=build, mutants=MUTANTS, layers=lambda k: k, uses_k=True, default_k=(2, 3, 4), expected_exponent=1.0,
)
