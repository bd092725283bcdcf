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


# ----------------------------------------------------------------------------- localized defects
# Subtle on purpose: each changes the function on a small region only (one decoder cell, the end
# of a decoder's range, a band of token values, one position, one Kuhn vertex's simplices), by
# 1.2–3× the claimed bound, so that only a verifier that looks there catches it. The place is
# drawn from ``rng`` (a construction's ``mutant_seed``), never chosen to suit the verifier.
LOCALIZED_STRENGTH = 2.2  # height of a localized defect, in units of the claimed bound
# the names constructions give their localized mutants (tests/test_localized_mutants.py checks them
# at the default budget; the per-construction tests' small budgets are for the gross ones)
LOCALIZED_MUTANTS = frozenset({"cell-bump", "end-ramp", "exclusion-weakened", "position-weakened", "vertex-moved",
                               "corner-vertex-moved"})


def _breakpoints(net) -> np.ndarray:
    """Sorted distinct breakpoints −b/w of a 1 → W → 1 ReLU net's hidden units."""
    W1, b1 = np.asarray(net[0].W)[0], np.asarray(net[0].b)
    live = W1 != 0
    return np.unique(-b1[live] / W1[live])


def _with_units(net, w, b, c) -> tuple:
    """A 1 → W → 1 ReLU net with hidden units relu(w_j z + b_j)·c_j appended."""
    W1, b1 = np.asarray(net[0].W), np.asarray(net[0].b)
    W2, b2 = np.asarray(net[1].W), np.asarray(net[1].b)
    return (Dense(np.concatenate([W1, np.atleast_2d(w)], 1), np.concatenate([b1, b])),
            Dense(np.concatenate([W2, np.asarray(c, float)[:, None]]), b2))


def tent_units(lo: float, hi: float, height: float):
    """(w, b, c) of height·tent on [lo, hi]: 0 outside, ``height`` at (lo + hi)/2, linear between."""
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    return np.ones(3), -np.array([lo, mid, hi]), height / half * np.array([1.0, -2.0, 1.0])


def one_cell_bump(net, height: float, rng: np.random.Generator, within: tuple = (-np.inf, np.inf)) -> tuple:
    """An L3 decoder (1 → N+1 → 1) plus a tent of height ±``height`` confined to ONE cell
    [t_i, t_{i+1}] of its breakpoints, the cell (inside ``within``: decoder inputs the task's
    domain reaches, else the defect would be no defect) and the sign drawn from ``rng``."""
    t = _breakpoints(net)
    inside = np.flatnonzero((t[:-1] >= within[0]) & (t[1:] <= within[1]))
    i = int(rng.choice(inside))
    sign = 1.0 if rng.random() < 0.5 else -1.0
    return _with_units(net, *tent_units(t[i], t[i + 1], sign * height))


def end_ramp(net, height: float, rng: np.random.Generator) -> tuple:
    """An L3 decoder plus a ramp to ±``height`` over the last w of its range [t_0, t_N]
    (w uniform in [¼, 1] of the last cell), flat beyond: visible only where the decoder's input
    reaches the end of its range (for a max retriever: a token at 1, a corner or face of the cube)."""
    t = _breakpoints(net)
    w = (t[-1] - t[-2]) * rng.uniform(0.25, 1.0)
    sign = 1.0 if rng.random() < 0.5 else -1.0
    return _with_units(net, np.ones(2), -np.array([t[-1] - w, t[-1]]), sign * height / w * np.array([1.0, -1.0]))


def weakened_band(rng: np.random.Generator) -> tuple[float, float]:
    """(centre c, half-width w) of a weakened flag's band of token values: w uniform in
    [0.002, 0.01], c in [1 − w/2, 1] (the band reaches 1)."""
    w = rng.uniform(0.002, 0.01)
    return 1.0 - w * rng.uniform(0.0, 0.5), w


