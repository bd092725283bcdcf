"""Step checks of attention heads: the lemma a head relies on, recomputed from its compiled weights.

Reading a head in slot terms
----------------------------
Head i of a layer scores query position p against token s by h_p·M·h_s with M = W_Q W_K^T,
and writes Σ_s w_s·(h_s·OV) with OV = W_V W_O (both E × E, in the slot basis). What a
residual row holds when the layer runs is known from the program's layout: slots written
later are 0; embedding constants are known (``one`` = 1); at CLS every embedding slot that is
not a CLS constant is 0 (token inputs, positions); every other slot is *variable*.

* Query side. For each query class the claim uses (CLS; every token too for
  ``queries="all"``), the rows of M of the class's variable slots must vanish (else the score
  depends on the query's own content, which no lemma here covers), and the key-side vector
  is κ = Σ_{constant slots a} h_p[a]·M[a, :].
* Key side. On the tokens' variable slots κ must be β̂ times the claimed key form k
  (β̂ = κ_p/k_p at k's largest entry): then score_s = β̂·key_s + a constant, and β̂ is the
  head's *actual* inverse temperature. Components on token constants only shift every
  score alike (softmax ignores them). Anything else (a flag with the wrong sign, a key on
  the wrong slot, an extra term) is a structural mismatch: the step is not certified.
* Values. The column of OV for each claimed output slot must equal the claimed value form
  on the tokens' live slots, and every other column must vanish there (the head writes
  nothing else).

Equalities are judged to 8 units of float64 roundoff of the entries (compiled entries are
single products, so real constructions match exactly).

The lemmas, at the actual β̂ (minimum over query classes) and the row's T
--------------------------------------------------------------------------
* L1 (keys in an interval of length D, value = key): |out − max key| ≤ D·e_max(T, β̂D);
  with ``excluded`` tokens (≥ D below the top) only when e_max_holds_beyond_unit_range(T, β̂D).
* L2 (top key ≥ γ above the rest, range D, value = key): |out − top| ≤ (T−1)e^{−β̂γ}·D.
* L2-set (key K·f, f ∈ {0,1} on k flagged tokens; values of range D):
  |out − flagged mean| ≤ ρ(T, k, β̂K)·D.
* uniform (no score on any variable slot): out = (1/T)Σ_s value_s exactly, up to the
  rounding of a T-term average (8·T·u·D).
* L1-self (C4; queries at every token t, which holds one-hot position pos_t = 1): the key-side
  vector κ_t is read per token; on the non-position slots it must be β̂_t·key, and on the
  position slots its entries κ_t[pos_s] must be one number c_t for every s ≠ t — the *actual
  penalty* of token t is B_t = c_t − κ_t[pos_t]. Then
  |out_t − max_{s≠t} key_s| ≤ e_max(T−1, min_t β̂_t) + max_t e^{β̂_t − B_t}.
"""

from __future__ import annotations

import math

import numpy as np

from infoflow_jax.core.lemmas import e_max, e_max_holds_beyond_unit_range, flagged_set_leakage, margin_retrieval_error
from infoflow_jax.core.pwl import UNIT_ROUNDOFF as U
from infoflow_jax.verification.step_ffn import StepBound


def form_vector(form, slots: tuple[str, ...]) -> np.ndarray:
    """A Form as a vector on the residual stream's slot basis."""
    v = np.zeros(len(slots))
    for name, c in form.coeffs:
        v[slots.index(name)] += c
    return v


def _query_classes(layout, slots, readable: np.ndarray, queries: str):
    """[(name, constant values (E,), variable mask (E,))] of the query positions the claim uses."""
    cls_val = np.array([layout.cls_constants.get(s, 0.0) for s in slots])
    cls_var = np.array([layout.stage[s] > 0 for s in slots]) & readable & ~np.isin(slots, list(layout.cls_constants))
    out = [("CLS", cls_val, cls_var)] if queries in ("cls", "all") else []
    if queries in ("all", "tokens"):
        tok_val, tok_var = token_view(layout, slots, readable)
        out.append(("tokens", tok_val, tok_var))
    return out


