"""Proof-step checks: every claimed step of a construction, certified against its compiled weights.

    check_steps(built) → (steps, step_certified)

A construction's program can carry, on each head and FFN block, the local claim of its
proof step (:mod:`infoflow_jax.core.claims`): what the block computes, on which input
interval or box, to which tolerance, and which term of the bound that tolerance is part of.
Each claim is checked in the step's own low-dimensional input space, from the weights as
compiled (a mutant or a hand edit changes them; the claim stays the proof's):

* a one-input FFN block exactly, piece by piece between its breakpoints
  (:func:`~infoflow_jax.verification.step_ffn.sup_one_input`);
* a D-input Kuhn block per simplex (:func:`~infoflow_jax.verification.step_ffn.certify_kuhn`);
* an attention head by its lemma at its actual β and the row's T
  (:func:`~infoflow_jax.verification.step_attention.certify_head`).

A step is ok when its certified error is ≤ its tolerance up to float64 rounding: the
certificate of the network in real arithmetic (``certified_error`` less the margin that only
covers the dense evaluation's rounding) meets the tolerance within
:func:`~infoflow_jax.core.precision.within_bound`'s floors, as the estimate meets the bound and its hypotheses for later steps hold
(``values_in``). The steps must also account for the claimed bound: for each named term,
the shares weight·tolerance of the steps naming it add up (or, for ``combine="max"``, each
is) at most the term, and no positive term is left without a step; a violation is listed as
a failing pseudo-step ``term:<name>``. A block without a claim, in a construction that
claims some, is a failing step. ``step_certified`` is True when every step is ok, False
when one is not, and None when the construction declares no claims at all.

Cost: NumPy on the weights, no XLA compilation except a target function evaluated on
padded batches (:func:`~infoflow_jax.verification.step_ffn.evaluate`); milliseconds per step
for the L3 decoders, up to a second for the largest default Kuhn block.
"""

from __future__ import annotations

import math

import numpy as np

from infoflow_jax.core.claims import OnBox, OneInput, Retrieval, SumOfOneInputs
from infoflow_jax.core.precision import FLOAT64_FLOOR, within_bound
from infoflow_jax.core.pwl import layer_ffn_weights
from infoflow_jax.verification.step_attention import certify_head, form_vector
from infoflow_jax.verification.step_ffn import StepBound, certify_kuhn, kuhn_block_network, one_input_function, \
    parallel_units, sup_one_input

STEP_KEYS = ("name", "note", "claim", "certified_error", "tolerance", "term", "ok", "attained", "detail", "value_range")


def check_steps(built) -> tuple[list[dict], bool | None]:
    """Every step of ``built``'s program against its claim; (steps, step_certified)."""
    compiled = built.compiled
    sites = compiled.sites
    if compiled.layout is None or not any(s.claim is not None for s in sites):
        return [], None
    steps = [_check_site(compiled, site, built.task.T) for site in sites]
    steps.append(_readout_step(compiled))
    steps += _term_checks([s.claim for s in sites], built.bound_terms)
    return steps, all(s["ok"] for s in steps)


def first_failing(steps: list[dict] | None) -> str | None:
    """Name of the first step that is not ok (None if all are, or there are none)."""
    return next((s["name"] for s in steps or () if not s["ok"]), None)


# ----------------------------------------------------------------------------- one site
def _step(site, **kw) -> dict:
    # named by what the proof says the step writes (a mutant may write elsewhere)
    outs = [o for _, o in site.claim.values] if isinstance(site.claim, Retrieval) else site.outputs
    name = f"{site.kind}{site.layer + 1}:{','.join(outs)}"
    return {"name": name, "note": site.note, "attained": None, "detail": None, "term": None, "value_range": None, **kw}


def _check_site(compiled, site, T: int) -> dict:
    claim = site.claim
    if claim is None:
        return _step(site, claim="none", certified_error=None, tolerance=None, ok=False,
                     detail="this block carries no claim, so the proof cannot be checked through it")
    try:
        if isinstance(claim, Retrieval) and site.kind == "attn":
            attn = compiled.model.blocks[site.layer].attn
            cert, beta = certify_head(attn, site.index, compiled.slots, compiled.layout, 2 * site.layer + 1, claim, T)
            detail = cert.problem or (None if beta is None else f"actual β = {beta:.6g}")
            return _finish(site, claim, cert, detail)
        if isinstance(claim, OneInput) and site.kind == "ffn":
            return _finish(site, claim, *_one_input(compiled, site, claim))
        if isinstance(claim, SumOfOneInputs) and site.kind == "ffn":
            return _finish(site, claim, *_sum_of_one_inputs(compiled, site, claim))
        if isinstance(claim, OnBox) and site.kind == "ffn":
            return _finish(site, claim, *_on_box(compiled, site, claim))
    except np.linalg.LinAlgError as exc:  # a degenerate input form
        return _finish(site, claim, StepBound(upper=math.inf, problem=str(exc)), str(exc))
    return _finish(site, claim, StepBound(upper=math.inf), f"a {type(claim).__name__} claim on an {site.kind} step")