def weakened_flag_net(flag_net, depth: float, band: tuple[float, float]) -> tuple:
    """An exclusion layer's flag net f(x − m) made a net of (x − m, x) whose flag is lowered by
    ``depth`` on the band c ± w of token values (a plateau, with ramps of width w/4 outside it): a
    top token's self-exclusion is weakened only when its value lies in the band, and it shows only
    when the next scores are low enough (x − K·(1 − depth) above them), e.g. "one token at c, the
    others at 0"."""
    c, w = band
    W1, b1 = np.asarray(flag_net[0].W), np.asarray(flag_net[0].b)
    W2, b2 = np.asarray(flag_net[1].W), np.asarray(flag_net[1].b)
    r = w / 4  # plateau on [c − w, c + w]: −depth·(relu(x−a) − relu(x−a−r) − relu(x−b) + relu(x−b−r))/r
    a, b = c - w - r, c + w
    tw, tb, tc = np.ones(4), -np.array([a, a + r, b, b + r]), -depth / r * np.array([1.0, -1.0, -1.0, 1.0])
    first = np.zeros((2, W1.shape[1] + 4))
    first[0, :W1.shape[1]] = W1[0]
    first[1, W1.shape[1]:] = tw
    return (Dense(first, np.concatenate([b1, tb])), Dense(np.concatenate([W2, tc[:, None]]), b2))


def weakened_input(T: int, layer: int, centre: float, gamma: float, n_gaps: int = 12) -> np.ndarray:
    """(n_gaps, T, 1): where a weakened flag of exclusion layer ``layer`` shows: the top ``layer``
    tokens c, c − g, c − 2g, … for gaps g from γ to (c − γ)/(layer − 1), the others 0 (the retrieval after it
    then sees the top token's raised score; how much that moves the output depends on g)."""
    g = np.linspace(gamma, max((centre - gamma) / max(layer - 1, 1), gamma), n_gaps)
    X = np.zeros((n_gaps, T, 1))
    X[:, :layer, 0] = np.clip(centre - g[:, None] * np.arange(layer)[None, :], 0.0, 1.0)[:, :T]
    return X


def calibrated_depth(make, X: np.ndarray, height: float, steps: int = 30) -> float:
    """The flag depth d ∈ [0, 1] (the top score x − K·(1 − d) rises from x − K to x; for an exclusion
    retrieval it shows from d ≈ (K − 1)/K on, for a flag-keyed average at once) at which the
    largest error of ``make(d)`` (a Built) over the inputs X reaches ``height``, by bisection (the
    error grows with d: the raised score is what the next retrieval returns); 1 if even d = 1 stays
    below."""
    from infoflow_jax.core.numpy_forward import predict_np

    def err(d):
        built = make(d)
        Xr = np.asarray(built.task.domain.retract(X))
        target = np.asarray(built.task.target(Xr), np.float64)  # vectorised (every target is)
        return float(np.max(np.abs(predict_np(built.compiled.model, Xr) - target)))

    lo, hi = 0.0, 1.0
    if err(hi) < height:
        return hi
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if err(mid) >= height else (mid, hi)
    return hi


def random_vertex_shifted(dec: KuhnDecoder, amount: float, rng: np.random.Generator, *,
                          reachable=None, corner: bool = False) -> tuple:
    """:func:`vertex_shifted` by ±``amount`` at a random vertex of the grid {0, …, n}^D (C order),
    one with ``reachable(v)`` true (v the integer vertex; default: any); ``corner``: of {0, n}^D only."""
    n, D = dec.n, dec.D
    verts = np.indices((n + 1,) * D).reshape(D, -1).T
    ok = np.ones(len(verts), bool)
    if corner:
        ok &= np.all((verts == 0) | (verts == n), axis=1)
    if reachable is not None:
        ok &= np.array([bool(reachable(v)) for v in verts])
    choice = int(rng.choice(np.flatnonzero(ok)))
    sign = 1.0 if rng.random() < 0.5 else -1.0
    return vertex_shifted(dec, sign * amount, choice)
