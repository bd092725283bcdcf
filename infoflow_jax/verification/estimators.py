"""Sup-error estimators (THEORY §6): grid, domain samplers, adversarial ascent.

All are *lower* estimates of err(Ĥ, H; Ω) = sup_{X∈Ω} |Ĥ(X) − H(X)|; the
reported estimate is the max over estimators, with the input that attains it
and the name of the estimator that found it.

Everything here is a pure function of ``(err_fn, params, ...)`` where
``err_fn(params, X) -> |Ĥ(X) − H(X)|`` for one input X of shape (T, d); the
batching (``jax.lax.map`` in chunks over inputs, ``jax.vmap`` over starts) is
applied here, from outside.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from infoflow_jax.core.samplers import sample, samplers_for


@dataclass(frozen=True)
class Budget:
    """How hard to look. Defaults fit a 2-core CPU at T ≤ 256."""

    samples: int = 1024  # per sampler
    grid_points: int = 8192  # the exhaustive grid runs only if ≥ 3 points per axis fit
    starts: int = 24  # adversarial multi-start
    steps: int = 150  # adversarial ascent steps per start
    lr: float = 1e-2  # initial step; decays ×1e-4 over the run (fine structure ~ 1/β)
    chunk: int = 256  # inputs per vectorised evaluation


@dataclass
class Estimate:
    value: float
    worst_input: np.ndarray
    estimator: str
    per_estimator: dict = field(default_factory=dict)


@partial(jax.jit, static_argnums=(0, 3))
def _errors(err_fn, params, Xs, chunk):
    return jax.lax.map(lambda X: err_fn(params, X), Xs, batch_size=chunk)


def batch_errors(err_fn, params, Xs, chunk: int = 256):
    """|Ĥ − H| on a batch (B, T, d), evaluated in vectorised chunks."""
    return _errors(err_fn, params, Xs, min(chunk, Xs.shape[0]))


def grid_inputs(T: int, d: int, max_points: int):
    """The full grid {0, 1/(n−1), …, 1}^{T·d} with the largest n ≥ 3 that fits, or None."""
    n = int(math.floor(max_points ** (1.0 / (T * d)) + 1e-9))
    if n < 3:
        return None
    axis = np.linspace(0.0, 1.0, n)
    pts = np.array(list(itertools.product(axis, repeat=T * d)))
    return jnp.asarray(pts.reshape(-1, T, d))


@partial(jax.jit, static_argnums=(0, 1, 4, 5))
def _ascend(err_fn, retract, params, X0, steps, lr):
    """Projected gradient ascent on err from each start in X0 (S, T, d); best value/input per start."""
    opt = optax.adam(optax.exponential_decay(lr, steps, 1e-4))

    def one(X):
        state = opt.init(X)
        neg = lambda Z: -err_fn(params, Z)

        def step(carry, _):
            X, state, best, best_X = carry
            val, g = jax.value_and_grad(neg)(X)
            g = jnp.where(jnp.isfinite(g), g, 0.0)
            upd, state = opt.update(g, state, X)
            better = -val > best
            best = jnp.where(better, -val, best)
            best_X = jnp.where(better, X, best_X)
            X = retract(optax.apply_updates(X, upd))
            return (X, state, best, best_X), None

        v0 = err_fn(params, X)
        (X, _, best, best_X), _ = jax.lax.scan(step, (X, state, v0, X), None, length=steps)
        last = err_fn(params, X)
        return jnp.where(last > best, last, best), jnp.where(last > best, X, best_X)

    return jax.vmap(one)(X0)


def estimate_sup_error(err_fn, params, *, domain, T: int, d: int, key, budget: Budget = Budget(),
                       extra_inputs: dict | None = None) -> Estimate:
    """Max over estimators of |Ĥ − H| on ``domain``.

    ``extra_inputs`` (name → (B, T, d)) adds user or construction-specific probes
    (e.g. configurations a proof identifies as worst cases).
    """
    candidates: dict[str, tuple[jnp.ndarray, jnp.ndarray]] = {}
    grid = grid_inputs(T, d, budget.grid_points)
    if grid is not None:
        grid = domain.retract(grid)
        candidates["grid"] = (grid, batch_errors(err_fn, params, grid, budget.chunk))
    keys = jax.random.split(key, len(samplers_for(domain)) + 1)
    for name, k in zip(samplers_for(domain), keys[1:]):
        Xs = sample(name, k, budget.samples, T, d, domain)
        candidates[name] = (Xs, batch_errors(err_fn, params, Xs, budget.chunk))
    for name, Xs in (extra_inputs or {}).items():
        Xs = domain.retract(jnp.asarray(Xs))
        candidates[name] = (Xs, batch_errors(err_fn, params, Xs, budget.chunk))

    if budget.starts > 0 and budget.steps > 0:
        # start from the best sampled inputs (half) and from fresh uniform ones
        pool = jnp.concatenate([c[0] for c in candidates.values()])
        vals = jnp.concatenate([c[1] for c in candidates.values()])
        n_best = (budget.starts + 1) // 2
        best_idx = jnp.argsort(-jnp.nan_to_num(vals, nan=jnp.inf))[:n_best]
        fresh = sample("uniform", keys[0], budget.starts - n_best, T, d, domain)
        X0 = jnp.concatenate([pool[best_idx], fresh])
        vals_adv, X_adv = _ascend(err_fn, domain, params, X0, budget.steps, budget.lr)  # domain ≡ its retraction
        candidates["adversarial"] = (X_adv, vals_adv)

    per, best = {}, None
    for name, (Xs, vals) in candidates.items():
        vals = np.asarray(vals)
        i = int(np.argmax(np.where(np.isnan(vals), np.inf, vals)))
        v = float(vals[i]) if not np.isnan(vals[i]) else math.inf
        per[name] = v
        if best is None or v > best[0]:
            best = (v, np.asarray(Xs[i]), name)
    return Estimate(value=best[0], worst_input=best[1], estimator=best[2], per_estimator=per)
