"""C3's exclusion layers, shared by C3 (k-th largest) and C6 (top-r retriever).

Each token carries flags f_l ∈ {0, 1} (f_l = 1 on the top l tokens). For l = 1..k−1:

    slot m_l ← soft-max over tokens of (x − K·f_{l−1}), every position (β_ex)
               top score x_(l) beats all others by ≥ γ (unflagged: margin; flagged:
               ≤ 1 − K = −1), so |m_l − x_(l)| ≤ η := (T−1)e^{−β_ex γ}·(1 + K)   (L2)
               and m_l ≤ x_(l) (an average of scores ≤ x_(l)).
    slot f_l ← clip((x − m_l + γ/2)/(γ/2), 0, 1)                       (2 ReLUs)
               = 1 if x ≥ x_(l); = 0 if x ≤ x_(l) − γ, as long as η ≤ γ/2.

With η ≤ γ/4 the flags are exact. The CLS position computes m_l too (it queries
like every position): C6 keeps it as its l-th retrieved value.

Claims (checked against the weights by :mod:`infoflow_jax.verification.steps`), stated with
the proof's score x − K·f whatever a mutant compiles:

    attention l  L2 on Ω's gap l: |m_l − x_(l)| ≤ η (the caller's design η ≤ γ/4), all positions
    FFN l        f_l(z) = 1 on z = x − m_l ∈ [0, 1 + η] (tokens x ≥ x_(l): m_l ≤ x_(l)) and
                 f_l(z) = 0 on [−1, −γ + η] (tokens x ≤ x_(l) − γ), exactly (tolerance 0), f ∈ [0,1].
"""

from __future__ import annotations

from infoflow_jax.core.claims import OneInput, Retrieval, step_function
from infoflow_jax.core.decoders import clip_unit_interval_net
from infoflow_jax.core.slots import FFNBlock, Form, Program, max_retrieval

K_EXCLUDE = 2.0  # flagged scores x − K ≤ −1: below every unflagged score by ≥ 1 (≥ γ, as L2 needs)
SCORE_RANGE = 1.0 + K_EXCLUDE  # scores x − K·f lie in [−K, 1]


def exclusion_layers(prog: Program, x: Form, one: Form, k: int, beta: float, gamma: float, *, eta: float,
                     sign: float = -1.0, nudge: dict[int, float] | None = None, retrieval_term: str | None = None,
                     retrieval_weights=None, combine: str = "sum", flag_term: str | None = None,
                     weaken: dict | None = None) -> Form:
    """Append the k−1 exclusion layers to ``prog``; return the score x − K·f_{k−1}.

    ``eta`` is the design retrieval error (≤ γ/4), the tolerance of each attention step; a
    caller that keeps m_l as a retrieved value names the bound term it feeds
    (``retrieval_term``, with the Lipschitz weight of each m_l in ``retrieval_weights``);
    ``flag_term`` names the bound's (zero) term for exact flags, if it has one.
    ``sign`` = +1 is a negative control (scores x + K·f); ``nudge`` {l: δ} is one too: layer l's
    flag threshold moves down by δ, f_l = clip((x − m_l + γ/2 + δ)/(γ/2), 0, 1). ``weaken`` {l: edit}
    is a localized mutant: layer l's flag net becomes ``edit(net)``, a net of (x − m_l, x)
    (:func:`infoflow_jax.verification.mutants.weakened_flag_net`); its claim stays the proof's."""
    nudge = nudge or {}
    score = proof = x  # x − K·f_{l−1} (compiled; and the proof's); no flags before layer 1
    for l in range(1, k):
        layer = prog.layer()
        layer.attend(max_retrieval(
            query=beta * one, key=score, into=f"m{l}",
            note=f"m{l} ← soft-max over tokens of ({score}) = x_({l}) (β_ex={beta:.4g})",
            claim=Retrieval("L2", key=proof, values=((proof, f"m{l}"),), queries="all", gamma=gamma,
                            key_range=SCORE_RANGE, tolerance=eta, term=retrieval_term, combine=combine,
                            weight=0.0 if retrieval_weights is None else retrieval_weights[l - 1],
                            statement=f"L2 on gap {l}: |m{l} − x_({l})| ≤ η = {eta:.3g} at every position")))
        shift = 1.0 + 2 * nudge.get(l, 0.0) / gamma  # (x − m + γ/2 + δ)/(γ/2) = (2/γ)(x − m) + shift
        net, inputs = tuple(clip_unit_interval_net(2 / gamma, shift)), (x - prog[f"m{l}"],)
        if l in (weaken or {}):
            net, inputs = tuple(weaken[l](net)), inputs + (x,)
        layer.ffn(FFNBlock(inputs, net, (f"f{l}",),
                           note=f"f{l} ← clip((x − m{l} + γ/2)/(γ/2), 0, 1): flags the top {l}",
                           claim=OneInput(step_function(0.0), 0.0, intervals=((-1.0, -gamma + eta), (0.0, 1.0 + eta)),
                                          tolerance=0.0, term=flag_term, affine_between=(), values_in=(0.0, 1.0),
                                          input=x - prog[f"m{l}"],
                                          statement=f"f{l} = 1 on x − m{l} ∈ [0, 1+η], 0 on [−1, −γ+η], exactly")))
        score = x + sign * K_EXCLUDE * prog[f"f{l}"]
        proof = x - K_EXCLUDE * prog[f"f{l}"]
    return score
