"""C4 — two-layer second largest without margin, for T3 (k = 2) on the whole cube.

One-hot positions (E = T + O(1)). Proof, as the program reads:

  layer 1  slot M ← soft-average of x under scores β₁·x_s − B·[s = t], every token t
           (query pairs (β₁·one, x) and (−B·pos_i, pos_i), i = 1..T: the second sum is −B·[s = t])
  FFN 1    slot u ← x − relu(x − M) = min(x, M)                     (exact, 1 ReLU)
  layer 2  slot z ← soft-max over tokens of u, at CLS (β₂)
  FFN 2    slot y ← F̂(z), L3 decoder with N cells.

Bound. Let M*_t = max_{s≠t} x_s. The self weight of token t is
w_t ≤ e^{β₁x_t − B}/e^{β₁M*_t} ≤ e^{β₁ − B} =: η (x_t − M*_t ≤ 1), and the other
weights are the softmax of β₁x over the T − 1 others, whose average A_t obeys
M*_t − e_max(T−1, β₁) ≤ A_t ≤ M*_t (L1). M_t = (1 − w_t)A_t + w_t x_t, so
|M_t − A_t| ≤ η and M_t ∈ [M*_t − e₁, M*_t + η], e₁ := e_max(T−1, β₁) + η.
min(x_t, ·) is 1-Lipschitz and max_t min(x_t, M*_t) = x_(2) *exactly* (the top
token is clipped to x_(2), the others give x_t ≤ x_(2), the runner-up gives x_(2)),
so |max_t u_t − x_(2)| ≤ e₁, with u ∈ [−e₁, 1]. L1 on values of range 1 + e₁
(rescale, e_max decreasing in β): |z − max_t u_t| ≤ (1 + e₁)·e_max(T, β₂). The
decoder is F̂(clip z) and x_(2) ∈ [0,1]; hence

  |F̂(z) − F(x_(2))| ≤ L_F·[e_max(T−1, β₁) + e^{β₁−B} + (1 + e₁)·e_max(T, β₂)] + L_F/(2N).

Choices: N = ⌈L_F/ε⌉ (decoder ≤ ε/2); β₁, β₂ with L_F·e_max ≤ ε/8; B = β₁ + ln(8L_F/ε)
(L_F·η ≤ ε/8); total ≤ ε/2 + ε/8 + ε/8 + (1+ε/4)·ε/8 < ε. No margin is needed: the
cost moved into the embedding and the attention matrices (E = T + 3, d_key = T + 1).
(THEORY §4 asks B ≥ β + ln(4T/ε); the factor T is unnecessary — η bounds the self
weight for any T — so the smaller B above is used; both satisfy the proof.)
"""

from __future__ import annotations

import math

import numpy as np

from infoflow_jax.verification.mutants import LOCALIZED_STRENGTH, knot_dropped, one_cell_bump
from infoflow_jax.verification.construction import Built, ConstructionSpec, check_mutant
from infoflow_jax.core.claims import OneInput, Retrieval, SumOfOneInputs, clipped
from infoflow_jax.core.decoders import piecewise_linear_decoder
from infoflow_jax.core.errors import check_int_range, check_open_interval
from infoflow_jax.core.functions import DEFAULT_F, LipschitzFn
from infoflow_jax.core.lemmas import beta_for_soft_max, e_max, knots_for, pl_decoder_error
from infoflow_jax.core.relu_net import Dense
from infoflow_jax.core.slots import FFNBlock, Head, Program, max_retrieval
from infoflow_jax.core.tasks import KthLargest

MUTANTS = {
    "B-small": "self-exclusion strength B = 0.1 instead of β₁ + ln(8L_F/ε)",
    "self-exclusion-dropped": "layer 1 scores β₁·x_s only (the token sees itself)",
    "min-sign-flipped": "FFN 1 computes x + relu(x − M) = max-like instead of min(x, M)",
    "knot-dropped": "the F decoder's most significant breakpoint unit removed",
    "cell-bump": "a tent of ±2.2×bound confined to one random cell of the F decoder (localized)",
    "position-weakened": "one random position's self-exclusion B lowered so that, with that token at 1 and the others "
                         "at 0, its own weight moves z by 2.2×bound through F (visible only where it is the max)",
}


