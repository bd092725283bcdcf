"""Mutants as data: one definition per kind of defect, shared by every construction that can have it.

A mutant is a deliberately broken build that keeps the original claim; the verifier must
report it failing. Where the defect is a change of a number, it is defined once here:

* :data:`BETA_SMALL` — an inverse temperature a hundredfold too small (β ↦ β/100);
* :data:`TEMPERATURE_OFF` — a lemma check's softmax at β/10 against the bound for β;
* :data:`SIGN_FLIPPED` — a value, score or FFN coefficient with its sign flipped (x ↦ −x);
* :func:`knot_dropped` — an L3 decoder with its most significant breakpoint unit removed;
* :func:`vertex_shifted` — an L4 (Kuhn) decoder with one vertex value moved.

A construction names its mutant (``MUTANTS = {"beta-small": BETA_SMALL.description, …}``)
and applies the defect where its proof puts the number (``BETA_SMALL(beta)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from infoflow_jax.core.decoders import most_significant_knot, piecewise_linear_decoder
from infoflow_jax.core.functions import LipschitzFn
from infoflow_jax.core.kuhn import KuhnDecoder, kuhn_ffn
from infoflow_jax.core.relu_net import Dense


@dataclass(frozen=True)
class Scale:
    """A number multiplied by ``factor``."""

    factor: float
    description: str

    def __call__(self, value):
        return value * self.factor


BETA_SMALL = Scale(1e-2, "β a hundredfold too small")
TEMPERATURE_OFF = Scale(0.1, "softmax evaluated at β/10 against the bound for β")
SIGN_FLIPPED = Scale(-1.0, "sign flipped")


def knot_dropped(F: LipschitzFn, N: int):
    """The L3 decoder of F with N cells, less its most significant breakpoint unit
    (the one whose removal changes F̂ the most, :func:`~infoflow_jax.core.decoders.most_significant_knot`)."""
    return piecewise_linear_decoder(F, N, drop_knot=most_significant_knot(piecewise_linear_decoder(F, N)))


def vertex_shifted(dec: KuhnDecoder, amount: float, index: int | None = None) -> tuple:
    """The L4 decoder's FFN network with one vertex value (default: the middle one) moved by ``amount``."""
    layers = list(kuhn_ffn(dec))
    W = np.array(layers[-1].W, copy=True)
    i = W.shape[0] // 2 if index is None else index
    W[i, 0] += amount
    layers[-1] = Dense(W, layers[-1].b)
    return tuple(layers)
