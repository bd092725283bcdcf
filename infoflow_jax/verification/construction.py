"""What a construction is, and the registry of constructions and lemma checks.

A construction is a function ``(T, eps, *, k, mutant, beta, **options) -> Built``:
hand-built weights for a task, the bound it claims as a formula of the
quantities it chose (β, N, γ, T), and its parameter counts. The claimed bound is
≤ ε by construction when the construction chooses β itself (asserted by the
verifier; a user-given β may break it, and the row then fails).

A *mutant* is a deliberately broken build of the same construction (β too
small, a flag dropped, a knot dropped, a sign flipped) that keeps the original
claim. The verifier must report it as failing: that is what shows the verifier
can fail at all.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable

import jax.numpy as jnp

from infoflow_jax.core.errors import InputError, check_choice
from infoflow_jax.core.model import apply
from infoflow_jax.core.params import ParamCount, count_params
from infoflow_jax.core.slots import CompiledProgram
from infoflow_jax.core.tasks import Task


@dataclass
class Built:
    """A constructed model with its claim."""

    name: str
    task: Task
    compiled: CompiledProgram
    eps: float
    bound: float
    bound_terms: dict[str, float]
    betas: list[float | None]
    choices: dict = field(default_factory=dict)
    mutant: str | None = None

    @property
    def params(self) -> ParamCount:
        return count_params(self.compiled.model)

    def split(self):
        return self.compiled.split()

    def predict(self, X):
        graphdef, state = self.split()
        return apply(graphdef, state, X)


@functools.lru_cache(maxsize=256)
def error_function(graphdef, task: Task):
    """err(state, X) = |Ĥ(X) − H(X)| for one input; pure, jit/vmap-ready.

    Cached on (graphdef, task), both compared by value (a task is a frozen
    dataclass), so that builds of one shape and task (every mutant of a
    configuration, every ε of a padded bucket) share one compiled program.
    """
    target = task.target

    def err(state, X):
        return jnp.abs(apply(graphdef, state, X) - target(X))

    return err


@dataclass(frozen=True)
class ConstructionSpec:
    """A registry entry: how to build, which task, which mutants, which grid to run by default."""

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


@dataclass(frozen=True)
class LemmaCheckSpec:
    """A lemma check: a function (T, beta, seed, budget) -> record fields."""

    name: str
    summary: str
    run: Callable[..., dict]
    mutants: dict = field(default_factory=lambda: {"temperature-off": "softmax evaluated at β/10 against the bound for β"})
    default_T: tuple[int, ...] = (2, 16, 256)
    default_beta: tuple[float, ...] = (10.0, 1e3)


REGISTRY: dict[str, ConstructionSpec | LemmaCheckSpec] = {}


def register(spec):
    if spec.name in REGISTRY:
        raise ValueError(f"duplicate registry name {spec.name}")
    REGISTRY[spec.name] = spec
    return spec


def load_all() -> dict:
    """Import every construction module and lemma check, so they register themselves."""
    import constructions  # noqa: F401  (its __init__ imports each module)
    import infoflow_jax.verification.lemma_checks  # noqa: F401

    return REGISTRY


def lookup(name: str):
    load_all()
    if name not in REGISTRY:
        raise InputError("name", name, "one of " + ", ".join(REGISTRY))
    return REGISTRY[name]


def check_mutant(spec: ConstructionSpec, mutant: str | None) -> str | None:
    if mutant is not None:
        check_choice("mutant", mutant, spec.mutants)
    return mutant
