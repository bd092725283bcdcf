"""Linear (DeepPoly-style) bounds through a deep ReLU FFN, in float64 with outward margins.

Plain interval propagation through a deep FFN (a Kuhn decoder: 4 hidden layers, hundreds of
units) forgets that its units read the same few inputs, and its bounds grow with the
product of the layers' |W|: on C7 (T = 2) a box of side w gets an output interval ≈ 29·w
wide although the network is 2-Lipschitz. Here every unit carries two affine functions of
the FFN's input h (E coordinates, box [lo, hi]) that bound it from below and above:

    L_j(h) ≤ y_j(h) ≤ U_j(h)   for every h in the box.

* affine layer z = yW + b:  U_z = U·W⁺ + L·W⁻ + b,  L_z = L·W⁺ + U·W⁻ + b (W⁺, W⁻ the
  positive and negative parts);
* the concrete bounds of a form over the box: min/max of A·h + c over the box (centre–radius),
  intersected with plain interval propagation (both are sound);
* ReLU on [l, u]: l ≥ 0 passes both forms, u ≤ 0 gives 0; otherwise (unstable) the chord
  U_y = λ(U_z − l) with λ ≥ u/(u − l) and L_y = L_z when u > −l, else 0 (relu(z) ≥ λ'z
  for λ' ∈ [0, 1]). On a box small against the decoder's cells almost every unit is stable
  and the network is bounded exactly (it is affine there).

Rounding (why the forms stay sound in float64): each form is evaluated, in real
arithmetic, at any float state h̃ of the model in the box. Two errors are added to its
constant at every layer, with Higham's γ_n ≤ 4(n + 4)u as in :mod:`infoflow_jax.core.intervals`:
(i) ours — the coefficients of a new form are sums of n products, so at any h the computed
form differs from the exact composition by ≤ γ_n·Σ_j |W_j|·M_j, with M_j = Σ_k|A_jk||h_k|max + |c_j|
the form's magnitude; (ii) the model's — its float layer differs from the exact layer at its
own float input by ≤ γ_n·Σ_j |W_j|·|y_j|max + γ|b|. Induction over layers: if the model's
float y lies between the forms, its float z lies between the new forms (i) + (ii); ReLU is
exact in floats; λ is rounded up (any λ above u/(u − l) keeps the chord above relu), and
products λ·(form) add 2u of their magnitude. Concretisation adds γ_{E+1} of the magnitude.
"""

from __future__ import annotations

import jax.numpy as jnp

from infoflow_jax.core.intervals import U, Interval, affine, grouped_affine, margin, relu, widen


def _apply_W(A, W, grouped: bool):
    """Forms A (P, n_in, E+1) through W: (n_in, n_out) or grouped (G, g_in, g_out) → (P, n_out, E+1)."""
    if not grouped:
        return jnp.einsum("pie,io->poe", A, W)
    G, gi, go = W.shape
    P, _, K = A.shape
    # multiply-and-reduce: XLA's CPU dot with a group batch axis of tiny matrices is ~100× slower
    out = jnp.sum(A.reshape(P, G, gi, 1, K) * W[None, :, :, :, None], axis=2)
    return out.reshape(P, G * go, K)


def _apply_vec(v, W, grouped: bool):
    """Vectors v (P, n_in) through W (no bias)."""
    if not grouped:
        return v @ W
    G, gi, go = W.shape
    P = v.shape[0]
    return jnp.sum(v.reshape(P, G, gi, 1) * W[None], axis=2).reshape(P, G * go)


def _concretise(A, xc, xr, xmag):
    """(min, max, magnitude) of h ↦ A[..., :E]·h + A[..., E] over the box (centre xc, radius xr)."""
    coef, const = A[..., :-1], A[..., -1]
    centre = jnp.einsum("pje,pe->pj", coef, xc) + const
    radius = jnp.einsum("pje,pe->pj", jnp.abs(coef), xr)
    mag = jnp.einsum("pje,pe->pj", jnp.abs(coef), xmag) + jnp.abs(const)
    err = margin(xc.shape[-1] + 1, mag)
    return centre - radius - err, centre + radius + err, mag


