"""The sweep engine: build every configuration, bucket by padded shape, one compiled program per bucket.

For each configuration of a :class:`~infoflow_jax.sweep.spec.SweepSpec`:

1. build it (``spec.build``), pad its FFN hidden widths to its bucket
   (:mod:`infoflow_jax.sweep.buckets`);
2. group configurations whose padded weight pytrees have one shape (and one
   target, domain, T, dtype and budget) into a *bucket*;
3. per bucket, trace and compile ONE program (ahead of time:
   ``jit(...).lower(...).compile()``) that runs every estimator of
   :func:`infoflow_jax.verification.estimators.estimate_sup_error` — the exhaustive grid,
   each domain sampler, the construction's probes and the multi-start
   adversarial ascent — for a batch of configurations at once:
   ``jax.vmap`` over the stacked weight pytrees (and drawn inputs), vectorised
   chunks (``jax.lax.map``) over inputs, ``jax.vmap`` over ascent starts. No
   Python loop runs over inputs;
4. turn each configuration's per-estimator maxima into the same
   :class:`~infoflow_jax.verification.estimators.Estimate` and the same record as
   :func:`infoflow_jax.verification.verify.verify_construction` (plus
   ``config_hash``, ``bucket``, ``compile_seconds``) and append it at once to
   ``results.jsonl``.

The estimators are those of ``estimate_sup_error`` — the same inputs
(``estimators.draw_for_seed``, on the host) and the same ``estimators.evaluate``,
vmapped — so a sweep record estimates exactly what ``verify`` estimates for that seed.

Calls are batches of ``B`` configurations (``B`` fixed per bucket, from
``max_batch``, ``memory_mb`` and the device count; a short last batch is
padded with copies). The batch layout of a bucket depends on the spec only, so
a resumed sweep re-evaluates exactly the batches an uninterrupted one would
have (and writes only the configurations not yet in ``results.jsonl``).

Compilations are counted at trace time (a side effect in the traced function
runs once per trace) and equal the number of buckets evaluated; the tests check
this against JAX's own compile log.
"""

from __future__ import annotations

import functools
import sys
import time
import traceback
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from infoflow_jax.core.errors import InputError
from infoflow_jax.verification import memory
from infoflow_jax.verification.probes import MAX_PROBE_INPUTS
from infoflow_jax.core.phases import phase
from infoflow_jax.core.samplers import samplers_for
from infoflow_jax.verification.estimators import (Budget, Estimate, ascent_evaluations, candidate_names,
                                                  draw_for_seed, evaluate, evaluations_per_config, grid_size,
                                                  to_estimate)
from infoflow_jax.core.precision import require_float64
from infoflow_jax.sweep import buckets
from infoflow_jax.core.devices import Placement
from infoflow_jax.verification import lemma_checks
from infoflow_jax.verification import padding
from infoflow_jax.verification import records
from infoflow_jax.core.fast_model import fast_ffn_widths, fast_pays, fast_plan, same_shape_plans
from infoflow_jax.verification.construction import error_function, fast_error_function
from infoflow_jax.verification.records import Record
from infoflow_jax.verification.steps import check_steps
from infoflow_jax.verification.verify import judge_proof
from infoflow_jax.verification.store import ResultsStore, all_records, merge_parts, part_dir, part_dirs
from infoflow_jax.sweep.spec import Config, SweepSpec, entries, expand

PROGRAM_NAME = "sweep_bucket_program"


# ----------------------------------------------------------------------------- statistics
@dataclass
class Stats:
    """What a sweep did; ``compilations`` counts traces of the bucket program."""

    configs_total: int = 0
    configs_done_before: int = 0
    configs_run: int = 0
    configs_failed_build: int = 0
    buckets: int = 0  # buckets formed (of configuration groups that had work left)
    buckets_run: int = 0  # buckets with at least one batch evaluated
    compilations: int = 0  # traces of the bucket program (one per compile)
    compile_seconds: float = 0.0  # trace + lower + XLA compile, summed over compile threads
    prep_seconds: float = 0.0  # host work preparing each bucket's first call (draws, padding, plans)
    eval_seconds: float = 0.0
    build_seconds: float = 0.0
    wall_seconds: float = 0.0
    input_evaluations: int = 0  # forward evaluations of |Ĥ − H| (incl. padded rows, ascent steps)
    device_count: int = 1
    process_index: int = 0  # several processes (jax.distributed): this one's index, and how many
    process_count: int = 1
    configs_mine: int = 0  # configurations of the groups this process runs (all of them for one process)
    per_bucket: list = field(default_factory=list)

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["per_bucket"] = list(self.per_bucket)
        return d


class _TraceCounter:
    """Counts traces of the bucket program (a trace-time side effect; thread-safe)."""

    def __init__(self):
        import threading

        self._lock = threading.Lock()
        self.traces = 0

    def hit(self):
        with self._lock:
            self.traces += 1


