"""C8 — soft top-k attention, for T7 on Ω_{γ,k+1}: H(X) = F((1/k)·Σ_{j≤k} v(x_(j))).

Softmax attention that approximates *uniform attention over the top-k set*:
C3's exclusion layers flag the top k tokens exactly, then one head whose score
is β·K·f_k (flagged tokens equal, unflagged ones K lower) puts ≈ 1/k on each
flagged token. Proof, as the program reads (exclusion K_ex = 2, score range 3):

  layers l = 1..k   slot m_l ← soft-max over tokens of (x − K_ex·f_{l−1}), every position (β_ex)   (L2)
                    slot f_l ← clip((x − m_l + γ/2)/(γ/2), 0, 1)
                    x_(l) beats the unflagged rest by ≥ γ (gap l) and the flagged tokens by ≥ 1,
                    so |m_l − x_(l)| ≤ η := 3(T−1)e^{−β_ex γ} ≤ γ/4 and m_l ≤ x_(l); hence
                    f_l = 1 on x ≥ x_(l), f_l = 0 on x ≤ x_(l+1) ≤ x_(l) − γ:          flag error 0
                    (layer 1 also: slot v ← v̂(x) at every token, L3 decoder, N_v cells;
                     v = identity needs none: the value is x itself)
  layer k+1         slot u ← Σ_s softmax_s(β·K·f_k)·v_s at CLS (the uniform head)
                    the k flagged tokens have equal scores, so u is within ρ·D of the
                    flagged mean μ̂ = (1/k)Σ_{j≤k} v̂(x_(j)), ρ = (T−k)/(k·e^{βK} + T − k)
                    ≤ (T−k)e^{−βK}/k, D = range of v̂                                   (L2, leakage)
                    slot y ← F̂(u), L3 decoder, N cells (u ∈ [0,1]: an average of v̂ ∈ [0,1]).

Bound (named terms, ε split ε/2 : ε/4 : ε/4):

    flags                 0                       (exact: η ≤ γ/4, asserted)
    leakage               L_F·ρ(T, k, βK)·D       (β from ρ·D·L_F ≤ ε/4; β is free)
    value decoder         L_F·L_v/(2N_v)          (absent for v = identity)
    F decoder             L_F/(2N)

N = ⌈L_F/ε⌉, N_v = ⌈2 L_F L_v/ε⌉ depend on ε only; the T-dependence sits in β and
β_ex (magnitudes, one parameter each). Parameters (theorem) O(k + 1/ε),
independent of T; exponent b = 1.

Margin: the task needs only x_(k) − x_(k+1) ≥ γ (Ω^set_{γ,k}); the exclusion
layers need every gap j = 1..k (layer l flags one token by gap l), so C8 is
claimed on Ω_{γ,k+1} (``TopKMean(gaps="all")``). On Ω^set a tie inside the top
k makes layer 1 flag two tokens, and C8 then flags k+1 (see tests/test_soft_top_k_attention.py).
Depth k + 1, one head per layer.
"""

from __future__ import annotations

import numpy as np

from infoflow_jax.verification.construction import Built, ConstructionSpec, check_mutant
from infoflow_jax.verification.mutants import (BETA_SMALL, LOCALIZED_STRENGTH, calibrated_depth, one_cell_bump,
                                              weakened_band, weakened_flag_net, weakened_input)
from infoflow_jax.core.claims import OneInput, Retrieval
from infoflow_jax.core.decoders import piecewise_linear_decoder
from infoflow_jax.core.errors import InputError, check_int_range, check_open_interval
from infoflow_jax.core.functions import DEFAULT_F, IDENTITY, LipschitzFn
from infoflow_jax.core.lemmas import (beta_for_margin, flagged_set_leakage, knots_for, margin_retrieval_error,
                                 pl_decoder_error, score_gap_for_flagged_set)
from infoflow_jax.core.slots import FFNBlock, Form, Program, max_retrieval
from infoflow_jax.core.tasks import TopKMean
from constructions.exclusion import K_EXCLUDE, SCORE_RANGE, exclusion_layers

K_UNIFORM = 1.0  # the uniform head's score is β·K·f: flagged β·K, unflagged 0
SHARES = {"F decoder": 0.5, "value decoder": 0.25, "leakage": 0.25}  # of ε

