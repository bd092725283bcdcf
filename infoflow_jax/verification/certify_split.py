"""A box bound that keeps the correlation of Ĥ and H: retrieve-then-decode, split at the retrieved slots.

Interval bounds on Ĥ and on H separately forget that both read the same X: a box's bound is
≈ (error at its centre) + (L_Ĥ + L_H)·width, so on C7 (a Kuhn decoder of G after D soft-max
heads) boxes had to be ~1e-2 wide in all T·d coordinates. Here the error is split at the
retrieved values z (the decoder's inputs) and u (the task's):

    Ĥ(X) = net(z(X)),   H(X) = G(u(X)),   u_i(X) = max_s ⟨w_i, x_s⟩ ∈ [0,1],

    |Ĥ − H| ≤ |net(z) − net(clip z)| + |net(clip z) − G(clip z)| + |G(clip z) − G(u)|
            ≤ Lip_net·dist_∞(z, [0,1]^D) + max over Kuhn cells met by clip z of err_cell + L_G·‖z − u‖_∞

(clip onto [0,1]^D is 1-Lipschitz in ‖·‖_∞ and fixes u). On a box B of inputs:

* **decoder term, one input** (D = 1; an L3 decoder, claim :class:`~infoflow_jax.core.claims.OneInput`,
  e.g. C1: T1's H = F(max_s x_{s,0}) is G(max-features) with w = e_0, G(u) = F(u_0)) — the block
  is read from the weights as one dense hidden layer of the form z,
  net(z) = b2 + Σ_j W2_j relu(a_j z + b1_j) (a PiecewiseLinear, knots wherever the weights put
  them); per cell of a uniform grid of ``ONE_INPUT_CELLS`` cells of [0, 1], err_cell ≥
  sup_cell |net − F| exactly per linear piece up to the cones of its sub-parts, and net's
  range on the cell exactly (:mod:`~infoflow_jax.verification.certify_cells`, with its
  rounding). Lip_net = max |slope| of net (its exact Lipschitz constant). The retrieval term
  below is the same with D = 1.
* **decoder term, Kuhn** — the block is checked affine on every Freudenthal simplex of its grid
  from the compiled weights (:func:`~infoflow_jax.verification.step_ffn.kuhn_cells`, the step
  checker's reading of the block); per cell c, err_cell ≥ sup_c |net − G| (fine-grid vertex
  errors + C_D·L_G/(n·m)); the cells met by the interval of z over B are gathered (at most
  ``MAX_CELLS`` per axis; a wider z-box takes the max over all cells — sound, looser).
* **retrieval term** — z_i = φ_i·h̃ with h̃ the CLS row after the (single) attention layer:
  z_i = φ_i·c + Σ_heads Σ_s w_s^h ν_s^{h,i}(x_s), ν affine in x_s (read from the weights:
  embedding → W_V → W_O → φ_i). For the head h* whose ν best matches ⟨w_i, ·⟩,

      z_i − u_i = φ_i·c + Σ_s w_s^{h*} d_s + (Σ_s w_s^{h*} − 1)·u_i + Σ_{h≠h*} Σ_s w_s^h ν_s^{h,i},
      d_s = [ν_s(x_s) − ⟨w_i, x_s⟩] + [⟨w_i, x_s⟩ − max_t ⟨w_i, x_t⟩],

  the first bracket an affine function of x_s (exact range on the box), the second in
  [−max(0, max_{t≠s} hi_t − lo_s), −max(0, max_{t≠s} lo_t − hi_s)] (monotone). Both sums
  over s are bounded by the exact linear program over the softmax box (w ∈ [wl, wu],
  Σ w = 1: :func:`~infoflow_jax.core.intervals.weighted_average_bounds`), wl, wu the
  per-coordinate softmax bounds of the scores over B. Where keys differ by ≫ 1/β the loser's
  weight is tiny; near ties d_s is small: the bound follows L1's e_max locally.

Every ingredient is read from the weights or from the task's exact class
(:func:`~infoflow_jax.verification.target_bounds.max_features`); the program's claims only say
where to look (which FFN block, its input forms and grid n). A claim that does not match the
weights makes the reading fail (:func:`prepare_split` returns None with the reason) or the
bound large — never unsound. Scope: one-layer models (one attention layer, then the decoder
FFN: an OnBox Kuhn block or a OneInput block), no per-position input matrices, readout =
exactly the decoder's output slot (w = e_y, b = 0) and that slot exactly 0 before the FFN.
Multi-layer models (C2, C3, C6) are not split: their last retrieval's key and value are
earlier layers' outputs, whose errors against the target's inner quantities (ψ(m − x_t), the
flags) would have to be split too (docs/certify.md, "How far it reaches").

Float64. The bound is on the float model (``model.apply``) against the float target:
(i) wl, wu enclose the model's float softmax weights (:mod:`~infoflow_jax.core.intervals`),
whose mass is 1 up to τ; (ii) the float z̃ differs from Σ w̃ ν (exact composition at the
float weights) by ≤ ``rho`` = 64·(E + T + d + H·d_v + 16)·u·M, M the sum of |weight|-path
products of the value chain (≥ every intermediate magnitude): ≤ 8 rounded stages (embedding,
W_V, weighted sum, W_O, + c, and our own ν coefficients and ranges), each ≤ γ_n ≤ 4(n + 4)u
of M; (iii) the model's float FFN differs from the exact one at its float input by ≤
``ffn_rounding`` (a priori, layer by layer: e' = |W|ᵀe + γ_n(|W|ᵀ·mag + |b|)); (iv) its
first layer reads W₁ = Φ·A + R (A from the step checker's least squares): R's effect is
≤ Σ_k gain_k·Σ_j |R_jk|·max|h̃_j| (gain: |weight|-path sums to the output); (v) the target is
within TARGET_ROUNDING·(1 + |H|) of G(u); (vi) the cell index range is widened outward by
4 ulps. Every step is token-equivariant with order-free rounding margins, so the bound on a
sorted box holds at every permutation of its inputs (the sorted reduction of
:mod:`~infoflow_jax.verification.certify`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from infoflow_jax.core.claims import OnBox, OneInput
from infoflow_jax.core.intervals import (U, Interval, add, affine, attention_bounds, bound_plan, dot, embedding_bounds,
                                         margin, softmax_bounds, softmax_relative_rounding, weighted_average_bounds,
                                         widen)
from infoflow_jax.core.model import positional_features
from infoflow_jax.core.pwl import layer_ffn_weights
from infoflow_jax.verification.certify_cells import block_function, one_input_cells
from infoflow_jax.verification.step_attention import form_vector
from infoflow_jax.verification.step_ffn import kuhn_block_network, kuhn_cells, network_lipschitz
from infoflow_jax.verification.target_bounds import TARGET_ROUNDING, max_features

MAX_CELLS = 4  # Kuhn cells gathered per axis and box; a wider z-box takes the global max
ONE_INPUT_CELLS = 1024  # cells of [0, 1] for a one-input decoder's error table


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Split:
    """What the box bound needs, read once from the weights (a pytree)."""

    Phi: Any  # (E, D) the decoder's input forms
    alpha: Any  # (H, D, d): ν^{h,i}_s(x) = x·alpha[h, i] + beta[h, i, s]
    beta: Any  # (H, D, T)
    retrieving: Any  # (H, D) one-hot: the head h* that retrieves u_i
    beta_hat: Any  # (H, D) score_s = β̂·⟨w_i, x_s⟩ + const up to score_slack (0: no such β̂)
    score_slack: Any  # (H, D)
    features: Any  # (D, d) the task's w_i
    cls_const: Any  # (D,) φ_i·c
    rho: Any  # (D,) rounding of z̃ against Σ w̃ ν
    cell_err: Any  # (n,)*D
    cell_lo: Any
    cell_hi: Any
    err_max: Any  # scalars: over every cell
    lo_min: Any
    hi_max: Any
    lip_net: Any
    lip_G: Any
    static_err: Any  # FFN rounding + R's effect + the target's rounding
    n: int = field(metadata={"static": True})
    D: int = field(metadata={"static": True})


def _problem(reason):
    return None, reason


def prepare_split(built, graphdef, state):
    """(Split, None), or (None, reason) when the construction is not retrieve-then-decode as
    this bound needs (module docstring) or a reading of the weights fails."""
    task = built.task
    mf = max_features(task)
    if mf is None:
        return _problem(f"task {task.id} is not G(max-features)")
    model = nnx.merge(graphdef, state)
    cfg = model.cfg
    if len(model.blocks) != 1 or cfg.position_input:
        return _problem("not a one-layer model without per-position inputs")
    compiled = built.compiled
    sites = [s for s in getattr(compiled, "sites", ()) if s.kind == "ffn" and isinstance(s.claim, (OnBox, OneInput))]
    if len(sites) != 1 or len(sites[0].outputs) != 1:
        return _problem("no single decoder (OnBox or OneInput) block")
    site, claim = sites[0], sites[0].claim
    slots = compiled.slots
    out = slots.index(site.outputs[0])
    E = len(slots)
    w, b = np.asarray(model.w[...]), float(np.asarray(model.b[...]))
    want = np.zeros(E)
    want[out] = 1.0
    if w.shape != (E,) or not np.array_equal(w, want) or b != 0.0:
        return _problem("the readout is not exactly the decoder's output slot")
    e, attn = model.embed, model.blocks[0].attn
    c = np.asarray(e.c[...])
    Wq, Wk, Wv, Wo = (np.asarray(a[...]) for a in (attn.Wq, attn.Wk, attn.Wv, attn.Wo))
    if c[out] != 0.0 or np.any(Wo[..., out] != 0.0):
        return _problem("the decoder's output slot is written before its FFN")
    if isinstance(claim, OneInput):
        forms = (claim.input if claim.input is not None else site.inputs[0],)
    else:
        forms = claim.inputs if claim.inputs is not None else site.inputs
    Phi = np.stack([form_vector(f, slots) for f in forms], axis=1)
    D = Phi.shape[1]
    if D != mf.weights.shape[0]:
        return _problem(f"the decoder reads {D} forms, the task's G takes {mf.weights.shape[0]}")
    parts = layer_ffn_weights(model, 0)
    readable = np.array([compiled.layout.stage[s] < 2 for s in slots])
    net_reach, problem = kuhn_block_network(parts, Phi, out, readable)
    if problem:
        return _problem(problem)
    if isinstance(claim, OneInput):
        pl, problem = block_function(net_reach)
        if problem:
            return _problem(problem)
        G = mf.G
        cells = one_input_cells(pl, lambda z: G(np.asarray(z)[:, None]), mf.lipschitz, ONE_INPUT_CELLS)
        lip_net, n_cells = cells.lipschitz, ONE_INPUT_CELLS
    else:
        cells, problem = kuhn_cells(net_reach, mf.G, mf.lipschitz, claim.n, claim.box,
                                    target_h=float(claim.tolerance) / 32)
        if problem:
            return _problem(problem)
        lip_net, n_cells = network_lipschitz(net_reach), int(claim.n)
    T, d = task.T, task.d
    # the value chain: ν^{h,i}_s(x) = (x A + a + pos_s P) W_V^h W_O^h φ_i
    A, a = np.asarray(e.A[...]), np.asarray(e.a[...])
    pos = (np.asarray(positional_features(cfg.positional, T, cfg.max_T, cfg.n_freq, jnp.float64)) @ np.asarray(e.P[...])
           if cfg.n_pos else np.zeros((T, E)))
    OVphi = np.einsum("hek,hkf,fi->hei", Wv, Wo, Phi)  # (H, E, D)
    alpha = np.einsum("de,hei->hid", A, OVphi)
    beta = np.einsum("se,hei->his", a[None] + pos, OVphi)
    # the retrieving head: ν closest to ⟨w_i, ·⟩ (ties: the first)
    mismatch = np.sum(np.abs(alpha - mf.weights[None]), -1) + np.max(np.abs(beta), -1)  # (H, D)
    retrieving = np.zeros_like(mismatch)
    retrieving[np.argmin(mismatch, 0), np.arange(D)] = 1.0
    # the scores at CLS: s_s = x_s·κ + κ0_s, κ = A W_K q, q = c W_Q (the CLS row is c in layer 1)
    q = np.einsum("e,hek->hk", c, Wq)
    kappa = np.einsum("de,hek,hk->hd", A, Wk, q)  # (H, d)
    kappa0 = np.einsum("se,hek,hk->hs", a[None] + pos, Wk, q)  # (H, T)
    wn = np.sum(mf.weights ** 2, 1)  # (D,)
    beta_hat = np.maximum(kappa @ mf.weights.T / wn[None], 0.0)  # (H, D) least squares, ≥ 0
    residual = np.sum(np.abs(kappa[:, None, :] - beta_hat[..., None] * mf.weights[None]), -1)  # ≥ |x·(κ − β̂w)| spread
    spread = (np.max(kappa0, 1) - np.min(kappa0, 1))[:, None]
    score_mag = np.einsum("se,hek,hk->h", np.abs(A).sum(0)[None] + np.abs(a)[None] + np.abs(pos), np.abs(Wk),
                          np.abs(q)) + 1.0
    dk = Wk.shape[-1]
    eps_score = 64 * (E + d + dk + 16) * U * score_mag  # the model's and our rounding of one score
    score_slack = (residual + spread + 2 * eps_score[:, None]) * (1 + 8 * U)
    # magnitudes of the value chain at |x| ≤ 1 (every intermediate is ≤ this path sum)
    chain = np.einsum("se,hek,hkf,fi->i", np.abs(A).sum(0)[None] + np.abs(a)[None] + np.abs(pos),
                      np.abs(Wv), np.abs(Wo), np.abs(Phi))
    H_heads, _, dv = Wv.shape
    rho = 64 * (E + T + d + H_heads * dv + 16) * U * (2 * chain + np.abs(c) @ np.abs(Phi)) + 1e-300
    # the residual h̃ at CLS over the whole cube: magnitudes for the FFN's rounding and R's effect
    h_cls = _cls_row_compiled(bound_plan(graphdef, state), Interval(jnp.zeros((T, d)), jnp.ones((T, d))))
    hmag = np.asarray(jnp.maximum(jnp.abs(h_cls.lo), jnp.abs(h_cls.hi)))[0]
    ffn_rounding = _ffn_rounding(parts, hmag)
    (net, reach) = net_reach
    W1 = parts[0][0]
    R = W1[:, reach[0]] - Phi @ net[0][0][:, reach[0]]
    exactly_zero = (c == 0.0) & np.all(Wo == 0.0, axis=(0, 1))  # h̃_j = 0 + Σ 0·(…) = 0 exactly
    delta = np.abs(R).T @ np.where(exactly_zero, 0.0, hmag)  # per first-layer unit
    gain = _gain_to_first_layer(net)
    r_effect = float(np.sum(gain[reach[0]] * delta))
    g_max = float(max(np.max(np.abs(cells.lo)), np.max(np.abs(cells.hi))) + np.max(cells.err))
    static = (ffn_rounding + r_effect + TARGET_ROUNDING * (1 + g_max)) * (1 + 8 * U)
    f = lambda x: jnp.asarray(x, dtype=jnp.float64)  # noqa: E731
    return Split(Phi=f(Phi), alpha=f(alpha), beta=f(beta), retrieving=f(retrieving),
                 beta_hat=f(beta_hat), score_slack=f(score_slack), features=f(mf.weights),
                 cls_const=f(c @ Phi), rho=f(rho), cell_err=f(cells.err), cell_lo=f(cells.lo), cell_hi=f(cells.hi),
                 err_max=f(np.max(cells.err)), lo_min=f(np.min(cells.lo)), hi_max=f(np.max(cells.hi)),
                 lip_net=f(lip_net), lip_G=f(mf.lipschitz), static_err=f(static),
                 n=n_cells, D=int(D)), None


def _gain_to_first_layer(net) -> np.ndarray:
    """Per first-layer unit: Σ of |weight|-path products to the output (ReLU 1-Lipschitz)."""
    gain = np.abs(net[-1][0][:, 0])
    for W, _b, grouped in net[-2:0:-1]:
        if grouped:
            G, gi, go = W.shape
            gain = np.einsum("gio,go->gi", np.abs(W), gain.reshape(G, go)).reshape(-1)
        else:
            gain = np.abs(W) @ gain
    return gain


def _ffn_rounding(parts, hmag) -> float:
    """A priori |FFÑ − FFN| at any float input of magnitude ≤ hmag (module docstring, (iii))."""
    mag, err = np.asarray(hmag, np.float64), np.zeros_like(hmag)
    for W, b, grouped in parts:
        bflat = np.abs(np.asarray(b)).reshape(-1)
        if grouped:
            G, gi, go = W.shape
            pull = lambda v: np.einsum("gi,gio->go", v.reshape(G, gi), np.abs(W)).reshape(-1)  # noqa: E731
            n_in = gi
        else:
            pull = lambda v: v @ np.abs(W)  # noqa: E731
            n_in = W.shape[0]
        new_mag = pull(mag) + bflat
        err = pull(err) + 4.0 * (n_in + 4.0) * U * new_mag
        mag = new_mag
    return float(np.max(err)) * (1 + 8 * U) + 1e-300


def _cls_weights(attn: dict, H: Interval):
    """Softmax bounds (heads, T) of the CLS query over the tokens, and the mass slack τ (heads,)."""
    heads = lambda x, W: jax.vmap(lambda Wh: affine(x, Wh))(W)  # noqa: E731
    q = heads(H[:1], attn["Wq"])  # (h, 1, dk)
    k = heads(H[1:], attn["Wk"])  # (h, T, dk)
    scores = dot(q[:, :, None, :], k[:, None, :, :])  # (h, 1, T)
    wl, wu = softmax_bounds(scores.lo, scores.hi)
    tau = jnp.max(softmax_relative_rounding(scores.lo, scores.hi), -1)
    return wl[:, 0], wu[:, 0], tau[:, 0]


def cls_row(plan, X: Interval) -> Interval:
    """Interval (1, E) of the CLS row after the (single) attention layer, for inputs in the box X."""
    H = embedding_bounds(plan, X)
    return add(H[:1], attention_bounds(plan.attn[0], H, H[:1]))


_cls_row_compiled = jax.jit(cls_row)  # one compilation per model shape (eager: ~140 small ones)


def affine_range(x_lo, x_hi, coef, const):
    """Range of x·coef + const over the box [x_lo, x_hi] (last axis), with its rounding margin."""
    c, r = 0.5 * x_lo + 0.5 * x_hi, 0.5 * (x_hi - x_lo) * (1 + 4 * U)
    centre = c @ coef + const
    radius = r @ jnp.abs(coef)
    mag = jnp.maximum(jnp.abs(x_lo), jnp.abs(x_hi)) @ jnp.abs(coef) + jnp.abs(const)
    return widen(centre - radius, centre + radius, margin(coef.shape[0] + 1, mag))


def retrieval_deviation(split: Split, wl, wu, tau, lo, hi):
    """Bounds (D,) on z̃_i − u_i over the box lo ≤ X ≤ hi (T, d) (module docstring)."""
    T = lo.shape[0]
    g = affine_range(lo, hi, split.features.T, 0.0)  # (T, D): ⟨w_i, x_s⟩
    if T > 1:
        others = ~jnp.eye(T, dtype=bool)[:, :, None]  # [s, t]: t ≠ s
        best_hi = jnp.max(jnp.where(others, g.hi[None], -jnp.inf), 1)  # max_{t≠s} hi_t
        best_lo = jnp.max(jnp.where(others, g.lo[None], -jnp.inf), 1)
        gap = widen(-jnp.maximum(0.0, best_hi - g.lo), -jnp.maximum(0.0, best_lo - g.hi), margin(2, 2 * g.mag))
    else:
        gap = Interval(jnp.zeros_like(g.lo), jnp.zeros_like(g.hi))
    # per head h and form i: ν ranges (T,) and d = ν − ⟨w_i, x⟩ + gap
    coef_nu = split.alpha  # (H, D, d)
    nu_lo, nu_hi = _nu_ranges(lo, hi, coef_nu, split.beta)  # (H, D, T)
    dd_lo, dd_hi = _nu_ranges(lo, hi, coef_nu - split.features[None], split.beta)
    d_lo = dd_lo + jnp.swapaxes(gap.lo, 0, 1)[None]
    d_hi = dd_hi + jnp.swapaxes(gap.hi, 0, 1)[None]
    d_mag = jnp.maximum(jnp.abs(dd_lo), jnp.abs(dd_hi)) + jnp.swapaxes(gap.mag, 0, 1)[None]
    d_lo, d_hi = d_lo - margin(2, d_mag), d_hi + margin(2, d_mag)
    wl_, wu_ = jnp.broadcast_to(wl[:, None, :], d_lo.shape), jnp.broadcast_to(wu[:, None, :], d_lo.shape)
    tau_ = jnp.broadcast_to(tau[:, None], d_lo.shape[:2])  # the same weights for every form
    main = weighted_average_bounds(wl_, wu_, d_lo, d_hi, tau_)  # (H, D)
    other = weighted_average_bounds(wl_, wu_, nu_lo, nu_hi, tau_)
    # L1 per token: w̃_s ≤ (1 + τ)·e^{−β̂δ_s + slack}, δ_s = u − ⟨w_i, x_s⟩ ∈ [−gap.hi, −gap.lo]
    delta_lo = jnp.maximum(-jnp.swapaxes(gap.hi, 0, 1), 0.0)[None]  # (1, D, T)
    delta_hi = jnp.maximum(-jnp.swapaxes(gap.lo, 0, 1), 0.0)[None]
    b = split.beta_hat[..., None]  # (H, D, 1)
    peak = jnp.where(b > 0, jnp.clip(1.0 / jnp.where(b > 0, b, 1.0), delta_lo, delta_hi), delta_hi)
    term = peak * jnp.exp(-b * peak)  # max of δ e^{−β̂δ} on [δ_lo, δ_hi] (unimodal, peak at 1/β̂)
    factor = (1 + tau[:, None]) * jnp.exp(split.score_slack) * (1 + 64 * U)
    # the argmax s* has δ = 0, so its term is 0: Σ_{s≠s*} ≤ Σ_s − min_s
    l1 = factor * (jnp.sum(term, -1) - jnp.min(term, -1)) + jnp.sum(wu_ * jnp.maximum(0.0, -dd_lo), -1)  # ≥ Σ w̃ (u − ν_s)
    l1 = l1 * (1 + 8 * U) + margin(T, l1)
    main_lo = jnp.maximum(main.lo, -l1)
    sel = split.retrieving
    lo_dev = jnp.sum(sel * main_lo + (1 - sel) * other.lo, 0)
    hi_dev = jnp.sum(sel * main.hi + (1 - sel) * other.hi, 0)
    mass = jnp.sum(sel * tau[:, None], 0)  # |Σ w̃ − 1|·u_i ≤ τ (u ∈ [0,1])
    lo_dev = lo_dev + split.cls_const - mass - split.rho
    hi_dev = hi_dev + split.cls_const + mass + split.rho
    return widen(lo_dev, hi_dev, margin(T + 2, jnp.maximum(jnp.abs(lo_dev), jnp.abs(hi_dev))))


def _nu_ranges(lo, hi, coef, const):
    """Ranges (H, D, T) of x_s·coef[h, i] + const[h, i, s] over the box (T, d)."""
    c, r = 0.5 * lo + 0.5 * hi, 0.5 * (hi - lo) * (1 + 4 * U)
    centre = jnp.einsum("sd,hid->his", c, coef) + const
    radius = jnp.einsum("sd,hid->his", r, jnp.abs(coef))
    mag = jnp.einsum("sd,hid->his", jnp.maximum(jnp.abs(lo), jnp.abs(hi)), jnp.abs(coef)) + jnp.abs(const)
    out = widen(centre - radius, centre + radius, margin(coef.shape[-1] + 1, mag))
    return out.lo, out.hi


def decoder_cells(split: Split, z: Interval):
    """(max err_cell, min lo_cell, max hi_cell) over the Kuhn cells met by clip(z) (z: (D,)),
    plus dist_∞(z, [0,1]^D)."""
    n, D, K = split.n, split.D, MAX_CELLS
    out = jnp.max(jnp.maximum(jnp.maximum(-z.lo, z.hi - 1.0), 0.0))
    zl, zh = jnp.clip(z.lo, 0.0, 1.0), jnp.clip(z.hi, 0.0, 1.0)
    # cell indices, widened outward by 4 ulps (a point near k/n may round to the wrong side)
    i_lo = jnp.clip(jnp.floor(zl * n * (1 - 4 * U) - 4 * U * n), 0, n - 1).astype(jnp.int32)
    i_hi = jnp.clip(jnp.floor(zh * n * (1 + 4 * U) + 4 * U * n), 0, n - 1).astype(jnp.int32)
    wide = jnp.any(i_hi - i_lo + 1 > K)
    offs = jnp.arange(K)
    idx = i_lo[:, None] + offs[None, :]  # (D, K)
    valid = idx <= i_hi[:, None]
    idx = jnp.minimum(idx, n - 1)
    flat = jnp.zeros((1,), jnp.int32)
    ok = jnp.ones((1,), bool)
    for a in range(D):  # D is static and small: the (K^D,) combinations, C order
        flat = (flat[:, None] * n + idx[a][None, :]).reshape(-1)
        ok = (ok[:, None] & valid[a][None, :]).reshape(-1)
    err = jnp.max(jnp.where(ok, split.cell_err.reshape(-1)[flat], -jnp.inf))
    lo = jnp.min(jnp.where(ok, split.cell_lo.reshape(-1)[flat], jnp.inf))
    hi = jnp.max(jnp.where(ok, split.cell_hi.reshape(-1)[flat], -jnp.inf))
    err = jnp.where(wide, split.err_max, err)
    lo = jnp.where(wide, split.lo_min, lo)
    hi = jnp.where(wide, split.hi_max, hi)
    return err, lo, hi, out


def split_bounds(split: Split, plan, lo, hi):
    """For one box (T, d): (upper on sup |Ĥ − H| by the split, lo/hi of Ĥ). ``plan``: the
    :class:`~infoflow_jax.core.intervals.BoundPlan` of the same weights."""
    X = Interval(jnp.asarray(lo), jnp.asarray(hi))
    H = embedding_bounds(plan, X)
    attn = plan.attn[0]
    h_cls = add(H[:1], attention_bounds(attn, H, H[:1]))
    z = affine(h_cls, split.Phi)
    z = Interval(z.lo[0], z.hi[0])
    wl, wu, tau = _cls_weights(attn, H)
    dev = retrieval_deviation(split, wl, wu, tau, X.lo, X.hi)
    err, net_lo, net_hi, outside = decoder_cells(split, z)
    dev_max = jnp.max(jnp.maximum(jnp.abs(dev.lo), jnp.abs(dev.hi)))
    extra = split.lip_net * outside + split.static_err
    upper = (err + split.lip_G * dev_max + extra) * (1 + 8 * U)
    return upper, net_lo - extra, net_hi + extra
