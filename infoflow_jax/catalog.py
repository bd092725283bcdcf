"""The catalog: every construction and lemma check by name — built-in and the user's.

Layer: above ``constructions/`` (it reads ``constructions.CATALOG``) and below the sweeps,
training and the command line (which look names up here). Order: the built-in
constructions, the lemma checks, then user registrations in the order they were made.

:func:`register` is notebook-safe: registering a name again *replaces* the entry (re-running
a cell that defines a construction just updates it). A user entry may not shadow a built-in
name (that would silently change what ``infoflow verify C2`` means).
"""

from __future__ import annotations

from infoflow_jax.core.errors import InputError
from infoflow_jax.verification.construction import ConstructionSpec, LemmaCheckSpec

_USER: dict[str, ConstructionSpec | LemmaCheckSpec] = {}


def builtin() -> dict[str, ConstructionSpec | LemmaCheckSpec]:
    """The shipped constructions (``constructions.CATALOG``) and lemma checks, by name."""
    from constructions import CATALOG
    from infoflow_jax.verification.lemma_checks import LEMMA_CHECKS

    return {spec.name: spec for spec in (*CATALOG, *LEMMA_CHECKS)}


def catalog() -> dict[str, ConstructionSpec | LemmaCheckSpec]:
    """Every entry by name: built-in first, then the user's registrations."""
    return {**builtin(), **_USER}


def register(spec: ConstructionSpec | LemmaCheckSpec) -> ConstructionSpec | LemmaCheckSpec:
    """Add a user's construction (or lemma check) to the catalog; a second call with the same
    name replaces the first. Returns ``spec``."""
    if not isinstance(spec, (ConstructionSpec, LemmaCheckSpec)):
        raise InputError("spec", type(spec).__name__, "a ConstructionSpec or LemmaCheckSpec")
    if spec.name in builtin():
        raise InputError("name", spec.name, "a name that is not built in (" + ", ".join(builtin()) + ")")
    _USER[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a user's entry (built-in entries cannot be removed)."""
    _USER.pop(name, None)


def lookup(name: str) -> ConstructionSpec | LemmaCheckSpec:
    entries = catalog()
    if name not in entries:
        raise InputError("name", name, "one of " + ", ".join(entries))
    return entries[name]
