"""Sweep specifications: a declarative TOML file, or the same thing built in Python.

A spec names *runs*; each run is one construction (or lemma check) with grids
of T, k, ε (γ, β where they apply), seeds, dtypes and mutants. Expanding a spec
gives a deterministic list of :class:`Config` (one verification each), with
duplicates removed by :attr:`Config.hash`.

TOML form (every field optional unless marked)::

    name = "default"          # free text, copied into the manifest
    seeds = [0]               # default seeds of every run
    dtype = ["float64"]       # default dtypes of every run (float64 | float32)
    bucket = "pow2"           # width bucketing: "pow2" | "family" | "auto" (see buckets.py)
    pad_T = false             # one program per family for every T (padded tokens masked; docs/sweeps.md)
    max_batch = 8             # configurations evaluated together (vmap) per call
    memory_mb = 1024          # activation memory one call may use (caps the batch)

    [budget]                  # infoflow_jax.verification.estimators.Budget fields
    samples = 512
    starts = 16

    [[run]]
    construction = "C3"       # or: lemma = "L1-softmax-max"   (exactly one; required); or a reference
                              # "mine.py:SPEC" (relative to this file's folder) / "pkg.module:SPEC"
    T = [4, 16, 64]           # default: the registry entry's default grid
    k = [2, 3]                # constructions with uses_k only
    eps = [1e-1, 1e-2]        # constructions only
    gamma = [0.1]             # passed to build as gamma= (constructions that take it)
    beta = [10.0]             # lemma checks: the β grid; constructions: a β override
    mutants = "all"           # "none" | "all" | ["name", ...]
    base = true               # also run the unmutated configuration (default true)
    seeds = [0, 1]            # overrides the top-level seeds
    dtype = ["float64"]       # overrides the top-level dtype
    budget = { samples = 256 }  # overrides fields of the top-level budget
    options = { }             # extra keyword arguments for build (scalars only)

Every mistake is an :class:`~infoflow_jax.core.errors.InputError` whose one-line
message names the field, e.g. ``run[2].eps = 0.0 is out of range: ...``.

A run's ``construction`` / ``lemma`` goes through :func:`infoflow_jax.catalog.lookup`: a catalog
name, or a reference to a user's spec. A parsed :class:`Run` keeps a reference in its canonical
form (a file's absolute path), so the manifest, a resumed sweep and ``infoflow report`` find the
same file from any folder; its configurations carry the spec's own name (records, hashes).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from infoflow_jax.core.errors import InputError
from infoflow_jax.verification.estimators import Budget, budget_fields
from infoflow_jax.verification.store import read_spec_file

BUCKET_POLICIES = ("pow2", "family", "auto")
DTYPES = ("float64", "float32")
TOP_KEYS = ("name", "description", "seeds", "dtype", "bucket", "pad_T", "max_batch", "memory_mb", "budget", "run")
RUN_KEYS = ("construction", "lemma", "T", "k", "eps", "gamma", "beta", "mutants", "base", "seeds", "dtype",
            "budget", "options")
BUDGET_KEYS = tuple(f.name for f in fields(Budget))


# ----------------------------------------------------------------------------- dataclasses
@dataclass(frozen=True)
class Run:
    """One ``[[run]]`` table: a registry entry and its grids (None: the entry's defaults).

    ``name`` is what names the entry to :func:`infoflow_jax.catalog.lookup`: a catalog name or
    a reference (``/abs/mine.py:SPEC``, ``pkg.module:SPEC``)."""

    name: str
    kind: str = "construction"  # "construction" | "lemma"
    T: tuple[int, ...] | None = None
    k: tuple[int, ...] | None = None
    eps: tuple[float, ...] | None = None
    gamma: tuple[float, ...] | None = None
    beta: tuple[float, ...] | None = None
    mutants: str | tuple[str, ...] = "none"
    base: bool = True
    seeds: tuple[int, ...] | None = None
    dtype: tuple[str, ...] | None = None
    budget: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SweepSpec:
    """A whole sweep. Build it in Python or with :func:`load_spec` / :func:`parse_spec`."""

    runs: tuple[Run, ...]
    name: str = "sweep"
    description: str = ""
    seeds: tuple[int, ...] = (0,)
    dtype: tuple[str, ...] = ("float64",)
    budget: Budget = Budget()
    bucket: str = "pow2"
    pad_T: bool = False
    max_batch: int = 8
    memory_mb: int = 1024

    def to_dict(self) -> dict:
        """JSON-able form (what the manifest stores); :func:`parse_spec` reads it back."""
        d = {"name": self.name, "description": self.description, "seeds": list(self.seeds),
             "dtype": list(self.dtype), "bucket": self.bucket, "pad_T": self.pad_T, "max_batch": self.max_batch,
             "memory_mb": self.memory_mb, "budget": budget_fields(self.budget), "run": []}
        for r in self.runs:
            t = {("lemma" if r.kind == "lemma" else "construction"): r.name}
            for key in ("T", "k", "eps", "gamma", "beta", "seeds", "dtype"):
                v = getattr(r, key)
                if v is not None:
                    t[key] = list(v)
            t["mutants"] = r.mutants if isinstance(r.mutants, str) else list(r.mutants)
            t["base"] = r.base
            if r.budget:
                t["budget"] = dict(r.budget)
            if r.options:
                t["options"] = dict(r.options)
            d["run"].append(t)
        return d


@dataclass(frozen=True)
class Config:
    """One verification: everything that determines its record (except timings)."""

    kind: str  # "construction" | "lemma"
    name: str
    T: int
    eps: float | None = None
    k: int | None = None
    gamma: float | None = None
    beta: float | None = None
    mutant: str | None = None
    seed: int = 0
    dtype: str = "float64"
    budget: Budget = Budget()
    options: tuple[tuple[str, Any], ...] = ()

    def as_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["budget"] = budget_fields(self.budget)
        d["options"] = dict(self.options)
        return d

    @property
    def hash(self) -> str:
        """Stable identity of the configuration (resume skips configurations with a known hash)."""
        text = json.dumps(self.as_dict(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def label(self) -> str:
        parts = [self.name, f"T={self.T}"]
        if self.k is not None:
            parts.append(f"k={self.k}")
        if self.eps is not None:
            parts.append(f"eps={self.eps:g}")
        if self.beta is not None:
            parts.append(f"beta={self.beta:g}")
        if self.mutant:
            parts.append(f"mutant={self.mutant}")
        return " ".join(parts)


# ----------------------------------------------------------------------------- field checks
def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _list(where: str, value, *, allowed: str) -> list:
    """A TOML scalar or array → a non-empty list."""
    items = value if isinstance(value, list) else [value]
    if not items:
        raise InputError(where, value, f"a non-empty list of {allowed}")
    return items


def _ints(where: str, value, lo: int, hi: int | None = None) -> tuple[int, ...]:
    allowed = f"integers >= {lo}" + (f" and <= {hi}" if hi is not None else "")
    items = _list(where, value, allowed=allowed)
    for x in items:
        if not _is_int(x) or x < lo or (hi is not None and x > hi):
            raise InputError(where, x, allowed)
    return tuple(items)


def _floats(where: str, value, lo: float, hi: float | None, allowed: str) -> tuple[float, ...]:
    items = _list(where, value, allowed=allowed)
    for x in items:
        if not _is_num(x) or not (x > lo and (hi is None or x < hi)):
            raise InputError(where, x, allowed)
    return tuple(float(x) for x in items)


def _dtypes(where: str, value) -> tuple[str, ...]:
    items = _list(where, value, allowed="dtype names")
    for x in items:
        if x not in DTYPES:
            raise InputError(where, x, "one of " + ", ".join(DTYPES))
    return tuple(items)


def _budget_fields(where: str, table) -> dict:
    if not isinstance(table, dict):
        raise InputError(where, table, "a table of Budget fields (" + ", ".join(BUDGET_KEYS) + ")")
    out = {}
    for key, v in table.items():
        w = f"{where}.{key}"
        if key not in BUDGET_KEYS:
            raise InputError(w, v, "absent: the Budget fields are " + ", ".join(BUDGET_KEYS))
        if key == "search_dtype":
            if v != "float64":
                raise InputError(w, v, "float64 (a sweep searches in float64; its `dtype` runs the model in float32; "
                                 "the float32 search with a float64 verdict is `infoflow verify --search-dtype float32`)")
            out[key] = v
        elif key == "lr":
            if not _is_num(v) or v <= 0:
                raise InputError(w, v, "a finite number > 0")
            out[key] = float(v)
        else:
            lo = 0 if key in ("starts", "steps", "grid_points") else 1
            if not _is_int(v) or v < lo:
                raise InputError(w, v, f"an integer >= {lo}")
            out[key] = v
    return out


def _check_keys(where: str, table: dict, known) -> None:
    for key in table:
        if key not in known:
            raise InputError(f"{where}{key}" if not where else f"{where}.{key}", table[key],
                             "absent: unknown field (known: " + ", ".join(known) + ")")


# ----------------------------------------------------------------------------- parsing
def parse_spec(data: dict, *, registry: dict | None = None, base: str | Path | None = None) -> SweepSpec:
    """Validate a spec table (from TOML or :meth:`SweepSpec.to_dict`) into a :class:`SweepSpec`.
    Relative file references resolve against ``base`` (default: the current folder)."""
    if registry is None:
        from infoflow_jax.catalog import catalog

        registry = catalog()
    if not isinstance(data, dict):
        raise InputError("spec", type(data).__name__, "a table")
    _check_keys("", data, TOP_KEYS)
    kw: dict[str, Any] = {}
    for key in ("name", "description"):
        if key in data:
            if not isinstance(data[key], str):
                raise InputError(key, data[key], "a string")
            kw[key] = data[key]
    if "seeds" in data:
        kw["seeds"] = _ints("seeds", data["seeds"], 0)
    if "dtype" in data:
        kw["dtype"] = _dtypes("dtype", data["dtype"])
    if "bucket" in data:
        if data["bucket"] not in BUCKET_POLICIES:
            raise InputError("bucket", data["bucket"], "one of " + ", ".join(BUCKET_POLICIES))
        kw["bucket"] = data["bucket"]
    if "pad_T" in data:
        if not isinstance(data["pad_T"], bool):
            raise InputError("pad_T", data["pad_T"], "true or false")
        kw["pad_T"] = data["pad_T"]
    for key in ("max_batch", "memory_mb"):
        if key in data:
            if not _is_int(data[key]) or data[key] < 1:
                raise InputError(key, data[key], "an integer >= 1")
            kw[key] = data[key]
    budget = Budget(**_budget_fields("budget", data.get("budget", {})))
    kw["budget"] = budget
    runs_in = data.get("run")
    if runs_in is None or not isinstance(runs_in, list) or not runs_in:
        raise InputError("run", runs_in, "a non-empty array of [[run]] tables")
    kw["runs"] = tuple(_parse_run(i, t, registry, base) for i, t in enumerate(runs_in))
    _check_one_spec_per_name(kw["runs"], registry)
    return SweepSpec(**kw)


def _check_one_spec_per_name(runs: tuple[Run, ...], registry: dict) -> None:
    """Two runs naming different specs of one name would share records, buckets and hashes: refuse."""
    seen: dict[str, tuple[int, Any]] = {}
    for i, run in enumerate(runs):
        entry = _entry(run, registry)
        j, other = seen.setdefault(entry.name, (i, entry))
        if other is not entry:
            raise InputError(f"run[{i}].{run.kind}", run.name, f"a spec whose name is not taken by another run's "
                             f"({entry.name} is also run[{j}]'s)")


def _resolve_entry(where: str, kind: str, name, registry: dict, base):
    """(what names the entry in a Run, the entry): a catalog name as it is, a reference in its
    canonical form (:func:`infoflow_jax.catalog.source`)."""
    from infoflow_jax.catalog import REFERENCE_FORMS, is_reference, lookup, source
    from infoflow_jax.verification.construction import LemmaCheckSpec

    lemma = kind == "lemma"
    names = [n for n, s in registry.items() if isinstance(s, LemmaCheckSpec) == lemma]
    if isinstance(name, str) and name in names:
        return name, registry[name]
    if not isinstance(name, str) or name in registry or not is_reference(name):
        raise InputError(f"{where}.{kind}", name, "one of " + ", ".join(names) + ", or " + REFERENCE_FORMS)
    entry = lookup(name, base=base, argument=f"{where}.{kind}")
    if isinstance(entry, LemmaCheckSpec) != lemma:
        raise InputError(f"{where}.{kind}", name, f"a reference to a {'LemmaCheckSpec' if lemma else 'ConstructionSpec'}"
                         f" ({entry.name} is a {type(entry).__name__}; use {'construction' if lemma else 'lemma'} =)")
    return source(entry), entry


def _entry(run: Run, registry: dict | None = None):
    """The spec a run names: from ``registry`` when it holds the name, else through the resolver."""
    from infoflow_jax.catalog import lookup

    if registry is not None and run.name in registry:
        return registry[run.name]
    return lookup(run.name)


def entries(spec: SweepSpec, *, registry: dict | None = None) -> dict:
    """Every spec the sweep's configurations name, by the name they carry (``Config.name``):
    ``registry`` (default: the catalog) plus the specs its runs' references resolve to."""
    from infoflow_jax.catalog import catalog

    out = dict(catalog() if registry is None else registry)
    for run in spec.runs:
        entry = _entry(run, out)
        out[entry.name] = entry
    return out


def _parse_run(i: int, t, registry: dict, base=None) -> Run:
    where = f"run[{i}]"
    if not isinstance(t, dict):
        raise InputError(where, t, "a table")
    _check_keys(where, t, RUN_KEYS)
    has_c, has_l = "construction" in t, "lemma" in t
    if has_c == has_l:
        raise InputError(f"{where}.construction", t.get("construction"),
                         "given, or lemma given, but not both (exactly one of construction / lemma)")
    kind = "construction" if has_c else "lemma"
    name, spec = _resolve_entry(where, kind, t[kind], registry, base)
    w = lambda f: f"{where}.{f}"
    kw: dict[str, Any] = {"name": name, "kind": kind}
    lo_T = 2 if kind == "lemma" else 1
    if "T" in t:
        kw["T"] = _ints(w("T"), t["T"], lo_T)
    Ts = kw.get("T", tuple(spec.default_T))
    if kind == "lemma":
        for key in ("eps", "k", "gamma"):
            if key in t:
                raise InputError(w(key), t[key], "absent for a lemma check (it takes T and beta)")
        if "beta" in t:
            kw["beta"] = _floats(w("beta"), t["beta"], 0.0, None, "finite numbers > 0")
    else:
        if "eps" in t:
            kw["eps"] = _floats(w("eps"), t["eps"], 0.0, 1.0, "numbers with 0 < eps < 1")
        if "k" in t:
            if not spec.uses_k:
                raise InputError(w("k"), t["k"], f"absent: {spec.name} does not take k")
            kw["k"] = _ints(w("k"), t["k"], 1, min(Ts))
        elif spec.uses_k and any(x is None for x in spec.default_k):
            raise InputError(w("k"), None, f"given: {spec.name} takes k")
        if "gamma" in t:
            kw["gamma"] = _floats(w("gamma"), t["gamma"], 0.0, 1.0, "numbers with 0 < gamma < 1")
        if "beta" in t:
            kw["beta"] = _floats(w("beta"), t["beta"], 0.0, None, "finite numbers > 0")
    if "mutants" in t:
        m = t["mutants"]
        if isinstance(m, str):
            if m not in ("none", "all"):
                raise InputError(w("mutants"), m, "none, all, or a list of: " + ", ".join(spec.mutants))
            kw["mutants"] = m
        else:
            items = _list(w("mutants"), m, allowed="mutant names")
            for x in items:
                if x not in spec.mutants:
                    raise InputError(w("mutants"), x, "one of " + ", ".join(spec.mutants))
            kw["mutants"] = tuple(items)
    if "base" in t:
        if not isinstance(t["base"], bool):
            raise InputError(w("base"), t["base"], "true or false")
        kw["base"] = t["base"]
    if "seeds" in t:
        kw["seeds"] = _ints(w("seeds"), t["seeds"], 0)
    if "dtype" in t:
        kw["dtype"] = _dtypes(w("dtype"), t["dtype"])
    if "budget" in t:
        kw["budget"] = _budget_fields(w("budget"), t["budget"])
    if "options" in t:
        opts = t["options"]
        if not isinstance(opts, dict):
            raise InputError(w("options"), opts, "a table of scalar keyword arguments")
        for key, v in opts.items():
            if key in ("T", "eps", "k", "mutant", "beta", "gamma") or not isinstance(v, (str, int, float, bool)):
                raise InputError(f"{w('options')}.{key}", v, "a scalar, and not one of T, eps, k, mutant, "
                                 "beta, gamma (those are grid fields)")
        kw["options"] = dict(opts)
    return Run(**kw)


def load_spec(path: str | Path, *, registry: dict | None = None) -> SweepSpec:
    """Read and validate a TOML spec file. A relative file reference in it (``construction =
    "mine.py:SPEC"``) is relative to the spec file's folder, so the spec means the same thing
    from whichever folder it is run."""
    path = Path(path)
    data = read_spec_file(path)
    return parse_spec(data, registry=registry, base=path.resolve().parent)


# ----------------------------------------------------------------------------- expansion
def expand(spec: SweepSpec, *, registry: dict | None = None) -> list[Config]:
    """Every configuration of ``spec``, in a deterministic order, duplicates removed."""
    from infoflow_jax.verification.construction import LemmaCheckSpec

    registry = entries(spec, registry=registry)
    out: dict[str, Config] = {}
    for run in spec.runs:
        entry = _entry(run, registry)
        budget = replace(spec.budget, **run.budget)
        seeds = run.seeds or spec.seeds
        dtypes = run.dtype or spec.dtype
        Ts = run.T or tuple(entry.default_T)
        if run.mutants == "all":
            mutants = tuple(entry.mutants)
        elif run.mutants == "none":
            mutants = ()
        else:
            mutants = tuple(run.mutants)
        variants = ((None,) if run.base else ()) + mutants
        opts = tuple(sorted(run.options.items()))
        if isinstance(entry, LemmaCheckSpec):
            points = [dict(T=T, beta=b) for T in Ts for b in (run.beta or entry.default_beta)]
        else:
            epss = run.eps or tuple(entry.default_eps)
            ks = run.k or (tuple(entry.default_k) if entry.uses_k else (None,))
            gammas = run.gamma or (None,)
            betas = run.beta or (None,)
            points = [dict(T=T, k=k, eps=e, gamma=g, beta=b)
                      for T in Ts for k in ks if k is None or k <= T
                      for g in gammas for e in epss for b in betas]
        for p in points:
            for m in variants:
                for dt in dtypes:
                    for s in seeds:
                        c = Config(kind=run.kind, name=entry.name, mutant=m, seed=s, dtype=dt, budget=budget,
                                   options=opts, **p)
                        out.setdefault(c.hash, c)
    return list(out.values())