# ----------------------------------------------------------------------------- lemma checks
@functools.lru_cache(maxsize=16)
def lemma_error_fn(name: str, dtype: str) -> Callable:
    """The lemma's gap function (β, X) ↦ gap, run in ``dtype``."""
    fn = lemma_checks.GAP_FUNCTIONS[name]
    if dtype == "float64":
        return fn
    return lambda beta, X: fn(beta.astype(jnp.float32), X.astype(jnp.float32)).astype(jnp.float64)


@functools.lru_cache(maxsize=16)
def padded_lemma_error_fn(name: str, dtype: str) -> Callable:
    """The lemma's gap on padded inputs (β, X_aug) ↦ gap over the real tokens (−∞ for a filler)."""
    fn = lemma_checks.GAP_FUNCTIONS[name]
    if dtype == "float64":
        return padding.padded(fn)
    return padding.padded(lambda beta, X, valid: fn(beta.astype(jnp.float32), X.astype(jnp.float32),
                                                valid).astype(jnp.float64))


# ----------------------------------------------------------------------------- the program
def make_program(err_fn, domain, budget: Budget, chunk: int, shared_draw: bool, counter: _TraceCounter):
    """The jitted bucket program: (params[B], drawn, probes[B]) → per-candidate maxima.

    It is :func:`~infoflow_jax.verification.estimators.evaluate` — the single-configuration
    estimator — with ``jax.vmap`` applied from outside over the batch of weight pytrees
    (and probes). ``drawn`` are the inputs :func:`~infoflow_jax.verification.estimators.draw_for_seed`
    draws on the host: one set shared by the batch (``shared_draw``: every configuration of the
    bucket has one seed, so the inputs are evaluated under every weight pytree) or one set per
    configuration, stacked (B, …).

    Returns ``(values (B, n_cand), inputs (B, n_cand, T, d))``.
    """
    def one(params, drawn_inputs, probes):
        return evaluate(err_fn, params, drawn_inputs, probes, domain=domain, budget=budget, chunk=chunk)

    def sweep_bucket_program(params, drawn, probes):
        counter.hit()  # runs once per trace, i.e. once per compilation
        return jax.vmap(one, in_axes=(0, None if shared_draw else 0, 0))(params, drawn, probes)

    return jax.jit(sweep_bucket_program)


# ----------------------------------------------------------------------------- preparation
@dataclass
class Prepared:
    """One configuration, built and ready to be bucketed."""

    config: Config
    entry: Any  # the registry spec
    built: Any = None  # Built (constructions)
    params: Any = None  # padded state (constructions) or β used (lemma checks)
    probes: tuple = ()
    probe_names: tuple = ()
    cfg: Any = None  # TFConfig (unpadded)
    build_seconds: float = 0.0
    error: str | None = None
    fast: bool | None = None  # the exact fast path pays for this configuration (decided once)


def _group_key(c: Config, pad_T: bool = False) -> tuple:
    """Configurations that may share buckets (one family of shapes); ε, β, mutant, seed vary inside,
    and T too with ``pad_T`` (one padded program per family; :mod:`infoflow_jax.verification.padding`)."""
    return (c.kind, c.name, None if pad_T else c.T, c.k, c.gamma, c.dtype, c.budget, c.options)


def prepare(config: Config, entry) -> Prepared:
    """Build one configuration (constructions) or compute its β (lemma checks)."""
    p = Prepared(config=config, entry=entry)
    t0 = time.perf_counter()
    if config.kind == "lemma":
        p.params = np.asarray(lemma_checks.beta_used(config.beta, config.mutant), np.float64)
        return p
    kw = dict(config.options)
    if entry.uses_k:
        kw["k"] = config.k
    if config.gamma is not None:
        kw["gamma"] = config.gamma
    try:
        with phase("build"):
            p.built = entry.build(config.T, config.eps, mutant=config.mutant, beta=config.beta, **kw)
    except InputError:
        raise
    except Exception as exc:  # a construction that cannot be built is a failed row, not a crashed sweep
        p.error = f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, AssertionError):
            traceback.print_exc(file=sys.stderr)
        p.build_seconds = time.perf_counter() - t0
        return p
    p.cfg = p.built.compiled.model.cfg
    need = memory.ITEM * config.T * p.built.task.d * MAX_PROBE_INPUTS  # before any probe is built
    if need > memory.memory_budget():
        p.error = (f"T = {config.T} is out of range: must be small enough for the structural probes to fit in "
                   f"memory ({memory.human_bytes(need)} needed, {memory.human_bytes(memory.memory_budget())} may be used); "
                   f"`infoflow verify` proof-checks a construction with claims at this T without a forward pass")
        p.build_seconds = time.perf_counter() - t0
        return p
    with phase("probes"):
        probes = dict(getattr(p.built, "probes", None) or {})
    p.probe_names = tuple(probes)
    p.probes = tuple(np.asarray(probes[n], np.float64) for n in p.probe_names)
    p.build_seconds = time.perf_counter() - t0
    return p


