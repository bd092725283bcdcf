"""The catalog: every construction and lemma check by name — built-in, installed and the user's —
and the one resolver that turns what a user types into a spec.

Layer: above ``constructions/`` (it reads ``constructions.CATALOG``) and below the sweeps,
training and the command line (which look names up here, and nowhere else). Order of
:func:`catalog`: the built-in constructions, the lemma checks, the constructions installed
packages declare as entry points, then user registrations in the order they were made.

What :func:`lookup` (one spec) and :func:`select` (several) accept:

* a catalog name: ``C2``, ``L1-softmax-max``, an installed entry point's spec name, a name
  given to :func:`register` in this process;
* a *reference* ``path/to/mine.py:SPEC`` (absolute, or relative to ``base``: the current
  folder by default) — the file is imported as a module named after its resolved path
  (:func:`file_module_name`), so every process that resolves the reference gets the same
  module, and pickles of its objects resolve;
* a reference ``package.module:SPEC`` (imported with :mod:`importlib`); ``SPEC`` may be
  dotted (``module:obj.attr``);
* :func:`select` only: ``path/to/mine.py`` or ``package.module`` without ``:SPEC`` — every
  ConstructionSpec / LemmaCheckSpec at the module's top level (:func:`provided`).

``SPEC`` must be a :class:`ConstructionSpec` or :class:`LemmaCheckSpec` whose name is not a
built-in one. Every way a reference can be bad (no such file or module, no such attribute,
not a spec, the module raising on import, a built-in name) is an :class:`InputError`
naming the reference and what is allowed, so the command line exits 2 with one line.

Entry points: an installed package declares constructions in the entry-point group
:data:`ENTRY_POINT_GROUP` (``infoflow_jax.constructions``); each entry point's value is
``module:ATTR`` giving a spec, or a list/tuple of specs. They are loaded once per process.
A broken one (it raises on import, it is not a spec, its name is taken) is skipped with an
:class:`EntryPointWarning` (one line), and never breaks the built-ins.

:func:`register` is notebook-safe: registering a name again *replaces* the entry (re-running
a cell that defines a construction just updates it). A user entry may not shadow a built-in
name (that would silently change what ``infoflow verify C2`` means).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import re
import sys
import warnings
from pathlib import Path

from infoflow_jax.core.errors import EntryPointWarning, InputError
from infoflow_jax.verification.construction import ConstructionSpec, LemmaCheckSpec

Spec = ConstructionSpec | LemmaCheckSpec
ENTRY_POINT_GROUP = "infoflow_jax.constructions"
REFERENCE_FORMS = "a reference path/to/file.py:SPEC or package.module:SPEC"

_USER: dict[str, Spec] = {}
# id(spec) → (spec, the reference that resolved it); the spec is held so that its id is never reused
_RESOLVED: dict[int, tuple[Spec, str]] = {}
# the installed entry points, once loaded: ((name, spec), ...), (problem, ...)
_ENTRY_POINTS: tuple | None = None
_LOADING_ENTRY_POINTS = False
_PLUGGED: dict[int, str] = {}  # id(spec) → which entry point gave it (for listings)


# ----------------------------------------------------------------------------- the catalog
def builtin() -> dict[str, Spec]:
    """The shipped constructions (``constructions.CATALOG``) and lemma checks, by name."""
    from constructions import CATALOG
    from infoflow_jax.verification.lemma_checks import LEMMA_CHECKS

    return {spec.name: spec for spec in (*CATALOG, *LEMMA_CHECKS)}


def catalog() -> dict[str, Spec]:
    """Every entry by name: built-in first, then installed entry points, then the user's registrations."""
    return {**builtin(), **installed(), **_USER}


def register(spec: Spec) -> Spec:
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


# ----------------------------------------------------------------------------- entry points
def installed() -> dict[str, Spec]:
    """The specs installed packages declare in :data:`ENTRY_POINT_GROUP`, by name (loaded once
    per process; the first call warns once per skipped entry point)."""
    specs, _ = _load_entry_points()
    return dict(specs)


def _load_entry_points() -> tuple[tuple[tuple[str, Spec], ...], tuple[str, ...]]:
    """((name, spec), ...), (problem, ...): every entry point loaded, the broken ones skipped.
    Loaded once per process: warnings come once. A plugin that asks for the catalog while it is
    being imported (e.g. it looks up a spec to derive its own) gets the catalog without entry
    points — loading them again from inside would import that half-initialised plugin."""
    global _ENTRY_POINTS, _LOADING_ENTRY_POINTS
    if _ENTRY_POINTS is not None:
        return _ENTRY_POINTS
    if _LOADING_ENTRY_POINTS:
        return (), ()
    _LOADING_ENTRY_POINTS = True
    try:
        _ENTRY_POINTS = _read_entry_points()
    finally:
        _LOADING_ENTRY_POINTS = False
    for message in _ENTRY_POINTS[1]:
        warnings.warn(message, EntryPointWarning, stacklevel=3)
    return _ENTRY_POINTS