def linear_ffn_bounds(Ws, bs, grouped, H: Interval, inputs: tuple | None = None) -> Interval:
    """Bounds on FFN(h) = (relu(… relu(hW₁ + b₁) …)W_n + b_n) for every h in the box H (P, E).

    ``inputs`` (static indices): the coordinates of h that the first layer reads (rows of W₁
    that are not zero; :func:`read_coordinates`); the forms are functions of those only
    (fewer coefficients, the same bounds: the other coordinates enter with weight 0)."""
    if inputs is not None:
        idx = jnp.asarray(inputs, dtype=int)
        H = Interval(H.lo[..., idx], H.hi[..., idx])
        Ws = (Ws[0][idx],) + tuple(Ws[1:])
    xc, xr = H.centre_radius()
    xmag = H.mag
    P, E = xc.shape
    eye = jnp.concatenate([jnp.eye(E, dtype=xc.dtype), jnp.zeros((E, 1), xc.dtype)], axis=1)  # h ↦ h
    Au = Al = jnp.broadcast_to(eye, (P, E, E + 1))
    ymag = xmag  # ≥ |y| over the box (the model's float y included)
    form_mag = xmag  # ≥ |L_j(h)|, |U_j(h)| over the box
    box = H  # plain interval bounds, layer by layer
    n_layers = len(Ws)
    for i, (W, b_layer, grp) in enumerate(zip(Ws, bs, grouped)):
        b = b_layer.reshape(-1)  # grouped biases are (G, g_out), flattened like their outputs
        n_in = W.shape[1] if grp else W.shape[0]
        Wp, Wn = jnp.maximum(W, 0.0), jnp.minimum(W, 0.0)
        absW = jnp.abs(W)
        Au_z = _apply_W(Au, Wp, grp) + _apply_W(Al, Wn, grp)
        Al_z = _apply_W(Al, Wp, grp) + _apply_W(Au, Wn, grp)
        Au_z = Au_z.at[..., -1].add(b)
        Al_z = Al_z.at[..., -1].add(b)
        # (i) our coefficients' rounding, (ii) the model's float layer: both ≤ γ_n·(Σ|W||·| + |b|)
        err = (margin(n_in, _apply_vec(form_mag, absW, grp) + jnp.abs(b))
               + margin(n_in, _apply_vec(ymag, absW, grp) + jnp.abs(b)))
        Au_z = Au_z.at[..., -1].add(err)
        Al_z = Al_z.at[..., -1].add(-err)
        zl, _, mag_l = _concretise(Al_z, xc, xr, xmag)
        _, zu, mag_u = _concretise(Au_z, xc, xr, xmag)
        box = grouped_affine(box, W, b_layer) if grp else affine(box, W, b)
        z = widen(jnp.maximum(zl, box.lo), jnp.minimum(zu, box.hi), 0.0)
        if i == n_layers - 1:
            return z
        box = relu(z)
        l, u = z.lo, z.hi
        active, dead = l >= 0, u <= 0
        unstable = ~(active | dead)
        safe = jnp.where(unstable, u - l, 1.0)
        lam = jnp.where(unstable, u / safe * (1 + 4 * U), jnp.where(active, 1.0, 0.0))
        lam_low = jnp.where(active | (unstable & (u > -l)), 1.0, 0.0)
        shift = jnp.where(unstable, -l, 0.0)  # U_y = λ(U_z − l) on unstable units
        Au = lam[..., None] * Au_z.at[..., -1].add(shift)
        # products λ·(form): ≤ 2u of their magnitude (the form's, and |l|)
        Au = Au.at[..., -1].add(4 * U * lam * (mag_u + jnp.abs(shift)))
        Al = lam_low[..., None] * Al_z
        form_mag = jnp.maximum(lam * (mag_u + jnp.abs(shift)), lam_low * mag_l) * (1 + 8 * U)
        ymag = jnp.maximum(jnp.abs(box.lo), jnp.abs(box.hi))
    raise ValueError("an FFN has at least one layer")


def read_coordinates(W1, grouped: bool = False) -> tuple | None:
    """The coordinates of h a first FFN layer reads (nonzero rows of a concrete W₁), or None
    for a grouped first layer (every group reads its own block)."""
    import numpy as np

    if grouped:
        return None
    return tuple(int(i) for i in np.flatnonzero(np.any(np.asarray(W1) != 0, axis=1)))
