"""The glue between proof steps, derived from the weights: ranges and errors carried through the program.

    compose(built, steps) → Composition        derived_bound ≥ sup_Ω |Ĥ − H*|

where H* is the *ideal program* — the program with every block replaced by its claim's ideal
function (exact max / top / flagged mean / average for heads, f or G for FFN blocks;
:mod:`~infoflow_jax.verification.ideal`). With ideal ≡ H (checked there), derived_bound bounds
the construction's sup error at the row's T, without a forward pass.

For every slot and each position class c ∈ {CLS, tokens} the walk carries three intervals,
each holding at every input of the domain and every position of the class:

* ``real``   — the values the network computes (h);
* ``ideal``  — the values the ideal program computes (h*);
* ``err``    — h − h* (signed: a soft maximum never exceeds the maximum, and proofs use that).

A linear form Σ c_i·slot_i gets all three by interval arithmetic. The rules, one per step
(each a one-line lemma; docs/steps.md states them with their proofs):

* **embedding** — token inputs x_{s,i} ∈ [0, 1] (the domain lies in the cube), 0 at CLS;
  constants and one-hot positions exact. err = 0. The compiled embedding must be the
  program's (:func:`embedding_step`).
* **L1 / L2 head** (value = key k, certified error c at the head's actual β and the row's T):
  out = Σ_s w_s k_s with w a probability vector, so out ∈ hull(k) and out ≤ max_s k_s; the
  lemma gives out ≥ max_s k_s − c. max is monotone and 1-Lipschitz in the sup norm:
  max k − max k* ∈ [min err_k, max err_k]. Hence out − max k* ∈ [−c + err_k.lo, err_k.hi].
  L1 without excluded tokens needs its keys in an interval of length D: width(real k) ≤ D.
  L2's margin hypothesis (the top key γ above the rest, after the keys' errors) is a property
  of the inputs: the ideal program checks it on its samples.
* **L2-set, uniform** (values v): out − mean v* ∈ [−c, c] + err_v; L2-set needs exact keys
  (err_k = 0: the flagged set is the ideal one) — the flags' 0/1 pattern is checked by the
  ideal program. **L1-self**: out − max_{s≠t} k* ∈ [−c, c] + err_k.
  A head's output at a query class its claim does not cover (tokens of a CLS head) is still
  a convex combination (real ⊆ hull of the values) but has no ideal: err = ±∞ there.
* **one-input block** f̂ on intervals I_j (tolerance τ, f L-Lipschitz on each I_j): if the
  real and ideal inputs lie in ∪I_j, and z, z* lie in the *same* I_j,
  out − f(z*) = (f̂(z) − f(z)) + (f(z) − f(z*)) ∈ [−τ, τ] + L·[−|err_z|, |err_z|].
  One interval: "the same" is the range check (sound). Several (an exact flag with a gap):
  the ideal program checks z* + err_z ⊆ the I_j of z* on its samples. real out ⊆ the
  certified value range of f̂ over the intervals; ideal out ⊆ that range ± τ.
* **sum of one-input parts**: the parts' input checks, err ∈ [−τ, τ] + Σ_i L_i·[−|err_i|, |err_i|].
* **Kuhn block** G on a box (tolerance τ, G L-Lipschitz in ‖·‖_∞, clip 1-Lipschitz):
  inputs inside the box, err ∈ [−τ, τ] + L·[−max_i |err_i|, max_i |err_i|].
* **readout** y = ⟨w, h_CLS⟩ + b: err_y = Σ w_i·err_i at CLS; derived_bound = max |err_y|.

A step whose hypothesis fails makes its output's error ±∞ *at that position class* (with the
reason); the proof fails only if such an error reaches the readout. Every interval is widened
outward by :data:`ROUNDING` for the rounding of these interval sums themselves; like the claimed
bound and the steps' certificates, the derived bound is for the network in real arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from infoflow_jax.core.claims import OnBox, OneInput, Retrieval, SumOfOneInputs
from infoflow_jax.core.precision import FLOAT64_FLOOR

# The composition bounds the network in real arithmetic, as the claimed bound and the steps'
# certificates do (their rounding margins cover the float64 evaluation); ROUNDING only keeps our
# own interval sums outward (32 ulps relative per step, far above the few roundings of a sum).
ROUNDING = 2.0 ** -48
EXACT = 1e-9  # an error this small is rounding: a flag "exact" up to it keys L2-set's flagged set
INF = math.inf
CLASSES = ("cls", "tok")
UNBOUNDED = (-INF, INF)


def _widen(iv):
    lo, hi = iv
    return (lo - ROUNDING * (1 + abs(lo)) if np.isfinite(lo) else lo,
            hi + ROUNDING * (1 + abs(hi)) if np.isfinite(hi) else hi)


def _add(a, b):
    return (a[0] + b[0], a[1] + b[1])


def _scale(c, iv):
    lo, hi = c * iv[0], c * iv[1]
    if c == 0:
        return (0.0, 0.0)
    return (min(lo, hi), max(lo, hi))


def _hull(*ivs):
    return (min(iv[0] for iv in ivs), max(iv[1] for iv in ivs))


def _abs_max(iv) -> float:
    return max(abs(iv[0]), abs(iv[1]))


def _inside(iv, lo, hi, slack: float = 0.0) -> bool:
    return iv[0] >= lo - slack and iv[1] <= hi + slack


@dataclass
class Track:
    """One slot at one position class: real values, ideal values, real − ideal (intervals)."""

    real: tuple = UNBOUNDED
    ideal: tuple = UNBOUNDED
    err: tuple = UNBOUNDED
    why: str | None = None  # why err is unbounded here, when a hypothesis failed


@dataclass
class Composition:
    """The derived global bound and what it rests on.

    ``derived_bound``: sup |Ĥ − H*| (∞ when a hypothesis failed on the way to the readout: ``problems``);
    ``tracks``: slot → class → :class:`Track`; ``sampled``: hypotheses the ideal program must check on
    its samples (site index, kind, data); ``problems``: failed hypotheses that reach the readout.
    """

    derived_bound: float
    tracks: dict
    sampled: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)


def _form(tracks, form, c: str) -> Track:
    real, ideal, err, why = (0.0, 0.0), (0.0, 0.0), (0.0, 0.0), None
    for name, coef in form.coeffs:
        t = tracks[name][c]
        real, ideal, err = _add(real, _scale(coef, t.real)), _add(ideal, _scale(coef, t.ideal)), \
            _add(err, _scale(coef, t.err))
        why = why or t.why
    return Track(real, ideal, err, why)


def _embedding(built) -> dict:
    layout, slots = built.compiled.layout, built.compiled.slots
    tracks = {}
    for s in slots:
        if layout.stage[s] != 0:
            continue
        tok = cls = (0.0, 0.0)
        if s in layout.token_inputs or s in layout.position_inputs or s in layout.position_slots:
            tok = (0.0, 1.0)  # x ∈ [0,1] (every domain lies in the cube); a one-hot position ∈ {0, 1}
        if s in layout.token_constants:
            tok = (layout.token_constants[s],) * 2
        if s in layout.cls_constants:
            cls = (layout.cls_constants[s],) * 2
        tracks[s] = {"cls": Track(cls, cls, (0.0, 0.0)), "tok": Track(tok, tok, (0.0, 0.0))}
    return tracks


def _unbounded(real, why: str) -> Track:
    return Track(real, UNBOUNDED, UNBOUNDED, why)


def _classes(queries: str) -> tuple[str, ...]:
    return {"cls": ("cls",), "all": ("cls", "tok"), "tokens": ("tok",)}[queries]


def _head(tracks, site, claim: Retrieval, step: dict, T: int, sampled: list, i: int) -> dict:
    c = float(step["certified_error"]) if step["ok"] else INF
    out = {}
    for value, into in claim.values:
        per = {}
        for cl in CLASSES:
            v = _form(tracks, value, "tok")  # keys and values come from the tokens
            real = v.real  # a softmax average lies in the hull of the token values
            if cl not in _classes(claim.queries):
                per[cl] = _unbounded(real, f"{site.kind}{site.layer + 1}:{into} is not claimed at "
                                           f"{'CLS' if cl == 'cls' else 'the tokens'}")
                continue
            if not np.isfinite(c):
                per[cl] = _unbounded(real, f"{step['name']} is not certified")
                continue
            if v.why:
                per[cl] = _unbounded(real, v.why)
                continue
            if claim.lemma in ("L1", "L2"):
                if claim.lemma == "L1" and not claim.excluded and \
                        v.real[1] - v.real[0] > claim.key_range + 8 * ROUNDING * (1 + claim.key_range):
                    # interval arithmetic cannot show the keys within D (they are correlated): the
                    # samples check max_s (k*_s + err.hi) − min_s (k*_s + err.lo) ≤ D instead
                    sampled.append((i, "key-width", (claim.key, v.err, v.real)))
                err = (-c + v.err[0], v.err[1])  # out ≤ max k, out ≥ max k − c; max k − max k* ∈ err_k
            else:
                if claim.lemma == "L2-set" and _abs_max(_form(tracks, claim.key, "tok").err) > EXACT:
                    per[cl] = _unbounded(real, f"{step['name']}: the flags keying the set are not exact")
                    continue
                err = _add((-c, c), v.err)
            per[cl] = Track(real, v.ideal, _widen(err))
        out[into] = per
    if claim.lemma == "L2":
        sampled.append((i, "margin", _form(tracks, claim.key, "tok").err))
    if claim.lemma == "L2-set":
        sampled.append((i, "flags", None))
    return out


def _one_input_part(tracks, part: OneInput, form, cl: str, name: str, sampled: list, i: int):
    """(L·|err_z| share, problem) of one one-input part at class ``cl``."""
    z = _form(tracks, form, cl)
    if z.why:
        return None, z.why
    ivs = part.intervals
    lo, hi = min(a for a, _ in ivs), max(b for _, b in ivs)
    if not (_inside(z.real, lo, hi, FLOAT64_FLOOR) or np.isfinite(z.err[0]) and np.isfinite(z.err[1])):
        where = " ∪ ".join(f"[{a:.6g}, {b:.6g}]" for a, b in ivs)
        return None, (f"{name}: its input ranges over [{z.real[0]:.6g}, {z.real[1]:.6g}] at "
                      f"{'CLS' if cl == 'cls' else 'the tokens'}, outside the claimed {where}")
    sound = len(ivs) == 1 and _inside(z.real, lo, hi, FLOAT64_FLOOR) and _inside(z.ideal, lo, hi, FLOAT64_FLOOR)
    if not sound:  # several intervals (an exact flag), or correlated inputs: z* + err_z ⊆ I(z*) on the samples
        sampled.append((i, "same-interval", (form, ivs, z.err, z.real, cl)))
    return part.lipschitz * _abs_max(z.err), None


def _ffn(tracks, site, claim, step: dict, sampled: list, i: int) -> dict:
    tol = float(step["tolerance"]) if step["ok"] else INF
    vr = step.get("value_range")
    real = UNBOUNDED if vr is None else _widen(tuple(vr))
    ideal = UNBOUNDED if vr is None else _widen((vr[0] - tol, vr[1] + tol))
    name = step["name"]
    per = {}
    for cl in CLASSES:
        if not np.isfinite(tol):
            per[cl] = _unbounded(real, f"{name} is not certified")
            continue
        if isinstance(claim, (OneInput, SumOfOneInputs)):
            parts = ((claim, claim.input if claim.input is not None else site.inputs[0]),) \
                if isinstance(claim, OneInput) else tuple((p, p.input) for p in claim.parts)
            shares, problem = [], None
            for part, form in parts:
                share, problem = _one_input_part(tracks, part, form, cl, name, sampled, i)
                if problem:
                    break
                shares.append(share)
            if problem:
                per[cl] = _unbounded(real, problem)
                continue
            spread = sum(shares)
        else:  # OnBox
            forms = claim.inputs if claim.inputs is not None else site.inputs
            zs = [_form(tracks, f, cl) for f in forms]
            bad = next((z.why for z in zs if z.why), None)
            lo, hi = claim.box
            outside = next((f"{name}: input {f} ranges over [{z.real[0]:.6g}, {z.real[1]:.6g}] "
                            f"(ideal [{z.ideal[0]:.6g}, {z.ideal[1]:.6g}]) at {'CLS' if cl == 'cls' else 'the tokens'}, "
                            f"outside the claimed box [{lo:g}, {hi:g}]"
                            for f, z in zip(forms, zs) if not (_inside(z.real, lo, hi, FLOAT64_FLOOR)
                                                               and _inside(z.ideal, lo, hi, FLOAT64_FLOOR))), None)
            if bad:
                per[cl] = _unbounded(real, bad)
                continue
            if outside:  # correlated inputs: each z*_i + err_i inside the box, on the samples
                sampled += [(i, "same-interval", (f, ((lo, hi),), z.err, z.real, cl)) for f, z in zip(forms, zs)]
            spread = claim.lipschitz * max(_abs_max(z.err) for z in zs)  # G(clip ·) is L-Lipschitz in ‖·‖_∞
        per[cl] = Track(real, ideal, _widen((-tol - spread, tol + spread)))
    return {site.outputs[0]: per}


def compose(built, steps: list[dict]) -> Composition:
    """Walk ``built``'s program in order (module docstring); ``steps``: :func:`check_steps`'s list."""
    compiled, T = built.compiled, built.task.T
    tracks = _embedding(built)
    sampled: list = []
    by_site = steps[:len(compiled.sites)]
    for layer in sorted({s.layer for s in compiled.sites}):
        for kind in ("attn", "ffn"):  # a layer's heads read the stream before it; its FFN after the heads
            new = {}
            for i, (site, step) in enumerate(zip(compiled.sites, by_site)):
                if site.layer != layer or site.kind != kind:
                    continue
                claim = site.claim
                if claim is None:
                    outs = site.outputs
                    new.update({o: {cl: _unbounded(UNBOUNDED, f"{step['name']} carries no claim") for cl in CLASSES}
                                for o in outs})
                elif kind == "attn" and isinstance(claim, Retrieval):
                    new.update(_head(tracks, site, claim, step, T, sampled, i))
                    for o in site.outputs:  # a slot the head writes that its claim does not name
                        new.setdefault(o, {cl: _unbounded(UNBOUNDED, f"{step['name']} writes {o} unclaimed")
                                           for cl in CLASSES})
                elif kind == "ffn":
                    new.update(_ffn(tracks, site, claim, step, sampled, i))
            tracks.update(new)
    layout = compiled.layout
    err, real, why = (0.0, 0.0), (0.0, 0.0), None
    for name, coef in layout.readout.coeffs:
        t = tracks.get(name, {}).get("cls", _unbounded(UNBOUNDED, f"slot {name} is never written"))
        err, why = _add(err, _scale(coef, t.err)), why or t.why
    problems = [why] if why else []
    readout_ok = next((s["ok"] for s in steps if s["name"] == "readout"), False)
    if not readout_ok:
        problems.append("the compiled readout is not the program's")
    derived = _abs_max(_widen(err)) if not problems else INF
    return Composition(derived_bound=float(derived), tracks=tracks, sampled=sampled, problems=problems)