MUTANTS = {
    "beta-small": "the uniform head's β a hundredfold too small (leakage to unflagged tokens)",
    "flag-dropped": "the uniform head keys on f_{k−1} instead of f_k (averages the top k−1 only)",
    "score-depends-on-x": "the uniform head's score is β·K·(f_k − x): flagged weights ∝ e^{−βKx}, not uniform "
                          "(and at k = 1 the flag's lead K(1 − x_(1) + x_s) can vanish)",
    "last-threshold-nudged": "layer k's flag threshold moved down by γ: fails only where x_(k) − x_(k+1) < 3γ/2",
    "first-threshold-nudged": "layer 1's flag threshold moved down by γ: fails only where x_(1) − x_(2) < 3γ/2",
    "cell-bump": "a tent of ±2.2×bound confined to one random (reachable) cell of the F decoder (localized)",
    "exclusion-weakened": "one random exclusion layer's flag lowered on a narrow band of token values at the top "
                          "of [0, 1] (its depth set so that the error where it shows is 2.2×bound)"
}


def default_gamma(k: int) -> float:
    """γ = 1/(2(k+1)): inside the allowed (0, 1/(k+1)) of Ω_{γ,k+1}."""
    return 0.5 / (k + 1)


def value_range(v: LipschitzFn, N_v: int | None) -> float:
    """D = max − min of the value map on [0,1]: v̂ is piecewise linear, so its extremes sit on
    the knots; v = identity (no decoder) has D = 1."""
    if N_v is None:
        return 1.0
    vals = np.asarray(v(np.linspace(0.0, 1.0, N_v + 1)), dtype=np.float64)
    if vals.min() < 0 or vals.max() > 1:
        raise InputError("v", v.name, "a function with values in [0,1] on [0,1] (F̂ reads their mean)")
    return float(vals.max() - vals.min())