def token_view(layout, slots, readable: np.ndarray):
    """Constant values of each slot at the token positions, and the mask of variable slots there."""
    known = set(layout.token_constants) | set(layout.cls_constants)  # cls-only constants are 0 at tokens
    val = np.array([layout.token_constants.get(s, 0.0) for s in slots])
    var = readable & ~np.isin(slots, list(known))
    return val, var


def _close(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b) <= 8 * U * (np.abs(a) + np.abs(b))


def value_problem(attn, head: int, slots, layout, stage: int, claim) -> str | None:
    """None when the head writes exactly the claimed value forms into the claimed slots (on the
    tokens' live slots) and nothing elsewhere; otherwise what differs."""
    Wv, Wo = np.asarray(attn.Wv[...])[head], np.asarray(attn.Wo[...])[head]
    OV = Wv @ Wo
    readable = np.array([layout.stage[s] < stage for s in slots])
    tok_val, tok_var = token_view(layout, slots, readable)
    live = tok_var | (readable & (tok_val != 0))
    names = np.asarray(slots)
    claimed = {slots.index(into): form_vector(vform, slots) for vform, into in claim.values}
    for j in range(len(slots)):
        bad = live & ~_close(OV[:, j], claimed.get(j, np.zeros(len(slots))))
        if np.any(bad):
            if j in claimed:
                return f"the value written to {slots[j]} is not {_form_str(claim.values, slots[j])}"
            return f"slot {slots[j]} gets value weight on {names[bad].tolist()}"
    return None


def _score_matrix(attn, head: int, slots, layout, stage: int, claim):
    """(M = W_Q W_Kᵀ of the head in the slot basis, the slots readable at ``stage``, problem): the
    value structure is checked first (:func:`value_problem`); on a problem M is None."""
    problem = value_problem(attn, head, slots, layout, stage, claim)
    if problem:
        return None, None, problem
    Wq, Wk = np.asarray(attn.Wq[...])[head], np.asarray(attn.Wk[...])[head]
    return Wq @ Wk.T, np.array([layout.stage[s] < stage for s in slots]), None


def read_head(attn, head: int, slots, layout, stage: int, claim):
    """(β̂ per query class, None) or (None, problem): the actual inverse temperature of the
    head relative to the claimed key, after the structural checks of the module docstring."""
    M, readable, problem = _score_matrix(attn, head, slots, layout, stage, claim)
    if problem:
        return None, problem
    tok_val, tok_var = token_view(layout, slots, readable)
    names = np.asarray(slots)
    betas = []
    for cname, qval, qvar in _query_classes(layout, slots, readable, claim.queries):
        if np.any(M[qvar] != 0):
            return None, f"the score depends on the {cname} query's variable slots {names[np.any(M != 0, 1) & qvar].tolist()}"
        kappa = qval @ M
        if claim.key is None:
            if np.any(kappa[tok_var] != 0):
                return None, f"the scores at {cname} are not uniform (they read {names[tok_var & (kappa != 0)].tolist()})"
            betas.append(0.0)
            continue
        k = form_vector(claim.key, slots)
        kv = np.where(tok_var, k, 0.0)
        if not np.any(kv):
            return None, "the claimed key reads no variable token slot"
        p = int(np.argmax(np.abs(kv)))
        beta = kappa[p] / k[p]
        bad = tok_var & ~_close(kappa, beta * k)
        if np.any(bad):
            return None, f"the score at {cname} is not β·({claim.key}): it differs on {names[bad].tolist()}"
        betas.append(float(beta))
    return betas, None


def _form_str(values, into: str) -> str:
    return next(str(f) for f, o in values if o == into)