def near_tie_probes(T: int, n: int = 96, seed: int = 0) -> dict:
    """Worst cases of the proof: top two within 0..1e-9 (and exact ties, all-equal inputs,
    the runner-up far below), at random positions; the rest uniform below."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(0.0, 1.0, (n, T))
    u = rng.uniform(0.05, 1.0, n)
    gaps = np.array([0.0, 1e-15, 1e-12, 1e-9, 1e-6, 1e-3, 0.3, 1.0])[np.arange(n) % 8]
    X = X * np.minimum(u, np.maximum(u - gaps, 0.0))[:, None]
    for i in range(n):
        a, b = rng.choice(T, 2, replace=False) if T >= 2 else (0, 0)
        X[i, a], X[i, b] = u[i], max(u[i] - gaps[i], 0.0)
    X[: n // 8] = u[: n // 8, None] * np.ones((1, T))  # all tokens tied
    return {"near_tie_top2": X[..., None]}


def weakened_self_exclusion(F: LipschitzFn, T: int, beta1: float, height: float) -> float:
    """A self-exclusion strength B_w for ONE position t: with x_t = 1 and the other tokens at 0, token
    t's own weight is w = η/(η + T − 1), η = e^{β₁ − B_w}, so M_t = w and z ≈ x_(2) + w = w; B_w is
    chosen (bisection on w) so that |F(w) − F(0)| = ``height``."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        w = (lo + hi) / 2
        lo, hi = (w, hi) if abs(float(F(np.float64(w))) - float(F(np.float64(0.0)))) < height else (lo, w)
    w = (lo + hi) / 2
    eta = w * (T - 1) / max(1.0 - w, 1e-300)
    return beta1 - math.log(eta)