def build(T: int, eps: float, *, k: int = 2, gamma: float | None = None, v: LipschitzFn = IDENTITY,
          F: LipschitzFn = DEFAULT_F, beta: float | None = None, mutant: str | None = None,
          mutant_seed: int = 0, weaken_depth: float | None = None) -> Built:
    check_int_range("T", T, 2)
    check_int_range("k", k, 1, T - 1)
    check_open_interval("eps", eps, 0.0, 1.0)
    mutant = check_mutant(SPEC, mutant)
    gamma = default_gamma(k) if gamma is None else gamma
    task = TopKMean(T, k=k, gamma=gamma, v=v, F=F, gaps="all")  # validates 0 < γ < 1/(k+1)
    L_F, L_v = F.lipschitz, v.lipschitz
    N = knots_for(L_F, SHARES["F decoder"] * eps)
    N_v = None if v == IDENTITY else knots_for(L_F * L_v, SHARES["value decoder"] * eps)
    D = value_range(v, N_v)

    beta_ex = beta_for_margin(T, gamma, gamma / 4, SCORE_RANGE)
    eta = margin_retrieval_error(T, beta_ex, gamma, SCORE_RANGE)
    assert eta <= gamma / 4  # the flags are exact
    gap = score_gap_for_flagged_set(T, k, SHARES["leakage"] * eps / L_F, D)
    beta_u = beta if beta is not None else gap / K_UNIFORM
    terms = {"flags (exact: η ≤ γ/4)": 0.0,  # the claims below name these keys
             "leakage L_F·ρ(T,k,βK)·D": L_F * flagged_set_leakage(T, k, beta_u * K_UNIFORM) * D,
             "F decoder L_F/(2N)": pl_decoder_error(L_F, N)}
    if N_v is not None:
        terms["value decoder L_F·L_v/(2N_v)"] = L_F * pl_decoder_error(L_v, N_v)

    nudge = {"last-threshold-nudged": {k: gamma}, "first-threshold-nudged": {1: gamma}}.get(mutant)
    flags_term, leak_term, F_term = "flags (exact: η ≤ γ/4)", "leakage L_F·ρ(T,k,βK)·D", "F decoder L_F/(2N)"
    prog = Program()
    one, x = prog.constant("one"), prog.token_input("x")
    rng = np.random.default_rng(mutant_seed)
    weaken = None
    if mutant == "exclusion-weakened":  # depth: the error where it shows is 2.2×bound
        layer, band = int(rng.integers(1, k + 1)), weakened_band(rng)
        depth = weaken_depth if weaken_depth is not None else calibrated_depth(
            lambda dp: build(T, eps, k=k, gamma=gamma, v=v, F=F, beta=beta, mutant=mutant, mutant_seed=mutant_seed,
                             weaken_depth=dp),
            weakened_input(T, layer, band[0], gamma), LOCALIZED_STRENGTH * sum(terms.values()))
        weaken = {layer: lambda net: weakened_flag_net(net, depth, band)}
    exclusion_layers(prog, x, one, k + 1, beta_ex, gamma, nudge=nudge, eta=eta, flag_term=flags_term,
                     weaken=weaken)  # f_1..f_k
    if N_v is None:
        value = x
    else:
        vals = np.asarray(v(np.linspace(0.0, 1.0, N_v + 1)), dtype=np.float64)
        prog.layers[0].ffn(FFNBlock((x,), tuple(piecewise_linear_decoder(v, N_v)), ("v",),
                                    note=f"v ← v̂(x), L3 decoder, N_v={N_v}",
                                    claim=OneInput(v, L_v, intervals=((0.0, 1.0),), tolerance=pl_decoder_error(L_v, N_v),
                                                   term="value decoder L_F·L_v/(2N_v)", weight=L_F, input=x,
                                                   values_in=(float(vals.min()), float(vals.max())),
                                                   statement="|v̂(x) − v(x)| ≤ L_v/(2N_v) on [0,1], v̂ of range D")))
        value = prog["v"]
    flag = prog[f"f{k}"]
    proof_key = K_UNIFORM * flag  # the claim's score, whatever a mutant compiles
    if mutant == "flag-dropped":
        flag = prog[f"f{k - 1}"] if k > 1 else Form(())
    key = K_UNIFORM * flag
    if mutant == "score-depends-on-x":  # − x, not + x: with k = 1, β·(K·f + x) is still a correct max retrieval
        key = key - K_UNIFORM * x
    b_u = BETA_SMALL(beta_u) if mutant == "beta-small" else beta_u
    last = prog.layer()
    last.attend(max_retrieval(
        query=b_u * one, key=key, value=value, into="u",
        note=f"u ← Σ_s softmax(β·({key}))·{value} ≈ mean over the top {k} (β={b_u:.4g})",
        claim=Retrieval("L2-set", key=proof_key, values=((value, "u"),), k=k, key_range=D,
                        tolerance=flagged_set_leakage(T, k, beta_u * K_UNIFORM) * D, term=leak_term, weight=L_F,
                        statement=f"L2 on the flagged set: |u − mean of v̂ over the top {k}| ≤ ρ(T,k,βK)·D")))
    f_net = tuple(piecewise_linear_decoder(F, N))
    if mutant == "cell-bump":  # a cell u = mean of the top k reaches: (k+1)γ/2 ≤ u ≤ 1 − (k−1)γ/2 (v = identity)
        lo, hi = (0.0, 1.0) if N_v is not None else ((k + 1) * gamma / 2, 1 - (k - 1) * gamma / 2)
        f_net = one_cell_bump(f_net, LOCALIZED_STRENGTH * sum(terms.values()), rng, within=(lo, hi))
    last.ffn(FFNBlock((prog["u"],), f_net, ("y",),
                      note=f"y ← F̂(u), L3 decoder, N={N}",
                      claim=OneInput(F, L_F, intervals=((0.0, 1.0),), tolerance=pl_decoder_error(L_F, N), term=F_term,
                                     input=prog["u"], statement="|F̂(u) − F(u)| ≤ L_F/(2N) on u ∈ [0,1]")))
    prog.readout(prog["y"])
    return Built(name="C8", task=task, compiled=prog.compile(), eps=eps, bound=sum(terms.values()),
                 bound_terms=terms, betas=[beta_ex] * k + [beta_u],
                 choices={"N": N, "N_v": N_v, "gamma": gamma, "eta": eta, "K_ex": K_EXCLUDE, "K": K_UNIFORM,
                          "D": D}, mutant=mutant)


SPEC = ConstructionSpec(
    name="C8", task_id="T7",
    summary="soft top-k attention: k exclusion layers + one head uniform over the flagged top k (T7 on Ω_{γ,k+1}), "
            "O(k + 1/ε) params",
    build=build, mutants=MUTANTS, layers=lambda k: k + 1, uses_k=True, default_k=(2, 3), expected_exponent=1.0,
)
