"""The ideal program: every block replaced by its claim's ideal function, evaluated in NumPy float64.

    ideal_forward(compiled, X) → (y*, values)          check_ideal(built, composition, …) → dict

A proof composes its steps' ideal functions into the target: "m ← max_s x_s, p_t ← ψ(m − x_t),
r ← max_t p_t, y ← F(r)" *is* H(X) = F(max_t ψ(max_s x_s − x_t)). That is the part of a proof the
step checks cannot see — each step can be certified while the skeleton computes another
function. Here the skeleton runs with exact steps:

* embedding: the program's (token inputs, constants, one-hot positions, position inputs);
* a head with claim L1 / L2: max_s key_s (tokens s = 1..T) at each query position it claims;
  L1-self: max_{s≠t} key_s at token t; L2-set: the mean of each value over the flagged tokens
  (key_s = K, the claim's key weight; flags are 0/1); uniform: the mean over tokens;
* an FFN block: its claim's f(z), Σ_i f_i(z_i), or G(clip(z, 0, 1));
* the readout: the program's ⟨w, h_CLS⟩ + b.

A position a claim does not cover (the tokens of a CLS-query head) holds NaN, so a skeleton
that reads it gives NaN, which no target equals. Cost: O(B·T·E) per layer, no T×T score
matrix, nothing compiled except the targets' own jnp functions (one call per block): at
T = 10⁶ a few inputs take seconds.

:func:`check_ideal` falsifies |y* − H| on the domain's samplers and structural inputs, and checks
on the same samples the hypotheses the composition could not discharge soundly
(:mod:`~infoflow_jax.verification.composition`): L2's margin after the keys' errors, L2-set's
0/1 flags with k of them set, and z* + err_z inside the interval of z* for a one-input claim
with several intervals (an exact flag).
"""

from __future__ import annotations

import numpy as np

from infoflow_jax.core.claims import OneInput, Retrieval, SumOfOneInputs
from infoflow_jax.core.precision import FLOAT64_FLOOR
from infoflow_jax.core.samplers import NumpyRandom, sample, samplers_for

IDEAL_TOLERANCE = 1e-9  # |y* − H| allowed, relative to 1 + |H| (rounding; a wrong skeleton is off by O(1))
CHUNK_FLOATS = 2 ** 24  # slot values (B·(T+1)·E) held at once: 128 MB


def _array(v) -> np.ndarray:
    return np.asarray(v, dtype=np.float64)


def _form(H: dict, form) -> np.ndarray:
    out = None
    for name, c in form.coeffs:
        out = c * H[name] if out is None else out + c * H[name]
    return out if out is not None else 0.0


def _embed(compiled, X: np.ndarray) -> dict:
    """slot → (B, T+1) values, position 0 = CLS, as the program's embedding writes them."""
    layout = compiled.layout
    B, T, _ = X.shape
    H = {}
    for s in compiled.slots:
        if layout.stage[s] != 0:
            continue
        v = np.zeros((B, T + 1))
        if s in layout.token_inputs:
            v[:, 1:] = X[:, :, layout.token_inputs[s]]
        if s in layout.position_inputs:
            pos, coord = layout.position_inputs[s]
            if pos < T:
                v[:, 1 + pos] = X[:, pos, coord]
        if s in layout.position_slots:
            pos = layout.position_slots.index(s)
            if pos < T:
                v[:, 1 + pos] = 1.0
        if s in layout.token_constants:
            v[:, 1:] = layout.token_constants[s]
        if s in layout.cls_constants:
            v[:, 0] = layout.cls_constants[s]
        H[s] = v
    return H


