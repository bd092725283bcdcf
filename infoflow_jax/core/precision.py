"""Dtype policy, in one place.

Verification runs in float64 (THEORY §6): the bounds being checked go down to
1e-4 and softmax temperatures up to 1e7, where float32's ~6e-8 relative
precision is no longer negligible. float32 is allowed only for throughput
runs, which must report their float32 error floor, and for the *search* of a
verification (``--search-dtype float32``, ``Budget(search_dtype=...)``): the
estimators look for worst inputs in float32, and the estimate and the verdict are
float64 evaluations of the inputs found (:func:`infoflow_jax.verification.estimators.estimate_sup_error`).

The float32 search is trusted down to ε = :data:`F32_SEARCH_MIN_EPS` and while the
candidates' float32 values are within :data:`F32_NOISE_FRACTION`·ε of their float64
values; below, or beyond, the verification searches again in float64 and says so
(:func:`search_dtype_for`; ``verification/verify.py``).
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


# ----------------------------------------------------------------------------- the search's dtype
SEARCH_DTYPES = ("float64", "float32")
#: the smallest ε at which a float32 search is tried at all; below it the search runs in float64 from the
#: start. Measured (benchmarks/float32_noise.py, docs/sweeps.md "Float32 search"): the float32 error of
#: the re-evaluated candidates is ≤ 1.4e-6 on every construction at T = 4, ε = 1e-1 … 1e-4, i.e.
#: ≤ ε/75 at 1e-4, and it does not shrink with ε (float32 rounding of O(1) values): at 1e-5 it
#: would be ~ε/8, past F32_NOISE_FRACTION
F32_SEARCH_MIN_EPS = 1e-4
#: a float32 search is kept only if every re-evaluated candidate's float32 error is within this
#: fraction of ε of its float64 error (half the excess of the mildest localized mutant, 1.2·bound)
F32_NOISE_FRACTION = 0.1


def check_search_dtype(name) -> str:
    """``float64`` or ``float32``; anything else is an InputError naming ``search-dtype``."""
    if name not in SEARCH_DTYPES:
        from infoflow_jax.core.errors import InputError

        raise InputError("search-dtype", name, "one of " + ", ".join(SEARCH_DTYPES))
    return name


def default_search_dtype(platform: str | None = None) -> str:
    """float32 on a TPU (no native float64), float64 elsewhere (CPU; GPUs: float64 is at most 2×
    slower on data-centre parts, and ``--search-dtype float32`` is one flag away on the others)."""
    if platform is None:
        platform = jax.default_backend()
    return "float32" if platform == "tpu" else "float64"


def search_dtype_for(requested: str | None, eps: float | None) -> tuple[str, str | None]:
    """(the dtype to search in, why float32 was not used or None) for a construction at ``eps``:
    ``requested`` None is :func:`default_search_dtype`; float32 below :data:`F32_SEARCH_MIN_EPS`
    falls back to float64 with the reason."""
    dtype = check_search_dtype(requested) if requested is not None else default_search_dtype()
    if dtype == "float32" and eps is not None and eps < F32_SEARCH_MIN_EPS:
        return "float64", (f"eps = {eps:g} is below {F32_SEARCH_MIN_EPS:g}, the smallest eps the float32 search "
                           "is trusted at")
    return dtype, None


def search_precision(dtype: str):
    """The context a search of ``dtype`` is traced and run in: for float32, JAX's 64-bit types off
    (every array, constant and index of the program is 32-bit, so it compiles for a TPU); for
    float64 nothing changes."""
    import contextlib

    return jax.enable_x64(False) if dtype == "float32" else contextlib.nullcontext()


def to_search_dtype(tree, dtype: str):
    """A pytree's arrays for a search in ``dtype``: floats to float32 and integers to int32 for a
    float32 search (None and other leaves unchanged); the tree itself for float64."""
    import numpy as np

    if dtype == "float64":
        return tree

    def cast(x):
        a = np.asarray(x)
        if np.issubdtype(a.dtype, np.floating):
            return a.astype(np.float32)
        if np.issubdtype(a.dtype, np.integer):
            return a.astype(np.int32)
        return a
    return jax.tree_util.tree_map(cast, tree)
