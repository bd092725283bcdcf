"""The record cache: a row that identical code has verified on identical inputs is read back, not
verified again.

    key(row) = sha256(code, environment, spec, T, ε, k, β, mutant, seed, budget, memory)
    cache[key] = the row's record (JSON), written after the row was computed

A verification row is deterministic given its inputs: the weights are built by the code from
(spec, T, ε, k, β, mutant), every random draw comes from ``seed``, and the budget fixes every
estimator's size. So a record computed once is exactly what recomputing it would give, and a
researcher who reruns ``infoflow verify`` after changing one thing pays only for the rows that
thing can change. The key holds everything that can change a row:

* **code**: the SHA-256 of every ``.py`` file of the ``infoflow_jax`` and ``constructions``
  packages (:func:`code_fingerprint`): editing the library or any construction invalidates
  every row (coarse, but a construction module may import another, and the library is shared);
* **environment** (:func:`key_environment`): Python, JAX, jaxlib, NumPy, SciPy, flax and optax
  versions, the JAX backend, ``XLA_FLAGS`` and 64-bit mode;
* **row**: the spec's name, T, ε, k, β, mutant, the seed, every budget field (its search dtype
  included) and the ``--memory`` argument (it sizes the vectorised chunks).

Only **built-in** specs are cached (the caller decides: ``infoflow verify`` asks
:func:`infoflow_jax.catalog.origin`): their code is all in the fingerprint.
A user's construction (a reference ``mine.py:SPEC``, an entry point, one registered in a
notebook) may depend on files and state the fingerprint cannot see, so its rows are always
computed. Failure records (a row that raised) are never cached: the cause may be transient.

Where: ``$INFOFLOW_RECORD_CACHE`` (``off`` disables it), else
``$XDG_CACHE_HOME/infoflow-jax/records`` (``~/.cache/infoflow-jax/records``), one JSON file per
key. A file that cannot be read is a miss (the row is computed and the file rewritten); files are
written whole (a temporary file, then a rename), so an interrupted run leaves no torn entry.
``infoflow verify --fresh`` recomputes every row and rewrites its entry.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

from infoflow_jax.verification.records import Record
from infoflow_jax.verification.store import dumps

__all__ = ["CACHE_ENV", "RecordCache", "code_fingerprint", "default_record_cache", "key_environment"]

CACHE_ENV = "INFOFLOW_RECORD_CACHE"  # a folder, or "off"
#: the packages whose source is the code of every built-in row
CODE_PACKAGES = ("infoflow_jax", "constructions")


def default_record_cache() -> Path | None:
    """``$INFOFLOW_RECORD_CACHE`` (None when ``off``), else ``$XDG_CACHE_HOME/infoflow-jax/records``
    (:func:`~infoflow_jax.core.devices.cache_folder`)."""
    from infoflow_jax.core.devices import cache_folder

    folder = cache_folder(CACHE_ENV, "records")
    return None if folder is None else Path(folder)


@functools.lru_cache(maxsize=4)
def code_fingerprint(roots: tuple[tuple[str, str], ...] | None = None) -> str:
    """SHA-256 over (package, relative path, content) of every ``.py`` file of :data:`CODE_PACKAGES`,
    in sorted order — the source this process imported its built-in specs from. ``roots``:
    (package, folder) pairs to read instead of the imported packages' folders."""
    import importlib

    if roots is None:
        roots = tuple((name, str(Path(importlib.import_module(name).__file__).parent)) for name in CODE_PACKAGES)
    h = hashlib.sha256()
    for name, folder in roots:
        root = Path(folder)
        for path in sorted(root.rglob("*.py")):
            h.update(f"{name}/{path.relative_to(root).as_posix()}\0".encode())
            h.update(path.read_bytes())
            h.update(b"\0")
    return h.hexdigest()


def key_environment() -> dict:
    """What besides the code decides a row's numbers: the library versions
    (:func:`~infoflow_jax.verification.store.library_versions`), the JAX backend, ``XLA_FLAGS``, 64-bit mode."""
    import jax

    from infoflow_jax.verification.store import library_versions

    return {**library_versions(), "backend": jax.default_backend(),
            "xla_flags": os.environ.get("XLA_FLAGS", ""), "x64": bool(jax.config.jax_enable_x64)}


class RecordCache:
    """The records of rows verified before, one JSON file per :meth:`key` under ``root``."""

    def __init__(self, root):
        self.root = Path(root)
        self._base = None  # (code, environment): computed on first use

    def key(self, *, name: str, T: int, eps, k, beta, mutant, seed: int, budget, memory) -> str:
        """The SHA-256 key of one row (module docstring: what it holds)."""
        if self._base is None:
            self._base = {"code": code_fingerprint(), "environment": key_environment()}
        row = {"name": name, "T": T, "eps": eps, "k": k, "beta": beta, "mutant": mutant, "seed": seed,
               "budget": asdict(budget), "memory": memory}
        text = json.dumps({**self._base, "row": row}, sort_keys=True, default=repr)
        return hashlib.sha256(text.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> Record | None:
        """The cached record, or None (absent, or unreadable: then it is a miss)."""
        try:
            return Record.from_json(json.loads(self._path(key).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def put(self, key: str, record) -> None:
        """Store ``record`` (a failure record is not stored); a cache that cannot be written is skipped."""
        if record.get("kind") == "failure":
            return
        path = self._path(key)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(dumps(record))
            os.replace(tmp, path)
        except OSError:
            try:
                tmp.unlink()
            except OSError:
                pass
