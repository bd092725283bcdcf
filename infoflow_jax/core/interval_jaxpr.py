"""An automatic interval extension of a jax.numpy function, by interpreting its jaxpr on boxes.

    ext = interval_extension(fn, (T, d))
    lo_f, hi_f = ext(lo, hi)        lo_f ≤ fn(X) ≤ hi_f  for every lo ≤ X ≤ hi

``fn`` maps one input of shape ``example_shape`` to an array (a scalar for a task's target);
``ext`` takes boxes of shape (..., *example_shape) and is vectorised over the leading axes.
``fn`` is traced once (:func:`jax.make_jaxpr` on one input) and its jaxpr is evaluated with an
interval [lo, hi] in place of every value, one sound rule per primitive (below); calls into
sub-jaxprs (``jit``, ``closed_call``, ``custom_jvp_call``, ``custom_vjp_call``, ``remat``,
``cond``) are interpreted recursively.

What is enclosed
----------------
Invariant: the interval of every value contains (a) the value in real arithmetic at every
real input in the box and (b) the value fn holds when it is evaluated in float64 at every
float input in the box (in any compilation: any summation order, with or without fused
multiply–add). The constants of fn are the float64 numbers written in it (2π means the
double nearest 2π). Every rule therefore encloses the exact range of the real operation
over its input boxes and then steps outward for two roundings, ours (computing the ends)
and the program's.

Rounding (u = 2⁻⁵³, η = 2⁻¹⁰⁰⁰, :func:`~infoflow_jax.core.intervals.widen`,
:func:`~infoflow_jax.core.intervals.margin`; XLA has no rounding modes, so margins):

* correctly rounded operations (+, −, ×, ÷, √): float rounding is monotone, so the program's
  fl(x ∘ y) lies in [fl(L), fl(H)] when the exact x ∘ y lies in [L, H], and the real value
  within u·|end| of those: each end steps out by 4u·|end| + η;
* sums of n terms (reduce_sum, cumsum, dot_general) in any order, and products of n factors:
  Higham's γ_n, a margin 4(n + 4)·u·Σ|terms| + η;
* transcendental functions (exp, log, log1p, expm1, sin, cos, tanh, logistic, atan, erf,
  cbrt, rsqrt, pow): XLA's float64 versions are assumed accurate to
  :data:`TRANSCENDENTAL_ULPS` = 1024 ulps of the result (measured on this machine ≤ 128,
  tests/test_interval_jaxpr.py checks ≤ 1024/4 over |x| ≤ 10⁶): the ends step out by
  3·1024·2⁻⁵²·max|end| + η (the error of our end values, of the program's value, of
  max|end|);
* exact operations (max, min, neg, abs, sign, floor/ceil/round, comparisons, select, clamp,
  sort, reduce_max/min, every shape primitive): no margin.

Subnormal numbers: XLA's CPU backend flushes them to zero (comparisons, max and sort read a
subnormal as 0), so every interval holds the program's value "up to flushing" (±0 for a
subnormal value), and an interval that holds a nonzero subnormal number holds 0 too: the
input box's and the constants' ends in the subnormal range are moved outward to 0 or
±2⁻¹⁰²²; a rounding rule's margin (≥ 2⁻¹⁰⁰⁰) carries any interval that reaches a subnormal
value across 0; an exact rule's ends are ends of its inputs. The final result is widened by
2⁻¹⁰²² to hold the value itself.

A margin never pushes a sign that is proved across zero: a sum of terms that are all ≥ 0, a
product of factors of known sign, an even power, |x|, exp, √ keep a lower end 0 (the float
result of such an operation is ≥ 0 too), so that √ and log of such values stay defined.

Rules (x ∈ [a, b], y ∈ [c, d])
------------------------------
* x + y ∈ [a + c, b + d], x − y ∈ [a − d, b − c], −x ∈ [−b, −a];
* x·y: the min and max of the four corner products ac, ad, bc, bd (x·x, square and even
  powers: [0, max(a², b²)] when a < 0 < b); x/y likewise when 0 ∉ [c, d];
* xⁿ (integer_pow, or pow with a constant exponent p): monotone between the ends of each
  side of 0 (an even n across 0: [0, max(aⁿ, bⁿ)]); a non-integer p needs x ≥ 0;
* a monotone f (exp, log, log1p, expm1, √, cbrt, tanh, logistic, atan, erf; rsqrt
  decreasing): [f(a), f(b)];
* sin and cos: [min, max] of the ends, with max = 1 when [a, b] contains a point π/2 + 2kπ
  (cos: 2kπ) and min = −1 when it contains −π/2 + 2kπ (cos: π + 2kπ) — decided with a slack
  2⁻⁴⁰(1 + |a| + |b|) that errs toward including the critical point (still sound);
* max, min, clamp are nondecreasing in every argument: applied to the lower and the upper
  ends separately; |x| ∈ [0, max(−a, b)] across 0;
* reduce_max / reduce_min: the max / min of the lower ends and of the upper ends (exact);
  reduce_sum: the sums of the ends; reduce_prod: iterated interval products; cumsum,
  cummax, cummin likewise;
* sort along an axis (one operand, one key): every order statistic is nondecreasing in every
  coordinate, so the k-th smallest of the box is [k-th of lo, k-th of hi] — exact; top_k's
  values likewise. The *positions* (argsort, a sort carrying other operands, top_k's indices,
  argmax, argmin) depend on the input: refused;
* dot_general in centre–radius form: [c₁ ± r₁]·[c₂ ± r₂] ⊆ c₁c₂ ± (|c₁|r₂ + r₁|c₂| + r₁r₂),
  contracted by the same dimension numbers;
* comparisons give an interval of booleans (False < True): x < y is certainly true when
  b < c, certainly false when a ≥ d, unknown otherwise; and/or/not are monotone (not:
  antitone) on them; select_n(p, …) takes the case p certainly selects, else the hull of the
  cases p may select; cond likewise (the branch, or the hull of the branches);
* shape primitives (broadcast_in_dim, reshape, squeeze, expand_dims, transpose, slice, rev,
  concatenate, stack, split, tile, pad, copy, gather / dynamic_slice / dynamic_update_slice
  with indices that do not depend on the input), convert_element_type to float64 or from
  booleans / integers, stop_gradient: applied to both ends (they only move values).

Values that do not depend on the input (literals, closed-over constants, iota and what is
computed from them only) are exact where the operation does no rounding (indices, shapes,
integers, booleans: the program's own operation on the same constants, which XLA folds);
where it rounds (float arithmetic on constants) the rule is applied to the degenerate
interval, so that both the real and the float value are enclosed. Indices of gather /
dynamic_slice must be such exact values; a power's exponent must be a literal or constant.

Undefined values. Where an argument interval reaches outside a function's domain (log,
log1p, √, rsqrt below it, a non-integer power of a negative number, a division by an
interval containing 0), the program may produce NaN or ±∞ there: the result is [NaN, NaN],
and every rule propagates NaN (a NaN in one end makes the other NaN too; a comparison with it
is unknown). :func:`interval_extension` reports such an output as (−∞, +∞): no finite
bound. A ``select_n`` whose predicate certainly picks the defined case drops it, as the
program does (``jnp.where(x > 0, jnp.sqrt(x), 0)``).

Refusals. A primitive without a rule (while, scan, scatter, argmax, …), a sort with several
keys, integer division, a float → integer conversion, an index that depends on the input,
a transcendental with a requested ``accuracy``: :class:`NotCertifiable` at construction,
"not certifiable: primitive <name> in the target" (with the reason in parentheses where the
primitive has a rule that does not apply).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend import core as jcore

from infoflow_jax.core.intervals import ETA, U, margin, widen

TRANSCENDENTAL_ULPS = 1024  # assumed accuracy of XLA's float64 transcendental functions, in ulps of the result
_REL = TRANSCENDENTAL_ULPS * 2.0 ** -52  # ulp(v) ≤ 2⁻⁵²·|v| for a normal v; subnormal: covered by η
_CRITICAL_SLACK = 2.0 ** -40  # sin/cos: critical points within this (relative) of an end count as inside
_TINY = float(np.finfo(np.float64).tiny)  # 2⁻¹⁰²², the smallest normal float64


class NotCertifiable(ValueError):
    """The function has no sound interval extension here (the message names the primitive).
    ``message`` keeps the text as raised (JAX appends a note to errors that cross its API)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def refusal(name: str, why: str | None = None) -> NotCertifiable:
    """The error for a primitive without an applicable rule: "not certifiable: primitive <name> in the
    target", with ``why`` in parentheses when the primitive has a rule that does not apply."""
    return NotCertifiable(f"not certifiable: primitive {name} in the target" + (f" ({why})" if why else ""))


