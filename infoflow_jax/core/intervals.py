"""Sound interval bounds (IBP) through a Transformer, in float64 with outward rounding.

Given a box lo_X ≤ X ≤ hi_X of inputs, :func:`output_bounds` returns [lo, hi] that
contains the model's output at every X in the box — the output as the model itself
computes it in float64 (``model.apply``), not only its real-arithmetic value.

What is enclosed, and why rounding is handled by margins
--------------------------------------------------------
Invariant: at every stage the interval contains every value the float64 model can
hold there for an input in the box. A stage h' = f(h) is then bounded by (i) a sound
enclosure of the exact f over the incoming box, widened by (ii) a bound on our own
rounding in computing it and (iii) a bound on the model's rounding of f(h̃) at any
float state h̃ in the box. Both roundings are bounded a priori by Higham's γ_n: a sum
or dot product of n terms, in any order, with or without FMA, errs by at most
γ_n·Σ|terms| ≤ 1.01·n·u·Σ|terms| (u = 2⁻⁵³). Every stage therefore widens by

    err = 4·(n + 4)·u·mag + η,

mag an upper bound of Σ|terms| over the box, n the length of the sums, η = 2⁻¹⁰⁰⁰
for underflow — 4 = 1 (ours) + 1 (the model's) + 2 (the rounding of the centre,
radius, margin and final add/subtract, each ≤ u·mag) — and then steps both ends
outward by a further 4u·|end| + η (:func:`widen`; worth at least one float, like
np.nextafter toward ∓inf, in a few arithmetic ops). A relative+absolute margin rather
than directed rounding, because XLA exposes no rounding modes; the margin is
~1e-15 relative, far below any bound it protects.

exp: XLA's float64 exp is assumed accurate to EXP_ULPS ulps (tests/test_intervals.py
measures it against NumPy's on the running machine and fails if it is not).

Stages
------
* affine z ↦ zW + b on a box in centre–radius form: centre c, radius r ≥ half-width,
  [cW + b − r|W|, cW + b + r|W|] (exact for real arithmetic: each output coordinate is
  monotone in each input coordinate).
* ReLU: [relu(lo), relu(hi)] (monotone; exact in floats).
* attention scores ⟨q, k⟩: interval products (min/max of the four corner products),
  summed.
* softmax over a box [l, u] of scores, per coordinate (monotone in s_i, antitone in
  s_j, j ≠ i):  lower_i = e^{l_i}/(e^{l_i} + Σ_{j≠i} e^{u_j}),
  upper_i = e^{u_i}/(e^{u_i} + Σ_{j≠i} e^{l_j}), all exponents shifted by max_j u_j.
* attention output Σ_s w_s v_s with w in the box [wl, wu], Σ_s w_s = 1, v_s ∈ [vl_s, vu_s]:
  the tightest of (a) the plain product bound Σ_s min_{w,v} w_s v_s, (b) the convex
  combination bound [min_s vl_s, max_s vu_s] and (c) the exact linear program
  min {Σ w_s vl_s : wl ≤ w ≤ wu, Σ w = 1} (fractional knapsack: start from wl, give
  the remaining mass 1 − Σ wl to the smallest vl first), which dominates (a) and (b)
  in exact arithmetic. The model's float weights sum to 1 + θ, |θ| ≤ τ (softmax's
  relative rounding); the LP value is max_s|v_s|-Lipschitz in the total mass, so
  every bound also widens by τ·max_s|v_s|.
* FFN: through :mod:`infoflow_jax.core.pwl` — a one-input group contributes o_g·PL_g(u_g·h),
  and PL_g's exact range on the interval of u_g·h is read at its ends and the
  breakpoints inside (no IBP through the decoder's units); the remaining units and
  deeper FFNs by plain IBP. Dead units (zero output row) add exactly 0.
* readout: affine.

Tightness, measured: on a degenerate box (lo = hi) only the margins remain, ~4e-13 wide
for one random layer and ~1e-11 after two (each layer multiplies earlier margins by
its interval gain); C1 / C2 at T = 2: ~2e-12 / ~1e-11. On C2 (T = 2) a box of width
1e-3 gets a bound ~8e-3 wide (≈ its Lipschitz constant × width, as issue #10 expects);
deep Kuhn FFNs (C5, C6-coupled, C7) go through plain IBP and are far looser.

The decomposition reads concrete weights (NumPy). ``output_bounds`` is jit- and
vmap-compatible in the box; when the *state* itself is traced (under jit over
weights), the FFNs fall back to plain IBP, still sound, looser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from infoflow_jax.core.errors import InputError, check_int_range
from infoflow_jax.core.model import positional_features
from infoflow_jax.core.pwl import PiecewiseLinear, decompose_layer, range_stacked, stack

U = 2.0 ** -53  # unit roundoff of float64
ETA = 2.0 ** -1000  # absolute margin: covers underflow in any sum we form
EXP_ULPS = 8  # assumed accuracy of jnp.exp in float64 (checked by a test)


# ----------------------------------------------------------------------------- the type
@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Interval:
    """A box lo ≤ x ≤ hi, elementwise."""

    lo: jax.Array
    hi: jax.Array

    @staticmethod
    def point(x) -> "Interval":
        x = jnp.asarray(x)
        return Interval(x, x)

    def __getitem__(self, idx) -> "Interval":
        return Interval(self.lo[idx], self.hi[idx])

    @property
    def mag(self):
        """max |x| over the box."""
        return jnp.maximum(jnp.abs(self.lo), jnp.abs(self.hi))

    def centre_radius(self):
        """c, r with [c − r, c + r] ⊇ [lo, hi] (r inflated by the rounding of c)."""
        c = 0.5 * self.lo + 0.5 * self.hi
        r = jnp.maximum(self.hi - c, c - self.lo) * (1 + 4 * U) + ETA
        return c, r

    def contains(self, x, slack: float = 0.0):
        return (self.lo - slack <= x) & (x <= self.hi + slack)


def widen(lo, hi, err) -> Interval:
    """[lo − err', hi + err'] with err' = err(1 + 4u) + 4u|end| + η, so that the rounded
    subtraction (error ≤ u·|lo − err'|) still lands at or below lo − err: an outward
    step of ≥ 2u|end| on top of err. (Arithmetic rather than np.nextafter: the same
    guarantee, a fraction of the ops, and a program XLA compiles several times faster.)"""
    grow = 1 + 4 * U
    return Interval(lo - (err * grow + 4 * U * jnp.abs(lo) + ETA), hi + (err * grow + 4 * U * jnp.abs(hi) + ETA))


def margin(n_terms, mag):
    """4(n + 4)·u·mag + η: see the module docstring."""
    return 4.0 * (n_terms + 4.0) * U * mag + ETA


# ----------------------------------------------------------------------------- elementary stages
def affine(x: Interval, W, b=None, n_terms=None) -> Interval:
    """{zW + b : z ∈ x} on the last axis, centre–radius; ``n_terms`` overrides the sum
    length used for the margin (a model that sums more terms than we do)."""
    c, r = x.centre_radius()
    absW = jnp.abs(W)
    centre = c @ W
    radius = r @ absW
    mag = jnp.abs(c) @ absW + radius
    if b is not None:
        centre = centre + b
        mag = mag + jnp.abs(b)
    n = W.shape[0] if n_terms is None else n_terms
    return widen(centre - radius, centre + radius, margin(n, mag))


def grouped_affine(x: Interval, W, b) -> Interval:
    """A block-diagonal layer (G, g_in, g_out), as :func:`infoflow_jax.core.relu_net.apply_layer`."""
    G, g_in, g_out = W.shape
    xs = Interval(x.lo.reshape(x.lo.shape[:-1] + (G, g_in)), x.hi.reshape(x.hi.shape[:-1] + (G, g_in)))
    c, r = xs.centre_radius()
    absW = jnp.abs(W)
    centre = jnp.einsum("...gi,gio->...go", c, W) + b
    radius = jnp.einsum("...gi,gio->...go", r, absW)
    mag = jnp.einsum("...gi,gio->...go", jnp.abs(c), absW) + radius + jnp.abs(b)
    out = widen(centre - radius, centre + radius, margin(g_in, mag))
    shape = x.lo.shape[:-1] + (G * g_out,)
    return Interval(out.lo.reshape(shape), out.hi.reshape(shape))


def relu(x: Interval) -> Interval:
    return Interval(jax.nn.relu(x.lo), jax.nn.relu(x.hi))


def add(x: Interval, y: Interval) -> Interval:
    """x + y; each end errs by ≤ u·(|x| + |y|), ours and the model's."""
    return widen(x.lo + y.lo, x.hi + y.hi, margin(0, x.mag + y.mag))


def dot(x: Interval, y: Interval) -> Interval:
    """Σ over the last axis of x·y, by interval products (four corners)."""
    corners = jnp.stack([x.lo * y.lo, x.lo * y.hi, x.hi * y.lo, x.hi * y.hi])
    lo, hi = jnp.min(corners, 0), jnp.max(corners, 0)
    mag = jnp.sum(jnp.max(jnp.abs(corners), 0), -1)
    return widen(jnp.sum(lo, -1), jnp.sum(hi, -1), margin(x.lo.shape[-1], mag))


# ----------------------------------------------------------------------------- softmax
def _softmax_relative_rounding(l, u):
    """τ_i = 2u(Δ_i + 2·EXP_ULPS + T + 6), Δ_i = max_j u_j − l_i: the relative error of a
    float64 softmax (argument shift, exp, sum of T, division) at any scores in the box."""
    T = l.shape[-1]
    delta = jnp.max(u, -1, keepdims=True) - l
    return 2 * U * (delta + 2 * EXP_ULPS + T + 6)


def softmax_relative_rounding(l, u):
    """The public name of :func:`_softmax_relative_rounding` (τ_i, last axis = tokens)."""
    return _softmax_relative_rounding(l, u)


def softmax_bounds(l, u):
    """Per-coordinate bounds on softmax(s) over the box l ≤ s ≤ u (last axis):

        lower_i = e^{l_i}/(e^{l_i} + Σ_{j≠i} e^{u_j}),  upper_i = e^{u_i}/(e^{u_i} + Σ_{j≠i} e^{l_j}).

    softmax_i = 1/(1 + Σ_{j≠i} e^{s_j − s_i}) increases in s_i and decreases in every
    s_j, so these are its min and max over the box. Computed after subtracting
    m = max_j u_j (exponents ≤ 0: no overflow); Σ_{j≠i} as (Σ_j) − (term i) with an
    absolute margin 4(T + 4)u·Σ_j for the cancellation; widened by the relative
    rounding of our own exp and of the model's softmax."""
    T = l.shape[-1]
    if T == 1:
        return jnp.ones_like(l), jnp.ones_like(u)
    tau = _softmax_relative_rounding(l, u)
    m = jnp.max(u, -1, keepdims=True)
    el = jnp.maximum(jnp.exp(l - m) * (1 - tau) - ETA, 0.0)
    eu = jnp.exp(u - m) * (1 + tau) + ETA
    Sl, Su = jnp.sum(el, -1, keepdims=True), jnp.sum(eu, -1, keepdims=True)
    sigma = 4 * (T + 4) * U
    others_lo = jnp.maximum(Sl - el - sigma * Sl, 0.0)
    others_hi = Su - eu + sigma * Su
    den_lo, den_hi = el + others_hi, eu + others_lo
    lower = jnp.where(den_lo > 0, el / jnp.where(den_lo > 0, den_lo, 1.0), 0.0) * (1 - 4 * U)
    upper = jnp.where(den_hi > 0, eu / jnp.where(den_hi > 0, den_hi, 1.0), 1.0) * (1 + 4 * U)
    lower, upper = lower * (1 - tau), upper * (1 + tau)  # the model's own float softmax
    return jnp.clip(lower, 0.0, 1.0), jnp.clip(upper, 0.0, 1.0)


def _knapsack(wl, wu, v, ascending: bool):
    """Σ_s w_s v_s at the optimum of min (ascending) / max Σ w v over wl ≤ w ≤ wu, Σ w = 1:
    fill the remaining mass 1 − Σ wl into the cheapest (dearest) v first."""
    order = jnp.argsort(v if ascending else -v, axis=-1)
    take = lambda a: jnp.take_along_axis(a, order, -1)
    wl_s, wu_s, v_s = take(wl), take(wu), take(v)
    width = jnp.maximum(wu_s - wl_s, 0.0)
    rest = 1.0 - jnp.sum(wl_s, -1, keepdims=True)
    before = jnp.cumsum(width, -1) - width
    extra = jnp.clip(rest - before, 0.0, width)
    return jnp.sum((wl_s + extra) * v_s, -1)


def weighted_average_bounds(wl, wu, vl, vu, sum_slack=0.0) -> Interval:
    """Bounds on Σ_s w_s v_s (last axis) for w ∈ [wl, wu] with Σ w = 1 (up to
    ``sum_slack``) and v ∈ [vl, vu]: the tightest of the product, convex-combination
    and linear-programming bounds (module docstring)."""
    T = wl.shape[-1]
    prod_lo = jnp.sum(jnp.minimum(wl * vl, wu * vl), -1)
    prod_hi = jnp.sum(jnp.maximum(wl * vu, wu * vu), -1)
    conv_lo, conv_hi = jnp.min(vl, -1), jnp.max(vu, -1)
    lp_lo, lp_hi = _knapsack(wl, wu, vl, True), _knapsack(wl, wu, vu, False)
    vmag = jnp.maximum(jnp.abs(vl), jnp.abs(vu))
    # allocation + final sum (ours) and the model's weighted sum: ≤ 4(T+4)u(1 + Σwu)Σ|v|
    err = margin(T, (1 + jnp.sum(wu, -1)) * jnp.sum(vmag, -1)) + sum_slack * jnp.max(vmag, -1)
    lo = jnp.maximum(jnp.maximum(prod_lo, conv_lo), lp_lo)
    hi = jnp.minimum(jnp.minimum(prod_hi, conv_hi), lp_hi)
    return widen(lo, hi, err)


# ----------------------------------------------------------------------------- model stages
def _heads_affine(x: Interval, W) -> Interval:
    """x (P, E) through every head's W (h, E, k) → (h, P, k)."""
    return jax.vmap(lambda Wh: affine(x, Wh))(W)


def attention_bounds(attn: dict, H: Interval, queries: Interval) -> Interval:
    """Bounds on the attention output (P, E) for query rows ``queries`` and the token rows H[1:]."""
    tokens = H[1:]
    q = _heads_affine(queries, attn["Wq"])  # (h, P, dk)
    k = _heads_affine(tokens, attn["Wk"])  # (h, T, dk)
    v = _heads_affine(tokens, attn["Wv"])  # (h, T, dv)
    scores = dot(q[:, :, None, :], k[:, None, :, :])  # (h, P, T)
    wl, wu = softmax_bounds(scores.lo, scores.hi)
    slack = jnp.max(_softmax_relative_rounding(scores.lo, scores.hi), -1)  # (h, P)
    vt = Interval(jnp.swapaxes(v.lo, 1, 2)[:, None], jnp.swapaxes(v.hi, 1, 2)[:, None])  # (h, 1, dv, T)
    heads = weighted_average_bounds(wl[:, :, None, :], wu[:, :, None, :], vt.lo, vt.hi,
                                    slack[:, :, None])  # (h, P, dv)
    h, P, dv = heads.lo.shape
    flat = Interval(jnp.transpose(heads.lo, (1, 0, 2)).reshape(P, h * dv),
                    jnp.transpose(heads.hi, (1, 0, 2)).reshape(P, h * dv))
    return affine(flat, attn["Wo"].reshape(h * dv, -1))


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class PWLStage:
    """One-hidden-layer FFN through its decomposition (arrays as in :class:`infoflow_jax.core.pwl.FastFFN`)."""

    U: Any
    O: Any
    pl: PiecewiseLinear | None
    W1r: Any
    b1r: Any
    W2r: Any
    b2: Any
    n_terms: float = field(metadata={"static": True})  # live hidden units + E: the model's sums here


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class DenseStage:
    """An FFN by plain IBP, layer by layer (deeper or grouped FFNs, or traced weights)."""

    Ws: tuple
    bs: tuple
    grouped: tuple = field(metadata={"static": True})


def _pwl_stage(dec) -> PWLStage:
    groups, rest = dec.pl_groups, dec.dense_units
    E, H = dec.W1.shape
    return PWLStage(
        U=jnp.asarray(np.stack([g.u for g in groups], 1) if groups else np.zeros((E, 0))),
        O=jnp.asarray(np.stack([g.o for g in groups], 0) if groups else np.zeros((0, E))),
        pl=stack([g.function() for g in groups]) if groups else None,
        W1r=jnp.asarray(dec.W1[:, rest]), b1r=jnp.asarray(dec.b1[rest]), W2r=jnp.asarray(dec.W2[rest]),
        # dead units add exact zeros to the model's sums, which round nothing: count the live ones
        b2=jnp.asarray(dec.b2), n_terms=float(H - dec.dead_units.size + E),
    )


def ffn_bounds(stage, H: Interval) -> Interval:
    """Bounds on the FFN output (not yet added to the residual)."""
    if isinstance(stage, PWLStage):
        n = stage.n_terms
        out = affine(relu(affine(H, stage.W1r, stage.b1r, n)), stage.W2r, stage.b2, n)
        if stage.pl is not None:
            z = affine(H, stage.U)
            rl, rh = range_stacked(stage.pl, z.lo, z.hi)
            umag = H.mag @ jnp.abs(stage.U)  # ≥ |u·h| over the box
            # the model's units see a_j(u·h) + b_j up to γ_{E+1}; its sum over H units errs by γ_H
            err = margin(n, stage.pl.scale_a * umag + stage.pl.scale_b)
            out = add(out, affine(widen(rl, rh, err), stage.O))
        return out
    z = H
    for i, (W, b, grouped) in enumerate(zip(stage.Ws, stage.bs, stage.grouped)):
        z = grouped_affine(z, W, b) if grouped else affine(z, W, b)
        if i < len(stage.Ws) - 1:
            z = relu(z)
    return z


def _concrete(tree) -> bool:
    return not any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(tree))


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class BoundPlan:
    """Everything :func:`propagate` needs, read once from a model's weights (a pytree:
    plans of one shape share one compilation)."""

    cfg: Any = field(metadata={"static": True})
    embed: dict = None
    attn: tuple = ()
    ffn: tuple = ()
    w: Any = None
    b: Any = None


