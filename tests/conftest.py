"""Shared test setup: verification runs in float64 (THEORY §6), so enable it at import."""

from infoflow_jax.core.precision import use_float64

use_float64()
