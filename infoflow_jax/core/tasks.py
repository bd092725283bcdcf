"""Tasks of THEORY §2: exact vectorised targets (float64), Lipschitz constants, domains.

Each task maps X of shape (..., T, d) to H(X) of shape (...). ``lipschitz`` is
the Lipschitz constant of H in the sup-norm on X (used by memorizing decoders).

Every built-in target is written once against the array module of its input
(:func:`~infoflow_jax.core.functions.array_module`): ``jax.numpy`` inside compiled programs,
NumPy on NumPy arrays (host-side work: probe screening, mutant calibration, step checks),
where an eager ``jnp`` call would compile a small XLA program per operation and shape. A
user's :class:`FunctionTask` runs its own function as given.
"""

from __future__ import annotations

import functools
from typing import Callable
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from infoflow_jax.core.domains import Cube, Margin, TopSetMargin
from infoflow_jax.core.errors import check_int_range
from infoflow_jax.core.functions import DEFAULT_F, IDENTITY, TENT, LipschitzFn, array_module, function_key


def largest(X, r: int):
    """(x_(1), …, x_(r)), the r largest values along the token axis, largest first: X (..., T, 1) →
    (..., r). On NumPy arrays in O(T) (a partition, then the r sorted): the targets at T = 10⁶."""
    xp = array_module(X)
    if xp is np and X.shape[-2] > r:
        return -np.sort(np.partition(-X[..., 0], r - 1, axis=-1)[..., :r], axis=-1)
    return -xp.sort(-X[..., 0], axis=-1)[..., :r]


def kth_largest(X, k: int):
    """x_(k) along the token axis: X (..., T, 1) → (...)."""
    return largest(X, k)[..., k - 1]


PADDING_RULES = ("min", "first")


def fill_tokens(X, valid, rule: str):
    """X (..., T, d) with the tokens where ``valid`` (..., T) is False replaced by a copy of the
    smallest real token (``"min"``, d = 1) or of token 1 (``"first"``); token 1 must be real."""
    m = valid[..., None]
    if rule == "min":
        tok = jnp.min(jnp.where(m, X, jnp.inf), axis=-2, keepdims=True)
    elif rule == "first":
        tok = X[..., :1, :]
    else:
        raise ValueError(f"padding rule {rule!r}: one of {PADDING_RULES}")
    return jnp.where(m, X, tok)


@dataclass(frozen=True)
class Task:
    """Base: id, human name, input dim d, sequence length T and domain."""

    T: int

    def __post_init__(self):
        check_int_range("T", self.T, 1)

    d = 1
    id = "?"
    name = "?"
    # How a padded input's padding tokens are filled so that H is unchanged (T padding, one
    # compiled program for several T): "min" — a copy of the smallest real token (d = 1; exact
    # for every function of the top order statistics or of maxima over tokens), "first" — a copy
    # of token 1 (exact for maxima over tokens of any d), None — not paddable.
    padding = None

    def fill_padding(self, X, valid):
        """X (..., T, d) with every token where ``valid`` (..., T) is False replaced as
        :attr:`padding` says (:func:`fill_tokens`); H(fill_padding(X, valid)) = H(real tokens
        of X) exactly, and so is its gradient with respect to the real tokens."""
        if self.padding is None:
            raise ValueError(f"task {self.id} does not declare how to pad (padding = None)")
        return fill_tokens(X, valid, self.padding)

    @property
    def domain(self):
        return Cube()

    @property
    def lipschitz(self) -> float:
        raise NotImplementedError

    def target(self, X):
        raise NotImplementedError

    def hyperparams(self) -> dict:
        """Task parameters for result records (k, r, D, γ; None where unused)."""
        return {"k": None, "r": None, "D": None, "gamma": None}


@dataclass(frozen=True)
class MaxRetrieval(Task):
    """T1: H(X) = F(max_s x_s) on the cube."""

    F: LipschitzFn = DEFAULT_F
    padding = "min"
    id = "T1"
    name = "max retrieval"

    @property
    def lipschitz(self) -> float:
        return self.F.lipschitz

    def target(self, X):
        return self.F(array_module(X).max(X[..., 0], axis=-1))


