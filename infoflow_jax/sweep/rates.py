"""Rate fitting (THEORY §6): parameter exponents and error-vs-parameter slopes with 95% intervals.

Per group (construction, T, k, γ, dtype, task, r, D) of real (non-mutant) measured records:

* **parameter exponent** b̂: least-squares slope of log(params_theorem) on
  log(1/ε); expected b (1 for C1–C3);
* **error slope** â: slope of log(err_estimate) on log(params_theorem);
  expected −1/b (err ≈ ε ≈ params^(−1/b)).

Each slope comes with a Student-t interval (numpy ``lstsq`` + ``scipy.stats.t``,
n − 2 degrees of freedom). A fit *agrees* when the expected value lies inside
the interval or within ±0.15 of the slope. THEORY §6 asks for ≥ 4 values of ε
spanning ≥ 2 decades; groups with less are reported as ``insufficient``.

Which records enter a fit: :func:`~infoflow_jax.core.rates.fit_eligible` (measured real rows).
Expected exponents: the construction spec's ``expected_exponent`` (a number, or a callable of
T, k and the group's other fields), read from ``registry`` (default: the catalog); a name no
spec in it carries, or a spec without one, has none.
"""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass

import numpy as np

from infoflow_jax.core.rates import LEVEL, MIN_DISTINCT_EPS, TOLERANCE  # noqa: F401  (re-exported)
from infoflow_jax.core.rates import Fit, fit_eligible, fit_slope  # noqa: F401  (re-exported)

MIN_DECADES = 2.0


def expected_exponent(name: str, T: int | None = None, k: int | None = None, registry: dict | None = None,
                      **more):
    """The parameter exponent a construction claims: its spec's ``expected_exponent`` in ``registry``
    (default: :func:`~infoflow_jax.catalog.catalog`), else None.

    A callable ``expected_exponent`` receives, by name, whichever of T, k and the
    group's other fields (``r``, ``D``, ``task``, ``gamma``) it declares; one
    without named parameters is called as ``f(T, k)``.
    """
    if registry is None:
        from infoflow_jax.catalog import catalog

        registry = catalog()
    spec = registry.get(name)
    e = getattr(spec, "expected_exponent", None) if spec is not None else None
    if callable(e):
        given = {"T": T, "k": k, **more}
        try:
            params = inspect.signature(e).parameters
        except (TypeError, ValueError):
            params = {}
        kw = {key: v for key, v in given.items() if key in params}
        e = e(**kw) if kw else e(T, k)
    return None if e is None else float(e)


@dataclass(frozen=True)
class RateRow:
    name: str
    T: int
    k: int | None
    gamma: float | None
    dtype: str
    n_eps: int
    decades: float
    sufficient: bool
    expected: float | None  # expected parameter exponent b
    params_fit: Fit
    params_ok: bool | None
    expected_err_slope: float | None  # −1/b
    err_fit: Fit
    err_ok: bool | None

    @property
    def passed(self) -> bool | None:
        if not self.sufficient or self.params_ok is None:
            return None
        return bool(self.params_ok and (self.err_ok is not False))

    def as_dict(self) -> dict:
        d = asdict(self)
        d["passed"] = self.passed
        return d


def fit_rates(records: list[dict], registry: dict | None = None) -> list[RateRow]:
    """One :class:`RateRow` per (name, T, k, γ, dtype) group of real construction records."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        if fit_eligible(r):
            key = (r["name"], r["T"], r.get("k"), r.get("gamma"), r.get("dtype", "float64"), r.get("task"),
                   r.get("r"), r.get("D"))
            groups.setdefault(key, []).append(r)
    rows = []
    order = lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0, kv[0][3] or 0.0, kv[0][4], str(kv[0][5]),
                        kv[0][6] or 0, kv[0][7] or 0)
    for (name, T, k, gamma, dtype, task, r_, D), rs in sorted(groups.items(), key=order):
        eps = np.array([r["eps"] for r in rs], np.float64)
        params = np.array([r["params_theorem"] for r in rs], np.float64)
        err = np.array([r["err_estimate"] for r in rs], np.float64)
        n_eps = len(set(eps.tolist()))
        decades = float(np.log10(eps.max() / eps.min())) if n_eps > 1 else 0.0
        sufficient = n_eps >= MIN_DISTINCT_EPS and decades >= MIN_DECADES - 1e-9
        b = expected_exponent(name, T, k, registry, r=r_, D=D, task=task, gamma=gamma)
        pfit = fit_slope(np.log(1.0 / eps), np.log(params))
        pos = err > 0
        efit = fit_slope(np.log(params[pos]), np.log(err[pos]))
        e_exp = None if b in (None, 0) else -1.0 / b
        rows.append(RateRow(name=name, T=T, k=k, gamma=gamma, dtype=dtype, n_eps=n_eps, decades=decades,
                            sufficient=sufficient, expected=b, params_fit=pfit, params_ok=pfit.agrees(b),
                            expected_err_slope=e_exp, err_fit=efit, err_ok=efit.agrees(e_exp)))
    return rows