def bound_plan(graphdef, state) -> BoundPlan:
    """Read the weights; decompose every one-hidden-layer FFN when the weights are concrete."""
    model = nnx.merge(graphdef, state)
    cfg = model.cfg
    e = model.embed
    embed = {"A": e.A[...], "a": e.a[...], "P": e.P[...], "c": e.c[...],
             "As": e.As[...] if cfg.position_input else None}
    attn, ffn = [], []
    decompose = _concrete(state)
    for i, blk in enumerate(model.blocks):
        a = blk.attn
        attn.append({"Wq": a.Wq[...], "Wk": a.Wk[...], "Wv": a.Wv[...], "Wo": a.Wo[...]})
        dec = decompose_layer(model, i) if decompose else None
        if dec is not None:
            ffn.append(_pwl_stage(dec))
        else:
            ffn.append(DenseStage(Ws=tuple(W[...] for W in blk.ffn.W), bs=tuple(b[...] for b in blk.ffn.b),
                                  grouped=tuple(kind == "grouped" for kind in blk.ffn.kinds)))
    return BoundPlan(cfg=cfg, embed=embed, attn=tuple(attn), ffn=tuple(ffn), w=model.w[...], b=model.b[...])


def embedding_bounds(plan: BoundPlan, X: Interval) -> Interval:
    """Bounds on h^{(0)} (T+1, E): CLS row c exactly, tokens x_s A + a + φ_pos(s) P (+ x_s A_s)."""
    cfg, e = plan.cfg, plan.embed
    T = X.lo.shape[0]
    tokens = affine(X, e["A"], e["a"])
    if cfg.n_pos:
        phi = positional_features(cfg.positional, T, cfg.max_T, cfg.n_freq, X.lo.dtype)
        tokens = add(tokens, affine(Interval.point(phi), e["P"]))
    if e["As"] is not None:
        tokens = add(tokens, jax.vmap(lambda x, A: affine(x, A))(X, e["As"][:T]))
    cls = Interval.point(e["c"][None, :].astype(tokens.lo.dtype))
    return Interval(jnp.concatenate([cls.lo, tokens.lo]), jnp.concatenate([cls.hi, tokens.hi]))


