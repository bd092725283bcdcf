"""Tasks of THEORY §2: exact vectorised targets (float64), Lipschitz constants, domains.

Each task maps X of shape (..., T, d) to H(X) of shape (...). ``lipschitz`` is
the Lipschitz constant of H in the sup-norm on X (used by memorizing decoders).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax.numpy as jnp

from infoflow_jax.domains import Cube, Margin
from infoflow_jax.errors import check_int_range
from infoflow_jax.functions import DEFAULT_F, TENT, LipschitzFn


def kth_largest(X, k: int):
    """x_(k) along the token axis: X (..., T, 1) → (...)."""
    return -jnp.sort(-X[..., 0], axis=-1)[..., k - 1]


@dataclass(frozen=True)
class Task:
    """Base: id, human name, input dim d, sequence length T and domain."""

    T: int

    def __post_init__(self):
        check_int_range("T", self.T, 1)

    d = 1
    id = "?"
    name = "?"

    @property
    def domain(self):
        return Cube()

    @property
    def lipschitz(self) -> float:
        raise NotImplementedError

    def target(self, X):
        raise NotImplementedError

    def params(self) -> dict:
        """Task parameters for result records (k, r, D, γ; None where unused)."""
        return {"k": None, "r": None, "D": None, "gamma": None}


@dataclass(frozen=True)
class MaxRetrieval(Task):
    """T1: H(X) = F(max_s x_s) on the cube."""

    F: LipschitzFn = DEFAULT_F
    id = "T1"
    name = "max retrieval"

    @property
    def lipschitz(self) -> float:
        return self.F.lipschitz

    def target(self, X):
        return self.F(jnp.max(X[..., 0], axis=-1))


@dataclass(frozen=True)
class TwoHop(Task):
    """T2: H(X) = F(max_t ψ(m − x_t)), m = max_s x_s, on the cube."""

    F: LipschitzFn = DEFAULT_F
    psi: LipschitzFn = TENT
    id = "T2"
    name = "two-hop retrieval"

    @property
    def lipschitz(self) -> float:
        # m − x_t is 2-Lipschitz in ‖·‖_∞; ψ then max then F.
        return self.F.lipschitz * self.psi.lipschitz * 2.0

    def target(self, X):
        x = X[..., 0]
        m = jnp.max(x, axis=-1, keepdims=True)
        return self.F(jnp.max(self.psi(m - x), axis=-1))


@dataclass(frozen=True)
class KthLargest(Task):
    """T3: H(X) = F(x_(k)) on Ω_{γ,k} (or on the cube when γ is None)."""

    k: int = 2
    gamma: float | None = None
    F: LipschitzFn = DEFAULT_F
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

    def params(self) -> dict:
        return {"k": self.k, "r": None, "D": None, "gamma": self.gamma}