def _head(H: dict, claim: Retrieval) -> tuple[dict, np.ndarray | None]:
    """Output slots of one ideal head, and its keys at the tokens (for the hypotheses)."""
    B, T1 = next(iter(H.values())).shape
    key = None if claim.key is None else np.broadcast_to(_form(H, claim.key), (B, T1))[:, 1:]
    rows = {"cls": slice(0, 1), "all": slice(0, T1), "tokens": slice(1, T1)}[claim.queries]
    out = {}
    for vform, into in claim.values:
        o = np.full((B, T1), np.nan)
        if claim.lemma in ("L1", "L2"):
            o[:, rows] = key.max(axis=1)[:, None]
        elif claim.lemma == "L1-self":  # max over the other tokens: the top one, or the runner-up at the top token
            top, second = _top_two(key)  # O(T), not a sort
            o[:, 1:] = np.where(key == top[:, None], second[:, None], top[:, None])
        else:
            v = np.broadcast_to(_form(H, vform), (B, T1))[:, 1:]
            if claim.lemma == "uniform":
                o[:, rows] = v.mean(axis=1)[:, None]
            else:  # L2-set: the flagged tokens (key = K) — the ideal keys are exactly 0 or K
                K = float(sum(c for _, c in claim.key.coeffs))
                flagged = key >= K / 2
                o[:, rows] = ((v * flagged).sum(1) / np.maximum(flagged.sum(1), 1))[:, None]
        out[into] = o
    return out, key


def _target(f, z: np.ndarray) -> np.ndarray:
    return _array(f(z))


def _ffn(H: dict, site, claim) -> dict:
    if isinstance(claim, OneInput):
        z = _form(H, claim.input if claim.input is not None else site.inputs[0])
        return {site.outputs[0]: _target(claim.target, z)}
    if isinstance(claim, SumOfOneInputs):
        return {site.outputs[0]: sum(_target(p.target, _form(H, p.input)) for p in claim.parts)}
    forms = claim.inputs if claim.inputs is not None else site.inputs
    Z = np.clip(np.stack([np.broadcast_to(_form(H, f), next(iter(H.values())).shape) for f in forms], -1), 0.0, 1.0)
    return {site.outputs[0]: _target(claim.target, Z)}


def ideal_forward(compiled, X, observe=None, slots: bool = False, composition=None):
    """y*(X) for a batch X (B, T, d) (module docstring); with ``slots``, (y*, slot → (B, T+1) ideal
    values, position 0 = CLS). ``observe(site_index, H, key, R)``, if given, is called after each
    site with the slot values before it (and a head's ideal keys) — the hypothesis checks read them
    there. With a ``composition``, R holds per-sample enclosures of the *real* values, slot →
    (lo, hi) arrays (:func:`_enclose`); else R is None. Raises ValueError for a block without a claim."""
    X = _array(X)
    H = _embed(compiled, X)
    R = None if composition is None else {s: (v, v) for s, v in H.items()}
    for layer in sorted({s.layer for s in compiled.sites}):
        for kind in ("attn", "ffn"):
            new, new_r = {}, {}
            for i, site in enumerate(compiled.sites):
                if site.layer != layer or site.kind != kind:
                    continue
                if site.claim is None:
                    raise ValueError(f"{site.kind}{site.layer + 1} ({site.note}) carries no claim: no ideal function")
                key = None
                if kind == "attn":
                    out, key = _head(H, site.claim)
                else:
                    out = _ffn(H, site, site.claim)
                if observe is not None:
                    observe(i, H, key, R)
                if R is not None:
                    new_r.update(_enclose(site, out, R, composition))
                new.update(out)
            H.update(new)
            if R is not None:
                R.update(new_r)
    layout = compiled.layout
    y = _form(H, layout.readout)[:, 0] + layout.readout_bias
    return (y, H) if slots else y


def form_bounds(R: dict, form):
    """Per-sample enclosure (lo, hi) of a linear form of slots, by interval arithmetic on R."""
    lo = hi = 0.0
    for name, c in form.coeffs:
        a, b = R[name]
        lo, hi = (lo + c * a, hi + c * b) if c >= 0 else (lo + c * b, hi + c * a)
    return lo, hi


