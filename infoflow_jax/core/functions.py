"""Named Lipschitz functions used inside targets (F, ψ, G, g_i), and user callables.

A :class:`LipschitzFn` pairs a jnp-traceable function with a Lipschitz constant
that the bounds use. The library cannot prove a user's constant; it checks it
on a fine grid (:meth:`LipschitzFn.checked`) and refuses a constant that the
grid already contradicts.

The named functions (and the built-in tasks' targets, :mod:`infoflow_jax.core.tasks`) are
written once against an array module chosen by their argument (:func:`array_module`):
NumPy for NumPy arrays and Python numbers, ``jax.numpy`` for everything else (tracers, JAX
arrays). Inside a compiled program nothing changes; host-side work (decoder knots, probe
screening, step checks) runs in NumPy and compiles nothing — an eager ``jnp`` call compiles
one small XLA program per operation and shape (≈ 7 ms per target call, measured).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import jax.numpy as jnp
import numpy as np

from infoflow_jax.core.errors import InputError, check_positive


def array_module(*xs):
    """``numpy`` when every argument is a NumPy array, a NumPy scalar or a Python number; else
    ``jax.numpy`` (a tracer or a JAX array among them). The two compute the same float64
    function; they may differ in the last bit (XLA's and libm's transcendental functions)."""
    for x in xs:
        if not isinstance(x, (np.ndarray, np.generic, float, int)):
            return jnp
    return np


class _Same:
    """An object compared by identity (and kept alive by the key that holds it)."""

    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __eq__(self, other):
        return isinstance(other, _Same) and other.obj is self.obj

    def __hash__(self):
        return id(self.obj)


def function_key(fn):
    """A hashable key equal for two functions that compute the same thing: the same code, closure
    values, defaults and global objects they read (each global by identity). A construction that
    writes ``fn=lambda X: …`` makes a new function object at every build; this key lets those builds
    share one task and so one compiled program (:func:`~infoflow_jax.verification.construction.
    error_function` is cached on the task). Anything that is not a plain Python function (a
    callable object, a builtin) is its own key, compared by equality as before."""
    code = getattr(fn, "__code__", None)
    if code is None or not hasattr(fn, "__globals__"):
        return fn
    cells = tuple(_value_key(c.cell_contents) for c in (fn.__closure__ or ()))
    glob = fn.__globals__
    names = tuple((n, _Same(glob[n])) for n in _global_names(code) if n in glob)
    defaults = tuple(_value_key(v) for v in (fn.__defaults__ or ()))
    kwdefaults = tuple(sorted((k, _value_key(v)) for k, v in (fn.__kwdefaults__ or {}).items()))
    return ("function", code, cells, names, defaults, kwdefaults)


def _global_names(code) -> tuple[str, ...]:
    """The global names a code object reads, its nested functions' (lambdas, comprehensions) included."""
    names = list(code.co_names)
    for c in code.co_consts:
        if hasattr(c, "co_names"):
            names += _global_names(c)
    return tuple(dict.fromkeys(names))


def _value_key(v):
    """A closure value or default in a key: a function by :func:`function_key`, a hashable value by
    equality, anything else by identity."""
    if callable(v) and hasattr(v, "__code__"):
        return function_key(v)
    try:
        hash(v)
    except TypeError:
        return _Same(v)
    return v


@dataclass(frozen=True, eq=False)
class LipschitzFn:
    """A function with its Lipschitz constant and a name. Two compare equal when their functions
    compute the same thing (:func:`function_key`), so rebuilding ``LipschitzFn(lambda u: …, L, name)``
    gives an equal object."""

    fn: Callable
    lipschitz: float
    name: str

    def __call__(self, u):
        return self.fn(u)

    def __eq__(self, other):
        return (type(other) is type(self) and self.lipschitz == other.lipschitz and self.name == other.name
                and function_key(self.fn) == function_key(other.fn))

    def __hash__(self):
        return hash((self.lipschitz, self.name, function_key(self.fn)))

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
    xp = array_module(u)
    return xp.sin(2 * xp.pi * u) / 2 + u


def tent(u):
    """ψ(u) = 1 − 2|u − 1/2|; Lipschitz 2, values in [0,1] on [0,1]."""
    return 1 - 2 * array_module(u).abs(u - 0.5)


DEFAULT_F = LipschitzFn(sine_plus_identity, math.pi + 1.0, "sin(2πu)/2+u")
TENT = LipschitzFn(tent, 2.0, "tent")
IDENTITY = LipschitzFn(lambda u: u, 1.0, "identity")
SQUARE = LipschitzFn(lambda u: u * u, 2.0, "u²")

NAMED = {f.name: f for f in (DEFAULT_F, TENT, IDENTITY, SQUARE)}
