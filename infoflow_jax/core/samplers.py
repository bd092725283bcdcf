"""Domain samplers (THEORY §2). Uniform samples almost never hit the worst case,
so the near-tie, many-near-the-max and boundary samplers are the ones that matter.

Every sampler is a pure function ``(key, n, T, d) -> X`` of shape (n, T, d) in
[0,1]; :func:`sample` then retracts onto the task's domain.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from infoflow_jax.core.domains import Margin, TopSetMargin


def _log_uniform(key, shape, lo, hi):
    return jnp.exp(jax.random.uniform(key, shape, minval=jnp.log(lo), maxval=jnp.log(hi)))


def uniform(key, n, T, d):
    return jax.random.uniform(key, (n, T, d))


def near_tie(key, n, T, d):
    """A random number (≥ 2) of tokens within g ∈ [1e-6, 1e-2] (log-uniform) of the top value u."""
    k1, k2, k3, k4, k5 = jax.random.split(key, 5)
    u = jax.random.uniform(k1, (n, 1, d), minval=0.3, maxval=1.0)
    g = _log_uniform(k2, (n, 1, d), 1e-6, 1e-2)
    tied = u - g * jax.random.uniform(k3, (n, T, d))
    below = u * jax.random.uniform(k4, (n, T, d))
    count = jax.random.randint(k5, (n, 1, 1), 2, T + 1)
    rank = jnp.argsort(jax.random.uniform(jax.random.fold_in(key, 7), (n, T, d)), axis=1)
    x = jnp.where(rank < count, tied, below)
    return x.at[:, 0:1, :].set(jnp.where(rank[:, 0:1] == 0, u, x[:, 0:1]))


def many_near_max(key, n, T, d):
    """L1's worst case: one token at u, the other T−1 at u − δ (δ log-uniform in [1e-5, 1])."""
    k1, k2, k3, k4 = jax.random.split(key, 4)
    delta = _log_uniform(k1, (n, 1, d), 1e-5, 1.0)
    u = jax.random.uniform(k2, (n, 1, d), minval=delta, maxval=1.0)
    jitter = 1.0 + 1e-3 * jax.random.normal(k3, (n, T, d))
    x = u - delta * jitter
    top = jax.random.randint(k4, (n,), 0, T)
    onehot = jax.nn.one_hot(top, T)[:, :, None] > 0
    return jnp.clip(jnp.where(onehot, u, x), 0.0, 1.0)


def clustered(key, n, T, d):
    """Values in three tight clusters (width 1e-3) at random centres."""
    k1, k2, k3 = jax.random.split(key, 3)
    centres = jax.random.uniform(k1, (n, 3, d))
    which = jax.random.randint(k2, (n, T), 0, 3)
    x = jnp.take_along_axis(centres, which[:, :, None], axis=1)
    return jnp.clip(x + 1e-3 * jax.random.normal(k3, (n, T, d)), 0.0, 1.0)


def margin_boundary(key, n, T, d, *, gamma: float, k: int):
    """Ω_{γ,k} on its boundary: the top k exactly γ apart; the rest in [0, x_(k)],
    half of them tied with x_(k) to within 1e-6 (allowed: gap k, k+1 is free)."""
    k1, k2, k3, k4 = jax.random.split(key, 4)
    a = jax.random.uniform(k1, (n, 1), minval=0.0, maxval=1.0 - (k - 1) * gamma)
    top = a + gamma * jnp.arange(k - 1, -1, -1)[None, :]
    rest = a * jax.random.uniform(k2, (n, T - k))
    rest = jnp.where(jax.random.bernoulli(k3, 0.5, (n, T - k)), a - 1e-6 * jax.random.uniform(k4, (n, T - k)), rest)
    x = jnp.concatenate([top, jnp.clip(rest, 0.0, 1.0)], axis=1)
    perm = jnp.argsort(jax.random.uniform(jax.random.fold_in(key, 3), (n, T)), axis=1)
    return jnp.take_along_axis(x, perm, axis=1)[..., None]


def top_set_boundary(key, n, T, d, *, gamma: float, k: int):
    """Ω^set_{γ,k} on its boundary: x_(k) − x_(k+1) = γ exactly; the top k in [x_(k), 1]
    with half of them tied with x_(k) to within 1e-6 (ties inside the top set are allowed),
    the rest in [0, x_(k+1)] with half of them tied with x_(k+1)."""
    k1, k2, k3, k4, k5, k6 = jax.random.split(key, 6)
    b = jax.random.uniform(k1, (n, 1), minval=0.0, maxval=1.0 - gamma)  # x_(k+1)
    a = b + gamma  # x_(k)
    top = a + (1.0 - a) * jax.random.uniform(k2, (n, k))
    top = jnp.where(jax.random.bernoulli(k3, 0.5, (n, k)), a + 1e-6 * jax.random.uniform(k4, (n, k)), top)
    top = jnp.clip(top.at[:, :1].set(a), 0.0, 1.0)
    rest = b * jax.random.uniform(k5, (n, T - k))
    rest = jnp.where(jax.random.bernoulli(k6, 0.5, (n, T - k)), b, rest).at[:, :1].set(b)
    x = jnp.concatenate([top, rest], axis=1)
    perm = jnp.argsort(jax.random.uniform(jax.random.fold_in(key, 3), (n, T)), axis=1)
    return jnp.take_along_axis(x, perm, axis=1)[..., None]


SAMPLERS: dict[str, Callable] = {
    "uniform": uniform,
    "near_tie": near_tie,
    "many_near_max": many_near_max,
    "clustered": clustered,
}


def samplers_for(domain) -> list[str]:
    names = list(SAMPLERS)
    if isinstance(domain, Margin):
        names.append("margin_boundary")
    if isinstance(domain, TopSetMargin):
        names.append("top_set_boundary")
    return names


def sample(name: str, key, n: int, T: int, d: int, domain):
    """n inputs from sampler ``name``, retracted onto ``domain``."""
    if name == "margin_boundary":
        if not isinstance(domain, Margin):
            raise ValueError("margin_boundary needs a Margin domain")
        return margin_boundary(key, n, T, d, gamma=domain.gamma, k=domain.k)
    if name == "top_set_boundary":
        if not isinstance(domain, TopSetMargin):
            raise ValueError("top_set_boundary needs a TopSetMargin domain")
        return top_set_boundary(key, n, T, d, gamma=domain.gamma, k=domain.k)
    return domain.retract(SAMPLERS[name](key, n, T, d))
