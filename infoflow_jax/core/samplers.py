"""Domain samplers (THEORY §2). Uniform samples almost never hit the worst case,
so the near-tie, many-near-the-max and boundary samplers are the ones that matter.

Every sampler is a pure function ``(src, n, T, d) -> X`` of shape (n, T, d) in
[0,1]; :func:`sample` then retracts onto the task's domain. ``src`` is a source of
randomness that splits like a JAX key: :class:`JaxRandom` (a ``jax.random`` key:
traceable, used inside compiled training programs) or :class:`NumpyRandom` (a NumPy
``SeedSequence``: no XLA compilation at all, used by the verifier's draws, where
compiling each sampler's dozens of small random/sort ops for every new (n, T) cost
more than the whole evaluation). Each sampler is written once against this protocol
and ``src.xp`` (``jax.numpy`` or ``numpy``); a source is consumed by exactly one draw,
as a JAX key is. The JAX streams are those of ``jax.random`` with the same splits as
before the protocol existed (training data unchanged).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from infoflow_jax.core.domains import Margin, TopSetMargin


class JaxRandom:
    """A ``jax.random`` key as a source: ``split``/``fold_in`` as ``jax.random``'s; each draw uses the key."""

    xp = jnp

    def __init__(self, key):
        self.key = key

    def split(self, n: int) -> list["JaxRandom"]:
        return [JaxRandom(k) for k in jax.random.split(self.key, n)]

    def fold_in(self, i: int) -> "JaxRandom":
        return JaxRandom(jax.random.fold_in(self.key, i))

    def uniform(self, shape, lo=0.0, hi=1.0):
        return jax.random.uniform(self.key, shape, minval=lo, maxval=hi)

    def normal(self, shape):
        return jax.random.normal(self.key, shape)

    def integers(self, shape, lo: int, hi: int):
        """Integers in [lo, hi)."""
        return jax.random.randint(self.key, shape, lo, hi)

    def bernoulli(self, p: float, shape):
        return jax.random.bernoulli(self.key, p, shape)


class NumpyRandom:
    """A NumPy ``SeedSequence`` as a source: ``split(n)`` spawns n children, ``fold_in(i)`` is the
    child with spawn key i appended (independent of ``split``'s children); each draw is one PCG64
    stream seeded by the sequence. ``NumpyRandom(seed)`` for an integer seed or a tuple of them."""

    xp = np

    def __init__(self, seed):
        if not isinstance(seed, np.random.SeedSequence):
            seed = np.random.SeedSequence([int(x) for x in seed] if isinstance(seed, (tuple, list)) else int(seed))
        self.seq = seed

    def split(self, n: int) -> list["NumpyRandom"]:
        return [NumpyRandom(np.random.SeedSequence(self.seq.entropy, spawn_key=self.seq.spawn_key + (i,)))
                for i in range(n)]

    def fold_in(self, i: int) -> "NumpyRandom":
        # spawn keys ≥ 2^31 never collide with split's (n < 2^31)
        return NumpyRandom(np.random.SeedSequence(self.seq.entropy, spawn_key=self.seq.spawn_key + (2 ** 31 + i,)))

    def _gen(self):
        return np.random.Generator(np.random.PCG64(self.seq))

    def uniform(self, shape, lo=0.0, hi=1.0):
        return self._gen().uniform(lo, hi, shape)

    def normal(self, shape):
        return self._gen().standard_normal(shape)

    def integers(self, shape, lo: int, hi: int):
        return self._gen().integers(lo, hi, shape)

    def bernoulli(self, p: float, shape):
        return self._gen().random(shape) < p


def as_source(key):
    """A source from a JAX key (or a source)."""
    return key if isinstance(key, (JaxRandom, NumpyRandom)) else JaxRandom(key)


def _log_uniform(src, shape, lo, hi):
    xp = src.xp
    return xp.exp(src.uniform(shape, np.log(lo), np.log(hi)))


def uniform(src, n, T, d):
    return src.uniform((n, T, d))


def near_tie(src, n, T, d):
    """A random number (≥ 2) of tokens within g ∈ [1e-6, 1e-2] (log-uniform) of the top value u."""
    xp = src.xp
    s1, s2, s3, s4, s5 = src.split(5)
    u = s1.uniform((n, 1, d), 0.3, 1.0)
    g = _log_uniform(s2, (n, 1, d), 1e-6, 1e-2)
    tied = u - g * s3.uniform((n, T, d))
    below = u * s4.uniform((n, T, d))
    count = s5.integers((n, 1, 1), 2, max(T + 1, 3))  # T = 1: one token, "tied" with itself
    rank = xp.argsort(src.fold_in(7).uniform((n, T, d)), axis=1)
    x = xp.where(rank < count, tied, below)
    first = xp.where(rank[:, 0:1] == 0, u, x[:, 0:1])
    return xp.concatenate([first, x[:, 1:]], axis=1)