def _enclose(site, out: dict, R: dict, composition) -> dict:
    """Per-sample enclosures of the real values a site writes: its ideal value plus the composed
    error interval, intersected with the composed real range — and, for a head, with the hull of
    the real values of its value form over the tokens (a softmax average lies in it), also where
    the head's claim does not cover the position."""
    res = {}
    for into, ideal in out.items():
        shape = ideal.shape
        lo, hi = np.full(shape, -np.inf), np.full(shape, np.inf)
        if site.kind == "attn":
            vform = next((v for v, o in site.claim.values if o == into), None)
            if vform is not None:
                vlo, vhi = form_bounds(R, vform)
                vlo, vhi = np.broadcast_to(vlo, shape)[:, 1:], np.broadcast_to(vhi, shape)[:, 1:]
                lo, hi = np.broadcast_to(vlo.min(1, keepdims=True), shape).copy(), \
                    np.broadcast_to(vhi.max(1, keepdims=True), shape).copy()
        for col, cl in ((slice(0, 1), "cls"), (slice(1, None), "tok")):
            t = composition.tracks[into][cl]
            lo[:, col], hi[:, col] = np.maximum(lo[:, col], t.real[0]), np.minimum(hi[:, col], t.real[1])
            if np.all(np.isfinite(t.err)):
                with np.errstate(invalid="ignore"):
                    lo[:, col] = np.maximum(lo[:, col], ideal[:, col] + t.err[0])
                    hi[:, col] = np.minimum(hi[:, col], ideal[:, col] + t.err[1])
        res[into] = (lo, hi)
    return res


# ----------------------------------------------------------------------------- the check
def ideal_inputs(task, seed: int, n: int, structural: dict | None = None):
    """(name, (B, T, d)) pairs, drawn one at a time (one sampler's batch held at once: at T = 10⁶ a
    batch is what memory allows): n draws of every sampler of the task's domain (NumPy, nothing
    compiled), then ``structural`` (e.g. the structural probes), retracted onto the domain."""
    T, d, domain = task.T, task.d, task.domain
    src = NumpyRandom((seed, 104729))
    names = samplers_for(domain)
    for nm, s in zip(names, src.split(len(names))):
        yield f"sampler:{nm}", _array(sample(nm, s, n, T, d, domain))
    for name, X in (structural or {}).items():
        yield name, _array(domain.retract(_array(X)))


def _hypotheses(compiled, composition):
    """site index → list of (kind, data) the samples must satisfy."""
    out: dict = {}
    for i, kind, data in composition.sampled:
        out.setdefault(i, []).append((kind, data))
    return out


