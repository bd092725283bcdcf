"""TOML specs for trained-network runs (THEORY §7), parsed with stdlib ``tomllib``.

A spec is a ``[defaults]`` table (training hyper-parameters shared by every
configuration) and one or more ``[[grid]]`` blocks. A grid block names a task
and may override any default; the keys in :data:`GRID_AXES` may be lists, and
the block expands to the Cartesian product of its lists::

    name = "train_cpu"

    [defaults]
    E = 16
    h = 1
    steps = 1500
    batch = 128
    lr = 3e-3
    seeds = [0]

    [defaults.samplers]          # training/evaluation input mixture
    uniform = 0.75
    near_tie = 0.25

    [defaults.sup_budget]        # estimators.Budget for the sup-error estimate
    samples = 256
    starts = 8
    steps = 40

    [[grid]]
    task = "T3"
    k = 2
    gamma = 0.05
    L = [1, 2]
    T = [4, 8, 16]
    W = [8, 32, 128]

Every expanded configuration is a frozen :class:`TrainConfig`; its
:meth:`TrainConfig.config_hash` (over every field) keys resumption.
Unknown keys are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from infoflow_jax.core.errors import InputError, check_choice, check_int_range, check_positive
from infoflow_jax.verification.store import read_spec_file

TASK_IDS = ("T1", "T2", "T3", "T4", "T5", "T6")

#: keys of a ``[[grid]]`` block that may be lists (expanded as a product)
GRID_AXES = ("L", "h", "T", "W", "E", "seeds", "k", "r", "D", "gamma")

#: sampler mixture used when a spec gives none: mostly uniform, a quarter near-ties
DEFAULT_SAMPLERS = (("uniform", 0.75), ("near_tie", 0.25))

_DEFAULTS: dict[str, Any] = {
    "d": 1,
    "k": None,
    "r": None,
    "D": None,
    "gamma": None,
    "h": 1,
    "E": 16,
    "ffn_depth": 1,
    "positional": "none",
    "steps": 2000,
    "batch": 128,
    "lr": 3e-3,
    "warmup": 100,
    "end_lr_factor": 0.01,
    "weight_decay": 1e-4,
    "clip": 1.0,
    "eval_every": 100,
    "patience": 8,
    "eval_samples": 2048,
    "dtype": "float32",
    "readout_init": "default",
    "query_init": "default",
}

_BUDGET_DEFAULTS = {"samples": 256, "grid_points": 4096, "starts": 8, "steps": 40}


@dataclass(frozen=True)
class TrainConfig:
    """One trained-network configuration: task, architecture, optimisation, evaluation."""

    task: str
    T: int
    L: int
    W: int
    seed: int
    d: int = 1
    k: int | None = None
    r: int | None = None
    D: int | None = None
    gamma: float | None = None
    h: int = 1
    E: int = 16
    ffn_depth: int = 1
    positional: str = "none"
    steps: int = 2000
    batch: int = 128
    lr: float = 3e-3
    warmup: int = 100
    end_lr_factor: float = 0.01
    weight_decay: float = 1e-4
    clip: float = 1.0
    eval_every: int = 100
    patience: int = 8
    eval_samples: int = 2048
    samplers: tuple[tuple[str, float], ...] = DEFAULT_SAMPLERS
    dtype: str = "float32"
    sup_samples: int = 256
    sup_grid_points: int = 4096
    sup_starts: int = 8
    sup_steps: int = 40
    #: "default": the model's own init; "centered": readout w = 0 and b = mean target of a
    #: training batch, so the initial output is the mean predictor (no large initial offset;
    #: see docs/training.md, "T1 collapse")
    readout_init: str = "default"
    #: "default": the model's own init; "zero": every W_Q starts at 0, so every head starts
    #: uniform and the task's gradient picks the sign of its score (a random sign can lock a
    #: single head onto the minimum instead of the maximum; docs/training.md)
    query_init: str = "default"

    def __post_init__(self):
        check_choice("task", self.task, TASK_IDS)
        for name in ("T", "L", "W", "d", "h", "E", "ffn_depth", "steps", "batch", "eval_every",
                     "patience", "eval_samples", "sup_samples"):
            check_int_range(name, getattr(self, name), 1)
        for name in ("seed", "warmup", "sup_grid_points", "sup_starts", "sup_steps"):
            check_int_range(name, getattr(self, name), 0)
        check_positive("lr", self.lr)
        check_positive("clip", self.clip)
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise InputError("weight_decay", self.weight_decay, "a number >= 0")
        if not (isinstance(self.end_lr_factor, (int, float)) and 0 <= self.end_lr_factor <= 1):
            raise InputError("end_lr_factor", self.end_lr_factor, "a number in [0, 1]")
        if self.warmup >= self.steps:
            raise InputError("warmup", self.warmup, f"an integer < steps = {self.steps}")
        check_choice("positional", self.positional, ("none", "onehot", "sinusoidal"))
        check_choice("dtype", self.dtype, ("float32", "float64"))
        check_choice("readout_init", self.readout_init, ("default", "centered"))
        check_choice("query_init", self.query_init, ("default", "zero"))
        if self.task == "T3" and self.k is None:
            raise InputError("k", None, "an integer >= 1 (task T3 needs k)")
        if self.task in ("T4", "T5") and self.r is None:
            raise InputError("r", None, f"an integer >= 1 (task {self.task} needs r)")
        if self.task == "T6" and self.D is None:
            raise InputError("D", None, "an integer >= 1 (task T6 needs D)")
        for name in ("k", "r"):
            v = getattr(self, name)
            if v is not None:
                check_int_range(name, v, 1, self.T)
        if self.D is not None:
            check_int_range("D", self.D, 1)
        if self.gamma is not None:
            check_positive("gamma", self.gamma)
        if not self.samplers:
            raise InputError("samplers", self.samplers, "a non-empty table name = fraction")
        from infoflow_jax.core.samplers import SAMPLERS

        for name, frac in self.samplers:
            check_choice("samplers", name, list(SAMPLERS) + ["margin_boundary"])
            check_positive(f"samplers.{name}", frac)
        if abs(sum(f for _, f in self.samplers) - 1.0) > 1e-9:
            raise InputError("samplers", dict(self.samplers), "fractions summing to 1")

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["samplers"] = {n: f for n, f in self.samplers}
        for late in ("readout_init", "query_init"):  # added later: keep older records' hashes
            if out[late] == "default":
                del out[late]
        return out

    def config_hash(self) -> str:
        """First 16 hex digits of sha256 over every field (canonical JSON)."""
        blob = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def label(self) -> str:
        extra = "".join(f" {n}={getattr(self, n)}" for n in ("k", "r", "D", "gamma")
                        if getattr(self, n) is not None)
        return f"{self.task}{extra} L={self.L} h={self.h} T={self.T} W={self.W} seed={self.seed}"


_CONFIG_FIELDS = {f.name for f in fields(TrainConfig)}


@dataclass(frozen=True)
class TrainSpec:
    """A parsed spec: its name, the raw TOML dict (for the manifest) and the expanded configs."""

    name: str
    raw: dict
    configs: tuple[TrainConfig, ...]


def _as_list(key: str, value) -> list:
    if isinstance(value, list):
        if not value:
            raise InputError(key, value, "a non-empty list or a scalar")
        return value
    return [value]


def _settings(table: dict, where: str) -> dict:
    """Translate one TOML table (defaults or grid block) into TrainConfig keyword values."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key == "samplers":
            if not isinstance(value, dict):
                raise InputError(f"{where}.samplers", value, "a table name = fraction")
            out["samplers"] = tuple((str(n), float(f)) for n, f in value.items())
        elif key == "sup_budget":
            if not isinstance(value, dict):
                raise InputError(f"{where}.sup_budget", value, "a table")
            for bk, bv in value.items():
                if bk not in _BUDGET_DEFAULTS:
                    raise InputError(f"{where}.sup_budget.{bk}", bv,
                                     "one of the keys " + ", ".join(_BUDGET_DEFAULTS))
                out[f"sup_{bk}"] = bv
        elif key == "seeds" or key in _CONFIG_FIELDS:
            out[key] = value
        else:
            allowed = sorted((_CONFIG_FIELDS - {"seed"}) | {"seeds", "sup_budget"})
            raise InputError(f"{where}.{key}", value, "a known key: " + ", ".join(allowed))
    return out