def run_direct(p: Prepared) -> Record:
    """A lemma check without a batched form in this engine: its registry ``run`` (compiles its own programs)."""
    c = p.config
    t0 = time.perf_counter()
    rec = p.entry.run(T=c.T, beta=c.beta, mutant=c.mutant, seed=c.seed, budget=c.budget)
    rec.config_hash, rec.bucket, rec.compile_seconds = c.hash, f"direct:{c.name}/T{c.T}", None
    rec.seconds = time.perf_counter() - t0
    return rec


def failed_record(p: Prepared) -> Record:
    """A configuration that could not be built: a failed row with the reason in ``error``."""
    c = p.config
    rec = records.failure_record(c.name, task=getattr(p.entry, "task_id", None), T=c.T, eps=c.eps, k=c.k,
                                 beta=c.beta, mutant=c.mutant, dtype=c.dtype, seed=c.seed,
                                 seconds=p.build_seconds, error=p.error)
    rec.config_hash = c.hash  # counted in the summary (as unexpected) and not run again on resume
    return rec


# ----------------------------------------------------------------------------- buckets
@dataclass
class Bucket:
    label: str
    members: list[Prepared]
    kind: str
    T: int
    d: int
    dtype: str
    budget: Budget
    domain: Any
    err_fn: Callable
    graphdef: Any = None
    target_cfg: Any = None
    probe_names: tuple = ()
    probe_sizes: tuple = ()
    batch: int = 1
    chunk: int = 256
    names: list = field(default_factory=list)  # estimator candidates, in estimate_sup_error's order
    shared_key: bool = True  # one seed in the bucket: inputs drawn once for the whole batch
    # T padding: members' T differ; inputs are (T_pad, d + 1) with a mask channel, every estimator's
    # batch padded with fillers to ``segment_sizes``; ``base_domain``/``data_d`` are the real ones
    fast: bool = False  # the exact fast path (core/fast_model.py); params are stacked FastPlans
    plans: Any = None  # id(member) → its FastPlan, padded to the bucket's one shape
    padded: bool = False
    base_domain: Any = None
    data_d: int = 1
    segment_sizes: tuple = ()
    prep_seconds: float = 0.0  # host work of the first call (draws, padding, plans), before tracing
    trace_seconds: float = 0.0
    compile_seconds: float = 0.0  # trace + XLA compile


def _bytes_per_eval(cfg, T: int, dtype: str, ffn_widths=None) -> int:
    """Rough activation bytes of one forward evaluation (for batch sizing only); ``ffn_widths``:
    the activations per position of each layer's FFN when not the dense ones (the fast path)."""
    item = 8 if dtype == "float64" else 4
    if cfg is None:
        return item * 4 * T
    widths = [cfg.E] + (list(ffn_widths) if ffn_widths is not None
                        else [s.n_out for layer in cfg.layers for s in layer.ffn])
    attn = max(layer.heads for layer in cfg.layers) * (T + 1) * T
    return item * ((T + 1) * max(widths) + attn)