# ----------------------------------------------------------------------------- values
@dataclass(frozen=True)
class Box:
    """lo ≤ value ≤ hi elementwise (booleans: False < True). ``exact``: the value does not depend
    on the input and ``lo`` is it (a concrete array, lo is hi)."""

    lo: object
    hi: object
    exact: bool = False

    @staticmethod
    def const(v) -> "Box":
        return Box(v, v, True)


@dataclass(frozen=True)
class Refused:
    """A value with no sound interval (e.g. argsort's positions): refused only if it is used."""

    name: str
    why: str


def _is_float(dtype) -> bool:
    return jnp.issubdtype(dtype, jnp.floating)


def _snap_subnormal(lo, hi):
    """Ends in the subnormal range moved outward to 0 or ±2⁻¹⁰²²: XLA's CPU backend flushes
    subnormal numbers to zero (FTZ/DAZ), so a value that may be subnormal may be ±0 too."""
    lo = jnp.where((lo > 0) & (lo < _TINY), 0.0, jnp.where((lo < 0) & (lo > -_TINY), -_TINY, lo))
    hi = jnp.where((hi < 0) & (hi > -_TINY), 0.0, jnp.where((hi > 0) & (hi < _TINY), _TINY, hi))
    return lo, hi


def _nan_together(lo, hi):
    """A NaN in either end makes the element undefined at both ends (the NaN policy above)."""
    bad = jnp.isnan(lo) | jnp.isnan(hi)
    return jnp.where(bad, jnp.nan, lo), jnp.where(bad, jnp.nan, hi)


def _rounded(lo, hi, err=0.0, nonneg=None, nonpos=None) -> Box:
    """[lo, hi] stepped outward for rounding (``err`` plus one step per end,
    :func:`~infoflow_jax.core.intervals.widen`), keeping a proved sign: where ``nonneg`` every
    real and float value is ≥ 0, the lower end stays ≥ 0 (likewise ``nonpos``)."""
    out = widen(lo, hi, err)
    lo2, hi2 = out.lo, out.hi
    if nonneg is not None:
        lo2 = jnp.where(nonneg & (lo >= 0), jnp.maximum(lo2, 0.0), lo2)
    if nonpos is not None:
        hi2 = jnp.where(nonpos & (hi <= 0), jnp.minimum(hi2, 0.0), hi2)
    return Box(lo2, hi2)


