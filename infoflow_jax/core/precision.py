"""Dtype policy, in one place.

Verification runs in float64 (THEORY §6): the bounds being checked go down to
1e-4 and softmax temperatures up to 1e7, where float32's ~6e-8 relative
precision is no longer negligible. float32 is allowed only for throughput
runs, which must report their float32 error floor.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

VERIFY_DTYPE = jnp.float64
THROUGHPUT_DTYPE = jnp.float32


def use_float64() -> None:
    """Enable 64-bit floats in JAX (idempotent). Call before building arrays."""
    jax.config.update("jax_enable_x64", True)


def float64_enabled() -> bool:
    return bool(jax.config.jax_enable_x64)


def require_float64(what: str) -> None:
    """Raise if float64 is off: a verification in float32 would be dishonest."""
    if not float64_enabled():
        raise RuntimeError(
            f"{what} needs float64; call infoflow_jax.core.precision.use_float64() first"
        )


def dtype_named(name: str):
    """Map 'float64' / 'float32' to the jnp dtype; anything else is an error."""
    table = {"float64": jnp.float64, "float32": jnp.float32}
    if name not in table:
        from infoflow_jax.core.errors import InputError

        raise InputError("dtype", name, "one of float64, float32")
    return table[name]


# Absolute float64 evaluation floor used when comparing a measured error with a
# bound that can be attained exactly (e.g. L3 on a piecewise-linear F with a
# kink mid-cell: the interpolation error *equals* L/(2N)). Evaluating a network
# with up to ~1e5 O(1) terms in float64 carries a rounding error of order
# 1e5 · 2^-53 ≈ 1e-11 at worst; 1e-12 covers the sizes used by default. A
# genuine violation of a bound is many orders of magnitude larger.
FLOAT64_FLOOR = 1e-12
FLOAT64_REL = 1e-12  # relative counterpart, for bounds far below 1 (L2 at βγ = 100 is ~1e-42)


def within_bound(value: float, bound: float) -> bool:
    """value ≤ bound up to float64 evaluation rounding (absolute and relative floors)."""
    return bool(value <= bound * (1 + FLOAT64_REL) + FLOAT64_FLOOR)