def build(T: int, eps: float, *, k: int = 2, F: LipschitzFn = DEFAULT_F, beta: float | None = None,
          mutant: str | None = None, mutant_seed: int = 0) -> Built:
    check_int_range("T", T, 2)
    check_int_range("k", k, 2, 2)
    check_open_interval("eps", eps, 0.0, 1.0)
    mutant = check_mutant(SPEC, mutant)
    task = KthLargest(T, k=2, gamma=None, F=F)
    L_F = F.lipschitz
    N = knots_for(L_F, eps / 2)
    beta1 = beta if beta is not None else beta_for_soft_max(T - 1, eps / (8 * L_F))
    beta2 = beta if beta is not None else beta_for_soft_max(T, eps / (8 * L_F))
    B = beta1 + math.log(8 * L_F / eps)
    eta = math.exp(beta1 - B)
    e1 = e_max(T - 1, beta1) + eta
    terms = {"layer-1 soft max L_F·e_max(T−1,β₁)": L_F * e_max(T - 1, beta1),
             "self weight L_F·e^{β₁−B}": L_F * eta,
             "layer-2 soft max L_F·(1+e₁)·e_max(T,β₂)": L_F * (1 + e1) * e_max(T, beta2),
             "decoder L_F/(2N)": pl_decoder_error(L_F, N)}

    B_used = 0.1 if mutant == "B-small" else B
    t1, t_self, t2, t_dec = list(terms)
    e2 = e_max(T, beta2)
    prog = Program(positional="onehot", max_T=T)
    one, x = prog.constant("one"), prog.token_input("x")
    pos = prog.position_codes()
    l1 = prog.layer()
    pairs = ((beta1 * one, x),)
    if mutant != "self-exclusion-dropped":
        rng = np.random.default_rng(mutant_seed)
        weak = int(rng.integers(0, T)) if mutant == "position-weakened" else -1
        B_weak = weakened_self_exclusion(F, T, beta1, LOCALIZED_STRENGTH * sum(terms.values()))
        pairs += tuple((-(B_weak if t == weak else B_used) * p, p) for t, p in enumerate(pos))
    # claims: the proof's statements, whatever a mutant compiles
    l1.attend(Head(score=pairs, values=((x, "M"),),
                   note=f"M ← soft-max over s ≠ t of x_s: scores β₁x_s − B·[s=t] (β₁={beta1:.4g}, B={B_used:.4g})",
                   claim=Retrieval("L1-self", key=x, values=((x, "M"),), queries="tokens", tolerance=e1,
                                   term=(t1, t_self), weight=L_F,
                                   statement="L1 over s ≠ t: |M_t − max_(s≠t) x_s| ≤ e_max(T−1,β₁) + e^(β₁−B) = e₁")))
    sign = 1.0 if mutant == "min-sign-flipped" else -1.0
    min_net = (Dense(np.eye(2), np.zeros(2)),  # (x − M, x) → relu(x − M), relu(x) = x (x ≥ 0)
               Dense(np.array([[sign], [1.0]]), np.zeros(1)))
    M = prog["M"]
    # u = min(x, M) = x − relu(x − M), exactly: x ∈ [0,1], M_t ∈ [−e₁, 1 + e₁] so x − M ∈ [−1 − e₁, 1 + e₁]
    min_claim = SumOfOneInputs(
        parts=(OneInput(lambda z: z, 1.0, intervals=((0.0, 1.0),), tolerance=0.0, term=None, affine_between=(),
                        input=x),
               OneInput(lambda z: -np.maximum(z, 0.0), 1.0, intervals=((-1.0 - e1, 1.0 + e1),), tolerance=0.0,
                        term=None, affine_between=(0.0,), input=x - M)),
        tolerance=0.0, term=None, statement="u = x − relu(x − M) = min(x, M), exactly (x ∈ [0,1], |M − M*| ≤ e₁)")
    l1.ffn(FFNBlock((x - M, x), min_net, ("u",), note="u ← x − relu(x − M) = min(x, M)", claim=min_claim))
    decoder = knot_dropped(F, N) if mutant == "knot-dropped" else piecewise_linear_decoder(F, N)
    if mutant == "cell-bump":  # z = x_(2) reaches all of [0, 1]
        decoder = one_cell_bump(decoder, LOCALIZED_STRENGTH * sum(terms.values()), np.random.default_rng(mutant_seed),
                                within=(0.0, 1.0))
    l2 = prog.layer()
    # u ∈ [−e₁, 1]: L1 on keys of range 1 + e₁ (e_max decreasing in β)
    l2.attend(max_retrieval(query=beta2 * one, key=prog["u"], into="z",
                            note=f"z ← soft-max over tokens of u = x_(2) (β₂={beta2:.4g})",
                            claim=Retrieval("L1", key=prog["u"], values=((prog["u"], "z"),), key_range=1.0 + e1,
                                            tolerance=(1 + e1) * e2, term=t2, weight=L_F,
                                            statement="L1: |z − max_t u_t| ≤ (1 + e₁)·e_max(T, β₂)")))
    l2.ffn(FFNBlock((prog["z"],), tuple(decoder), ("y",), note=f"y ← F̂(z), L3 decoder, N={N}",
                    claim=OneInput(clipped(F), L_F, intervals=((-e1, 1.0),), tolerance=pl_decoder_error(L_F, N),
                                   term=t_dec, input=prog["z"], statement="|F̂(z) − F(clip z)| ≤ L_F/(2N) on z ∈ [−e₁, 1]")))
    prog.readout(prog["y"])
    built = Built(name="C4", task=task, compiled=prog.compile(), eps=eps, bound=sum(terms.values()),
                  bound_terms=terms, betas=[beta1, beta2], choices={"N": N, "B": B, "eta": eta}, mutant=mutant)
    built.probes = near_tie_probes(T)
    return built


SPEC = ConstructionSpec(
    name="C4", task_id="T3", summary="two-layer second largest on the whole cube (T3, k = 2), one-hot positions",
    build=build, mutants=MUTANTS, layers=lambda k: 2, uses_k=True,
    default_T=(4, 64), default_eps=(1e-2,), default_k=(2,), expected_exponent=1.0,
)
