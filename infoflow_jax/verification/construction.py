"""What a construction is: :class:`Built` (weights + claim), :class:`ConstructionSpec`, and its error function.

A construction is a function ``(T, eps, *, k, mutant, beta, **options) -> Built``:
hand-built weights for a task, the bound it claims as a formula of the
quantities it chose (β, N, γ, T), and its parameter counts. The claimed bound is
≤ ε by construction when the construction chooses β itself (asserted by the
verifier; a user-given β may break it, and the row then fails).

A *mutant* is a deliberately broken build of the same construction (β too
small, a flag dropped, a knot dropped, a sign flipped) that keeps the original
claim. The verifier must report it as failing: that is what shows the verifier
can fail at all (shared kinds of defect: :mod:`infoflow_jax.verification.mutants`).

Which constructions exist is not decided here: the built-in ones are listed in
``constructions.CATALOG``, and :mod:`infoflow_jax.catalog` joins them with the
lemma checks and with whatever a user registers.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable

import jax.numpy as jnp

from infoflow_jax.core.errors import check_choice
from infoflow_jax.core.fast_model import apply_fast
from infoflow_jax.core.model import apply
from infoflow_jax.core.params import ParamCount, count_params
from infoflow_jax.core.slots import CompiledProgram
from infoflow_jax.core.tasks import Task


@dataclass
class Built:
    """A constructed model with its claim.

    ``bound`` is the claimed sup-norm error, ``bound_terms`` its named terms (they sum to
    ``bound``), ``betas`` the inverse temperature per layer, ``choices`` what the construction
    chose (N, γ, K, …). ``probes`` (name → array (B, T, d)) are inputs the construction's
    proof singles out as likely worst cases; reading them also gives the structural probes read
    off the compiled program (``probe:…``, :mod:`~infoflow_jax.verification.probes`), computed on
    first read (:class:`Probes`), so that ``verify`` and a sweep, which both evaluate
    ``built.probes``, see the same inputs.
    """

    name: str
    task: Task
    compiled: CompiledProgram
    eps: float
    bound: float
    bound_terms: dict[str, float]
    betas: list[float | None]
    choices: dict = field(default_factory=dict)
    mutant: str | None = None
    probes: dict = field(default_factory=dict)

    def __setattr__(self, name, value):
        if name == "probes" and not isinstance(value, Probes):  # the constructor's and a later assignment
            value = Probes(value or {}, self)
        object.__setattr__(self, name, value)

    @property
    def param_count(self) -> ParamCount:
        return count_params(self.compiled.model)

    def split(self):
        return self.compiled.split()

    def predict(self, X):
        graphdef, state = self.split()
        return apply(graphdef, state, X)


class Probes(dict):
    """A construction's own probes, followed, from the first read on, by the structural probes of its
    compiled program (:func:`~infoflow_jax.verification.probes.structural_probes`, seed 0: they are
    read off the weights). Lazy, so that a build nobody verifies pays nothing for them."""

    def __init__(self, own: dict, built):
        super().__init__(own)
        self._built, self._filled = built, False

    def _fill(self):
        if not self._filled:
            from infoflow_jax.verification.probes import structural_probes  # probes reads Built's program

            self._filled = True
            for name, X in structural_probes(self._built).items():
                super().setdefault(name, X)

    def __getitem__(self, k):
        self._fill()
        return super().__getitem__(k)

    def __iter__(self):
        self._fill()
        return super().__iter__()

    def __len__(self):
        self._fill()
        return super().__len__()

    def __contains__(self, k):
        self._fill()
        return super().__contains__(k)

    def keys(self):
        self._fill()
        return super().keys()

    def values(self):
        self._fill()
        return super().values()

    def items(self):
        self._fill()
        return super().items()

    def get(self, k, default=None):
        self._fill()
        return super().get(k, default)

    def __reduce__(self):  # pickled as the plain dict of everything
        self._fill()
        return (dict, (dict(super().items()),))


@functools.lru_cache(maxsize=256)
def error_function(graphdef, task: Task, dtype: str = "float64"):
    """err(state, X) = |Ĥ(X) − H(X)| for one input; pure, jit/vmap-ready.

    In ``"float32"`` the model runs in float32 and the target in float64 (a throughput run
    whose error floor is then measured, not assumed). Cached on (graphdef, task, dtype), all
    compared by value (a task is a frozen dataclass), so that builds of one shape and task
    (every mutant of a configuration, every ε of a padded bucket) share one compiled program.
    """
    target = task.target
    if dtype == "float64":
        def err(state, X):
            return jnp.abs(apply(graphdef, state, X) - target(X))
    else:
        def err(state, X):
            y = apply(graphdef, state, X.astype(jnp.float32)).astype(jnp.float64)
            return jnp.abs(y - target(X))
    return err


@functools.lru_cache(maxsize=256)
def fast_error_function(task: Task):
    """err(plan, X) = |Ĥ(X) − H(X)| on the exact fast path: ``plan`` is the pytree
    :func:`infoflow_jax.core.fast_model.fast_plan` derives from the compiled weights (its
    graphdef is static inside it), Ĥ = :func:`~infoflow_jax.core.fast_model.apply_fast`,
    equal to the dense :func:`error_function`'s Ĥ to float64 rounding. Float64 only."""
    target = task.target

    def err(plan, X):
        return jnp.abs(apply_fast(plan, X) - target(X))
    return err


@dataclass(frozen=True)
class ConstructionSpec:
    """A catalog entry: how to build, which task, which mutants, which grid to run by default."""

    name: str
    task_id: str
    summary: str
    build: Callable[..., Built]
    mutants: dict[str, str]
    layers: Callable[[int | None], int]  # L as a function of k (or r)
    uses_k: bool = False
    default_T: tuple[int, ...] = (4, 16, 64)
    default_eps: tuple[float, ...] = (1e-1, 1e-2, 1e-3)
    default_k: tuple[int | None, ...] = (None,)
    # the parameter exponent b it claims: a number, or a callable taking any of T, k, r, D by name
    expected_exponent: float | Callable | None = None
    # counts without building, for sizes too large to instantiate: (T, eps, **options) →
    # {"params_theorem": int, "choices": dict, "note": str}; reported as a formula, never as measured
    formula: Callable[..., dict] | None = None


@dataclass(frozen=True)
class LemmaCheckSpec:
    """A lemma check: a function (T, beta, seed, budget) -> record."""

    name: str
    summary: str
    run: Callable[..., object]
    mutants: dict = field(default_factory=dict)
    default_T: tuple[int, ...] = (2, 16, 256)
    default_beta: tuple[float, ...] = (10.0, 1e3)


def check_mutant(spec: ConstructionSpec, mutant: str | None) -> str | None:
    if mutant is not None:
        check_choice("mutant", mutant, spec.mutants)
    return mutant