def parse_train_spec(raw: dict, *, name: str | None = None) -> TrainSpec:
    """Expand a spec dict (as ``tomllib`` returns it) into its configurations."""
    if not isinstance(raw, dict):
        raise InputError("spec", type(raw).__name__, "a TOML table")
    unknown = set(raw) - {"name", "description", "defaults", "grid"}
    if unknown:
        raise InputError("spec." + sorted(unknown)[0], "…", "one of name, description, defaults, grid")
    defaults = _settings(raw.get("defaults", {}), "defaults")
    for key, value in defaults.items():
        if key not in ("seeds", "samplers") and isinstance(value, list):
            raise InputError(f"defaults.{key}", value, "a scalar (lists belong in [[grid]] blocks)")
    blocks = raw.get("grid")
    if not isinstance(blocks, list) or not blocks:
        raise InputError("grid", blocks, "at least one [[grid]] block")

    configs: list[TrainConfig] = []
    seen: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"grid[{i}]"
        if "task" not in block:
            raise InputError(f"{where}.task", None, "one of " + ", ".join(TASK_IDS))
        merged = {**_DEFAULTS, **{f"sup_{k}": v for k, v in _BUDGET_DEFAULTS.items()},
                  "seeds": [0], **defaults, **_settings(block, where)}
        for key, value in merged.items():
            if isinstance(value, list) and key not in GRID_AXES:
                raise InputError(f"{where}.{key}", value, "a scalar (only "
                                 + ", ".join(GRID_AXES) + " may be lists)")
        for required in ("T", "L", "W"):
            if required not in merged:
                raise InputError(f"{where}.{required}", None, "given (a value or a list)")
        axes = [a for a in ("k", "r", "D", "gamma", "E", "h", "L", "T", "W", "seeds")]
        values = [_as_list(f"{where}.{a}", merged[a]) for a in axes]
        for combo in itertools.product(*values):
            kw = {k: v for k, v in merged.items() if k in _CONFIG_FIELDS}
            kw.update({("seed" if a == "seeds" else a): v for a, v in zip(axes, combo)})
            if isinstance(kw.get("gamma"), int):
                kw["gamma"] = float(kw["gamma"])
            for fk in ("lr", "weight_decay", "clip", "end_lr_factor"):
                if isinstance(kw.get(fk), int):
                    kw[fk] = float(kw[fk])
            cfg = TrainConfig(**kw)
            h = cfg.config_hash()
            if h not in seen:  # overlapping blocks: keep the first
                seen.add(h)
                configs.append(cfg)
    return TrainSpec(name=str(raw.get("name", name or "train")), raw=raw, configs=tuple(configs))


def load_train_spec(path: str | Path) -> TrainSpec:
    """Read (:func:`~infoflow_jax.verification.store.read_spec_file`) and expand a TOML spec file."""
    return parse_train_spec(read_spec_file(path), name=Path(path).stem)