def many_near_max(src, n, T, d):
    """L1's worst case: one token at u, the other T−1 at u − δ (δ log-uniform in [1e-5, 1])."""
    xp = src.xp
    s1, s2, s3, s4 = src.split(4)
    delta = _log_uniform(s1, (n, 1, d), 1e-5, 1.0)
    u = s2.uniform((n, 1, d), delta, 1.0)
    jitter = 1.0 + 1e-3 * s3.normal((n, T, d))
    x = u - delta * jitter
    top = s4.integers((n,), 0, T)
    onehot = (xp.arange(T)[None, :] == top[:, None])[:, :, None]
    return xp.clip(xp.where(onehot, u, x), 0.0, 1.0)


def clustered(src, n, T, d):
    """Values in three tight clusters (width 1e-3) at random centres."""
    xp = src.xp
    s1, s2, s3 = src.split(3)
    centres = s1.uniform((n, 3, d))
    which = s2.integers((n, T), 0, 3)
    x = xp.take_along_axis(centres, which[:, :, None], axis=1)
    return xp.clip(x + 1e-3 * s3.normal((n, T, d)), 0.0, 1.0)


def margin_boundary(src, n, T, d, *, gamma: float, k: int):
    """Ω_{γ,k} on its boundary: the top k exactly γ apart; the rest in [0, x_(k)],
    half of them tied with x_(k) to within 1e-6 (allowed: gap k, k+1 is free)."""
    xp = src.xp
    s1, s2, s3, s4 = src.split(4)
    a = s1.uniform((n, 1), 0.0, 1.0 - (k - 1) * gamma)
    top = a + gamma * xp.arange(k - 1, -1, -1)[None, :]
    rest = a * s2.uniform((n, T - k))
    rest = xp.where(s3.bernoulli(0.5, (n, T - k)), a - 1e-6 * s4.uniform((n, T - k)), rest)
    x = xp.concatenate([top, xp.clip(rest, 0.0, 1.0)], axis=1)
    perm = xp.argsort(src.fold_in(3).uniform((n, T)), axis=1)
    return xp.take_along_axis(x, perm, axis=1)[..., None]


def top_set_boundary(src, n, T, d, *, gamma: float, k: int):
    """Ω^set_{γ,k} on its boundary: x_(k) − x_(k+1) = γ exactly; the top k in [x_(k), 1]
    with half of them tied with x_(k) to within 1e-6 (ties inside the top set are allowed),
    the rest in [0, x_(k+1)] with half of them tied with x_(k+1)."""
    xp = src.xp
    s1, s2, s3, s4, s5, s6 = src.split(6)
    b = s1.uniform((n, 1), 0.0, 1.0 - gamma)  # x_(k+1)
    a = b + gamma  # x_(k)
    top = a + (1.0 - a) * s2.uniform((n, k))
    top = xp.where(s3.bernoulli(0.5, (n, k)), a + 1e-6 * s4.uniform((n, k)), top)
    top = xp.clip(xp.concatenate([a, top[:, 1:]], axis=1), 0.0, 1.0)
    rest = b * s5.uniform((n, T - k))
    rest = xp.where(s6.bernoulli(0.5, (n, T - k)), b, rest)
    rest = xp.concatenate([b, rest[:, 1:]], axis=1)
    x = xp.concatenate([top, rest], axis=1)
    perm = xp.argsort(src.fold_in(3).uniform((n, T)), axis=1)
    return xp.take_along_axis(x, perm, axis=1)[..., None]


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
    """n inputs from sampler ``name``, retracted onto ``domain``; ``key`` is a JAX key or a source
    (:class:`NumpyRandom` gives NumPy arrays and compiles nothing)."""
    src = as_source(key)
    if name == "margin_boundary":
        if not isinstance(domain, Margin):
            raise ValueError("margin_boundary needs a Margin domain")
        return margin_boundary(src, n, T, d, gamma=domain.gamma, k=domain.k)
    if name == "top_set_boundary":
        if not isinstance(domain, TopSetMargin):
            raise ValueError("top_set_boundary needs a TopSetMargin domain")
        return top_set_boundary(src, n, T, d, gamma=domain.gamma, k=domain.k)
    return domain.retract(SAMPLERS[name](src, n, T, d))
