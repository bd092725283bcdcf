"""Lemma L3: the 1-D piecewise-linear decoder as a width-(N+1) ReLU layer.

    F̂(u) = F(0) + Σ_{j=0}^{N-1} c_j·relu(u − j/N) − s_{N-1}·relu(u − 1)

with s_j = N·(F((j+1)/N) − F(j/N)) the slope on the j-th cell and
c_0 = s_0, c_j = s_j − s_{j−1}. F̂ interpolates F at the knots j/N, and the
last unit makes F̂ constant for u ≥ 1, as the first knot makes it constant for
u ≤ 0: F̂(u) = F̂(clip(u, 0, 1)). Error ≤ L/(2N) on [0,1] (L3), so for any real
u, |F̂(u) − F(clip u)| ≤ L/(2N). Parameters: 2N + O(1).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from infoflow_jax.core.errors import check_int_range
from infoflow_jax.core.relu_net import Dense


def knot_slopes(F: Callable, N: int) -> tuple[np.ndarray, np.ndarray]:
    """Knots j/N (j = 0..N) and the slope on each of the N cells."""
    knots = np.linspace(0.0, 1.0, N + 1)
    values = np.asarray(F(knots), dtype=np.float64)
    return knots, N * np.diff(values)


def piecewise_linear_decoder(F: Callable, N: int, *, drop_knot: int | None = None) -> list[Dense]:
    """The L3 decoder of ``F`` on [0,1] with ``N`` cells, as a ReLU network 1 → 1.

    ``drop_knot`` removes one breakpoint unit (a negative control, not a feature).
    """
    check_int_range("N", N, 1)
    knots, slopes = knot_slopes(F, N)
    c = np.diff(slopes, prepend=0.0)  # c_0 = s_0, c_j = s_j − s_{j−1}
    W1 = np.ones((1, N + 1))
    b1 = np.concatenate([-knots[:-1], [-1.0]])
    W2 = np.concatenate([c, [-slopes[-1]]])[:, None]
    if drop_knot is not None:
        W2[drop_knot] = 0.0
    F0 = float(np.asarray(F(np.zeros(1)))[0])
    return [Dense(W1, b1), Dense(W2, np.array([F0]))]


def most_significant_knot(net) -> int:
    """Index of the breakpoint unit of an L3 decoder whose removal changes F̂ the most (|c_j|·(1 − j/N))."""
    c = net[1].W[:-1, 0]
    N = len(c)
    return int(np.argmax(np.abs(c) * (1 - np.arange(N) / N)))


def clip_unit_interval_net(scale: float, shift: float) -> list[Dense]:
    """u ↦ clip(scale·u + shift, 0, 1) = relu(a) − relu(a − 1), a = scale·u + shift (2 ReLUs)."""
    return [Dense(np.array([[scale, scale]]), np.array([shift, shift - 1.0])),
            Dense(np.array([[1.0], [-1.0]]), np.zeros(1))]
