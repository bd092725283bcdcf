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
"""

from __future__ import annotations

from infoflow_jax.core.decoders import clip_unit_interval_net
from infoflow_jax.core.slots import FFNBlock, Form, Program, max_retrieval

K_EXCLUDE = 2.0  # flagged scores x − K ≤ −1: below every unflagged score by ≥ 1 (≥ γ, as L2 needs)
SCORE_RANGE = 1.0 + K_EXCLUDE  # scores x − K·f lie in [−K, 1]


def exclusion_layers(prog: Program, x: Form, one: Form, k: int, beta: float, gamma: float, *,
                     sign: float = -1.0, nudge: dict[int, float] | None = None) -> Form:
    """Append the k−1 exclusion layers to ``prog``; return the score x − K·f_{k−1}.

    ``sign`` = +1 is a negative control (scores x + K·f); ``nudge`` {l: δ} is one too: layer l's
    flag threshold moves down by δ, f_l = clip((x − m_l + γ/2 + δ)/(γ/2), 0, 1)."""
    nudge = nudge or {}
    score = x  # x − K·f_{l−1}; no flags before layer 1
    for l in range(1, k):
        layer = prog.layer()
        layer.attend(max_retrieval(query=beta * one, key=score, into=f"m{l}",
                                   note=f"m{l} ← soft-max over tokens of ({score}) = x_({l}) (β_ex={beta:.4g})"))
        shift = 1.0 + 2 * nudge.get(l, 0.0) / gamma  # (x − m + γ/2 + δ)/(γ/2) = (2/γ)(x − m) + shift
        layer.ffn(FFNBlock((x - prog[f"m{l}"],), tuple(clip_unit_interval_net(2 / gamma, shift)), (f"f{l}",),
                           note=f"f{l} ← clip((x − m{l} + γ/2)/(γ/2), 0, 1): flags the top {l}"))
        score = x + sign * K_EXCLUDE * prog[f"f{l}"]
    return score