def _transcendental(lo, hi, nonneg=None, nonpos=None) -> Box:
    """Ends of a transcendental's range, stepped out by 3·ULPS·ulp(max|end|) (module docstring).
    A relative error below 1 keeps the sign, so a proved sign of the exact value is kept."""
    mag = jnp.maximum(jnp.abs(lo), jnp.abs(hi))
    return _rounded(lo, hi, 3 * _REL * mag, nonneg=nonneg, nonpos=nonpos)


def _undefined_where(cond, box: Box) -> Box:
    return Box(jnp.where(cond, jnp.nan, box.lo), jnp.where(cond, jnp.nan, box.hi))


# ----------------------------------------------------------------------------- arithmetic
def _add(p, x, y, out_dtype):
    lo, hi = x.lo + y.lo, x.hi + y.hi
    if not _is_float(out_dtype):
        return Box(lo, hi)
    # a correctly rounded sum is ≥ 0 exactly when the exact sum is (tiny sums are exact)
    return _rounded(lo, hi, nonneg=lo >= 0, nonpos=hi <= 0)


def _sub(p, x, y, out_dtype):
    lo, hi = x.lo - y.hi, x.hi - y.lo
    if not _is_float(out_dtype):
        return Box(lo, hi)
    return _rounded(lo, hi, nonneg=lo >= 0, nonpos=hi <= 0)


def _neg(p, x, out_dtype):
    return Box(-x.hi, -x.lo)


def _signs(x, y):
    """(every product ≥ 0, every product ≤ 0) from the operands' signs."""
    nonneg = ((x.lo >= 0) & (y.lo >= 0)) | ((x.hi <= 0) & (y.hi <= 0))
    nonpos = ((x.lo >= 0) & (y.hi <= 0)) | ((x.hi <= 0) & (y.lo >= 0))
    return nonneg, nonpos


def _even_power_range(lo_p, hi_p, x):
    """The range of an even power from its values at the ends: [0, max] across 0."""
    across = (x.lo < 0) & (x.hi > 0)
    return jnp.where(across, 0.0, jnp.minimum(lo_p, hi_p)), jnp.maximum(lo_p, hi_p)


def _mul(p, x, y, out_dtype):
    if x is y:  # x·x: a square, ≥ 0 (interval products would lose that)
        return _square(p, x, out_dtype)
    corners = jnp.stack(jnp.broadcast_arrays(x.lo * y.lo, x.lo * y.hi, x.hi * y.lo, x.hi * y.hi))
    lo, hi = jnp.min(corners, 0), jnp.max(corners, 0)
    if not _is_float(out_dtype):
        return Box(lo, hi)
    nonneg, nonpos = _signs(x, y)
    return _rounded(lo, hi, nonneg=nonneg, nonpos=nonpos)


def _square(p, x, out_dtype):
    lo, hi = _even_power_range(x.lo * x.lo, x.hi * x.hi, x)
    if not _is_float(out_dtype):
        return Box(lo, hi)
    return _rounded(lo, hi, nonneg=jnp.ones(jnp.shape(lo), bool))


def _div(p, x, y, out_dtype):
    if not _is_float(out_dtype):
        raise refusal("div", "integer division")
    zero_in = (y.lo <= 0) & (y.hi >= 0)  # x/0 is ±∞ or NaN: undefined
    corners = jnp.stack(jnp.broadcast_arrays(x.lo / y.lo, x.lo / y.hi, x.hi / y.lo, x.hi / y.hi))
    lo, hi = jnp.min(corners, 0), jnp.max(corners, 0)
    nonneg, nonpos = _signs(x, y)
    return _undefined_where(zero_in, _rounded(lo, hi, nonneg=nonneg, nonpos=nonpos))


def _max(p, x, y, out_dtype):
    return Box(jnp.maximum(x.lo, y.lo), jnp.maximum(x.hi, y.hi))


def _min(p, x, y, out_dtype):
    return Box(jnp.minimum(x.lo, y.lo), jnp.minimum(x.hi, y.hi))


def _abs(p, x, out_dtype):
    # lower end: a when a ≥ 0, −b when b ≤ 0, else 0 — one max (NaN-propagating)
    lo = jnp.maximum(jnp.maximum(x.lo, -x.hi), jnp.zeros_like(x.lo))
    return Box(lo, jnp.maximum(jnp.abs(x.lo), jnp.abs(x.hi)))


def _clamp(p, m, x, M, out_dtype):
    """clamp(m, x, M) = min(max(x, m), M), nondecreasing in all three."""
    return Box(jnp.minimum(jnp.maximum(x.lo, m.lo), M.lo), jnp.minimum(jnp.maximum(x.hi, m.hi), M.hi))


def _power_from_ends(x, lo_p, hi_p, even, needs_nonzero):
    """The range of x ↦ xⁿ over [a, b] from aⁿ and bⁿ: an even n across 0 gives [0, max]; a
    negative n across 0 is undefined; otherwise the power is monotone on the interval."""
    lo, hi = jnp.minimum(lo_p, hi_p), jnp.maximum(lo_p, hi_p)
    if even:
        lo, hi = _even_power_range(lo_p, hi_p, x)
    box = Box(lo, hi)
    if needs_nonzero:
        box = _undefined_where((x.lo <= 0) & (x.hi >= 0), box)
    return box