def _top_two(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x_(1), x_(2)) per row of key (B, T), the runner-up equal to the top when the maximum is attained
    twice and −∞ when T = 1: passes of max, not a partition (6× faster at T = 10⁶)."""
    top = key.max(axis=1)
    at_top = key == top[:, None]
    second = np.where(at_top, -np.inf, key).max(axis=1)
    return top, np.where(at_top.sum(axis=1) >= 2, top, second)


def _check_site(site, H, key, R, hyps, T: int) -> str | None:
    """The first sampled hypothesis of ``site`` that fails on this batch, or None."""
    for kind, data in hyps:
        claim = site.claim
        if kind == "margin":  # L2: the top key γ above the rest, after the keys' errors
            gap = np.subtract(*_top_two(key)) if T > 1 else np.full(key.shape[0], np.inf)
            width = data[1] - data[0]
            bad = gap - width < claim.gamma - FLOAT64_FLOOR
            if np.any(bad):
                return (f"{site.kind}{site.layer + 1}: the top key beats the next by {gap[bad].min():.6g} − "
                        f"{width:.3g} (keys' error) < γ = {claim.gamma:g}")
        elif kind == "flags":  # L2-set: flags 0/1, k of them
            K = float(sum(c for _, c in claim.key.coeffs))
            f = key / K
            if np.any((f != 0) & (f != 1)) or np.any(f.sum(1) != claim.k):
                return (f"{site.kind}{site.layer + 1}: the ideal flags are not 0/1 with k = {claim.k} set "
                        f"(counts {sorted(set(f.sum(1).round(6).tolist()))[:4]})")
        elif kind == "key-width":  # L1: the real keys within D of each other
            form, err, real = data  # a real key lies in k* + err and in its per-sample enclosure
            shape = next(iter(H.values())).shape
            k = np.broadcast_to(_form(H, form), shape)[:, 1:]
            klo, khi = (np.broadcast_to(b, shape)[:, 1:] for b in form_bounds(R, form))
            width = np.minimum(khi, k + err[1]).max(1) - np.maximum(klo, k + err[0]).min(1)
            if np.any(width > claim.key_range + FLOAT64_FLOOR):
                return (f"{site.kind}{site.layer + 1}: its keys may spread over {width.max():.6g} (ideal keys ± their "
                        f"error) > the claimed D = {claim.key_range:g}")
        elif kind == "same-interval":  # z* + err_z stays in the interval of z*
            form, ivs, err, real, cl = data  # the real input lies in z* + err and in its per-sample enclosure
            shape = next(iter(H.values())).shape
            cols = slice(0, 1) if cl == "cls" else slice(1, None)
            z = np.broadcast_to(_form(H, form), shape)[:, cols]
            blo, bhi = (np.broadcast_to(b, shape)[:, cols] for b in form_bounds(R, form))
            zlo, zhi = np.maximum(np.maximum(z + err[0], real[0]), blo), np.minimum(np.minimum(z + err[1], real[1]), bhi)
            ok = np.zeros(z.shape, bool)
            for lo, hi in ivs:  # z* and every real z it may stand for in ONE interval
                ok |= (z >= lo - FLOAT64_FLOOR) & (z <= hi + FLOAT64_FLOOR) & \
                      (zlo >= lo - FLOAT64_FLOOR) & (zhi <= hi + FLOAT64_FLOOR)
            if not np.all(ok):
                zb = float(z[~ok].flat[0])
                return (f"{site.kind}{site.layer + 1}: its ideal input {zb:.6g} ± its error [{err[0]:.3g}, "
                        f"{err[1]:.3g}] is not inside one claimed interval")
    return None


def check_ideal(built, composition, *, seed: int = 0, n: int = 256, structural: dict | None = None,
                chunk_floats: int = CHUNK_FLOATS) -> dict:
    """Falsify |y* − H| on the domain's samples (and ``structural`` inputs) and check the sampled
    hypotheses. Returns {ok, max_mismatch, worst (name, index), inputs (count), problem}."""
    compiled, task = built.compiled, built.task
    T = task.T
    hyps = _hypotheses(compiled, composition)
    per_input = (T + 1) * (len(compiled.slots) + 4)
    step = max(1, int(chunk_floats // per_input))
    worst, worst_at, count, problem = 0.0, None, 0, None
    for name, X in ideal_inputs(task, seed, n, structural):
        for s in range(0, X.shape[0], step):
            Xc = X[s:s + step]
            found = []

            def observe(i, H, key, R):
                if i in hyps and not found:
                    msg = _check_site(compiled.sites[i], H, key, R, hyps[i], T)
                    if msg:
                        found.append(msg)

            try:
                y = ideal_forward(compiled, Xc, observe, composition=composition)
            except ValueError as exc:
                return {"ok": False, "max_mismatch": None, "worst": None, "inputs": count, "problem": str(exc)}
            h = _array(task.target(Xc))
            gap = np.abs(y - h)
            gap = np.where(np.isnan(gap), np.inf, gap)
            rel = gap / (1 + np.abs(h))
            j = int(np.argmax(rel))
            count += Xc.shape[0]
            if gap[j] > worst or worst_at is None:
                worst, worst_at = float(gap[j]), (name, s + j)
            if found and problem is None:
                problem = f"{found[0]} (at {name}[{s}…])"
            if rel[j] > IDEAL_TOLERANCE and problem is None:
                problem = (f"the ideal program is not the target: |y* − H| = {gap[j]:.3e} at {name}[{s + j}] "
                           f"(y* = {y[j]:.6g}, H = {h[j]:.6g})")
    return {"ok": problem is None, "max_mismatch": worst, "worst": worst_at, "inputs": count, "problem": problem}
