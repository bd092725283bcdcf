"""Lemma L4: the D-dimensional piecewise-linear (Kuhn / Freudenthal) decoder
as an explicit ReLU network.

The interpolant
---------------
Grid: vertices v ∈ {0, 1/n, …, 1}^D, V = (n+1)^D of them, indexed in C order
(``np.indices((n+1,)*D)``). Hat function (THEORY §3, L4)::

    Λ(y) = relu(1 − max_i y_i⁺ − max_i (−y_i)⁺)

and the interpolant is  I_G(x) = Σ_v G(v)·Λ(n(x − v)).  The network computes
I_G(clip(x, 0, 1)), so it is defined on all of R^D (retrieved inputs may leave
the cube slightly).

Λ(n(· − v)) is the barycentric coordinate of v in the Kuhn triangulation whose
simplices, in a cell base + [0,1/n]^D with local coordinates
f = n·x − base ∈ [0,1]^D, are {f_σ(1) ≥ … ≥ f_σ(D)}; the simplex has vertices
w_k = base + e_σ(1) + … + e_σ(k) (k = 0..D) with weights
λ_k = f_σ(k) − f_σ(k+1) (f_σ(0) := 1, f_σ(D+1) := 0). Check: at w_k,
y = f − (e_σ(1)+…+e_σ(k)), so max y⁺ = f_σ(k+1), max y⁻ = 1 − f_σ(k), and
Λ = λ_k. Hence Σ_v Λ = 1 and affine functions are reproduced exactly.
``kuhn_interpolate`` evaluates this directly (sorting f) as a reference.

Error bound (sharper than THEORY L4's L/n)
-------------------------------------------
Let G be L-Lipschitz in ‖·‖_∞. At x in the simplex above, with t_k = f_σ(k),

    |I_G(x) − G(x)| ≤ Σ_k λ_k |G(w_k) − G(x)| ≤ (L/n)·Σ_k λ_k·‖n(w_k − x)‖_∞
                    = (L/n)·S(t),   S(t) = Σ_{k=0}^{D} (t_k − t_{k+1})·max(1 − t_k, t_{k+1}),

since n(w_k − x) has entries 1 − t_j (j ≤ k) and −t_j (j > k). Equality holds
for G(y) = L‖y − x‖_∞, so C_D := sup S is the *exact* worst-case constant:
sup_{G L-Lip} ‖I_G − G‖_∞ = C_D·L/n. S is a sum over the D+1 intervals
[t_{k+1}, t_k] partitioning [0,1]; an interval [a,b] scores (b−a)·max(1−b, a),
i.e. a lower Riemann term of s ↦ 1−s (if its midpoint is < 1/2) or of s ↦ s
(otherwise). With J₂ intervals below a split point a and J₁ = D+1−J₂ above, the
lower Riemann sums of these linear functions are at most their integrals minus
(length)²/(2J), equality at equal spacing, so

    C_D = max_{J₁+J₂=D+1} max_a [ 1/2 + a − a² − (1−a)²/(2J₁) − a²/(2J₂) ],

maximised at a = (1+1/J₁)/(2+1/J₁+1/J₂) with J₁, J₂ balanced:

    C_D = (3D+1)/(4(D+1))                 (D odd)
    C_D = D(3D+10)/(4(D²+4D+2))           (D even)

C_1 = 1/2 (L3's L/(2N)), C_2 = 4/7, C_3 = 5/8, C_4 = 11/17, …, C_D ↑ 3/4.
So THEORY's L/n is valid but never tight; ``error_bound`` returns C_D·L/n,
and ``kuhn_worst_case_point`` gives the local point where it is attained.
Outside the cube: net(x) = I_G(clip x), so |net(x) − G(x)| ≤ C_D·L/n +
L·dist_∞(x, [0,1]^D) when G is L-Lipschitz on R^D.

The network (split m, 0 ≤ m < D; A = first K = D−m coordinates, B = last m)
------------------------------------------------------------------------------
ReLU after every layer but the last. P = (n+1)^K parent groups (one per
A-vertex), C = (n+1)^m children each, V = P·C. c_i = clip(x_i) and y = n·c − a
for vertex grid index a ∈ {0..n}^D.

1. Grouped(D,1,2): u_i = (relu(x_i), relu(x_i − 1)); c_i = u_i0 − u_i1.
2. Dense fan-out to parents: per parent y_i⁺, y_i⁻ (i ∈ A) and c_j (j ∈ B,
   passed through: c ≥ 0 so relu(c) = c).
3. ⌈log₂ K⌉ Grouped(P, ·, ·) levels of two max trees (for y⁺ and y⁻):
   max(p, q) = relu(p) + relu(q − p) for p, q ≥ 0; c_B passes through.
   m = 0: go to 6 with M± = max_i y_i^±.
4. (m ≥ 1) Grouped(P, ·, C·2(m+1)) fan-out to children: relu(M_A^±) and
   w_j^± = relu(±y_j − M_A^±), j ∈ B; since M_A^± ≥ 0,
   max(M_A^±, max_j (±y_j)⁺) = M_A^± + max_j w_j^±.
5. (m ≥ 1) ⌈log₂ m⌉ Grouped(V, ·, ·) max-tree levels over the w_j^±.
6. Grouped(V, ·, 1): Λ_v = relu(1 − M⁺ − M⁻).
7. Dense(V, k), linear: Σ_v G(v)·Λ_v.

Hidden (ReLU) layers: 3 + ⌈log₂ K⌉ (+ 1 + ⌈log₂ m⌉ if m ≥ 1); for the
default m ≤ 2 that is ≤ ⌈log₂ D⌉ + 5.
Dense parameter count (``kuhn_param_formula``, exact): the one-shot fan-out
(m = 0) costs Θ(D²) per vertex (118·V at D = 3). That is unavoidable for it:
each vertex group must see ≥ D units (Λ_v is not constant along any line
through v, so it is no function of fewer than D projections), all fed by a
Dense layer from ≥ D shared units. The staged fan-out (m = 1) costs
30·V + O(D²)·V/(n+1) for D ≥ 3 (22·V + … for D = 2, 10·V + 5 for D = 1):
(n+1)^D·O(D) parameters once n+1 ≥ D, (n+1)^D·O(1) once n+1 ≥ D². The default
split is the cheapest m ∈ {0, 1, 2} (m = 1, except m = 2 when n+1 ≲ D, D ≥ 5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from infoflow_jax.core.errors import check_int_range
from infoflow_jax.core.relu_net import Dense, Grouped, relu_net_apply

__all__ = [
    "Dense",
    "Grouped",
    "KuhnDecoder",
    "kuhn_decoder",
    "kuhn_param_formula",
    "kuhn_default_split",
    "kuhn_error_constant",
    "kuhn_worst_case_point",
    "kuhn_hat",
    "kuhn_interpolate",
    "kuhn_vertices",
]

_MAX_DEFAULT_SPLIT = 2  # keeps the depth at ⌈log₂ D⌉ + O(1)


# --------------------------------------------------------------------------- #
# Error constant
# --------------------------------------------------------------------------- #
def kuhn_error_constant(D: int) -> float:
    """Exact worst-case constant C_D: sup_{G L-Lip in ‖·‖_∞} ‖I_G − G‖_∞ = C_D·L/n.

    C_D = (3D+1)/(4(D+1)) for odd D, D(3D+10)/(4(D²+4D+2)) for even D; C_D < 3/4.
    Proof sketch in the module docstring.
    """
    D = check_int_range("D", D, 1)
    if D % 2:
        return (3 * D + 1) / (4 * (D + 1))
    return D * (3 * D + 10) / (4 * (D * D + 4 * D + 2))


def kuhn_worst_case_point(D: int) -> np.ndarray:
    """Local coordinates f* ∈ [0,1]^D (sorted descending, so in the simplex σ = id)
    where Σ_k λ_k ‖w_k − f*‖_∞ = C_D: for G(y) = ‖y − x*‖_∞ with
    x* = (base + f*)/n, |I_G(x*) − G(x*)| = C_D/n exactly."""
    D = check_int_range("D", D, 1)
    J2 = (D + 1) // 2
    J1 = D + 1 - J2
    a = 0.5 if J1 == J2 else (1 + 1 / J1) / (2 + 1 / J1 + 1 / J2)
    upper = a + (1 - a) * np.arange(J1) / J1  # a, …, excluding 1
    lower = a * np.arange(1, J2) / J2  # excluding 0 and a
    return np.sort(np.concatenate([upper, lower]))[::-1].copy()


# --------------------------------------------------------------------------- #
# Reference interpolant (pure jax)
# --------------------------------------------------------------------------- #
def kuhn_hat(y):
    """Λ(y) = relu(1 − max_i y_i⁺ − max_i (−y_i)⁺) over the last axis."""
    y = jnp.asarray(y)
    return jax.nn.relu(1.0 - jnp.max(jax.nn.relu(y), axis=-1) - jnp.max(jax.nn.relu(-y), axis=-1))


def kuhn_vertices(D: int, n: int) -> np.ndarray:
    """The (n+1)^D grid vertices in C order, shape (V, D), entries in {0, 1/n, …, 1}."""
    D = check_int_range("D", D, 1)
    n = check_int_range("n", n, 1)
    return np.indices((n + 1,) * D).reshape(D, -1).T / n


def kuhn_interpolate(grid_values, x, n: int):
    """The Kuhn interpolant of vertex values at x (..., D), evaluated directly.

    grid_values: (n+1)^D values in C order (shape (V,) or (n+1,)*D). x is
    clipped into [0,1]^D; the simplex is located by sorting the fractional
    parts f (descending), weights λ_k = f_σ(k) − f_σ(k+1).
    """
    n = check_int_range("n", n, 1)
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    D = x.shape[-1]
    g = jnp.asarray(grid_values).reshape(-1)
    if g.shape[0] != (n + 1) ** D:
        raise ValueError(f"grid_values has {g.shape[0]} entries, expected (n+1)^D = {(n + 1) ** D}")
    return _interpolate_jit(g, x, n)


@partial(jax.jit, static_argnums=2)
def _interpolate_jit(g, x, n):
    D = x.shape[-1]
    z = jnp.clip(x, 0.0, 1.0) * n
    base = jnp.clip(jnp.floor(z), 0, n - 1)
    f = z - base
    order = jnp.argsort(-f, axis=-1)
    fs = jnp.take_along_axis(f, order, axis=-1)
    steps = jax.nn.one_hot(order, D, dtype=jnp.int32)  # (..., D, D): row k = e_σ(k+1)
    offs = jnp.concatenate([jnp.zeros_like(steps[..., :1, :]), jnp.cumsum(steps, axis=-2)], axis=-2)
    verts = base.astype(jnp.int32)[..., None, :] + offs  # (..., D+1, D)
    strides = jnp.asarray((n + 1) ** np.arange(D - 1, -1, -1), dtype=verts.dtype)
    idx = jnp.sum(verts * strides, axis=-1)
    one = jnp.ones_like(fs[..., :1])
    t = jnp.concatenate([one, fs, jnp.zeros_like(one)], axis=-1)
    lam = t[..., :-1] - t[..., 1:]
    return jnp.sum(lam * g[idx], axis=-1)


# --------------------------------------------------------------------------- #
# Small per-group blocks (independent of the number of vertices)
# --------------------------------------------------------------------------- #
def _tree_level(trees, passes):
    """One level of max trees on non-negative values given as forms over the
    current group's units. max(p, q) = relu(p) + relu(q − p); an unpaired value
    p becomes relu(p); passes p become relu(p) = p. Returns the (g, g') block and
    the new forms."""
    cols = []
    new_trees = []
    for vals in trees:
        nodes = []
        for k in range(0, len(vals) - 1, 2):
            a, b = vals[k], vals[k + 1]
            cols += [a, b - a]
            nodes.append((len(cols) - 2, len(cols) - 1))
        if len(vals) % 2:
            cols.append(vals[-1])
            nodes.append((len(cols) - 1,))
        new_trees.append(nodes)
    pidx = []
    for p in passes:
        cols.append(p)
        pidx.append(len(cols) - 1)
    W = np.stack(cols, axis=1)
    g2 = W.shape[1]

    def form(idx):
        f = np.zeros(g2)
        f[list(idx)] = 1.0
        return f

    return W, [[form(i) for i in nodes] for nodes in new_trees], [form((i,)) for i in pidx]


def _reduce(trees, passes):
    """All levels until each tree holds one value. Returns blocks and final forms."""
    blocks = []
    while max(len(t) for t in trees) > 1:
        W, trees, passes = _tree_level(trees, passes)
        blocks.append(W)
    return blocks, trees, passes


def _unit(g, i):
    e = np.zeros(g)
    e[i] = 1.0
    return e


def _tree_widths(K: int, passes: int) -> list[int]:
    """Group widths g_0, g_1, …, g_L of the max-tree levels (K leaves per tree,
    two trees): g_0 = 2K + p, g_ℓ = 2⌈K/2^(ℓ−1)⌉ + p (units after a level =
    number of nodes before it)."""
    widths = [2 * K + passes]
    nodes = K
    while nodes > 1:
        widths.append(2 * nodes + passes)
        nodes = (nodes + 1) // 2
    return widths


def kuhn_param_formula(D: int, n: int, split: Optional[int] = None, out_dim: int = 1) -> int:
    """Exact dense parameter count (Σ sizes of all W and b) of ``kuhn_decoder(·, D, n,
    split=split)`` without building it (Python ints: no overflow).

    With K = D − m, P = (n+1)^K, C = (n+1)^m, V = P·C, tree widths
    g_0 = 2K + m, g_ℓ = 2⌈K/2^(ℓ−1)⌉ + m (ℓ = 1..⌈log₂K⌉, final g_P), and for
    m ≥ 1 child widths h_0 = 2m + 2, h_ℓ = 2⌈m/2^(ℓ−1)⌉ + 2 (final h):

        4D                                   clamp
      + P·g_0·(2D + 1)                       fan-out to parents
      + P·Σ_ℓ g_ℓ·(g_{ℓ−1} + 1)              parent max trees
      + [m = 0]  V·(g_P + 1)                 hat layer
      + [m ≥ 1]  V·(2m+2)·(g_P + 1)          fan-out to children
               + V·Σ_ℓ h_ℓ·(h_{ℓ−1} + 1)     child max trees
               + V·(h + 1)                   hat layer
      + V·k + k                              output (k = out_dim)
    """
    D = check_int_range("D", D, 1)
    n = check_int_range("n", n, 1)
    m = kuhn_default_split(D, n) if split is None else _check_split(split, D)
    K = D - m
    P, C = (n + 1) ** K, (n + 1) ** m
    V = P * C
    g = _tree_widths(K, m)
    total = 4 * D + P * g[0] * (2 * D + 1)
    total += P * sum(g[l] * (g[l - 1] + 1) for l in range(1, len(g)))
    if m == 0:
        total += V * (g[-1] + 1)
    else:
        h = _tree_widths(m, 2)
        total += V * (2 * m + 2) * (g[-1] + 1)
        total += V * sum(h[l] * (h[l - 1] + 1) for l in range(1, len(h)))
        total += V * (h[-1] + 1)
    return total + V * out_dim + out_dim


def _check_split(split, D: int) -> int:
    if isinstance(split, bool) or not isinstance(split, (int, np.integer)) or not 0 <= split < D:
        raise ValueError(f"split = {split!r} is out of range: must be an integer with 0 <= split < D = {D}")
    return int(split)


def kuhn_default_split(D: int, n: int) -> int:
    """The split m ∈ {0, …, min(D−1, 2)} with the fewest dense parameters (ties: smaller m)."""
    D = check_int_range("D", D, 1)
    n = check_int_range("n", n, 1)
    cands = range(min(D - 1, _MAX_DEFAULT_SPLIT) + 1)
    return min(cands, key=lambda m: (kuhn_param_formula(D, n, m), m))


# --------------------------------------------------------------------------- #
# The decoder
# --------------------------------------------------------------------------- #
@dataclass(frozen=True, eq=False)
class KuhnDecoder:
    """The L4 decoder: a ReLU network R^D → R^k computing I_G(clip(x, 0, 1)).

    ``layers``: tuple of Dense / Grouped; ``values``: vertex values (V, k) in C
    order; ``split``: number of coordinates fanned out in the second stage.
    """

    layers: tuple = field(repr=False)
    D: int
    n: int
    split: int
    values: np.ndarray = field(repr=False)
    scalar: bool = True

    @property
    def in_dim(self) -> int:
        return self.D

    @property
    def out_dim(self) -> int:
        return int(self.values.shape[1])

    @property
    def vertices(self) -> int:
        return (self.n + 1) ** self.D

    @property
    def depth(self) -> int:
        """Number of hidden (ReLU) layers."""
        return len(self.layers) - 1

    @property
    def params_dense(self) -> int:
        return int(sum(l.W.size + l.b.size for l in self.layers))

    @property
    def params_nonzero(self) -> int:
        return int(sum(np.count_nonzero(l.W) + np.count_nonzero(l.b) for l in self.layers))

    @property
    def error_constant(self) -> float:
        return kuhn_error_constant(self.D)

    def error_bound(self, L_inf: float) -> float:
        """sup_{[0,1]^D} |net − G| ≤ C_D·L_inf/n for G L_inf-Lipschitz in ‖·‖_∞
        (exact worst case over such G; C_D < 3/4, so also ≤ THEORY's L_inf/n)."""
        return kuhn_error_constant(self.D) * float(L_inf) / self.n

    def vertex_points(self) -> np.ndarray:
        return kuhn_vertices(self.D, self.n)

    def apply(self, x, *, chunk: Optional[int] = None):
        """Raw network output (..., k)."""
        return relu_net_apply(self.layers, x, precision=jax.lax.Precision.HIGHEST, chunk=chunk)

    def __call__(self, x, *, chunk: Optional[int] = None):
        """Network output: (...,) for scalar vertex values, (..., k) otherwise."""
        y = relu_net_apply(self.layers, x, precision=jax.lax.Precision.HIGHEST, chunk=chunk)
        return y[..., 0] if self.scalar else y


def _vertex_values(G, D: int, n: int):
    V = (n + 1) ** D
    if callable(G):
        vals = np.asarray(G(kuhn_vertices(D, n)), dtype=np.float64)
    else:
        vals = np.asarray(G, dtype=np.float64)
    if vals.size == V:
        out, scalar = vals.reshape(V, 1), True
    elif vals.ndim >= 2 and vals.shape[0] == V:
        out, scalar = vals.reshape(V, -1), False
    elif vals.shape[:D] == (n + 1,) * D and vals.ndim == D + 1:
        out, scalar = vals.reshape(V, -1), False
    else:
        raise ValueError(
            f"vertex values have shape {vals.shape}; expected (V,) or (n+1,)*D or (V, k) with V = {V}"
        )
    if not np.all(np.isfinite(out)):
        raise ValueError("vertex values contain NaN/inf")
    return out, scalar


def kuhn_decoder(
    G_values_or_callable: Union[Callable, np.ndarray],
    D: int,
    n: int,
    *,
    split: Optional[int] = None,
) -> KuhnDecoder:
    """Build the L4 decoder of G on the grid {0, 1/n, …, 1}^D as a ReLU network.

    G: a callable (V, D) → (V,) or (V, k) evaluated at ``kuhn_vertices(D, n)``,
    or the vertex values themselves ((V,), (n+1,)*D, or (V, k)). ``split``:
    see the module docstring (default: ``kuhn_default_split``). Construction is
    vectorised over vertices (numpy); memory ≈ 8 bytes × params_dense.
    """
    D = check_int_range("D", D, 1)
    n = check_int_range("n", n, 1)
    m = kuhn_default_split(D, n) if split is None else _check_split(split, D)
    values, scalar = _vertex_values(G_values_or_callable, D, n)
    K = D - m
    P, C = (n + 1) ** K, (n + 1) ** m
    V = P * C
    nf = float(n)
    layers: list = []

    # 1. clamp: u_i = (relu(x_i), relu(x_i − 1)), layout [i][2]
    layers.append(Grouped(np.ones((D, 1, 2)), np.tile(np.array([[0.0, -1.0]]), (D, 1))))

    # 2. Dense fan-out to parents: [y⁺_A (K)] [y⁻_A (K)] [c_B (m)]
    g0 = 2 * K + m
    Wb = np.zeros((2 * D, g0))
    for i in range(K):
        Wb[2 * i, i], Wb[2 * i + 1, i] = nf, -nf
        Wb[2 * i, K + i], Wb[2 * i + 1, K + i] = -nf, nf
    for j in range(m):
        Wb[2 * (K + j), 2 * K + j], Wb[2 * (K + j) + 1, 2 * K + j] = 1.0, -1.0
    a_idx = np.indices((n + 1,) * K).reshape(K, P).T.astype(np.float64)  # (P, K) grid indices
    bias = np.zeros((P, g0))
    bias[:, :K] = -a_idx  # y = n·c − a
    bias[:, K : 2 * K] = a_idx
    layers.append(Dense(np.tile(Wb, (1, P)), bias.reshape(-1)))

    # 3. parent max trees
    trees = [[_unit(g0, i) for i in range(K)], [_unit(g0, K + i) for i in range(K)]]
    passes = [_unit(g0, 2 * K + j) for j in range(m)]
    blocks, trees, passes = _reduce(trees, passes)
    for W in blocks:
        layers.append(Grouped(np.broadcast_to(W, (P,) + W.shape).copy(), np.zeros((P, W.shape[1]))))
    Mp, Mm = trees[0][0], trees[1][0]
    gP = Mp.shape[0]

    if m == 0:
        hat_form = Mp + Mm
        G_hat = V
    else:
        # 4. fan-out to children: [relu(M⁺), w⁺_1..m, relu(M⁻), w⁻_1..m]
        kc = 2 * (m + 1)
        cb = np.zeros((gP, kc))
        cb[:, 0] = Mp
        cb[:, m + 1] = Mm
        for j in range(m):
            cj = passes[j]
            cb[:, 1 + j] = nf * cj - Mp
            cb[:, m + 2 + j] = -nf * cj - Mm
        b_idx = np.indices((n + 1,) * m).reshape(m, C).T.astype(np.float64)  # (C, m)
        cbias = np.zeros((C, kc))
        cbias[:, 1 : m + 1] = -b_idx
        cbias[:, m + 2 :] = b_idx
        Wc = np.tile(cb, (1, C))  # (gP, C·kc)
        layers.append(
            Grouped(np.broadcast_to(Wc, (P,) + Wc.shape).copy(),
                    np.broadcast_to(cbias.reshape(-1), (P, C * kc)).copy())
        )
        # 5. child max trees over the w's; relu(M±) pass through
        trees = [[_unit(kc, 1 + j) for j in range(m)], [_unit(kc, m + 2 + j) for j in range(m)]]
        passes = [_unit(kc, 0), _unit(kc, m + 1)]
        blocks, trees, passes = _reduce(trees, passes)
        for W in blocks:
            layers.append(Grouped(np.broadcast_to(W, (V,) + W.shape).copy(), np.zeros((V, W.shape[1]))))
        hat_form = trees[0][0] + trees[1][0] + passes[0] + passes[1]
        G_hat = V

    # 6. hat: Λ_v = relu(1 − M⁺ − M⁻)
    Wh = -hat_form[:, None]
    layers.append(Grouped(np.broadcast_to(Wh, (G_hat,) + Wh.shape).copy(), np.ones((G_hat, 1))))
    # 7. output
    layers.append(Dense(values, np.zeros(values.shape[1])))
    return KuhnDecoder(tuple(layers), D, n, m, values, scalar)


def densify(layer) -> Dense:
    """A Grouped layer as the equivalent (block-diagonal) Dense layer (same function, same nonzeros)."""
    if isinstance(layer, Dense):
        return layer
    G, g_in, g_out = layer.W.shape
    W = np.zeros((G * g_in, G * g_out))
    for g in range(G):
        W[g * g_in:(g + 1) * g_in, g * g_out:(g + 1) * g_out] = layer.W[g]
    return Dense(W, np.asarray(layer.b).reshape(-1))


def kuhn_ffn(dec: KuhnDecoder) -> tuple:
    """The L4 decoder as an FFN network for :class:`~infoflow_jax.core.slots.FFNBlock`.

    ``kuhn_decoder`` starts with a Grouped(D, 1, 2) clamp layer; an FFN block must start
    with a Dense layer (it reads the residual stream through forms), so the clamp is
    rewritten as the equivalent block-diagonal Dense (D → 2D) layer.
    """
    layers = list(dec.layers)
    if isinstance(layers[0], Grouped):
        layers[0] = densify(layers[0])
    return tuple(layers)


MAX_VERTICES = 2_000_000  # an L4 decoder with more vertices than this is refused up front


def kuhn_cells_for(D: int, lipschitz: float, target: float, *, max_vertices: int = MAX_VERTICES) -> int:
    """Least n with C_D·L/n ≤ target (the L4 error bound), n ≥ 1.

    The target is a share of the user's ε: when (n+1)^D would exceed ``max_vertices`` the
    decoder cannot be built, and the InputError names ``eps``.
    """
    import math

    from infoflow_jax.core.errors import InputError, check_positive

    check_positive("eps", target)
    n = max(1, math.ceil(kuhn_error_constant(D) * lipschitz / target - 1e-12))
    if (n + 1) ** D > max_vertices:
        raise InputError("eps", f"{target:.3g} (an L4 decoder's share of eps)",
                         f"large enough that its {D}-D decoder needs at most {max_vertices:,} vertices "
                         f"(n = {n} cells per axis gives {(n + 1) ** D:,})")
    return n