@dataclass(frozen=True)
class TwoHop(Task):
    """T2: H(X) = F(max_t ψ(m − x_t)), m = max_s x_s, on the cube."""

    F: LipschitzFn = DEFAULT_F
    psi: LipschitzFn = TENT
    padding = "min"
    id = "T2"
    name = "two-hop retrieval"

    @property
    def lipschitz(self) -> float:
        # m − x_t is 2-Lipschitz in ‖·‖_∞; ψ then max then F.
        return self.F.lipschitz * self.psi.lipschitz * 2.0

    def target(self, X):
        xp = array_module(X)
        x = X[..., 0]
        m = xp.max(x, axis=-1, keepdims=True)
        return self.F(xp.max(self.psi(m - x), axis=-1))


@dataclass(frozen=True)
class KthLargest(Task):
    """T3: H(X) = F(x_(k)) on Ω_{γ,k} (or on the cube when γ is None)."""

    k: int = 2
    gamma: float | None = None
    F: LipschitzFn = DEFAULT_F
    padding = "min"
    id = "T3"
    name = "k-th largest"

    def __post_init__(self):
        super().__post_init__()
        check_int_range("k", self.k, 1, self.T)
        if self.gamma is not None:
            Margin(self.gamma, self.k)  # validates γ ∈ (0, 1/k)

    @property
    def domain(self):
        return Cube() if self.gamma is None else Margin(self.gamma, self.k)

    @property
    def lipschitz(self) -> float:
        return self.F.lipschitz  # x_(k) is 1-Lipschitz in ‖·‖_∞

    def target(self, X):
        return self.F(kth_largest(X, self.k))

    def hyperparams(self) -> dict:
        return {"k": self.k, "r": None, "D": None, "gamma": self.gamma}


# ----------------------------------------------------------------------------- T4–T6
@dataclass(frozen=True)
class CoupledG:
    """The default coupled decode target on [0,1]^r (sup-norm Lipschitz constant 2):

        G_r(u) = Π_j u_j / r + Σ_j sin(2π j u_j) / (2π j r).

    Lipschitz in ‖·‖_∞: |Π u − Π v| ≤ Σ_j |u_j − v_j| ≤ r‖u − v‖_∞ on the cube, and
    each sine term has derivative cos(·)/r, so L_∞ ≤ 1 + 1 = 2. The product couples
    all r coordinates (G_r is no sum of 1-D functions); the sines make it asymmetric.
    """

    r: int
    lipschitz: float = 2.0

    @property
    def name(self) -> str:
        return f"Πu/r+Σsin(2πju_j)/(2πjr) [r={self.r}]"

    def __call__(self, u):
        xp = array_module(u)
        u = xp.asarray(u)
        j = xp.arange(1, self.r + 1, dtype=u.dtype)
        return xp.prod(u, axis=-1) / self.r + xp.sum(xp.sin(2 * xp.pi * j * u) / (2 * xp.pi * j), axis=-1) / self.r


def scaled(F: LipschitzFn, c: float) -> LipschitzFn:
    """u ↦ c·F(u), Lipschitz |c|·L_F."""
    return LipschitzFn(lambda u: c * F(u), abs(c) * F.lipschitz, f"{c:g}·{F.name}")


@functools.lru_cache(maxsize=None)  # one object per r: tasks compare equal, compiled programs are shared
def default_decoupled(r: int) -> tuple[LipschitzFn, ...]:
    """G_j = F/r with F(u) = sin(2πu)/2 + u: Σ_j G_j is (π + 1)-Lipschitz in ‖·‖_∞ for every r."""
    return tuple(scaled(DEFAULT_F, 1.0 / r) for _ in range(r))


@dataclass(frozen=True)
class CoupledTopR(Task):
    """T4: H(X) = G(x_(1), …, x_(r)) on Ω_{γ,r}; G Lipschitz in ‖·‖_∞ (default :class:`CoupledG`)."""

    r: int = 2
    gamma: float = 0.1
    G: object = None
    padding = "min"
    id = "T4"
    name = "coupled top-r decode"

    def __post_init__(self):
        super().__post_init__()
        check_int_range("r", self.r, 1, self.T)
        Margin(self.gamma, self.r)  # validates γ ∈ (0, 1/r)
        if self.G is None:
            object.__setattr__(self, "G", CoupledG(self.r))

    @property
    def domain(self):
        return Margin(self.gamma, self.r)

    @property
    def lipschitz(self) -> float:
        return float(self.G.lipschitz)  # x ↦ (x_(1..r)) is 1-Lipschitz in ‖·‖_∞

    def target(self, X):
        return self.G(largest(X, self.r))

    def hyperparams(self) -> dict:
        return {"k": None, "r": self.r, "D": None, "gamma": self.gamma}


