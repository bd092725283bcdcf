"""T padding: one compiled program for every T ≤ T_pad of a construction family.

A padded input is an array (T_pad, d + 1): the first d channels are the tokens, the
last is the *mask*, 1 on the T real tokens (the first T rows) and 0 on padding. The
mask travels with the input, so the estimators (grid, samplers, probes, projected
ascent; :mod:`~infoflow_jax.verification.estimators`) run unchanged: only the error
function and the retraction read it, through comparisons, so its gradient is 0 and
the ascent never moves it.

* Model: padded keys get score −∞, i.e. softmax weight exactly 0, and the readout
  reads CLS only (:meth:`infoflow_jax.core.model.Transformer.__call__` with ``valid``):
  Ĥ is Ĥ of the real tokens, to the summation order of exact zeros.
* Target: padding tokens are filled as the task declares (:meth:`Task.fill_padding`:
  a copy of the smallest real token, or of token 1), which leaves H and its gradient
  with respect to the real tokens unchanged.
* Retraction: fill, retract onto the domain, keep the mask (:class:`PaddedDomain`):
  the fill is ≤ every real token, so the real tokens retract as they would unpadded.
* Filler inputs: an input whose mask is all 0 stands for "no input" (a bucket pads
  every estimator's batch to one size with them); its error is −∞, so it never wins a
  maximum and never starts an ascent.

A family is paddable when its task declares a padding rule and its model has no
positional code and no position-dependent input embedding (those read the position).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from infoflow_jax.core.fast_model import apply_fast
from infoflow_jax.core.model import apply
from infoflow_jax.core.tasks import Task, fill_tokens


def T_paddable(task: Task, cfg) -> bool:
    """Can one program serve this family at several T? (task padding rule; no positional input)."""
    return task.padding is not None and cfg.positional == "none" and not cfg.position_input


def with_mask(X, T_pad: int) -> np.ndarray:
    """Host arrays (B, T, d) → (B, T_pad, d + 1): tokens zero-padded, mask channel appended."""
    X = np.asarray(X, np.float64)
    B, T, d = X.shape
    out = np.zeros((B, T_pad, d + 1))
    out[:, :T, :d] = X
    out[:, :T, d] = 1.0
    return out


def fillers(n: int, T_pad: int, d: int) -> np.ndarray:
    """n filler inputs (all-zero mask): their error is −∞."""
    return np.zeros((n, T_pad, d + 1))


def strip(X_aug, T: int) -> np.ndarray:
    """A padded input (T_pad, d + 1) → its real tokens (T, d)."""
    X_aug = np.asarray(X_aug)
    return X_aug[..., :T, :-1]


def _split(X_aug):
    valid = X_aug[..., -1] > 0.5
    return X_aug[..., :-1], valid


@dataclass(frozen=True)
class PaddedDomain:
    """The domain of padded inputs: retract(X_aug) = (retract(fill(X)), mask), with ``rule`` the
    padding rule (:func:`~infoflow_jax.core.tasks.fill_tokens`). Hashable (jit caches on it)."""

    domain: object
    rule: str
    fixed_channels = 1  # the mask: the search (ascent, polish) must never move it

    @property
    def name(self) -> str:
        return self.domain.name

    def __call__(self, X_aug):
        return self.retract(X_aug)

    def retract(self, X_aug):
        X, valid = _split(X_aug)
        # a filler (no real token) keeps its tokens: a fill would take the min over nothing
        any_valid = jnp.any(valid, axis=-1, keepdims=True)
        filled = fill_tokens(X, valid | ~any_valid, self.rule)
        return jnp.concatenate([self.domain.retract(filled), X_aug[..., -1:]], axis=-1)

    def describe(self) -> str:
        return self.domain.describe() + ", padded"


def padded(fn):
    """``fn(params, X, valid)`` (an error on the real tokens) → ``err(params, X_aug)`` on padded
    inputs, −∞ for a filler. A filler is computed on all-valid zeros (finite) and then dropped."""
    def err(params, X_aug):
        X, valid = _split(X_aug)
        real = jnp.any(valid)
        value = fn(params, X, valid | ~real)
        return jnp.where(real, value, -jnp.inf)
    return err


@functools.lru_cache(maxsize=256)
def padded_error_function(graphdef, task: Task, dtype: str = "float64"):
    """err(state, X_aug) = |Ĥ(real tokens) − H(real tokens)| for a padded input (−∞ for a filler)."""
    def err(state, X, valid):
        Xm = X if dtype == "float64" else X.astype(jnp.float32)
        y = apply(graphdef, state, Xm, valid).astype(jnp.float64)
        return jnp.abs(y - task.target(task.fill_padding(X, valid)))
    return padded(err)


@functools.lru_cache(maxsize=256)
def padded_fast_error_function(task: Task):
    """:func:`padded_error_function` on the exact fast path (``params`` is a FastPlan)."""
    def err(plan, X, valid):
        return jnp.abs(apply_fast(plan, X, valid) - task.target(task.fill_padding(X, valid)))
    return padded(err)
