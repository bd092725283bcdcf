"""Input domains Ω of THEORY §1, with membership and a retraction onto Ω.

The retraction maps any X to a point of Ω and is the identity on Ω; the
adversarial search uses it after every ascent step. It need not be the
Euclidean projection: every point of Ω gives a valid lower estimate of the sup.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from infoflow_jax.core.errors import InputError, check_int_range
from infoflow_jax.core.functions import array_module


def top_k_indices(x: np.ndarray, k: int) -> np.ndarray:
    """(..., k) indices of the k largest entries of x along its last axis, largest first, ties by
    lowest index — exactly ``argsort(-x, stable=True)[..., :k]`` — in O(T) (a partition and a pass),
    not O(T log T): at T = 10⁶ the two sorts of a retraction were most of a proof check's time."""
    T = x.shape[-1]
    if k >= T or np.isnan(x).any():
        return np.argsort(-x, axis=-1, kind="stable")[..., :k]
    v = -np.partition(-x, k - 1, axis=-1)[..., k - 1:k]  # the k-th largest value
    tie = x == v
    chosen = (x > v) | (tie & (np.cumsum(tie, axis=-1) <= k - np.sum(x > v, axis=-1, keepdims=True)))
    idx = np.nonzero(chosen.reshape(-1, T))[1].reshape(x.shape[:-1] + (k,))  # per row, in index order
    return np.take_along_axis(idx, np.argsort(-np.take_along_axis(x, idx, axis=-1), axis=-1, kind="stable"), axis=-1)


@dataclass(frozen=True)
class Cube:
    """[0,1]^{T×d}."""

    name = "cube"

    def __call__(self, X):
        """A domain is its own retraction: hashable by value, so jit caches on it."""
        return self.retract(X)

    def retract(self, X):
        return array_module(X).clip(X, 0.0, 1.0)

    def contains(self, X, tol: float = 0.0):
        return jnp.all((X >= -tol) & (X <= 1 + tol), axis=(-2, -1))

    def describe(self) -> str:
        return "cube [0,1]^{T×d}"


@dataclass(frozen=True)
class Margin:
    """Ω_{γ,k} = {X ∈ [0,1]^T : x_(j) − x_(j+1) ≥ γ for j = 1..k−1} (d = 1)."""

    gamma: float
    k: int

    name = "margin"

    def __call__(self, X):
        """A domain is its own retraction: hashable by value, so jit caches on it."""
        return self.retract(X)

    def __post_init__(self):
        check_int_range("k", self.k, 1)
        if not (isinstance(self.gamma, (int, float)) and 0 < self.gamma < 1 / self.k):
            raise InputError("gamma", self.gamma, f"a number with 0 < gamma < 1/k = {1 / self.k:g}")

    def retract(self, X):
        """Sort; lift the top k so consecutive gaps are ≥ γ (capped so x_(j) ≤ 1 − (j−1)γ);
        lower the rest to at most x_(k); undo the sort. Identity on Ω."""
        xp = array_module(X)
        X = xp.clip(X, 0.0, 1.0)
        x = X[..., 0]
        k = self.k
        if xp is np and x.shape[-1] > k:  # the same map without sorting the rest: each of them is min(x, top_k)
            idx = top_k_indices(x, k)
            top = self._lifted(np, np.take_along_axis(x, idx, axis=-1))
            out = np.minimum(x, top[k - 1][..., None])
            np.put_along_axis(out, idx, np.stack(top, axis=-1), axis=-1)
            return out[..., None]
        order = xp.argsort(-x, axis=-1, stable=True)  # ties: NumPy and JAX alike
        s = xp.take_along_axis(x, order, axis=-1)
        top = self._lifted(xp, s)
        rest = xp.minimum(s[..., k:], top[k - 1][..., None])
        s_new = xp.concatenate([xp.stack(top, axis=-1), rest], axis=-1)
        inv = xp.argsort(order, axis=-1, stable=True)
        return xp.take_along_axis(s_new, inv, axis=-1)[..., None]

    def _lifted(self, xp, s):
        """The new top k from the sorted top k (s[..., :k]): the k-th capped at 1 − (k−1)γ, each above
        raised to the next + γ and capped at 1 − jγ."""
        k, g = self.k, self.gamma
        top = [None] * k
        top[k - 1] = xp.clip(s[..., k - 1], 0.0, 1.0 - (k - 1) * g)
        for j in range(k - 2, -1, -1):
            top[j] = xp.minimum(xp.maximum(s[..., j], top[j + 1] + g), 1.0 - j * g)
        return top

    def contains(self, X, tol: float = 1e-12):
        s = -jnp.sort(-X[..., 0], axis=-1)
        gaps = s[..., : self.k - 1] - s[..., 1 : self.k]
        in_cube = jnp.all((X >= -tol) & (X <= 1 + tol), axis=(-2, -1))
        return in_cube & jnp.all(gaps >= self.gamma - tol, axis=-1)

    def describe(self) -> str:
        return f"margin Ω_(γ={self.gamma:g}, k={self.k})"