def _finish(site, claim, cert: StepBound, detail: str | None = None) -> dict:
    # judged like every bound here, up to float64 rounding: the real-arithmetic certificate
    # (upper less its rounding margin) against the tolerance, with within_bound's floors
    ok = within_bound(cert.upper - cert.rounding, claim.tolerance) and cert.problem is None
    values_in = getattr(claim, "values_in", None)
    if values_in is not None and cert.value_range is not None:
        lo, hi = cert.value_range
        if lo < values_in[0] - FLOAT64_FLOOR or hi > values_in[1] + FLOAT64_FLOOR:
            ok = False
            detail = f"values in [{lo:.6g}, {hi:.6g}], not inside the claimed [{values_in[0]:g}, {values_in[1]:g}]"
    return _step(site, claim=describe(claim), certified_error=float(cert.upper), tolerance=float(claim.tolerance),
                 term=" + ".join(claim.term) if isinstance(claim.term, tuple) else claim.term, ok=bool(ok), attained=None if cert.problem else cert.lower or None,
                 detail=detail if detail is not None else cert.problem,
                 value_range=None if cert.value_range is None else [float(v) for v in cert.value_range])


def _readable(compiled, site) -> np.ndarray:
    """Slots that can be nonzero when the site runs (written before it)."""
    stage = 2 * site.layer + (1 if site.kind == "attn" else 2)
    return np.array([compiled.layout.stage[s] < stage for s in compiled.slots])


def _depth_one(compiled, site):
    """The layer's FFN as (W1, b1, W2, b2), or a problem when it is not one Dense hidden layer."""
    parts = layer_ffn_weights(compiled.model, site.layer)
    if len(site.outputs) != 1:
        return None, "a one-input claim needs a block writing one slot"
    if len(parts) != 2 or parts[0][2] or parts[1][2]:
        return None, "a one-input claim needs its layer's FFN to have one Dense hidden layer"
    (W1, b1, _), (W2, b2, _) = parts
    return (W1, b1, W2, b2), None


def _certify_part(pl, claim: OneInput) -> StepBound:
    """One PiecewiseLinear against a OneInput claim, over all of its intervals."""
    certs = [sup_one_input(pl, claim.target, claim.lipschitz, lo, hi, claim.tolerance, claim.affine_between)
             for lo, hi in claim.intervals]
    worst = max(certs, key=lambda c: c.upper)
    at = max(certs, key=lambda c: c.lower)
    rng = (min(c.value_range[0] for c in certs), max(c.value_range[1] for c in certs))
    return StepBound(upper=worst.upper, lower=at.lower, at=at.at, value_range=rng, rounding=worst.rounding)


def _one_input(compiled, site, claim: OneInput) -> tuple[StepBound, str | None]:
    weights, problem = _depth_one(compiled, site)
    if problem:
        return StepBound(upper=math.inf, problem=problem), problem
    form = claim.input if claim.input is not None else site.inputs[0]
    pl, problem = one_input_function(*weights, form_vector(form, compiled.slots),
                                     compiled.slots.index(site.outputs[0]), _readable(compiled, site))
    if problem:
        return StepBound(upper=math.inf, problem=problem), problem
    cert = _certify_part(pl, claim)
    return cert, f"sup attained ≥ {cert.lower:.3e} at z = {cert.at:.6g}"


def _sum_of_one_inputs(compiled, site, claim: SumOfOneInputs) -> tuple[StepBound, str | None]:
    """Each part's units are those reading its form; every unit writing the slot must be in one.
    sup |Σ_i net_i − Σ_i f_i| ≤ Σ_i sup |net_i − f_i| (the output bias goes with the first part)."""
    weights, problem = _depth_one(compiled, site)
    if problem:
        return StepBound(upper=math.inf, problem=problem), problem
    W1, b1, W2, b2 = weights
    out, readable = compiled.slots.index(site.outputs[0]), _readable(compiled, site)
    live = np.flatnonzero(W2[:, out] != 0)
    free = np.ones(live.size, bool)
    certs = []
    for i, part in enumerate(claim.parts):
        form = form_vector(part.input, compiled.slots)
        mine = parallel_units(W1, live, form, readable)[0] & free
        free &= ~mine
        pl, _ = one_input_function(W1, b1, W2, b2, form, out, readable, units=live[mine], with_bias=i == 0)
        certs.append(_certify_part(pl, part))
    if np.any(free):
        problem = f"units {live[free].tolist()} writing the slot read none of the parts' forms"
        return StepBound(upper=math.inf, problem=problem), problem
    cert = StepBound(upper=sum(c.upper for c in certs), lower=max(c.lower for c in certs),
                       rounding=sum(c.rounding for c in certs),
                       value_range=(sum(c.value_range[0] for c in certs), sum(c.value_range[1] for c in certs)))
    return cert, "parts' certified errors: " + ", ".join(f"{c.upper:.3e}" for c in certs)