def _read_entry_points() -> tuple[tuple[tuple[str, Spec], ...], tuple[str, ...]]:
    """Load every entry point of the group; a broken one becomes a problem line, never an exception."""
    builtins = builtin()
    found: dict[str, Spec] = {}
    problems: list[str] = []
    try:
        eps = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    except Exception as exc:  # unreadable metadata somewhere on sys.path: the built-ins still work
        eps = []
        problems.append(f"entry points of group {ENTRY_POINT_GROUP} skipped: {type(exc).__name__}: {exc}")
    for ep in eps:
        dist = getattr(getattr(ep, "dist", None), "name", None)
        where = f"entry point {ep.name} = {ep.value}" + (f" (package {dist})" if dist else "")
        try:
            obj = ep.load()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit included: a plugin must not end the command
            problems.append(f"{where} skipped: it raised {_one_line(exc)}")
            continue
        items = list(obj) if isinstance(obj, (list, tuple)) else [obj]
        bad = [x for x in items if not isinstance(x, (ConstructionSpec, LemmaCheckSpec))]
        if bad or not items:
            what = type(bad[0]).__name__ if bad else "an empty list"
            problems.append(f"{where} skipped: it gives {what}, not a ConstructionSpec or LemmaCheckSpec "
                            "(or a list of them)")
            continue
        for spec in items:
            if spec.name in builtins and builtins[spec.name] is not spec:
                problems.append(f"{where}: {spec.name} skipped: a built-in name")
            elif spec.name in found and found[spec.name] is not spec:
                problems.append(f"{where}: {spec.name} skipped: another entry point already gives that name")
            else:
                found[spec.name] = spec
                _PLUGGED[id(spec)] = where
    return tuple(found.items()), tuple(problems)


# ----------------------------------------------------------------------------- references
def is_reference(text: str) -> bool:
    """Whether ``text`` has the form of a reference (a ``:``, a path, or a dotted module name)
    rather than of a catalog name. It says nothing about whether the reference resolves."""
    target, attr = _split(text)
    return attr is not None or _is_path(target) or "." in target


def file_module_name(path: str | Path) -> str:
    """The module name a referenced file is imported under: its stem and a hash of its resolved
    path — unique per file, and the same in every process (worker processes, unpickling)."""
    path = Path(path).resolve()
    stem = re.sub(r"\W", "_", path.stem)
    return f"infoflow_user_{stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"


def lookup(name: str, *, base: str | Path | None = None, argument: str = "name") -> Spec:
    """One spec: a catalog name, or a reference ``file.py:SPEC`` / ``package.module:SPEC``
    (relative paths against ``base``, default the current folder). Bad input is an
    :class:`InputError` naming ``argument``."""
    entries = catalog()
    if isinstance(name, str) and name in entries:
        return entries[name]
    if not isinstance(name, str) or not is_reference(name):
        raise InputError(argument, name, "one of " + ", ".join(entries) + ", or " + REFERENCE_FORMS)
    target, attr = _split(name)
    module, canonical = _import_target(name, target, base, argument)
    if attr is None:
        names = ", ".join(n for n, _ in _top_level_specs(module)) or "none"
        raise InputError(argument, name, f"{REFERENCE_FORMS}: add :SPEC (this module provides: {names})")
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = ", ".join(n for n, _ in _top_level_specs(module)) or "none"
            raise InputError(argument, name, f"{REFERENCE_FORMS} whose module defines {attr} (it does not; "
                                             f"its specs: {names})")
        obj = getattr(obj, part)
    if not isinstance(obj, (ConstructionSpec, LemmaCheckSpec)):
        raise InputError(argument, name, f"{REFERENCE_FORMS} to a ConstructionSpec or LemmaCheckSpec "
                                         f"({attr} is {_kind(obj)})")
    return _accept(obj, f"{canonical}:{attr}", name, argument)


def provided(name: str, *, base: str | Path | None = None, argument: str = "name") -> list[Spec]:
    """Every spec at the top level of the module ``name`` refers to (``file.py`` or
    ``package.module``, without ``:SPEC``), in definition order, built-in objects left out
    (a module importing C1 does not provide it). At least one, else an InputError."""
    target, attr = _split(name)
    if attr is not None or not is_reference(name):
        raise InputError(argument, name, "a module reference path/to/file.py or package.module (without :SPEC)")
    module, canonical = _import_target(name, target, base, argument)
    specs = [_accept(spec, f"{canonical}:{n}", name, argument) for n, spec in _top_level_specs(module)]
    if not specs:
        raise InputError(argument, name, "a module that defines a ConstructionSpec or LemmaCheckSpec at its top "
                                         "level (this one defines none)")
    return specs


