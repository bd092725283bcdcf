"""Targets of the two papers' experiments (issue 12), on d-dimensional Gaussian tokens.

Every task is a frozen dataclass with ``target(X)`` (X of shape (..., T, d) → (...,)),
``sample(key, n)`` (n inputs (n, T, d)) and ``hyperparams()`` (for records). Fixed task
matrices (directions a_i, bilinear forms A_i) are drawn once from
``numpy.random.default_rng(task_seed)``, so a task is a pure value.

* ``headcount``  (arXiv 2510.06662): y = Σ_{i≤D} max_t a_iᵀ x^(t), x ~ N(0, I_d).
* ``intrinsic``  (arXiv 2605.17930): F = Σ_{i≤D} max_{s,t} x(s)ᵀ A_i x(t), x ~ N(0, I_4).
* ``triangle``   (arXiv 2605.17930): F = min_{t1<t2<t3} ‖x(t1) + x(t2) + x(t3)‖,
  x ~ N(0, 2 I_2) with ‖x‖ clamped to [0.2, 4].
* ``maxpos``     (probe task): y = max_t aᵀ x^(t); the probe asks whether the argmax
  token x^(t*) (and the second-largest x^(t₂)) can be read linearly off the attention output.
* ``fixedpos``   (fixed-position aggregation): F = x(1) + x(2) + x(3), x ~ N(0, 1), d = 1.

The sum over i and the max over tokens are vectorised (no Python loops over data);
the triangle task gathers all C(T, 3) index triples at once (T = 64: 41 664 triples).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property

import jax
import jax.numpy as jnp
import numpy as np

from infoflow_jax.core.errors import InputError, check_int_range

__all__ = ["PAPER_TASKS", "HeadCount", "IntrinsicDim", "TriangleCentre", "MaxPosition",
           "FixedPositionSum", "make_paper_task", "argmax_tokens", "pair_argmax"]


def _directions(D: int, d: int, seed: int) -> np.ndarray:
    """D unit vectors in ℝ^d (rows), Gaussian then normalised: a_iᵀx ~ N(0, 1) for x ~ N(0, I)."""
    a = np.random.default_rng(seed).standard_normal((D, d))
    return a / np.linalg.norm(a, axis=1, keepdims=True)


@dataclass(frozen=True)
class HeadCount:
    """y = Σ_{i=1..D} max_t a_iᵀ x^(t): D independent max retrievals, summed."""

    T: int
    D: int
    d: int = 8
    task_seed: int = 0
    name = "headcount"

    @cached_property
    def directions(self) -> np.ndarray:
        return _directions(self.D, self.d, self.task_seed)

    def target(self, X):
        scores = jnp.einsum("...td,id->...it", X, jnp.asarray(self.directions, X.dtype))
        return jnp.sum(jnp.max(scores, axis=-1), axis=-1)

    def sample(self, key, n: int):
        return jax.random.normal(key, (n, self.T, self.d))

    def hyperparams(self) -> dict:
        return {"D": self.D, "d": self.d, "task_seed": self.task_seed}


@dataclass(frozen=True)
class IntrinsicDim:
    """F = Σ_{i=1..D} max_{s,t} x(s)ᵀ A_i x(t) (all ordered pairs, s = t included)."""

    T: int
    D: int
    d: int = 4
    task_seed: int = 0
    name = "intrinsic"

    @cached_property
    def forms(self) -> np.ndarray:
        """A_i with i.i.d. N(0, 1/d) entries, shape (D, d, d): x(s)ᵀA_i x(t) has variance ≈ 1."""
        return np.random.default_rng(self.task_seed).standard_normal((self.D, self.d, self.d)) \
            / np.sqrt(self.d)

    def target(self, X):
        A = jnp.asarray(self.forms, X.dtype)
        pair = jnp.einsum("...sd,ide,...te->...ist", X, A, X)
        return jnp.sum(jnp.max(pair, axis=(-2, -1)), axis=-1)

    def sample(self, key, n: int):
        return jax.random.normal(key, (n, self.T, self.d))

    def hyperparams(self) -> dict:
        return {"D": self.D, "d": self.d, "task_seed": self.task_seed}


def pair_argmax(task: IntrinsicDim, X):
    """Where the intrinsic-dimension target's maxima sit, for inputs X (n, T, d).

    Returns ``(partner, pair)``: ``partner[n, i, s]`` = argmax_t x(s)ᵀA_i x(t), the token
    that InfoFlow's layer-1 head i retrieves at query s (u_i(s) = x(s)ᵀA_i x(partner));
    ``pair[n, i]`` = (s*, t*), the ordered pair attaining max_{s,t} x(s)ᵀA_i x(t), whose
    s* the readout retrieves in layer 2 (m_i = u_i(s*)).
    """
    A = jnp.asarray(task.forms, X.dtype)
    scores = jnp.einsum("nsd,ide,nte->nist", X, A, X)  # (n, D, T, T)
    partner = jnp.argmax(scores, axis=-1)
    T = scores.shape[-1]
    flat = jnp.argmax(scores.reshape(scores.shape[:2] + (T * T,)), axis=-1)
    return partner, jnp.stack([flat // T, flat % T], axis=-1)


@dataclass(frozen=True)
class TriangleCentre:
    """F = min over t1 < t2 < t3 of ‖x(t1) + x(t2) + x(t3)‖, x ∈ ℝ².

    Inputs: x ~ N(0, 2 I_2), then rescaled so that ‖x‖ ∈ [0.2, 4] (direction kept).
    """

    T: int
    d: int = 2
    r_min: float = 0.2
    r_max: float = 4.0
    D = None
    name = "triangle"

    def __post_init__(self):
        check_int_range("T", self.T, 3)

    @cached_property
    def triples(self) -> np.ndarray:
        """All index triples t1 < t2 < t3, shape (C(T,3), 3)."""
        return np.asarray(list(itertools.combinations(range(self.T), 3)), dtype=np.int32)

    def target(self, X):
        tri = jnp.asarray(self.triples)
        S = X[..., tri[:, 0], :] + X[..., tri[:, 1], :] + X[..., tri[:, 2], :]
        return jnp.min(jnp.linalg.norm(S, axis=-1), axis=-1)

    def sample(self, key, n: int):
        x = jnp.sqrt(2.0) * jax.random.normal(key, (n, self.T, self.d))
        r = jnp.linalg.norm(x, axis=-1, keepdims=True)
        return x * jnp.clip(r, self.r_min, self.r_max) / jnp.maximum(r, 1e-30)

    def hyperparams(self) -> dict:
        return {"d": self.d, "r_min": self.r_min, "r_max": self.r_max}


@dataclass(frozen=True)
class MaxPosition:
    """y = max_t aᵀ x^(t) (one direction a). The probe targets are x^(t*) and x^(t₂)."""

    T: int
    d: int = 4
    task_seed: int = 0
    D = 1
    name = "maxpos"

    @cached_property
    def directions(self) -> np.ndarray:
        return _directions(1, self.d, self.task_seed)

    def target(self, X):
        return jnp.max(X @ jnp.asarray(self.directions[0], X.dtype), axis=-1)

    def sample(self, key, n: int):
        return jax.random.normal(key, (n, self.T, self.d))

    def hyperparams(self) -> dict:
        return {"d": self.d, "task_seed": self.task_seed}


def argmax_tokens(task: MaxPosition, X):
    """(x^(t*), x^(t₂)): the tokens with the largest and second-largest score aᵀx, (n, d) each."""
    scores = X @ jnp.asarray(task.directions[0], X.dtype)
    order = jnp.argsort(-scores, axis=-1)
    take = lambda j: jnp.take_along_axis(X, order[:, j, None, None], axis=1)[:, 0]  # noqa: E731
    return take(0), take(1)


@dataclass(frozen=True)
class FixedPositionSum:
    """F = x(1) + x(2) + x(3) (positions 1..3, 1-based), x ~ N(0, 1), d = 1."""

    T: int
    d: int = 1
    D = None
    name = "fixedpos"

    def __post_init__(self):
        check_int_range("T", self.T, 3)

    def target(self, X):
        return jnp.sum(X[..., :3, 0], axis=-1)

    def sample(self, key, n: int):
        return jax.random.normal(key, (n, self.T, self.d))

    def hyperparams(self) -> dict:
        return {"d": self.d}


PAPER_TASKS = {"headcount": HeadCount, "intrinsic": IntrinsicDim, "triangle": TriangleCentre,
               "maxpos": MaxPosition, "fixedpos": FixedPositionSum}


def make_paper_task(name: str, T: int, D: int | None = None, d: int | None = None):
    """The task ``name`` at length T; D for headcount/intrinsic; d overrides the default."""
    if name not in PAPER_TASKS:
        raise InputError("task", name, "one of " + ", ".join(PAPER_TASKS))
    check_int_range("T", T, 1)
    kw = {}
    if name in ("headcount", "intrinsic"):
        if D is None:
            raise InputError("D", None, f"an integer >= 1 (task {name} needs D)")
        kw["D"] = check_int_range("D", D, 1)
    if d is not None:
        if name == "fixedpos" and d != 1:
            raise InputError("d", d, "1 (fixedpos has scalar tokens)")
        kw["d"] = check_int_range("d", d, 1)
    return PAPER_TASKS[name](T=T, **kw)