@dataclass(frozen=True)
class TopSetMargin:
    """Ω^set_{γ,k} = {X ∈ [0,1]^T : x_(k) − x_(k+1) ≥ γ} (d = 1): only the gap at k.

    This is the margin that makes the *top-k set* well separated, and all that
    T7 (top-k aggregation) needs to be well posed; ties *inside* the top k and
    inside the rest are allowed. (:class:`Margin` (γ, k+1) demands every gap
    j = 1..k, which the exclusion layers of C3/C6/C8 need.) Needs T ≥ k+1.
    """

    gamma: float
    k: int

    name = "top-set margin"

    def __call__(self, X):
        return self.retract(X)

    def __post_init__(self):
        check_int_range("k", self.k, 1)
        if not (isinstance(self.gamma, (int, float)) and 0 < self.gamma < 1):
            raise InputError("gamma", self.gamma, "a number with 0 < gamma < 1")

    def retract(self, X):
        """Clip to the cube; with a = x_(k), b = x_(k+1) and c = clip((a+b)/2, γ/2, 1 − γ/2),
        raise the top k to ≥ c + γ/2 and lower the rest to ≤ c − γ/2. Identity on Ω
        (there c + γ/2 ≤ a and c − γ/2 ≥ b); the order of tokens is kept."""
        xp = array_module(X)
        X = xp.clip(X, 0.0, 1.0)
        x = X[..., 0]
        if xp is np:  # O(T): the k-th and (k+1)-th values by a partition, the top set by top_k_indices
            s = -np.partition(-x, (self.k - 1, self.k), axis=-1)
            top = np.zeros(x.shape, bool)
            np.put_along_axis(top, top_k_indices(x, self.k), True, axis=-1)
        else:
            s = -xp.sort(-x, axis=-1)
            # ties at x_(k) = x_(k+1) put both groups on one value; rank decides, as a stable sort would
            top = xp.argsort(xp.argsort(-x, axis=-1, stable=True), axis=-1) < self.k
        a, b = s[..., self.k - 1 : self.k], s[..., self.k : self.k + 1]
        c = xp.clip((a + b) / 2, self.gamma / 2, 1.0 - self.gamma / 2)
        x_new = xp.where(top, xp.maximum(x, c + self.gamma / 2), xp.minimum(x, c - self.gamma / 2))
        return x_new[..., None]

    def contains(self, X, tol: float = 1e-12):
        s = -jnp.sort(-X[..., 0], axis=-1)
        in_cube = jnp.all((X >= -tol) & (X <= 1 + tol), axis=(-2, -1))
        return in_cube & (s[..., self.k - 1] - s[..., self.k] >= self.gamma - tol)

    def describe(self) -> str:
        return f"top-set margin Ω^set_(γ={self.gamma:g}, k={self.k}) (gap at k only)"