def _integer_pow(p, x, out_dtype):
    n = int(p["y"])
    if n == 0:
        one = jnp.ones(jnp.shape(x.lo), out_dtype)
        return Box(one, one)
    if not _is_float(out_dtype):
        raise refusal("integer_pow", "on integers")
    box = _power_from_ends(x, lax.integer_pow(x.lo, n), lax.integer_pow(x.hi, n), n % 2 == 0, n < 0)
    mag = jnp.maximum(jnp.abs(box.lo), jnp.abs(box.hi))
    # |n| − 1 multiplications (and one division for n < 0), ours and the program's: γ_{|n|+1}
    nonneg = jnp.ones(jnp.shape(box.lo), bool) if n % 2 == 0 else x.lo >= 0
    out = _rounded(box.lo, box.hi, margin(abs(n) + 1, mag), nonneg=nonneg)
    return _undefined_where(jnp.isnan(box.lo), out)


def _pow(p, x, y, out_dtype):
    if not y.exact or isinstance(y.lo, jax.core.Tracer):
        raise refusal("pow", "an exponent that is not a constant of fn")
    e = np.asarray(y.lo, dtype=np.float64)
    if e.ndim:
        raise refusal("pow", "an array of exponents")
    e = float(e)
    if e == 0.0:
        one = jnp.ones(jnp.shape(x.lo), out_dtype)
        return Box(one, one)
    lo_p, hi_p = lax.pow(x.lo, y.lo), lax.pow(x.hi, y.lo)
    if e.is_integer():
        box = _power_from_ends(x, lo_p, hi_p, int(e) % 2 == 0, e < 0)
    else:  # defined for x ≥ 0 (x = 0: 0 or +∞); monotone there
        box = _undefined_where(x.lo < 0, Box(jnp.minimum(lo_p, hi_p), jnp.maximum(lo_p, hi_p)))
        if e < 0:
            box = _undefined_where(x.lo <= 0, box)
    even = e.is_integer() and int(e) % 2 == 0
    return _transcendental(box.lo, box.hi, nonneg=(x.lo >= 0) | even)


def _monotone(name, f, increasing=True, below=None, at_or_below=None, sign="odd"):
    """The rule of a monotone transcendental f: [f(a), f(b)] (decreasing: [f(b), f(a)]);
    undefined where a < ``below`` or a ≤ ``at_or_below`` (outside f's domain). ``sign``:
    "positive" (f ≥ 0 everywhere: exp, logistic, rsqrt), "odd" (sign f(x) = sign x: tanh, atan,
    erf, cbrt, expm1, log1p), None (log)."""

    def rule(p, x, out_dtype):
        if p.get("accuracy") is not None:
            raise refusal(name, f"accuracy={p['accuracy']!r} requested")
        fa, fb = f(x.lo), f(x.hi)
        lo, hi = (fa, fb) if increasing else (fb, fa)
        if sign == "positive":
            box = _transcendental(lo, hi, nonneg=jnp.ones(jnp.shape(lo), bool))
        elif sign == "odd":
            box = _transcendental(lo, hi, nonneg=x.lo >= 0, nonpos=x.hi <= 0)
        else:
            box = _transcendental(lo, hi)
        if below is not None:
            box = _undefined_where(x.lo < below, box)
        if at_or_below is not None:
            box = _undefined_where(x.lo <= at_or_below, box)
        return box
    return rule


def _correctly_rounded_sqrt(p, x, out_dtype):
    if p.get("accuracy") is not None:
        raise refusal("sqrt", f"accuracy={p['accuracy']!r} requested")
    # √ is correctly rounded (IEEE 754) and ≥ 0: one step out, lower end kept ≥ 0
    box = _rounded(jnp.sqrt(x.lo), jnp.sqrt(x.hi), nonneg=jnp.ones(jnp.shape(x.lo), bool))
    return _undefined_where(x.lo < 0, box)


def _contains_critical(a, b, phase):
    """Whether [a, b] may contain a point phase + 2kπ (errs toward yes: within the slack)."""
    two_pi = 2 * math.pi
    slack = _CRITICAL_SLACK * (1 + jnp.abs(a) + jnp.abs(b))
    k = jnp.ceil((a - slack - phase) / two_pi)
    found = jnp.zeros(jnp.shape(a), bool)
    for dk in (-1.0, 0.0, 1.0):  # the computed k may be off by one either way
        t = phase + two_pi * (k + dk)
        found = found | ((t >= a - slack) & (t <= b + slack))
    return found


def _periodic(f, max_phase, min_phase, name):
    """sin / cos over [a, b]: the ends, and ±1 where a maximum / minimum lies inside."""

    def rule(p, x, out_dtype):
        if p.get("accuracy") is not None:
            raise refusal(name, f"accuracy={p['accuracy']!r} requested")
        a, b = x.lo, x.hi
        fa, fb = f(a), f(b)
        hi = jnp.where(_contains_critical(a, b, max_phase), 1.0, jnp.maximum(fa, fb))
        lo = jnp.where(_contains_critical(a, b, min_phase), -1.0, jnp.minimum(fa, fb))
        box = _transcendental(lo, hi)
        return _undefined_where(~(jnp.isfinite(a) & jnp.isfinite(b)), box)
    return rule


# ----------------------------------------------------------------------------- reductions
def _axes_size(shape, axes) -> int:
    return int(np.prod([shape[i] for i in axes])) if axes else 1


