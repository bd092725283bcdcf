"""Input validation with one-line messages that name the argument and its range.

Every public entry point validates its arguments with these helpers, so that a
user who passes ε = 0 or k > T sees, e.g.::

    eps = 0.0 is out of range: must satisfy 0 < eps < 1
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np


class InputError(ValueError):
    """Bad user input. The message names the argument and the allowed range."""

    def __init__(self, argument: str, value: Any, allowed: str):
        self.argument = argument
        self.value = value
        self.allowed = allowed
        super().__init__(f"{argument} = {value!r} is out of range: must be {allowed}")


class EntryPointWarning(UserWarning):
    """An installed plugin (an entry point of group ``infoflow_jax.constructions``) was skipped;
    the message names it and says why (``infoflow_jax.catalog``). The command line prints it as
    one line and goes on: a broken plugin never breaks the built-ins."""


def check_open_interval(name: str, value: float, lo: float, hi: float) -> float:
    if not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(value) or not lo < value < hi:
        raise InputError(name, value, f"a finite number with {lo:g} < {name} < {hi:g}")
    return float(value)


def check_positive(name: str, value: float) -> float:
    if not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(value) or value <= 0:
        raise InputError(name, value, "a finite number > 0")
    return float(value)


def check_int_range(name: str, value: int, lo: int, hi: int | None = None) -> int:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    ok = ok and value >= lo and (hi is None or value <= hi)
    if not ok:
        allowed = f"an integer with {lo} <= {name}" + (f" <= {hi}" if hi is not None else "")
        raise InputError(name, value, allowed)
    return int(value)


def check_choice(name: str, value: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    if value not in choices:
        raise InputError(name, value, "one of " + ", ".join(choices))
    return value


def check_finite_array(name: str, x) -> np.ndarray:
    """Reject NaN / inf in user-supplied inputs (they would poison a sup)."""
    arr = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise InputError(name, "array containing NaN/inf", "finite everywhere")
    return arr