@dataclass(frozen=True)
class DecoupledTopR(Task):
    """T5: H(X) = Σ_j G_j(x_(j)) on Ω_{γ,r} (default G_j = F/r, :func:`default_decoupled`)."""

    r: int = 2
    gamma: float = 0.1
    Gs: tuple = ()
    padding = "min"
    id = "T5"
    name = "decoupled top-r decode"

    def __post_init__(self):
        super().__post_init__()
        check_int_range("r", self.r, 1, self.T)
        Margin(self.gamma, self.r)
        if not self.Gs:
            object.__setattr__(self, "Gs", default_decoupled(self.r))
        if len(self.Gs) != self.r:
            from infoflow_jax.core.errors import InputError
            raise InputError("Gs", f"{len(self.Gs)} functions", f"r = {self.r} functions")

    @property
    def domain(self):
        return Margin(self.gamma, self.r)

    @property
    def lipschitz(self) -> float:
        return float(sum(G.lipschitz for G in self.Gs))

    def target(self, X):
        top = largest(X, self.r)
        return sum(G(top[..., j]) for j, G in enumerate(self.Gs))

    def hyperparams(self) -> dict:
        return {"k": None, "r": self.r, "D": None, "gamma": self.gamma}


@dataclass(frozen=True)
class LinearFeature:
    """g(x) = ⟨w, x⟩ with w ≥ 0, Σ w ≤ 1: values in [0,1] on the cube, ‖w‖₁-Lipschitz in ‖·‖_∞.
    Linear in the embedding, so one attention head can take max_s g(x_s) (C7)."""

    w: tuple[float, ...]

    def __post_init__(self):
        from infoflow_jax.core.errors import InputError
        if any(c < 0 for c in self.w) or sum(self.w) > 1 + 1e-12 or not self.w:
            raise InputError("g weights", self.w, "non-negative weights with sum ≤ 1")

    @property
    def lipschitz(self) -> float:
        return float(sum(self.w))

    @property
    def name(self) -> str:
        return "⟨(" + ",".join(f"{c:g}" for c in self.w) + "), x⟩"

    def __call__(self, X):
        xp = array_module(X)
        X = xp.asarray(X)
        return X @ xp.asarray(self.w, dtype=X.dtype)


def default_features(d: int, D: int) -> tuple[LinearFeature, ...]:
    """g_i = x[i] for i < d; beyond, the average of coordinates i mod d and (i+1) mod d."""
    gs = []
    for i in range(D):
        w = [0.0] * d
        if i < d or d == 1:
            w[i % d] = 1.0
        else:
            w[i % d] += 0.5
            w[(i + 1) % d] += 0.5
        gs.append(LinearFeature(tuple(w)))
    return tuple(gs)


@dataclass(frozen=True)
class DRetrieval(Task):
    """T6: H(X) = G(max_s g_1(x_s), …, max_s g_D(x_s)) on the cube [0,1]^{T×d}.

    g_i: :class:`LinearFeature` (default :func:`default_features`), G: Lipschitz in
    ‖·‖_∞ on [0,1]^D (default :class:`CoupledG` (D))."""

    d: int = 2
    D: int = 2
    gs: tuple = ()
    G: object = None
    padding = "first"
    id = "T6"
    name = "D-retrieval"

    def __post_init__(self):
        super().__post_init__()
        check_int_range("d", self.d, 1)
        check_int_range("D", self.D, 1)
        if not self.gs:
            object.__setattr__(self, "gs", default_features(self.d, self.D))
        if self.G is None:
            object.__setattr__(self, "G", CoupledG(self.D))
        if len(self.gs) != self.D:
            from infoflow_jax.core.errors import InputError
            raise InputError("gs", f"{len(self.gs)} features", f"D = {self.D} features")

    @property
    def lipschitz(self) -> float:
        return float(self.G.lipschitz) * max(g.lipschitz for g in self.gs)

    def retrieved(self, X):
        """(max_s g_1(x_s), …, max_s g_D(x_s)): X (..., T, d) → (..., D)."""
        xp = array_module(X)
        return xp.stack([xp.max(g(X), axis=-1) for g in self.gs], axis=-1)

    def target(self, X):
        return self.G(self.retrieved(X))

    def hyperparams(self) -> dict:
        return {"k": None, "r": None, "D": self.D, "gamma": None}