def _reduce_sum(p, x, out_dtype):
    axes = tuple(p["axes"])
    lo, hi = jnp.sum(x.lo, axis=axes), jnp.sum(x.hi, axis=axes)
    if not _is_float(out_dtype):
        return Box(lo, hi)
    n = _axes_size(jnp.shape(x.lo), axes)
    mag = jnp.sum(jnp.maximum(jnp.abs(x.lo), jnp.abs(x.hi)), axis=axes)
    # a float sum of terms that are all ≥ 0 (≤ 0) is ≥ 0 (≤ 0) in any order
    return _rounded(lo, hi, margin(n, mag), nonneg=jnp.all(x.lo >= 0, axis=axes),
                    nonpos=jnp.all(x.hi <= 0, axis=axes))


def _reduce_by(fn):
    """The rule of a monotone reduction (max, min, all, any): applied to each end (exact)."""

    def rule(p, x, out_dtype):
        axes = tuple(p["axes"])
        return Box(fn(x.lo, axis=axes), fn(x.hi, axis=axes))

    return rule


def _reduce_prod(p, x, out_dtype):
    if not _is_float(out_dtype):
        raise refusal("reduce_prod", "on integers")
    axes = tuple(p["axes"])
    keep = [i for i in range(jnp.ndim(x.lo)) if i not in axes]
    n = _axes_size(jnp.shape(x.lo), axes)
    # the reduced axes first and flattened: an exact interval product, factor by factor
    los = jnp.transpose(x.lo, axes + tuple(keep)).reshape((n,) + tuple(jnp.shape(x.lo)[i] for i in keep))
    his = jnp.transpose(x.hi, axes + tuple(keep)).reshape(los.shape)
    acc = Box(jnp.ones(los.shape[1:]), jnp.ones(los.shape[1:]))
    for j in range(n):
        acc = _mul(p, acc, Box(los[j], his[j]), out_dtype)
    # the program's product in any order: γ_n of its magnitude (ours is already in acc)
    mag = jnp.maximum(jnp.abs(acc.lo), jnp.abs(acc.hi))
    nonneg = jnp.all(x.lo >= 0, axis=axes)
    return _rounded(acc.lo, acc.hi, margin(n, mag), nonneg=nonneg)


def _cumulative(prim, rounds):
    def rule(p, x, out_dtype):
        lo, hi = prim.bind(x.lo, **p), prim.bind(x.hi, **p)
        if not rounds or not _is_float(out_dtype):
            return Box(lo, hi)
        n = jnp.shape(x.lo)[p["axis"]]
        mag = prim.bind(jnp.maximum(jnp.abs(x.lo), jnp.abs(x.hi)), **p)
        return _rounded(lo, hi, margin(n, mag))
    return rule


def _sort(p, *xs, out_dtype):
    if p["num_keys"] != 1:
        raise refusal("sort", f"{p['num_keys']} keys")
    axis = p["dimension"]
    key = xs[0]
    lo, hi = jnp.sort(key.lo, axis=axis), jnp.sort(key.hi, axis=axis)
    if _is_float(jnp.result_type(key.lo)):
        # an order statistic of a box with an undefined element is undefined (sorting would move the NaN)
        bad = jnp.any(jnp.isnan(key.lo) | jnp.isnan(key.hi), axis=axis, keepdims=True)
        lo, hi = jnp.where(bad, jnp.nan, lo), jnp.where(bad, jnp.nan, hi)
    out = [Box(lo, hi)]
    out += [Refused("sort", "values permuted by the input's order (argsort, sort by key)") for _ in xs[1:]]
    return out


def _top_k(p, x, out_dtype):
    v_lo, _ = lax.top_k_p.bind(x.lo, **p)
    v_hi, _ = lax.top_k_p.bind(x.hi, **p)
    axis = p.get("axis", -1)
    bad = jnp.any(jnp.isnan(x.lo) | jnp.isnan(x.hi), axis=axis, keepdims=True)
    return [Box(jnp.where(bad, jnp.nan, v_lo), jnp.where(bad, jnp.nan, v_hi)),
            Refused("top_k", "the positions of the largest values")]


def _dot_general(p, x, y, out_dtype):
    if not _is_float(out_dtype):
        raise refusal("dot_general", "on integers")

    def dot(u, v):
        return lax.dot_general_p.bind(u, v, **p)

    def centre_radius(b):
        if b.exact:
            return b.lo, jnp.zeros_like(b.lo)
        c = 0.5 * b.lo + 0.5 * b.hi
        return c, jnp.maximum(b.hi - c, c - b.lo) * (1 + 4 * U) + ETA

    c1, r1 = centre_radius(x)
    c2, r2 = centre_radius(y)
    centre = dot(c1, c2)
    radius = dot(jnp.abs(c1), r2) + dot(r1, jnp.abs(c2)) + dot(r1, r2)
    mag = dot(jnp.abs(c1) + r1, jnp.abs(c2) + r2)
    (contract, _), _ = p["dimension_numbers"]
    n = _axes_size(jnp.shape(x.lo), tuple(contract))
    return _rounded(centre - radius, centre + radius, margin(n, mag))


# ----------------------------------------------------------------------------- booleans, selection
def _compare(strict):
    """x < y (strict) or x ≤ y: certainly true, certainly false, else unknown."""

    def rule(p, x, y, out_dtype):
        true = (x.hi < y.lo) if strict else (x.hi <= y.lo)
        false = (x.lo >= y.hi) if strict else (x.lo > y.hi)
        return Box(true, ~false)
    return rule