def _on_box(compiled, site, claim: OnBox) -> tuple[StepBound, str | None]:
    parts = layer_ffn_weights(compiled.model, site.layer)
    if len(site.outputs) != 1:
        return StepBound(upper=math.inf), "a box claim needs a block writing one slot"
    forms = claim.inputs if claim.inputs is not None else site.inputs
    Phi = np.stack([form_vector(f, compiled.slots) for f in forms], axis=1)
    net, problem = kuhn_block_network(parts, Phi, compiled.slots.index(site.outputs[0]), _readable(compiled, site))
    if problem:
        return StepBound(upper=math.inf, problem=problem), problem
    cert = certify_kuhn(net, claim.target, claim.lipschitz, claim.n, claim.box, claim.tolerance)
    return cert, cert.problem or f"sup attained ≥ {cert.lower:.3e} at z = {np.round(cert.at, 6).tolist()}"


def _readout_step(compiled) -> dict:
    """The readout is exact: the compiled w, b are the program's readout form and bias (a
    weight edited after build shows here). Certified error 0 when equal, else ∞."""
    layout, model = compiled.layout, compiled.model
    want = form_vector(layout.readout, compiled.slots) if layout.readout is not None else None
    w, b = np.asarray(model.w[...]), float(np.asarray(model.b[...]))
    ok = want is not None and np.array_equal(w, want) and b == layout.readout_bias
    return {"name": "readout", "note": f"y ← {layout.readout} at CLS", "claim": "the readout is the program's, exactly",
            "certified_error": 0.0 if ok else math.inf, "tolerance": 0.0, "term": None, "ok": bool(ok),
            "attained": None, "detail": None if ok else "the compiled readout differs from the program's",
            "value_range": None}


# ----------------------------------------------------------------------------- the bound's terms
def _term_checks(claims, bound_terms: dict) -> list[dict]:
    """Failing pseudo-steps where the claims do not account for the bound's terms. A claim's
    ``term`` is a name or a tuple of names (one step responsible for several terms): the steps
    naming the same group share the sum of its terms."""
    out = []
    claims = [c for c in claims if c is not None and c.term is not None]
    group = lambda c: c.term if isinstance(c.term, tuple) else (c.term,)
    for c in claims:
        for t in group(c):
            if t not in bound_terms:
                out.append(_pseudo(t, None, None, f"a step names term '{t}', which the bound does not have"))
    groups = {group(c) for c in claims}
    for term in bound_terms:
        if sum(term in g for g in groups) > 1:
            out.append(_pseudo(term, None, float(bound_terms[term]), "the term is split between step groups"))
    for term, value in bound_terms.items():
        if value > 0 and not any(term in g for g in groups):
            out.append(_pseudo(term, None, float(value), "no step claims this term of the bound"))
    for g in groups:
        mine = [c for c in claims if group(c) == g]
        value = sum(bound_terms.get(t, 0.0) for t in g)
        shares = [c.weight * c.tolerance for c in mine]
        total = max(shares) if all(c.combine == "max" for c in mine) else sum(shares)
        if not within_bound(total, value):
            out.append(_pseudo(" + ".join(g), float(total), float(value),
                               "the steps' shares weight·tolerance exceed this term of the bound"))
    return out


def _pseudo(term: str, total, value, detail: str) -> dict:
    return {"name": f"term:{term}", "note": "the bound's terms against the steps' tolerances", "claim": detail,
            "certified_error": total, "tolerance": value, "term": term, "ok": False, "attained": None,
            "detail": detail, "value_range": None}


# ----------------------------------------------------------------------------- text
def describe(claim) -> str:
    """One line: what the claim says."""
    if claim.statement:
        return claim.statement
    if isinstance(claim, OneInput):
        where = " ∪ ".join(f"[{lo:.4g}, {hi:.4g}]" for lo, hi in claim.intervals)
        name = getattr(claim.target, "name", "f")
        return f"|net(z) − {name}(z)| ≤ tol on z ∈ {where}"
    if isinstance(claim, SumOfOneInputs):
        return " + ".join(describe(p) for p in claim.parts)
    if isinstance(claim, OnBox):
        return f"|net(z) − G(clip z)| ≤ tol on z ∈ [{claim.box[0]:.4g}, {claim.box[1]:.4g}]^D, affine per simplex (n={claim.n})"
    outs = ", ".join(o for _, o in claim.values)
    D = f"D={claim.key_range:g}"
    # one line per lemma, formatted only for the claim's own lemma: the other lemmas'
    # parameters (γ, k) may be unset on this claim
    if claim.lemma == "L1":
        return f"L1: |{outs} − max_s ({claim.key})| ≤ D·e_max(T, βD), {D}"
    if claim.lemma == "L1-self":
        return f"L1 over the others: |{outs}_t − max_(s≠t) ({claim.key})| ≤ e_max(T−1,β) + e^(β−B_t)"
    if claim.lemma == "L2":
        return f"L2: |{outs} − top ({claim.key})| ≤ (T−1)e^(−βγ)·D, γ={claim.gamma:g}, {D}"
    if claim.lemma == "L2-set":
        return f"L2: |{outs} − mean over the {claim.k} flagged| ≤ ρ(T,k,βK)·D, {D}"
    return f"uniform: {outs} = exact token averages"
