"""Named Lipschitz functions used inside targets (F, ψ, G, g_i), and user callables.

A :class:`LipschitzFn` pairs a jnp-traceable function with a Lipschitz constant
that the bounds use. The library cannot prove a user's constant; it checks it
on a fine grid (:meth:`LipschitzFn.checked`) and refuses a constant that the
grid already contradicts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import jax.numpy as jnp
import numpy as np

from infoflow_jax.core.errors import InputError, check_positive


@dataclass(frozen=True)
class LipschitzFn:
    fn: Callable
    lipschitz: float
    name: str

    def __call__(self, u):
        return self.fn(u)

    def checked(self) -> "LipschitzFn":
        check_positive(f"lipschitz constant of {self.name}", self.lipschitz)
        u = np.linspace(0.0, 1.0, 20001)
        v = np.asarray(self.fn(jnp.asarray(u)), dtype=np.float64)
        if not np.all(np.isfinite(v)):
            raise InputError(f"function {self.name}", "NaN/inf on [0,1]", "finite on [0,1]")
        slope = float(np.max(np.abs(np.diff(v)) / np.diff(u)))
        if slope > self.lipschitz * (1 + 1e-9):
            raise InputError(f"lipschitz constant of {self.name}", self.lipschitz,
                             f">= {slope:.6g} (its slope on a grid of [0,1])")
        return self


def sine_plus_identity(u):
    """F(u) = sin(2πu)/2 + u; Lipschitz π + 1."""
    return jnp.sin(2 * jnp.pi * u) / 2 + u


def tent(u):
    """ψ(u) = 1 − 2|u − 1/2|; Lipschitz 2, values in [0,1] on [0,1]."""
    return 1 - 2 * jnp.abs(u - 0.5)


DEFAULT_F = LipschitzFn(sine_plus_identity, math.pi + 1.0, "sin(2πu)/2+u")
TENT = LipschitzFn(tent, 2.0, "tent")
IDENTITY = LipschitzFn(lambda u: u, 1.0, "identity")
SQUARE = LipschitzFn(lambda u: u * u, 2.0, "u²")

NAMED = {f.name: f for f in (DEFAULT_F, TENT, IDENTITY, SQUARE)}