def _swap(rule):
    return lambda p, x, y, out_dtype: rule(p, y, x, out_dtype)


def _eq(p, x, y, out_dtype):
    true = (x.lo == x.hi) & (y.lo == y.hi) & (x.lo == y.lo)
    false = (x.hi < y.lo) | (y.hi < x.lo)
    return Box(true, ~false)


def _ne(p, x, y, out_dtype):
    e = _eq(p, x, y, out_dtype)
    return Box(~e.hi, ~e.lo)


def _bool_only(name, f):
    def rule(p, *xs, out_dtype):
        if out_dtype != jnp.bool_:
            raise refusal(name, "bitwise on integers")
        return f(*xs)
    return rule


def _not(x):
    return Box(~x.hi, ~x.lo)


def _xor(x, y):
    known = (x.lo == x.hi) & (y.lo == y.hi)
    v = x.lo ^ y.lo
    return Box(known & v, ~known | v)


def _is_finite(p, x, out_dtype):
    true = jnp.isfinite(x.lo) & jnp.isfinite(x.hi)
    false = (x.lo == x.hi) & jnp.isinf(x.lo)
    return Box(true, ~false)


def _extreme(dtype, top: bool):
    if dtype == jnp.bool_:
        return top
    if _is_float(dtype):
        return jnp.inf if top else -jnp.inf
    info = jnp.iinfo(dtype)
    return info.max if top else info.min


def _hull_of_cases(index: Box, cases):
    """The hull of the cases whose number lies in the index interval (booleans: 0, 1)."""
    i_lo, i_hi = jnp.asarray(index.lo).astype(jnp.int32), jnp.asarray(index.hi).astype(jnp.int32)
    dtype = jnp.result_type(cases[0].lo)
    lo = hi = None
    for i, c in enumerate(cases):
        may = (i_lo <= i) & (i <= i_hi)
        l = jnp.where(may, c.lo, _extreme(dtype, True))
        h = jnp.where(may, c.hi, _extreme(dtype, False))
        lo = l if lo is None else jnp.minimum(lo, l)
        hi = h if hi is None else jnp.maximum(hi, h)
    return Box(lo, hi)


def _select_n(p, which, *cases, out_dtype):
    if which.exact:  # a constant predicate: the program's own selection, on each end
        return Box(lax.select_n(which.lo, *[c.lo for c in cases]), lax.select_n(which.lo, *[c.hi for c in cases]))
    return _hull_of_cases(which, cases)


def _convert(p, x, out_dtype):
    src = jnp.result_type(x.lo)
    if _is_float(out_dtype):
        if _is_float(src) and jnp.finfo(out_dtype).bits < jnp.finfo(src).bits:
            raise refusal("convert_element_type", f"{src} → {out_dtype} rounds")
        # float → wider float, integer or boolean → float: exact, monotone
        return Box(x.lo.astype(out_dtype), x.hi.astype(out_dtype))
    if src == jnp.bool_ or (jnp.issubdtype(src, jnp.integer) and jnp.issubdtype(out_dtype, jnp.integer)
                            and jnp.iinfo(out_dtype).bits >= jnp.iinfo(src).bits):
        return Box(x.lo.astype(out_dtype), x.hi.astype(out_dtype))
    raise refusal("convert_element_type", f"{src} → {out_dtype} of a value that depends on the input")


# ----------------------------------------------------------------------------- shape primitives
def _moves(index_from: int | None = None):
    """A primitive that only moves values: applied to both ends; operands from ``index_from`` on
    are indices and must not depend on the input."""

    def rule(p, *xs, out_dtype, prim):
        data = xs if index_from is None else xs[:index_from]
        idx = () if index_from is None else xs[index_from:]
        if any(not i.exact for i in idx):
            raise refusal(prim.name, "an index that depends on the input")
        lo = prim.bind(*[d.lo for d in data], *[i.lo for i in idx], **p)
        hi = prim.bind(*[d.hi for d in data], *[i.lo for i in idx], **p)
        if prim.multiple_results:
            return [Box(l, h) for l, h in zip(lo, hi)]
        return Box(lo, hi)
    rule.needs_prim = True
    return rule


def _identity(p, *xs, out_dtype):
    return list(xs) if len(xs) > 1 else xs[0]