def _size(bucket: Bucket, spec: SweepSpec, placement: Placement) -> None:
    """Choose the configurations per call (B) and inputs per vectorised step (chunk) from the memory budget."""
    mem = spec.memory_mb * 2 ** 20
    widths = None
    if bucket.fast:
        widths = fast_ffn_widths(next(iter(_bucket_plans(bucket).values())))
    per = _bytes_per_eval(bucket.target_cfg, bucket.T, bucket.dtype, widths)
    b = bucket.budget
    ascent = max(b.starts, 1) * 8 * per  # forward + backward + optimizer state per start
    B = min(spec.max_batch, len(bucket.members), max(1, int(mem // max(ascent, 1))))
    bucket.batch = placement.round_up(max(B, 1))
    bucket.chunk = int(max(1, min(b.chunk, mem // max(3 * per * bucket.batch, 1))))


def _label(p: Prepared, target_cfg, T_pad: int | None = None) -> str:
    c = p.config
    parts = [c.name, f"T{c.T}" if T_pad is None else f"T<={T_pad}"]
    if c.k is not None:
        parts.append(f"k{c.k}")
    if c.gamma is not None:
        parts.append(f"g{c.gamma:g}")
    if target_cfg is not None:
        ws = [w for layer in buckets.hidden_widths(target_cfg) for w in layer if w]
        parts.append("W" + "x".join(map(str, ws)) if ws else "W-")
    parts.append(c.dtype)
    return "/".join(parts)


def make_buckets(group: list[Prepared], policy: str, platform: str = "cpu", pad_T: bool = False) -> list[Bucket]:
    """Bucket one group's built configurations (one k, γ, dtype, budget; one T unless ``pad_T``).

    With ``pad_T`` a group holds every T of its family: paddable members (their task has a
    padding rule and their model no positional input) share buckets at T_pad = the family's
    largest T; the others are bucketed per T as without padding."""
    if pad_T and len({p.config.T for p in group}) > 1:
        by_T: dict[int, list[Prepared]] = {}
        rest = []
        for p in group:
            if p.config.kind == "lemma" or (p.error is None and padding.T_paddable(p.built.task, p.cfg)):
                rest.append(p)
            else:
                by_T.setdefault(p.config.T, []).append(p)
        out = [b for members in by_T.values() for b in _buckets(members, policy, platform)]
        t_pad = buckets.plan_T([(p.config.T, _cost_cfg(p), _evals(p)) for p in rest], platform=platform, policy=policy)
        for T_pad in sorted(set(t_pad.values())):
            members = [p for p in rest if t_pad[p.config.T] == T_pad]
            out += _buckets(members, policy, platform, padded=len({p.config.T for p in members}) > 1)
        return out
    return _buckets(group, policy, platform)


def _cost_cfg(p: Prepared):
    """The config whose FLOPs model this member's forward (cost model only): on the fast path a
    one-input group costs a binary search per position, so its width is counted as 16."""
    if p.config.kind == "lemma":
        return None
    return buckets.capped(p.cfg, 16) if _pays_fast(p) else p.cfg


def _pays_fast(p: Prepared) -> bool:
    """Does the exact fast path pay for this configuration (float64 only)? Decided once, as ``verify``
    decides, from its compiled weights (:func:`~infoflow_jax.core.fast_model.fast_pays`)."""
    if p.fast is None:
        p.fast = p.config.dtype == "float64" and fast_pays(fast_plan(*p.built.split()), p.config.T)
    return p.fast


def _evals(p: Prepared) -> float:
    """Forward-evaluation equivalents of one configuration at its own T (cost model only)."""
    c = p.config
    domain = lemma_checks.domain_of(c.name) if c.kind == "lemma" else p.built.task.domain
    d = 1 if c.kind == "lemma" else p.built.task.d
    return evaluations_per_config(domain, c.T, d, c.budget, tuple(x.shape[0] for x in p.probes), ascent_factor=3)


def _buckets(group: list[Prepared], policy: str, platform: str, padded: bool = False) -> list[Bucket]:
    """Buckets of a group of one T, or (``padded``) of several T sharing programs at T_pad = their
    largest T (inputs with a mask channel, :mod:`infoflow_jax.verification.padding`)."""
    from infoflow_jax.core.flax_nnx import nnx

    T = max(p.config.T for p in group)
    T_pad = T if padded else None
    first = group[0].config
    if first.kind == "lemma":
        base = lemma_checks.domain_of(first.name)
        if not padded:
            return [Bucket(label=_label(group[0], None), members=list(group), kind="lemma", T=T, d=1,
                           dtype=first.dtype, budget=first.budget, domain=base,
                           err_fn=lemma_error_fn(first.name, first.dtype))]
        return [_with_segments(Bucket(label=_label(group[0], None, T_pad), members=list(group), kind="lemma", T=T,
                                      d=2, dtype=first.dtype, budget=first.budget,
                                      domain=padding.PaddedDomain(base, "min"),
                                      err_fn=padded_lemma_error_fn(first.name, first.dtype), padded=True,
                                      base_domain=base, data_d=1))]
    live = [p for p in group if p.error is None]
    if not live:
        return []
    by_structure: dict[Any, list[Prepared]] = {}
    for p in live:
        # padded: the family's task at T_pad (targets read X's shape, not T); else every member's own (one T)
        task = replace(p.built.task, T=T) if padded else p.built.task
        key = (buckets.structure(p.cfg), task, p.probe_names, tuple(x.shape[0] for x in p.probes))
        by_structure.setdefault(key, []).append(p)
    out: dict[Any, Bucket] = {}
    for (struct, task, probe_names, probe_counts), members in by_structure.items():
        evals = evaluations_per_config(task.domain, T, task.d, first.budget, probe_counts, ascent_factor=3)
        fast = _fast_family(members)
        planned = _plan(members, T, evals, platform, policy, fast)
        for p, tcfg in zip(members, planned):
            key = (tcfg, task, probe_names, probe_counts)
            if key not in out:
                dtype = jnp.float64 if first.dtype == "float64" else jnp.float32
                graphdef, _ = nnx.split(buckets.Transformer(tcfg, dtype=dtype, rngs=None))
                out[key] = Bucket(label=_label(p, tcfg, T_pad) + ("/fast" if fast else ""), members=[],
                                  kind="construction", T=T, d=task.d + padded, dtype=first.dtype,
                                  budget=first.budget,
                                  domain=padding.PaddedDomain(task.domain, task.padding) if padded else task.domain,
                                  err_fn=_error_fn(task, graphdef, first.dtype, fast, padded), graphdef=graphdef,
                                  target_cfg=tcfg, probe_names=probe_names, probe_sizes=probe_counts, fast=fast,
                                  padded=padded, base_domain=task.domain, data_d=task.d)
            out[key].members.append(p)
    formed = list(out.values())
    return _unique_labels([_with_segments(b) for b in formed] if padded else formed)


def _error_fn(task, graphdef, dtype: str, fast: bool, padded: bool):
    """|Ĥ − H| for a bucket: dense or on the fast path (float64), on plain or padded inputs."""
    if padded:
        return padding.padded_fast_error_function(task) if fast else padding.padded_error_function(graphdef, task, dtype)
    return fast_error_function(task) if fast else error_function(graphdef, task, dtype)


def _fast_family(members: list[Prepared]) -> bool:
    """Run this family on the exact fast path: when it pays for some member (:func:`_pays_fast`)."""
    return any([_pays_fast(p) for p in members])  # a list: every member's decision is cached


def _plan(members: list[Prepared], T: int, evals: float, platform: str, policy: str, fast: bool) -> list:
    """Bucket widths: with policy ``auto`` on the fast path one bucket per family (a one-input group
    costs O(log N) per position, so padding its breakpoints costs almost nothing); else
    :func:`buckets.plan_widths` (``pow2`` and ``family`` are what the spec asked for)."""
    if fast and policy == "auto":
        return [buckets.join([p.cfg for p in members])] * len(members)
    return buckets.plan_widths([p.cfg for p in members], T, evals, platform=platform, policy=policy)


def _bucket_plans(bucket: Bucket) -> dict:
    """id(member) → its fast plan, read from its padded weights and padded to the bucket's one shape
    (computed once for every member, so every call of the bucket has the same shapes)."""
    if bucket.plans is None:
        plans = []
        for p in bucket.members:
            graphdef, state = buckets.pad_state(p.built, bucket.target_cfg, dtype=jnp.float64)
            plans.append(fast_plan(graphdef, jax.tree_util.tree_map(np.asarray, state)))
        bucket.plans = dict(zip((id(p) for p in bucket.members), same_shape_plans(plans)))
    return bucket.plans


def _unique_labels(formed: list[Bucket]) -> list[Bucket]:
    labels: dict[str, int] = {}
    for b in formed:  # labels unique within the sweep's group
        n = labels.get(b.label, 0)
        labels[b.label] = n + 1
        if n:
            b.label = f"{b.label}#{n}"
    return formed


def _with_segments(b: Bucket) -> Bucket:
    """A padded bucket's estimator layout: the grid if some member has one (the smallest T has one if
    any does; sized for the largest), then one batch per sampler; every member's batches are filled
    up to these sizes."""
    grid = max(grid_size(p.config.T, b.data_d, b.budget.grid_points) for p in b.members)
    b.segment_sizes = ((grid,) if grid else ()) + (b.budget.samples,) * len(samplers_for(b.base_domain))
    b.names = candidate_names(b.base_domain, min(p.config.T for p in b.members), b.data_d, b.budget, b.probe_names)
    return b


def _member_estimate(bucket: Bucket, p: Prepared, values, inputs) -> Estimate:
    """A member's estimate from its bucket's per-candidate maxima: a padded bucket's member drops the
    all-filler grid batch it did not have and gets its worst input back at its own T."""
    if not bucket.padded:
        return to_estimate(bucket.names, values, inputs)
    has_grid = grid_size(p.config.T, bucket.data_d, bucket.budget.grid_points) > 0
    keep = [j for j, n in enumerate(bucket.names) if n != "grid" or has_grid]
    return to_estimate([bucket.names[j] for j in keep], values[keep],
                       padding.strip(np.asarray(inputs)[keep], p.config.T))


def _stack(trees: list):
    return jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)


def _batch_inputs(bucket: Bucket, rows: list[Prepared]):
    """Host arrays for one call: stacked params, the drawn inputs (one set when the bucket shares a
    seed, else stacked per configuration) and stacked probes."""
    if bucket.kind == "lemma":
        params = np.stack([p.params for p in rows])
    elif bucket.fast:
        plans = _bucket_plans(bucket)
        params = _stack([plans[id(p)] for p in rows])
    else:
        states = []
        for p in rows:
            if p.params is None:
                dtype = jnp.float64 if bucket.dtype == "float64" else jnp.float32
                _, p.params = buckets.pad_state(p.built, bucket.target_cfg, dtype=dtype)
                p.params = jax.tree_util.tree_map(np.asarray, p.params)
            states.append(p.params)
        params = _stack(states)
    if bucket.padded:
        drawn = _stack([_padded_draw(bucket, p) for p in rows])
        probes = tuple(np.stack([padding.with_mask(p.probes[j], bucket.T) for p in rows])
                       for j in range(len(bucket.probe_names)))
        return params, drawn, probes
    draws = [draw_for_seed(p.config.seed, domain=bucket.domain, T=bucket.T, d=bucket.d, budget=bucket.budget)
             for p in (rows[:1] if bucket.shared_key else rows)]
    drawn = draws[0] if bucket.shared_key else _stack(draws)
    probes = tuple(np.stack([p.probes[j] for p in rows]) for j in range(len(bucket.probe_names)))
    return params, drawn, probes


def _padded_draw(bucket: Bucket, p: Prepared):
    """The member's own draw (its T, its seed: what ``verify`` evaluates), masked to T_pad and every
    estimator's batch filled up to the bucket's size with fillers (error −∞; a member without a grid
    gets an all-filler grid batch, dropped from its record)."""
    T, d = p.config.T, bucket.data_d
    Xs, fresh = draw_for_seed(p.config.seed, domain=bucket.base_domain, T=T, d=d, budget=bucket.budget)
    if bucket.names[0] == "grid" and not grid_size(T, d, bucket.budget.grid_points):
        Xs = [np.zeros((0, T, d))] + list(Xs)
    out = []
    for X, size in zip(Xs, bucket.segment_sizes):
        X = padding.with_mask(X, bucket.T)
        out.append(np.concatenate([X, padding.fillers(size - X.shape[0], bucket.T, d)]))
    return out, None if fresh is None else padding.with_mask(fresh, bucket.T)


# ----------------------------------------------------------------------------- several processes
def share_of_groups(groups: list[list[Config]], process_id: int, num_processes: int) -> list[int]:
    """The indices of the groups (families: one compiled program shape each) process ``process_id``
    runs: longest-processing-time first over a crude cost, the sum of the group's T (every
    configuration at least one forward per token), each group to the least loaded process (ties:
    the lowest index). Deterministic — it depends on the spec only — so every process, and a rerun,
    computes the same split; a family is never split, so its buckets compile in one process."""
    cost = [sum(c.T for c in g) for g in groups]
    load = [0] * num_processes
    mine = []
    for j in sorted(range(len(groups)), key=lambda j: (-cost[j], j)):
        p = min(range(num_processes), key=lambda q: (load[q], q))
        load[p] += cost[j]
        if p == process_id:
            mine.append(j)
    return sorted(mine)


# ----------------------------------------------------------------------------- running
def _pending_rows(bucket: Bucket, done: set):
    """(start, rows) of every call of the bucket with a configuration not yet done (fixed layout)."""
    B = bucket.batch
    for start in range(0, len(bucket.members), B):
        rows = bucket.members[start:start + B]
        if not all(p.config.hash in done for p in rows):
            yield start, rows


def _call_args(bucket: Bucket, rows: list[Prepared], placement: Placement):
    B = bucket.batch
    rows = rows + [rows[0]] * (B - len(rows))  # pad the last call to the fixed batch
    params, drawn, probes = _batch_inputs(bucket, rows)
    return (placement.batch(params), placement.replicated(drawn) if bucket.shared_key else placement.batch(drawn),
            placement.batch(probes))


def _compile(bucket: Bucket, rows: list[Prepared], placement: Placement, counter: _TraceCounter):
    """Trace and compile the bucket's program (runs in a worker thread; XLA compiles without the GIL)."""
    t0 = time.perf_counter()
    args = _call_args(bucket, rows, placement)  # host work (draws, padding, plans): not compilation
    t_prep = time.perf_counter()
    fn = make_program(bucket.err_fn, bucket.domain, bucket.budget, bucket.chunk, bucket.shared_key, counter)
    lowered = fn.lower(*args)
    t1 = time.perf_counter()
    compiled = lowered.compile(buckets.compiler_options(placement.devices[0].platform))
    bucket.prep_seconds = t_prep - t0
    bucket.trace_seconds = t1 - t_prep
    bucket.compile_seconds = time.perf_counter() - t_prep  # trace + lower + XLA compile
    return compiled, args


def _check_folder_spec(out_dir, spec: SweepSpec) -> None:
    """An InputError naming ``out`` when the folder's manifest holds another spec (or another kind)."""
    import json

    from infoflow_jax.verification.store import dumps, read_manifest

    old = read_manifest(out_dir)
    if old is not None and (old.get("kind") != "sweep" or old.get("spec") != json.loads(dumps(spec.to_dict()))):
        raise InputError("out", str(out_dir), "a new folder, or the folder of a sweep with the same spec (this one "
                         "holds a different spec; see its manifest.json)")


def run_sweep(spec: SweepSpec, out_dir, *, progress: bool = True, placement: Placement | None = None,
              spec_path: str | None = None, stream=None, max_configs: int | None = None,
              compile_workers: int | None = None, process: tuple[int, int] | None = None) -> Stats:
    """Run (or resume) ``spec`` into ``out_dir``; returns what was done.

    ``process = (i, n)``: this is process i of n of a multi-process run (``jax.distributed``
    started; :func:`infoflow_jax.core.devices.init_processes`). It runs its share of the families
    (:func:`share_of_groups`) on its own devices (``jax.local_devices()``), writes its records to
    ``out_dir/parts/process-<i>`` (:func:`~infoflow_jax.verification.store.part_dir`), skips what any
    process stored before; when every process is done (a barrier), process 0 writes the one merged
    ``out_dir/results.jsonl`` in spec order and ``out_dir/manifest.json``. A single process that
    finds part folders (a rerun of a multi-process sweep) merges them too.

    Buckets are compiled ahead by ``compile_workers`` threads (default: 2, or 1
    on a 1-core host) while earlier buckets are evaluated; results are still
    written in the spec's order. ``max_configs`` stops after that many
    configurations were written (a deterministic stand-in for an interruption,
    for tests).
    """
    import os
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

    require_float64("a sweep")
    t_wall = time.perf_counter()
    registry = entries(spec)  # the catalog and the specs the runs' references resolve to, by Config.name
    pid, nproc = process or (0, 1)
    multi = nproc > 1
    placement = placement or Placement(jax.local_devices() if multi else None)
    configs = expand(spec, registry=registry)
    top = None
    if multi:
        if pid == 0:  # the folder's manifest (spec check, one run entry); records go to the parts
            top = ResultsStore(out_dir).open(spec, spec_path=spec_path)
            top.file.close()
        else:  # the others only read the folder's manifest: a folder of another spec is refused in each
            _check_folder_spec(out_dir, spec)
        store = ResultsStore(part_dir(out_dir, pid))
    else:
        store = ResultsStore(out_dir)
    store.open(spec, spec_path=spec_path)
    done = store.done_hashes() | {r["config_hash"] for r in all_records(out_dir) if "config_hash" in r}
    stats = Stats(configs_total=len(configs), device_count=placement.count, process_index=pid,
                  process_count=nproc)
    stats.configs_done_before = sum(c.hash in done for c in configs)
    counter = _TraceCounter()
    workers = compile_workers or min(2, os.cpu_count() or 1)

    groups: dict[tuple, list[Config]] = {}
    for c in configs:
        groups.setdefault(_group_key(c, spec.pad_T), []).append(c)
    if multi:
        keys = list(groups)
        groups = {keys[j]: groups[keys[j]] for j in share_of_groups(list(groups.values()), pid, nproc)}
    stats.configs_mine = sum(len(g) for g in groups.values())

    from tqdm import tqdm

    bar = tqdm(total=len(configs), initial=stats.configs_done_before, unit="cfg", desc="sweep",
               disable=not progress, file=stream or sys.stderr, dynamic_ncols=True,
               bar_format="{desc} {n_fmt}/{total_fmt} cfg |{bar}| {elapsed}<{remaining} {postfix}")
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sweep-compile")
    builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sweep-build")
    status = "interrupted"
    written = 0
    try:
        # build group after group and start compiling its buckets at once (worker threads); between
        # groups, evaluate the buckets at the head of the queue whose programs are ready, so results
        # flow while later groups build and compile. Evaluation order = spec order, whatever the timing.
        from collections import deque

        queue: deque = deque()

        def head_ready() -> bool:
            return bool(queue) and (not isinstance(queue[0][1], Future) or queue[0][1].done())

        def evaluate_head(block: bool) -> bool:
            nonlocal written
            while queue and (block or head_ready()):
                bucket, future = queue.popleft()
                if future is None or future == "direct":
                    p = bucket
                    if future is None:  # a configuration that could not be built: its failed row, in order
                        rec = failed_record(p)
                        stats.configs_failed_build += 1
                    else:  # a lemma check the engine has no batched form of: its own run(), unbatched
                        rec = run_direct(p)
                        stats.configs_run += 1
                    store.append(rec)
                    done.add(p.config.hash)
                    written += 1
                    bar.update(1)
                    continue
                bar.set_postfix_str(f"bucket {bucket.label} ({len(bucket.members)} cfg, compiling)", refresh=True)
                with phase("wait for compile"):
                    compiled, first_args = future.result()
                stats.compile_seconds += bucket.compile_seconds
                stats.prep_seconds += bucket.prep_seconds
                written += _run_bucket(bucket, compiled, first_args, store, done, stats, placement, bar,
                                       None if max_configs is None else max_configs - written)
                if max_configs is not None and written >= max_configs:
                    return True
            return False

        def build(group: list[Config]) -> tuple[list[Prepared], float]:
            t_build = time.perf_counter()
            return [prepare(c, registry[c.name]) for c in group], time.perf_counter() - t_build

        # groups are built one ahead in a thread (NumPy and Python: the probes, the weights) while this
        # thread evaluates the buckets whose programs are ready (XLA, which releases the GIL)
        todo = iter([g for g in groups.values() if not all(c.hash in done for c in g)])
        built: deque = deque()

        def build_next() -> None:
            group = next(todo, None)
            if group is not None:
                built.append((group, builder.submit(build, group)))

        build_next()
        while built:
            group, future = built.popleft()
            build_next()
            bar.set_postfix_str(f"building {group[0].label()}", refresh=True)
            while not future.done():  # evaluate what is ready meanwhile, in spec order
                if head_ready():
                    if evaluate_head(block=False):
                        status = "stopped"
                        return stats
                    continue
                with phase("wait for build"):
                    wait([future] + ([queue[0][1]] if queue else []), return_when=FIRST_COMPLETED)
            prepared, seconds = future.result()
            stats.build_seconds += seconds
            queue.extend((p, None) for p in prepared if p.error is not None and p.config.hash not in done)
            direct = [p for p in prepared if p.config.kind == "lemma" and p.config.name not in lemma_checks.GAP_FUNCTIONS]
            queue.extend((p, "direct") for p in direct if p.config.hash not in done)
            prepared = [p for p in prepared if p not in direct]
            if not prepared:
                continue
            for bucket in make_buckets(prepared, spec.bucket, placement.devices[0].platform, spec.pad_T):
                stats.buckets += 1
                _size(bucket, spec, placement)
                if not bucket.padded:  # a padded bucket's layout is set with its segments
                    bucket.names = candidate_names(bucket.domain, bucket.T, bucket.d, bucket.budget,
                                                   bucket.probe_names)
                bucket.shared_key = not bucket.padded and len({p.config.seed for p in bucket.members}) == 1
                first = next(_pending_rows(bucket, done), None)
                if first is None:
                    continue
                queue.append((bucket, pool.submit(_compile, bucket, first[1], placement, counter)))
            if evaluate_head(block=False):
                status = "stopped"
                return stats
        if evaluate_head(block=True):
            status = "stopped"
            return stats
        status = "complete"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except BaseException:
        status = "error"
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        builder.shutdown(wait=True, cancel_futures=True)  # a build in flight finishes (it holds no lock)
        bar.close()
        stats.compilations = counter.traces
        stats.wall_seconds = time.perf_counter() - t_wall
        store.finish(stats.as_dict(), status)
        if status == "complete":
            if multi:
                from infoflow_jax.core.devices import barrier

                barrier("infoflow-sweep-done")  # every process has written its part
            if (multi and pid == 0) or (not multi and part_dirs(out_dir)):
                merge_parts(out_dir, order=[c.hash for c in configs])
        if top is not None:
            top.finish({**stats.as_dict(), "parts": [str(p.relative_to(out_dir)) for p in part_dirs(out_dir)]},
                       status)
    return stats


def _run_bucket(bucket: Bucket, compiled, first_args, store: ResultsStore, done: set, stats: Stats,
                placement: Placement, bar, budget_left: int | None) -> int:
    if bucket.padded:  # fillers included: they are evaluated too
        per_cfg_evals = sum(bucket.segment_sizes) + sum(bucket.probe_sizes) + ascent_evaluations(bucket.budget)
    else:
        per_cfg_evals = evaluations_per_config(bucket.domain, bucket.T, bucket.d, bucket.budget, bucket.probe_sizes)
    written = 0
    t_eval_bucket = 0.0
    bar.set_postfix_str(f"bucket {bucket.label} ({len(bucket.members)} cfg)", refresh=True)
    for i_call, (start, rows) in enumerate(list(_pending_rows(bucket, done))):
        args = first_args if i_call == 0 else _call_args(bucket, rows, placement)
        t0 = time.perf_counter()
        with phase("evaluate"):
            values, inputs = compiled(*args)
            values, inputs = np.asarray(values), np.asarray(inputs)
        dt = time.perf_counter() - t0
        t_eval_bucket += dt
        stats.eval_seconds += dt
        stats.input_evaluations += per_cfg_evals * bucket.batch
        for i, p in enumerate(rows):
            if p.config.hash in done:
                continue
            est = _member_estimate(bucket, p, values[i], inputs[i])
            store.append(_record(p, est, bucket, dt / len(rows)))
            done.add(p.config.hash)
            stats.configs_run += 1
            written += 1
            bar.update(1)
            if budget_left is not None and written >= budget_left:
                break
        if budget_left is not None and written >= budget_left:
            break
    stats.buckets_run += 1
    stats.per_bucket.append({"bucket": bucket.label, "configs": len(bucket.members), "batch": bucket.batch,
                             "chunk": bucket.chunk, "prep_seconds": bucket.prep_seconds,
                             "trace_seconds": bucket.trace_seconds,
                             "compile_seconds": bucket.compile_seconds, "eval_seconds": t_eval_bucket})
    return written


def _record(p: Prepared, est: Estimate, bucket: Bucket, eval_seconds: float) -> Record:
    c = p.config
    if c.kind == "lemma":
        rec = lemma_checks.check_record(c.name, T=c.T, beta=c.beta, est=est, mutant=c.mutant, seed=c.seed, dtype=c.dtype)
    else:
        rec = records.construction_record(p.built, est, T=c.T, eps=c.eps, seed=c.seed, dtype=c.dtype,
                                          name=p.entry.name, path="fast" if bucket.fast else "dense")
        # the proof as in `infoflow verify`: steps from the weights, their composition, the ideal program
        # (a mutant whose defect is in the proof's glue passes the falsifier and fails only here)
        steps, step_certified = check_steps(p.built)
        judge_proof(rec, p.built, steps, step_certified, seed=c.seed, probes=dict(p.built.probes))
    rec.seconds = p.build_seconds + eval_seconds
    rec.config_hash = c.hash
    rec.bucket = bucket.label
    rec.compile_seconds = bucket.compile_seconds
    return rec