@dataclass(frozen=True)
class FunctionTask(Task):
    """A user's task: H(X) = fn(X), with X of shape (..., T, d) → (...), on a given domain.

    ``fn`` must be a vectorised jax function, exact in float64 (the verifier differentiates
    through it and trusts it as the truth). ``lipschitz`` is H's Lipschitz constant in the
    sup-norm on X (used by memorizing decoders; ``nan`` if unknown). ``task_id`` and
    ``title`` name it in records.

        task = FunctionTask(T=8, fn=lambda X: jnp.max(X[..., 0], -1) ** 2, lipschitz=2.0)
    """

    fn: Callable = None
    lipschitz_constant: float = float("nan")
    d: int = 1
    on: object = Cube()
    task_id: str = "user"
    title: str = "user task"

    def __post_init__(self):
        super().__post_init__()
        check_int_range("d", self.d, 1)
        if not callable(self.fn):
            from infoflow_jax.core.errors import InputError
            raise InputError("fn", self.fn, "a callable X (..., T, d) -> (...)")

    # equal when ``fn`` computes the same thing (:func:`~infoflow_jax.core.functions.function_key`): a
    # build that writes ``fn=lambda X: …`` anew gives an equal task, so the builds of one shape share
    # one compiled program (error functions are cached on the task). A NaN constant equals a NaN one.
    def _key(self):
        L = self.lipschitz_constant
        return (self.T, function_key(self.fn), "nan" if L != L else L, self.d, self.on, self.task_id, self.title)

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    @property
    def id(self) -> str:
        return self.task_id

    @property
    def name(self) -> str:
        return self.title

    @property
    def domain(self):
        return self.on

    @property
    def lipschitz(self) -> float:
        return float(self.lipschitz_constant)

    def target(self, X):
        return self.fn(X)


# ----------------------------------------------------------------------------- T7
TOPK_GAPS = ("all", "k", "none")


def top_k_mean(X, k: int, v):
    """(1/k)·Σ_{j≤k} v(x_(j)): X (..., T, 1) → (...). Ties at x_(k) = x_(k+1) do not matter
    for the value (tied tokens have equal v)."""
    return array_module(X).mean(v(largest(X, k)), axis=-1)


@dataclass(frozen=True)
class TopKMean(Task):
    """T7, top-k aggregation: H(X) = F((1/k)·Σ_{j≤k} v(x_(j))) (default v = identity, F = sin(2πu)/2 + u).

    Well posed on the whole cube, and L_F·L_v-Lipschitz in ‖·‖_∞ there (each x_(j) is
    1-Lipschitz, so each v(x_(j)) is L_v-Lipschitz; the mean keeps it). ``v`` maps [0,1] into
    [0,1] (F is evaluated on [0,1]). The domain is chosen by ``gaps``:

      "k"    Ω^set_{γ,k} (:class:`~infoflow_jax.core.domains.TopSetMargin`): x_(k) − x_(k+1) ≥ γ only —
             the margin that makes the top-k *set* separated; all the task needs.
      "all"  Ω_{γ,k+1} (:class:`~infoflow_jax.core.domains.Margin` (γ, k+1)): x_(j) − x_(j+1) ≥ γ for
             j = 1..k — what C8's exclusion layers need (each flags one token by its own gap).
      "none" the cube (γ unused; C5 memorizes the target there).
    """

    k: int = 2
    gamma: float | None = None
    v: LipschitzFn = IDENTITY
    F: LipschitzFn = DEFAULT_F
    gaps: str = "all"
    padding = "min"
    id = "T7"
    name = "top-k aggregation"

    def __post_init__(self):
        super().__post_init__()
        from infoflow_jax.core.errors import InputError, check_choice
        check_choice("gaps", self.gaps, TOPK_GAPS)
        check_int_range("k", self.k, 1, self.T - 1 if self.gaps != "none" else self.T)
        if self.gaps != "none":
            if self.gamma is None:
                raise InputError("gamma", None, "a number in (0, 1/(k+1)) for gaps='all', (0, 1) for gaps='k'")
            self.domain  # validates γ

    @property
    def domain(self):
        if self.gaps == "none":
            return Cube()
        return Margin(self.gamma, self.k + 1) if self.gaps == "all" else TopSetMargin(self.gamma, self.k)

    @property
    def lipschitz(self) -> float:
        return self.F.lipschitz * self.v.lipschitz

    def target(self, X):
        return self.F(top_k_mean(X, self.k, self.v))

    def hyperparams(self) -> dict:
        return {"k": self.k, "r": None, "D": None, "gamma": self.gamma}