# ----------------------------------------------------------------------------- the rule table
RULES: dict[str, Callable] = {
    "add": _add, "sub": _sub, "neg": _neg, "mul": _mul, "div": _div, "max": _max, "min": _min,
    "abs": _abs, "square": _square, "integer_pow": _integer_pow, "pow": _pow, "clamp": _clamp,
    "sqrt": _correctly_rounded_sqrt,
    "exp": _monotone("exp", jnp.exp, sign="positive"), "log": _monotone("log", jnp.log, below=0.0, sign=None),
    "log1p": _monotone("log1p", jnp.log1p, below=-1.0), "expm1": _monotone("expm1", jnp.expm1),
    "tanh": _monotone("tanh", jnp.tanh), "logistic": _monotone("logistic", jax.nn.sigmoid, sign="positive"),
    "atan": _monotone("atan", jnp.arctan), "erf": _monotone("erf", lax.erf), "cbrt": _monotone("cbrt", jnp.cbrt),
    "rsqrt": _monotone("rsqrt", lax.rsqrt, increasing=False, at_or_below=0.0, sign="positive"),
    "sin": _periodic(jnp.sin, math.pi / 2, -math.pi / 2, "sin"),
    "cos": _periodic(jnp.cos, 0.0, math.pi, "cos"),
    "reduce_sum": _reduce_sum, "reduce_max": _reduce_by(jnp.max), "reduce_min": _reduce_by(jnp.min),
    "reduce_prod": _reduce_prod, "reduce_and": _reduce_by(jnp.all), "reduce_or": _reduce_by(jnp.any),
    "cumsum": _cumulative(lax.cumsum_p, True), "cummax": _cumulative(lax.cummax_p, False),
    "cummin": _cumulative(lax.cummin_p, False),
    "sort": _sort, "top_k": _top_k, "dot_general": _dot_general,
    "lt": _compare(True), "le": _compare(False), "gt": _swap(_compare(True)), "ge": _swap(_compare(False)),
    "eq": _eq, "ne": _ne, "is_finite": _is_finite,
    "and": _bool_only("and", lambda x, y: Box(x.lo & y.lo, x.hi & y.hi)),
    "or": _bool_only("or", lambda x, y: Box(x.lo | y.lo, x.hi | y.hi)),
    "not": _bool_only("not", _not), "xor": _bool_only("xor", _xor),
    "select_n": _select_n, "convert_element_type": _convert,
    "stop_gradient": _identity, "optimization_barrier": _identity,
}
# nondecreasing and exact in floats: applied to each end
for _name in ("floor", "ceil", "round", "sign", "copy", "copy_p"):
    RULES[_name] = _moves()
for _name in ("broadcast_in_dim", "reshape", "squeeze", "expand_dims", "transpose", "slice", "rev",
              "concatenate", "stack", "split", "tile", "pad", "unstack", "sharding_constraint"):
    RULES[_name] = _moves()
RULES["gather"] = _moves(index_from=1)
RULES["dynamic_slice"] = _moves(index_from=1)
RULES["dynamic_update_slice"] = _moves(index_from=2)

# operations that do no rounding: on constants they are evaluated exactly (the others through their rule)
_EXACT_ON_CONSTANTS = frozenset({
    "neg", "max", "min", "abs", "clamp", "reduce_max", "reduce_min", "reduce_and", "reduce_or", "cummax",
    "cummin", "sort", "top_k", "argmax", "argmin", "lt", "le", "gt", "ge", "eq", "ne", "is_finite", "and", "or",
    "not", "xor", "select_n", "convert_element_type", "stop_gradient", "iota", "floor", "ceil", "round", "sign",
    "copy", "copy_p", "broadcast_in_dim", "reshape", "squeeze", "expand_dims", "transpose", "slice", "rev",
    "concatenate", "stack", "split", "tile", "pad", "unstack", "gather", "dynamic_slice", "dynamic_update_slice",
    "sharding_constraint", "optimization_barrier",
})

# primitives that call a sub-jaxpr: parameter holding it (a ClosedJaxpr, or an open Jaxpr)
_CALLS = {"jit": "jaxpr", "pjit": "jaxpr", "closed_call": "call_jaxpr", "core_call": "call_jaxpr",
          "custom_jvp_call": "call_jaxpr", "custom_vjp_call": "call_jaxpr", "custom_vjp_call_jaxpr": "fun_jaxpr",
          "remat": "jaxpr", "remat2": "jaxpr", "checkpoint": "jaxpr"}


def supported_primitives() -> frozenset:
    """Names of the primitives with an interval rule (plus the calls and cond, interpreted recursively)."""
    return frozenset(RULES) | frozenset(_CALLS) | {"cond", "iota"}


# ----------------------------------------------------------------------------- the interpreter
def _const(c) -> Box:
    """A constant; a subnormal float one is an interval (the program may read it as ±0)."""
    c = np.asarray(c) if not isinstance(c, jax.Array) else c
    if _is_float(c.dtype) and bool(np.any((np.abs(np.asarray(c)) < _TINY) & (np.asarray(c) != 0))):
        return Box(*_snap_subnormal(jnp.minimum(c, 0.0), jnp.maximum(c, 0.0)))
    return Box.const(c)


def _read(env, v):
    if isinstance(v, jcore.Literal):
        return _const(v.val)
    return env[v]


def _eval_jaxpr(jaxpr, consts, args):
    env = {}
    for v, c in zip(jaxpr.constvars, consts):
        env[v] = c if isinstance(c, Box) else _const(c)
    for v, a in zip(jaxpr.invars, args):
        env[v] = a
    for eqn in jaxpr.eqns:
        outs = _apply(eqn, [_read(env, v) for v in eqn.invars])
        for v, o in zip(eqn.outvars, outs):
            if not isinstance(v, jcore.DropVar):
                env[v] = o
    return [_read(env, v) for v in jaxpr.outvars]


def _call_closed(closed, args):
    if isinstance(closed, jcore.ClosedJaxpr):
        return _eval_jaxpr(closed.jaxpr, closed.consts, args)
    return _eval_jaxpr(closed, [], args)