def read_self_excluding_head(attn, head: int, slots, layout, stage: int, claim, T: int):
    """(β̂_t, B_t) per token t = 1..T, or (None, problem): the L1-self reading (module docstring)."""
    M, readable, problem = _score_matrix(attn, head, slots, layout, stage, claim)
    if problem:
        return None, problem
    names = np.asarray(slots)
    pos = [slots.index(p) for p in layout.position_slots[:T]]
    if len(pos) < T:
        return None, f"L1-self needs one-hot positions for T = {T} tokens"
    tok_val, tok_var = token_view(layout, slots, readable)
    is_pos = np.zeros(len(slots), bool)
    is_pos[pos] = True
    qvar = tok_var & ~is_pos  # at token t the positions are known: pos_t = 1, the others 0
    if np.any(M[qvar] != 0):
        return None, f"the score depends on the token query's variable slots {names[np.any(M != 0, 1) & qvar].tolist()}"
    k = form_vector(claim.key, slots)
    kv = np.where(tok_var & ~is_pos, k, 0.0)
    if not np.any(kv) or np.any(k[is_pos]):
        return None, "the claimed key must read a variable non-position token slot and no position"
    p = int(np.argmax(np.abs(kv)))
    out = []
    for t in range(T):
        kappa = tok_val @ M + M[pos[t]]
        beta = kappa[p] / k[p]
        bad = tok_var & ~is_pos & ~_close(kappa, beta * k)
        if np.any(bad):
            return None, f"the score at token {t + 1} is not β·({claim.key}) + a position offset: it differs on {names[bad].tolist()}"
        offsets = kappa[pos]
        others = np.delete(offsets, t)
        if others.size and np.any(others != others[0]):
            return None, f"token {t + 1} gives the other tokens unequal position offsets"
        out.append((float(beta), float((others[0] if others.size else 0.0) - offsets[t])))
    return out, None


def certify_head(attn, head: int, slots, layout, stage: int, claim, T: int) -> tuple[StepBound, float | None]:
    """The head's certified error under its claim's lemma at the row's T; and its actual β̂."""
    if claim.lemma == "L1-self":
        per_token, problem = read_self_excluding_head(attn, head, slots, layout, stage, claim, T)
        if problem:
            return StepBound(upper=math.inf, problem=problem), None
        betas = [b for b, _ in per_token]
        if min(betas) <= 0:
            return StepBound(upper=math.inf, problem=f"actual β = {min(betas):.4g} is not positive"), min(betas)
        self_weight = max(math.exp(min(b - B, 700.0)) for b, B in per_token)  # e^{β̂_t − B_t}, capped before overflow
        return StepBound(upper=(e_max(max(T - 1, 1), min(betas)) + self_weight) * (1 + 8 * U)), min(betas)
    betas, problem = read_head(attn, head, slots, layout, stage, claim)
    if problem:
        return StepBound(upper=math.inf, problem=problem), None
    if claim.lemma == "uniform":
        return StepBound(upper=8 * T * U * claim.key_range), 0.0
    beta = min(betas)
    if beta <= 0:
        return StepBound(upper=math.inf, problem=f"actual β = {beta:.4g} is not positive"), beta
    D = claim.key_range
    if claim.lemma == "L1":
        if claim.excluded and not e_max_holds_beyond_unit_range(T, beta * D):
            return StepBound(upper=math.inf, problem=f"actual β = {beta:.4g} is too small for L1 with "
                                                       "excluded tokens (needs β ≥ 1, ln((T−1)β) ≤ β)"), beta
        return StepBound(upper=D * e_max(T, beta * D) * (1 + 8 * U)), beta
    if claim.lemma == "L2":
        return StepBound(upper=margin_retrieval_error(T, beta, claim.gamma, D) * (1 + 8 * U)), beta
    K = float(sum(c for _, c in claim.key.coeffs))
    return StepBound(upper=flagged_set_leakage(T, claim.k, beta * K) * D * (1 + 8 * U)), beta
