"""Local claims of a construction's proof steps, as data a checker can verify against weights.

A construction's bound is a sum of named terms, each the responsibility of one step of its
:class:`~infoflow_jax.core.slots.Program` ("slot m ← soft max of x: |m − max x| ≤ e_max(T, β)").
A claim attached to a block (``FFNBlock(..., claim=...)``, ``max_retrieval(..., claim=...)``)
states that step's local statement in the step's own low-dimensional input space:

* :class:`OneInput` — an FFN block reading one form z and writing one slot:
  sup_{z ∈ I} |net(z) − f(z)| ≤ tolerance on each stated interval I (and, optionally, the
  block's values on I lie in ``values_in``, a hypothesis the next step relies on);
* :class:`OnBox` — an FFN block reading D forms (an L4 Kuhn decoder):
  sup_{z ∈ box} |net(z) − G(clip z)| ≤ tolerance, net affine on every simplex of the
  Kuhn triangulation of spacing 1/n;
* :class:`SumOfOneInputs` — an FFN block whose output is a sum of one-input parts
  Σ_i f_i(z_i) (e.g. C4's min(x, M) = x − relu(x − M)): each part checked like
  :class:`OneInput` on its own interval, the errors added;
* :class:`Retrieval` — one attention head: which lemma (L1 soft max, L2 margin, L2 on a
  flagged set, exact uniform averaging) makes its output slot(s) close to what, under
  which hypothesis on its keys (range D, margin γ, the number k of flagged tokens).

Every claim also says how its error enters the bound: ``term`` (a key of the construction's
``bound_terms``, a tuple of keys when one step is responsible for several terms, or None for a step that contributes nothing and only discharges a
hypothesis of a later step, such as exact flags) and ``weight`` (the Lipschitz factor that
carries the step's error to the output, e.g. L_F for an attention step feeding F̂), so that
weight·tolerance is the step's share of its term. ``combine`` says how several steps share
one term: "sum" (the term is the sum of their shares) or "max" (each share equals the term,
as when a sup-norm Lipschitz decoder reads several retrieved values).

A claim states the *proof's* quantities, never the weights: a mutant built with a wrong
key keeps the claim of the right one, and the checker
(:mod:`infoflow_jax.verification.steps`) reads the compiled weights to decide.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from infoflow_jax.core.slots import Form

LEMMAS = ("L1", "L1-self", "L2", "L2-set", "uniform")
COMBINE = ("sum", "max")


@dataclass(frozen=True)
class OneInput:
    """slot ← f(z) approximately, z one linear form of the residual stream.

    ``target`` f (vectorised; NumPy or jnp), ``lipschitz`` its Lipschitz constant on each
    interval, ``intervals`` the input intervals [lo, hi] the proof needs the block on,
    ``tolerance`` the allowed sup |net − f| there. ``affine_between``: f is affine between
    consecutive points of this tuple (e.g. (0.5,) for the tent, () for a constant or an
    affine f on each interval); then net − f is affine on every piece between breakpoints
    and the check is exact instead of Lipschitz-slack. ``values_in`` (lo, hi): the block's
    values on the intervals must lie there (a hypothesis of a later step, e.g. ψ̂ ∈ [0,1]
    for layer 2's L1).
    """

    target: Callable
    lipschitz: float
    intervals: tuple[tuple[float, float], ...]
    tolerance: float
    term: str | None
    weight: float = 1.0
    affine_between: tuple[float, ...] | None = None
    values_in: tuple[float, float] | None = None
    combine: str = "sum"
    statement: str = ""
    input: Form | None = None  # the proof's input form (default: the block's own)

    def __post_init__(self):
        for lo, hi in self.intervals:
            if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
                raise ValueError(f"claim interval [{lo}, {hi}] is not a finite interval")
        _check_common(self)


@dataclass(frozen=True)
class OnBox:
    """slot ← G(clip z) approximately for z ∈ box ⊂ R^D (an L4 Kuhn decoder of G on [0,1]^D).

    ``lipschitz`` is G's constant in ‖·‖_∞; ``n`` the grid spacing 1/n of the Kuhn
    triangulation on whose simplices the block is affine; ``box`` (lo, hi) the same for
    every axis, with lo ≤ 0 and hi ≥ 1 (the part outside [0,1]^D is where retrieved values
    may land; there the block must equal its value at clip z).
    """

    target: Callable
    lipschitz: float
    n: int
    box: tuple[float, float]
    tolerance: float
    term: str | None
    weight: float = 1.0
    combine: str = "sum"
    statement: str = ""
    inputs: tuple[Form, ...] | None = None  # the proof's D input forms (default: the block's own)

    def __post_init__(self):
        lo, hi = self.box
        if not (lo <= 0.0 and hi >= 1.0 and np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError(f"claim box [{lo}, {hi}] must contain [0, 1] and be finite")
        _check_common(self)


@dataclass(frozen=True)
class Retrieval:
    """One attention head: its output slots are close to what its lemma says.

    ``lemma``:

    * "L1" — soft max: score β·key, value = key, key values in an interval of length
      ``key_range`` D: |out − max_s key_s| ≤ D·e_max(T, β·D). ``excluded`` = True: besides
      tokens with keys within D of the top, some sit ≥ D below it (flagged), which L1 covers
      when β·D ≥ 1 and ln((T−1)β·D) ≤ β·D (``lemmas.e_max_holds_beyond_unit_range``).
    * "L2" — margin retrieval: score β·key, value = key of range D, the top key beats every
      other by ≥ ``gamma``: |out − top key| ≤ (T−1)e^{−βγ}·D.
    * "L2-set" — a flagged set: score β·key with key = K on the ``k`` flagged tokens and 0
      on the others, values of range D: |out − mean over the flagged| ≤ ρ(T, k, βK)·D.
    * "uniform" — all scores equal (no key): out = (1/T)Σ_s value_s exactly.
    * "L1-self" — soft max over the *other* tokens (C4): every token t queries with one-hot
      positions, score_t(s) = β·key_s − B_t·[s = t] (the same offset for every s ≠ t), value =
      key ∈ [0,1]: |out_t − max_{s≠t} key_s| ≤ e_max(T−1, β) + e^{β − B_t} (the self weight is
      ≤ e^{β − B_t}). Queries "tokens" (CLS is not used).

    ``key``: the proof's key form (None for "uniform"); ``values``: (value form, slot)
    pairs, one per output slot; ``queries``: "cls" (only the CLS row is used) or "all".
    """

    lemma: str
    key: Form | None
    values: tuple[tuple[Form, str], ...]
    tolerance: float
    term: str | None
    weight: float = 1.0
    queries: str = "cls"
    key_range: float = 1.0
    gamma: float | None = None
    k: int | None = None
    excluded: bool = False
    combine: str = "sum"
    statement: str = ""

    def __post_init__(self):
        if self.lemma not in LEMMAS:
            raise ValueError(f"lemma {self.lemma!r} is not one of {LEMMAS}")
        if self.queries not in ("cls", "all", "tokens"):
            raise ValueError(f"queries {self.queries!r} is not 'cls', 'all' or 'tokens'")
        if (self.key is None) != (self.lemma == "uniform"):
            raise ValueError("a key is needed exactly when the lemma is not 'uniform'")
        if self.lemma == "L2" and not (self.gamma and self.gamma > 0):
            raise ValueError("lemma L2 needs a margin gamma > 0")
        if self.lemma in ("L1", "L1-self", "L2") and (len(self.values) != 1 or self.values[0][0] != self.key):
            raise ValueError(f"lemma {self.lemma} retrieves the key itself: values must be ((key, slot),)")
        if self.lemma == "L2-set" and not (self.k and self.k >= 1):
            raise ValueError("lemma L2-set needs the number k >= 1 of flagged tokens")
        _check_common(self)


@dataclass(frozen=True)
class SumOfOneInputs:
    """slot ← Σ_i f_i(z_i) approximately: each part a :class:`OneInput` (its own input form,
    target, intervals; its ``tolerance`` its share), the block's units split among the parts by
    the form they read. sup |net − Σ f_i| ≤ Σ_i sup |net_i − f_i| ≤ ``tolerance``."""

    parts: tuple[OneInput, ...]
    tolerance: float
    term: str | None
    weight: float = 1.0
    combine: str = "sum"
    statement: str = ""

    def __post_init__(self):
        if not self.parts or any(p.input is None for p in self.parts):
            raise ValueError("every part of a SumOfOneInputs claim needs its input form")
        _check_common(self)


def _check_common(claim) -> None:
    if not claim.tolerance >= 0:
        raise ValueError(f"claim tolerance {claim.tolerance} must be >= 0")
    if claim.combine not in COMBINE:
        raise ValueError(f"combine {claim.combine!r} is not one of {COMBINE}")


Claim = OneInput | SumOfOneInputs | OnBox | Retrieval


def step_function(threshold: float = 0.0) -> Callable:
    """z ↦ 1 if z ≥ threshold else 0: the target of an exact flag (C3/C6/C8 exclusion layers)."""
    return lambda z: (np.asarray(z, dtype=np.float64) >= threshold).astype(np.float64)


def clipped(f: Callable) -> Callable:
    """z ↦ f(clip(z, 0, 1)): the target of an L3 decoder read slightly off [0,1]
    (it is constant there by construction; same Lipschitz constant as f)."""
    return lambda z: f(np.clip(np.asarray(z, dtype=np.float64), 0.0, 1.0))