def _cond(eqn, ins):
    index, ops = ins[0], ins[1:]
    branches = eqn.params["branches"]
    if index.exact and not isinstance(index.lo, jax.core.Tracer):  # a literal index: that branch
        return _call_closed(branches[int(np.clip(np.asarray(index.lo), 0, len(branches) - 1))], ops)
    results = [_call_closed(br, ops) for br in branches]
    # lax.cond clamps the index into range; the hull of the branches the index interval reaches
    idx = Box(jnp.clip(jnp.asarray(index.lo).astype(jnp.int32), 0, len(branches) - 1),
              jnp.clip(jnp.asarray(index.hi).astype(jnp.int32), 0, len(branches) - 1))
    out = []
    for k in range(len(results[0])):
        cases = [r[k] for r in results]
        for c in cases:
            if isinstance(c, Refused):
                raise refusal(c.name, c.why)
        out.append(_hull_of_cases(idx, cases))
    return out


def _apply(eqn, ins):
    name = eqn.primitive.name
    for b in ins:
        if isinstance(b, Refused):
            raise refusal(b.name, b.why)
    if name in _CALLS:
        return _call_closed(eqn.params[_CALLS[name]], ins)
    if name == "cond":
        return _cond(eqn, ins)
    out_dtypes = [v.aval.dtype for v in eqn.outvars]
    if all(b.exact for b in ins) and (name in _EXACT_ON_CONSTANTS or not any(_is_float(t) for t in out_dtypes)):
        # no rounding, no input: the program's own operation on the constants (staged, not run
        # here: XLA folds it), exact; a float result may be subnormal, so it gets its interval
        vals = eqn.primitive.bind(*[b.lo for b in ins], **eqn.params)
        vals = vals if eqn.primitive.multiple_results else [vals]
        return [Box(*_snap_subnormal(v, v)) if _is_float(v.dtype) else Box.const(v) for v in vals]
    rule = RULES.get(name)
    if rule is None:
        raise refusal(name)
    kw = {"out_dtype": out_dtypes[0]}
    if getattr(rule, "needs_prim", False):
        kw["prim"] = eqn.primitive
    res = rule(eqn.params, *ins, **kw)  # a rounding operation on constants too: as an interval
    res = res if isinstance(res, list) else [res]
    out = []
    for r, t in zip(res, out_dtypes):
        if isinstance(r, Box) and _is_float(t):
            r = Box(*_nan_together(jnp.asarray(r.lo, t), jnp.asarray(r.hi, t)))
        out.append(r)
    return out


# ----------------------------------------------------------------------------- the public function
def interval_extension(fn: Callable, example_shape: tuple, dtype=jnp.float64) -> Callable:
    """An interval extension of ``fn`` (module docstring): ``ext(lo, hi) → (lo_f, hi_f)`` with
    lo_f ≤ fn(X) ≤ hi_f for every X with lo ≤ X ≤ hi, both in real arithmetic and as fn is
    evaluated in float64. ``lo``, ``hi``: (..., *example_shape); results (..., *out_shape),
    out_shape = fn's output shape on one input. An element where fn may be undefined on the
    box (NaN, e.g. log of an interval reaching below 0) gets (−∞, +∞).

    fn is traced once here (:func:`jax.make_jaxpr` on one input of ``example_shape``) and the
    interpretation is checked once abstractly: a primitive without an applicable rule raises
    :class:`NotCertifiable` now ("not certifiable: primitive <name> in the target"), never
    inside a compiled call. ``ext`` is jit- and vmap-compatible."""
    example_shape = tuple(int(s) for s in example_shape)
    example = jax.ShapeDtypeStruct(example_shape, dtype)
    closed = jax.make_jaxpr(fn)(example)
    if len(closed.jaxpr.outvars) != 1:
        raise NotCertifiable(f"not certifiable: the target returns {len(closed.jaxpr.outvars)} arrays, not one")
    out_aval = closed.jaxpr.outvars[0].aval
    if not _is_float(out_aval.dtype):
        raise NotCertifiable(f"not certifiable: the target's value has dtype {out_aval.dtype}, not a float")

    def one(lo, hi):
        (out,) = _eval_jaxpr(closed.jaxpr, closed.consts, [Box(*_snap_subnormal(lo, hi))])
        if isinstance(out, Refused):
            raise refusal(out.name, out.why)
        o_lo = jnp.broadcast_to(jnp.asarray(out.lo, dtype), out_aval.shape)
        o_hi = jnp.broadcast_to(jnp.asarray(out.hi, dtype), out_aval.shape)
        bad = jnp.isnan(o_lo) | jnp.isnan(o_hi)
        # the intervals hold the program's values up to flushing (±0 for a subnormal): ±2⁻¹⁰²² more
        return jnp.where(bad, -jnp.inf, o_lo - _TINY), jnp.where(bad, jnp.inf, o_hi + _TINY)

    try:  # interpreted once, into a jaxpr of interval arithmetic: every rule applies, or NotCertifiable now
        interval_program = jax.make_jaxpr(one)(example, example)
    except NotCertifiable as exc:
        raise NotCertifiable(exc.message) from None
    run_one = jcore.jaxpr_as_fun(interval_program)

    def extension(lo, hi):
        lo, hi = jnp.asarray(lo, dtype), jnp.asarray(hi, dtype)
        batch = lo.shape[: lo.ndim - len(example_shape)]
        if lo.shape[len(batch):] != example_shape or hi.shape != lo.shape:
            raise ValueError(f"boxes of shape (..., {example_shape}), got {lo.shape} and {hi.shape}")
        flat = (-1,) + example_shape
        o_lo, o_hi = jax.vmap(run_one)(lo.reshape(flat), hi.reshape(flat))
        return o_lo.reshape(batch + out_aval.shape), o_hi.reshape(batch + out_aval.shape)

    extension.jaxpr = closed
    return extension