def select(names: list[str], *, base: str | Path | None = None, argument: str = "name") -> list[Spec]:
    """The specs ``names`` select, in order, each once: catalog names, references, and module
    references without ``:SPEC`` (everything they provide). No names: the whole catalog.
    Two different specs of one name are refused (their rows could not be told apart)."""
    if not names:
        return list(catalog().values())
    out: list[Spec] = []
    for n in names:
        entries = catalog()
        whole_module = isinstance(n, str) and n not in entries and is_reference(n) and _split(n)[1] is None
        for spec in (provided(n, base=base, argument=argument) if whole_module
                     else [lookup(n, base=base, argument=argument)]):
            same = [s for s in out if s.name == spec.name]
            if same and same[0] is not spec:
                raise InputError(argument, n, f"a spec whose name is not already selected ({spec.name} is also "
                                              f"{source(same[0])})")
            if not same:
                out.append(spec)
    return out


def source(spec: Spec) -> str:
    """What names ``spec`` to :func:`lookup` in any process: its catalog name, or the absolute
    reference it was resolved from (a worker process resolves it again)."""
    if catalog().get(spec.name) is spec:
        return spec.name
    entry = _RESOLVED.get(id(spec))
    return entry[1] if entry is not None and entry[0] is spec else spec.name


def origin(spec: Spec) -> str:
    """Where ``spec`` comes from, for listings: ``built in``, ``entry point NAME = VALUE (package
    P)``, ``registered`` in this process, or the reference it was resolved from."""
    if builtin().get(spec.name) is spec:
        return "built in"
    if installed().get(spec.name) is spec:
        return _PLUGGED[id(spec)]
    if _USER.get(spec.name) is spec:
        return "registered"
    return source(spec)


# ----------------------------------------------------------------------------- helpers
def _split(text: str) -> tuple[str, str | None]:
    """``target:ATTR`` → (target, ATTR); no ``:``, or a ``:`` that belongs to a path
    (``C:\\x\\mine.py``), → (text, None)."""
    target, sep, attr = text.rpartition(":")
    if not sep or not target or _is_path(attr):
        return text, None
    return target, attr


def _is_path(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _kind(obj) -> str:
    return "a module" if isinstance(obj, type(sys)) else f"a {type(obj).__name__}"


def _import_target(text: str, target: str, base, argument: str):
    """(module, canonical target): a file imported under :func:`file_module_name` (canonical:
    its absolute path), or a module imported by name."""
    if _is_path(target):
        path = Path(target).expanduser()
        if not path.is_absolute():
            path = Path(base if base is not None else Path.cwd()) / path
        path = path.resolve()
        if not path.is_file():
            raise InputError(argument, text, f"{REFERENCE_FORMS} to an existing Python file (no such file: {path})")
        return _import_file(path, text, argument), str(path)
    try:
        found = importlib.util.find_spec(target)
    except ModuleNotFoundError:
        found = None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # a parent package raising on import
        raise InputError(argument, text, f"{REFERENCE_FORMS} to a module that imports without error "
                                         f"(it raised {_one_line(exc)})") from None
    if found is None:
        raise InputError(argument, text, f"{REFERENCE_FORMS} to an importable module (no module named {target})")
    try:
        return importlib.import_module(target), target
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        raise InputError(argument, text, f"{REFERENCE_FORMS} to a module that imports without error "
                                         f"(it raised {_one_line(exc)})") from None


def _import_file(path: Path, text: str, argument: str):
    """Import ``path`` once per process under its stable name. The module is in ``sys.modules``
    while it runs (dataclasses and pickling look it up there) and removed again if it raises."""
    name = file_module_name(path)
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InputError(argument, text, f"{REFERENCE_FORMS} to a Python file (.py)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    # the file's folder on sys.path while it runs, as for `python mine.py`: its top-level imports
    # of sibling modules work
    folder = str(path.parent)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except KeyboardInterrupt:
        sys.modules.pop(name, None)
        raise
    except BaseException as exc:  # SystemExit too: a user file must not end the command
        sys.modules.pop(name, None)
        raise InputError(argument, text, f"{REFERENCE_FORMS} to a file that imports without error "
                                         f"(it raised {_one_line(exc)})") from None
    finally:
        try:
            sys.path.remove(folder)
        except ValueError:  # the module removed it itself
            pass
    return module


def _top_level_specs(module) -> list[tuple[str, Spec]]:
    """(attribute name, spec) of every spec at the module's top level, each object once, built-in
    objects (imported, not defined here) left out."""
    builtins = {id(s) for s in builtin().values()}
    seen: set[int] = set()
    out = []
    for attr, obj in vars(module).items():
        if isinstance(obj, (ConstructionSpec, LemmaCheckSpec)) and id(obj) not in builtins and id(obj) not in seen:
            seen.add(id(obj))
            out.append((attr, obj))
    return out


def _accept(spec: Spec, canonical: str, text: str, argument: str) -> Spec:
    """Refuse a built-in name; remember the canonical reference of an accepted spec."""
    builtins = builtin()
    if spec.name in builtins and builtins[spec.name] is not spec:
        raise InputError(argument, text, f"{REFERENCE_FORMS} to a spec whose name is not built in "
                                         f"({spec.name} is; built in: {', '.join(builtins)})")
    _RESOLVED.setdefault(id(spec), (spec, canonical))
    return spec