def propagate(plan: BoundPlan, lo_X, hi_X, ffn=None) -> Interval:
    """Bounds on the model output for lo_X ≤ X ≤ hi_X (one box, X of shape (T, d)).
    ``ffn(stage, H)``: another sound FFN bound to use instead of :func:`ffn_bounds`
    (e.g. :func:`infoflow_jax.core.linear_bounds.linear_ffn_bounds` for deep FFNs)."""
    ffn = ffn_bounds if ffn is None else ffn
    H = embedding_bounds(plan, Interval(jnp.asarray(lo_X), jnp.asarray(hi_X)))
    L = len(plan.attn)
    for i in range(L):
        queries = H[:1] if i == L - 1 else H  # the last layer needs the CLS row only
        H = add(queries, attention_bounds(plan.attn[i], H, queries))
        H = add(H, ffn(plan.ffn[i], H))
    out = affine(H[0], plan.w[:, None], plan.b[None])
    return Interval(out.lo[0], out.hi[0])


def _ends(plan, lo_X, hi_X):
    r = propagate(plan, lo_X, hi_X)
    return r.lo, r.hi


_bounds_one = jax.jit(_ends)
_bounds_batch = jax.jit(jax.vmap(_ends, in_axes=(None, 0, 0)))


def output_bounds(graphdef, state, lo_X, hi_X):
    """(lo, hi) with lo ≤ model(X) ≤ hi for every X in the box lo_X ≤ X ≤ hi_X.

    lo_X, hi_X: (T, d) for one box or (B, T, d) for a batch. Concrete boxes run a
    compiled program (cached per model shape); traced ones (inside a user's jit or
    vmap) are traced through. The weights are read once per call (:func:`bound_plan`)."""
    plan = bound_plan(graphdef, state)
    if not _concrete((lo_X, hi_X)):
        if jnp.ndim(lo_X) == 3:
            return jax.vmap(_ends, in_axes=(None, 0, 0))(plan, lo_X, hi_X)
        return _ends(plan, lo_X, hi_X)
    lo_np, hi_np = np.asarray(lo_X, np.float64), np.asarray(hi_X, np.float64)
    if lo_np.shape != hi_np.shape or lo_np.ndim not in (2, 3):
        raise InputError("box", f"shapes {lo_np.shape}, {hi_np.shape}", "two equal shapes (T, d) or (B, T, d)")
    if not (np.all(np.isfinite(lo_np)) and np.all(np.isfinite(hi_np)) and np.all(lo_np <= hi_np)):
        raise InputError("box", "lo/hi", "finite with lo <= hi everywhere")
    run = _bounds_batch if lo_np.ndim == 3 else _bounds_one
    return run(plan, jnp.asarray(lo_np), jnp.asarray(hi_np))


# ----------------------------------------------------------------------------- targets
def kth_largest_bounds(lo, hi, k: int):
    """Bounds on the k-th largest of x over the box lo ≤ x ≤ hi (last axis).

    The k-th largest is nondecreasing in every coordinate, so over a box it ranges
    exactly over [k-th largest of lo, k-th largest of hi] (attained at the corners).
    k = 1 is the maximum. Exact: sorting does no arithmetic."""
    n = jnp.shape(lo)[-1]
    check_int_range("k", k, 1, n)
    return jnp.sort(lo, axis=-1)[..., n - k], jnp.sort(hi, axis=-1)[..., n - k]
