"""Trained networks (THEORY §7): do real Transformers follow InfoFlow's predictions?

The harness trains the model family of :mod:`infoflow_jax.core.model` (TF(L, h, E, W)
with ``TFConfig.uniform``) with learnable weights; β is simply the scale of
``W_Q``. Training data are sampled on the fly from the task's domain samplers
(by default 75 % uniform, 25 % near-tie), the loss is the mean squared error
against the exact target, the optimiser is optax AdamW with linear warm-up and
cosine decay (``optax.warmup_cosine_decay_schedule``) after global-norm
clipping.

Functional nnx: ``graphdef, state = nnx.split(model)``; the train step is a
pure function of ``(state, opt_state, step index)`` and ``eval_every`` steps are
fused with ``jax.lax.scan`` under one ``jax.jit`` (Python dispatch would
otherwise dominate small models on CPU).

Determinism: the weights come from ``nnx.Rngs(seed)`` and the batch of step i
from ``fold_in(PRNGKey(seed), i)``, so the same config gives bit-identical
loss traces on the same CPU build.

Precision: training runs in ``cfg.dtype`` (float32 by default, for
throughput); the reported test MSEs and the sup-error estimate are evaluated
in float64 on the trained weights cast to float64 (records say both:
``dtype`` and ``eval_dtype``).

Evaluation: a held-out sample (fixed key independent of the training seed,
same sampler mixture) every ``eval_every`` steps; the best weights (lowest
held-out MSE) are kept, saved as ``.npz`` (flattened state) and used for the
sup-error estimate; training stops early after ``patience`` evaluations
without improvement.

The protocol (:func:`run_protocol`) expands a :class:`~infoflow_jax.training.spec.TrainSpec`,
appends one JSON line per finished configuration to ``DIR/train.jsonl`` at
once (fsync), writes ``DIR/manifest.json`` (kind "train") and skips, on rerun,
configurations whose ``config_hash`` is already recorded; a truncated last
line (a run killed mid-write) is detected and cut off.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from infoflow_jax.core import tasks as _tasks
from infoflow_jax.core.errors import InputError, check_int_range
from infoflow_jax.verification.estimators import Budget, estimate_sup_error
from infoflow_jax.core.model import TFConfig, Transformer, batched_apply
from infoflow_jax.core.params import count_params
from infoflow_jax.core.precision import dtype_named, use_float64
from infoflow_jax.core.samplers import sample
from infoflow_jax.training.spec import TrainConfig, TrainSpec
from infoflow_jax.verification.construction import error_function
from infoflow_jax.verification.store import TRAIN_RESULTS, ResultsStore

__all__ = [
    "EVAL_SEED",
    "TASK_CLASSES",
    "make_task",
    "TrainResult",
    "train_one",
    "cast_state",
    "save_checkpoint",
    "load_checkpoint",
    "run_protocol",
]

#: the held-out sample is drawn from this key (folded with T), never from a training seed
EVAL_SEED = 7_919_000
CHECKPOINT_DIR = "checkpoints"

#: task id → name of its class in infoflow_jax.core.tasks (T4–T6 are looked up when used)
TASK_CLASSES = {
    "T1": "MaxRetrieval",
    "T2": "TwoHop",
    "T3": "KthLargest",
    "T4": "CoupledTopR",
    "T5": "DecoupledTopR",
    "T6": "DRetrieval",
}


# ---------------------------------------------------------------------------- tasks


def make_task(task_id: str, T: int, k: int | None = None, r: int | None = None,
              D: int | None = None, gamma: float | None = None, d: int = 1):
    """The task object of THEORY §2 for ``task_id`` ∈ T1..T6 at length T.

    Parameters the task class does not take are ignored (k for T1, …); those it
    needs and that are missing raise :class:`InputError`. T4–T6 are found by
    name in :mod:`infoflow_jax.core.tasks` (``CoupledTopR``, ``DecoupledTopR``,
    ``DRetrieval``); if the class is not there yet the error says so.
    """
    task_id = str(task_id).upper()
    if task_id not in TASK_CLASSES:
        raise InputError("task", task_id, "one of " + ", ".join(TASK_CLASSES))
    check_int_range("T", T, 1)
    check_int_range("d", d, 1)
    cls_name = TASK_CLASSES[task_id]
    cls = getattr(_tasks, cls_name, None)
    if cls is None:
        raise InputError("task", task_id,
                         f"a task whose class exists: infoflow_jax.core.tasks has no {cls_name} yet")
    given = {"k": k, "r": r, "D": D, "gamma": gamma, "d": d}
    names = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    kwargs: dict[str, Any] = {}
    for name, value in given.items():
        if name not in names:
            continue
        if value is None:
            if name in ("k", "r", "D"):
                raise InputError(name, None, f"an integer >= 1 (task {task_id} needs {name})")
            continue
        kwargs[name] = value
    task = cls(T=T, **kwargs)
    if getattr(task, "d", 1) != d:
        raise InputError("d", d, f"{getattr(task, 'd', 1)} (task {task_id} has fixed input dim)")
    return task


def _task_params(task) -> dict:
    return task.hyperparams() if hasattr(task, "hyperparams") else {}


# ---------------------------------------------------------------------------- state helpers


def cast_state(state, dtype):
    """Every floating leaf of an nnx state (or any pytree) cast to ``dtype``."""
    return jax.tree.map(
        lambda a: a.astype(dtype) if jnp.issubdtype(jnp.asarray(a).dtype, jnp.floating) else a, state)


def _leaf_names(state) -> list[str]:
    names = []
    for path, _ in jax.tree_util.tree_flatten_with_path(state)[0]:
        parts = []
        for p in path:
            v = getattr(p, "key", getattr(p, "name", getattr(p, "idx", p)))
            if v == "value":
                continue
            parts.append(str(v))
        names.append("/".join(parts))
    return names


def save_checkpoint(path: str | Path, state) -> Path:
    """Write a state as a plain ``.npz``: one array per leaf, named by its path (``blocks/0/attn/Wq``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = dict(zip(_leaf_names(state), (np.asarray(x) for x in jax.tree.leaves(state))))
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path, cfg: TrainConfig):
    """Rebuild the trained model of ``cfg`` from a ``.npz`` written by :func:`save_checkpoint`."""
    use_float64()
    model = Transformer(_tf_config(cfg), rngs=nnx.Rngs(cfg.seed), dtype=dtype_named(cfg.dtype))
    graphdef, state = nnx.split(model)
    leaves, treedef = jax.tree_util.tree_flatten(state)
    with np.load(path) as data:
        new = [jnp.asarray(data[name]) for name in _leaf_names(state)]
    if len(new) != len(leaves):
        raise InputError("checkpoint", str(path), f"{len(leaves)} arrays matching the config")
    return nnx.merge(graphdef, jax.tree_util.tree_unflatten(treedef, new))


# ---------------------------------------------------------------------------- harness


def _tf_config(cfg: TrainConfig) -> TFConfig:
    return TFConfig.uniform(L=cfg.L, h=cfg.h, E=cfg.E, W=cfg.W, d=cfg.d, ffn_depth=cfg.ffn_depth,
                            positional=cfg.positional, max_T=cfg.T)


def _split_counts(n: int, samplers) -> list[tuple[str, int]]:
    """Integer counts per sampler summing to n (largest remainders)."""
    raw = [(name, n * f) for name, f in samplers]
    counts = [(name, int(math.floor(x))) for name, x in raw]
    short = n - sum(c for _, c in counts)
    order = sorted(range(len(raw)), key=lambda i: -(raw[i][1] - counts[i][1]))
    for i in order[:short]:
        counts[i] = (counts[i][0], counts[i][1] + 1)
    return [(name, c) for name, c in counts if c > 0]


@functools.lru_cache(maxsize=64)
def _sampler_fn(task, counts: tuple[tuple[str, int], ...], T: int, d: int) -> Callable:
    """Jitted ``keys (S,) ↦ (X (S, n, T, d), y (S, n))`` from the sampler mixture ``counts``.

    Cached on (task, counts, T, d) so that configurations differing only in the
    architecture share one compilation (threefry sampling is slow to compile on CPU).
    Values are in the default dtype (float64 here).
    """

    def draw(key):
        keys = jax.random.split(key, len(counts))
        X = jnp.concatenate([sample(name, k, c, T, d, task.domain)
                             for (name, c), k in zip(counts, keys)])
        return X, task.target(X)

    return jax.jit(jax.vmap(draw))


_fold_in_many = jax.jit(jax.vmap(jax.random.fold_in, in_axes=(None, 0)))


def _make_sampler(task, cfg: TrainConfig, n: int) -> Callable:
    """keys (S,) ↦ S batches of n inputs from ``cfg.samplers`` and their targets."""
    return _sampler_fn(task, tuple(_split_counts(n, cfg.samplers)), cfg.T, cfg.d)


@dataclass
class TrainResult:
    """One trained configuration: the JSON record plus what tests and reports may inspect."""

    record: dict
    loss_trace: np.ndarray  # per-step training loss (train dtype)
    eval_trace: list  # [(step, held-out MSE in train dtype)]
    graphdef: Any
    best_state: Any  # train dtype
    final_state: Any


@functools.lru_cache(maxsize=32)
def _mse_fn(graphdef) -> Callable:
    """Jitted ``(state, X (B, T, d), y (B,)) ↦ mean squared error``, one per model structure."""
    return jax.jit(lambda s, X, y: jnp.mean((batched_apply(graphdef, s, X) - y) ** 2))


@functools.lru_cache(maxsize=32)
def _optimizer_and_step(graphdef, lr, warmup, steps, end_lr_factor, weight_decay, clip):
    """optax transformation and the jitted ``eval_every``-step scan for one model structure.

    AdamW after global-norm clipping; learning rate: linear warm-up 0 → lr over
    ``warmup`` steps, then cosine decay to ``lr·end_lr_factor`` at ``steps``.
    Cached, so that rerunning a configuration (determinism checks, resumption in
    one process) reuses the compilation.
    """
    schedule = optax.warmup_cosine_decay_schedule(0.0, lr, warmup, steps,
                                                  end_value=lr * end_lr_factor)
    tx = optax.chain(optax.clip_by_global_norm(clip),
                     optax.adamw(schedule, weight_decay=weight_decay))

    def loss_fn(s, X, y):
        return jnp.mean((batched_apply(graphdef, s, X) - y) ** 2)

    @jax.jit
    def train_chunk(s, o, Xs, ys):
        def step(carry, batch):
            s, o = carry
            loss, grads = jax.value_and_grad(loss_fn)(s, *batch)
            updates, o = tx.update(grads, o, s)
            return (optax.apply_updates(s, updates), o), loss

        (s, o), losses = jax.lax.scan(step, (s, o), (Xs, ys))
        return s, o, losses

    return tx, train_chunk


def train_one(cfg: TrainConfig, *, checkpoint_path: str | Path | None = None,
              sup_error: bool = True, log: Callable[[str], None] | None = None) -> TrainResult:
    """Train one configuration and evaluate it; see the module docstring for the protocol."""
    use_float64()
    t0 = time.perf_counter()
    c0 = time.process_time()
    dtype = dtype_named(cfg.dtype)
    task = make_task(cfg.task, cfg.T, k=cfg.k, r=cfg.r, D=cfg.D, gamma=cfg.gamma, d=cfg.d)

    model = Transformer(_tf_config(cfg), rngs=nnx.Rngs(cfg.seed), dtype=dtype)
    draw = _make_sampler(task, cfg, cfg.batch)
    if cfg.readout_init == "centered":  # start at the mean predictor: w = 0, b = mean target
        _, y0 = draw(jax.random.fold_in(jax.random.PRNGKey(cfg.seed), 3)[None])
        model.w.value = jnp.zeros_like(model.w.value)
        model.b.value = jnp.asarray(jnp.mean(y0), model.b.value.dtype)
    if cfg.query_init == "zero":  # every head starts uniform; the gradient picks its score's sign
        for block in model.blocks:
            block.attn.Wq.value = jnp.zeros_like(block.attn.Wq.value)
    graphdef, state = nnx.split(model)
    # model.py's initial scales are numpy float64 scalars, which promote float32 weights to
    # float64 under jax_enable_x64: cast so that a float32 run really is float32.
    state = cast_state(state, dtype)

    tx, train_chunk = _optimizer_and_step(graphdef, cfg.lr, cfg.warmup, cfg.steps,
                                          cfg.end_lr_factor, cfg.weight_decay, cfg.clip)
    opt_state = tx.init(state)
    mse_of = _mse_fn(graphdef)

    data_key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), 1)

    def batches(first: int, n: int):
        Xs, ys = draw(_fold_in_many(data_key, jnp.arange(first, first + n)))
        return Xs.astype(dtype), ys.astype(dtype)

    X_eval, y_eval = _make_sampler(task, cfg, cfg.eval_samples)(
        jax.random.fold_in(jax.random.PRNGKey(EVAL_SEED), cfg.T)[None])
    X_eval, y_eval = X_eval[0], y_eval[0]
    X_eval_t, y_eval_t = X_eval.astype(dtype), y_eval.astype(dtype)
    eval_mse = lambda s: mse_of(s, X_eval_t, y_eval_t)  # noqa: E731

    losses: list[np.ndarray] = []
    eval_trace: list[tuple[int, float]] = []
    best = (float(eval_mse(state)), 0, state)
    eval_trace.append((0, best[0]))
    since_best, done, compile_seconds = 0, 0, None
    stopped_early = False
    while done < cfg.steps:
        n = min(cfg.eval_every, cfg.steps - done)
        tc = time.perf_counter()
        state, opt_state, chunk = train_chunk(state, opt_state, *batches(done, n))
        chunk = np.asarray(chunk)
        if compile_seconds is None:
            compile_seconds = time.perf_counter() - tc
        losses.append(chunk)
        done += n
        mse = float(eval_mse(state))
        eval_trace.append((done, mse))
        if not np.isfinite(mse):
            if log:
                log(f"{cfg.label()}: held-out MSE not finite at step {done}; stopping")
            stopped_early = True
            break
        if mse < best[0]:
            best, since_best = (mse, done, state), 0
        else:
            since_best += 1
            if since_best >= cfg.patience:
                stopped_early = True
                break
    train_seconds = time.perf_counter() - t0
    t_eval = time.perf_counter()
    best_state = best[2]

    # -- float64 evaluation of the trained weights ------------------------------------------
    best64, final64 = cast_state(best_state, jnp.float64), cast_state(state, jnp.float64)
    y64 = y_eval.astype(jnp.float64)
    X64 = X_eval.astype(jnp.float64)
    final_mse = float(mse_of(final64, X64, y64))
    best_mse = float(mse_of(best64, X64, y64))
    baseline = float(jnp.var(y64))
    eval_seconds = time.perf_counter() - t_eval
    t_sup = time.perf_counter()
    sup, sup_estimator, sup_per, sup_X = None, None, None, None
    if sup_error:
        budget = Budget(samples=cfg.sup_samples, grid_points=cfg.sup_grid_points,
                        starts=cfg.sup_starts, steps=cfg.sup_steps, chunk=256)
        est = estimate_sup_error(error_function(graphdef, task), best64, domain=task.domain, T=cfg.T,
                                 d=cfg.d, seed=(cfg.seed, 2),
                                 budget=budget)
        sup, sup_estimator = float(est.value), est.estimator
        sup_per = {k: float(v) for k, v in est.per_estimator.items()}
        sup_X = np.asarray(est.worst_input, dtype=np.float64)[..., 0].tolist() if cfg.d == 1 \
            else np.asarray(est.worst_input, dtype=np.float64).tolist()

    sup_seconds = time.perf_counter() - t_sup
    counts = count_params(best_state)
    record = {
        "task": cfg.task, "L": cfg.L, "h": cfg.h, "T": cfg.T, "d": cfg.d,
        "k": cfg.k, "r": cfg.r, "D": cfg.D,
        # the task's own γ where the spec left it to the task's default (T4/T5 have one)
        "gamma": cfg.gamma if cfg.gamma is not None else _task_params(task).get("gamma"),
        "E": cfg.E, "W": cfg.W, "ffn_depth": cfg.ffn_depth, "positional": cfg.positional,
        "seed": cfg.seed, "steps": cfg.steps, "steps_run": done, "best_step": best[1],
        "stopped_early": stopped_early, "batch": cfg.batch, "lr": cfg.lr,
        "seconds": round(time.perf_counter() - t0, 3), "train_seconds": round(train_seconds, 3),
        "cpu_seconds": round(time.process_time() - c0, 3),
        "compile_seconds": round(compile_seconds or 0.0, 3),
        "eval_seconds": round(eval_seconds, 3), "sup_seconds": round(sup_seconds, 3),
        "final_test_mse": final_mse, "best_test_mse": best_mse, "baseline_test_mse": baseline,
        "final_train_loss": float(losses[-1][-1]) if losses else None,
        "sup_error_estimate": sup, "sup_error_estimator": sup_estimator,
        "sup_error_per_estimator": sup_per, "sup_error_worst_input": sup_X,
        **counts.as_record(),
        "config_hash": cfg.config_hash(),
        "dtype": cfg.dtype, "eval_dtype": "float64",
        "eval_trace": [[s, m] for s, m in eval_trace],
        "config": cfg.as_dict(),
    }
    if checkpoint_path is not None:
        save_checkpoint(checkpoint_path, best_state)
        record["checkpoint"] = str(checkpoint_path)
    return TrainResult(record=record, loss_trace=np.concatenate(losses) if losses else np.zeros(0),
                       eval_trace=eval_trace, graphdef=graphdef, best_state=best_state,
                       final_state=state)


# ---------------------------------------------------------------------------- records
def _device() -> dict:
    dev = jax.devices()[0]
    return {"platform": dev.platform, "device_kind": getattr(dev, "device_kind", str(dev)),
            "count": jax.device_count(), "cpu_count": os.cpu_count(),
            "machine": platform.machine(), "node": platform.node()}


def open_run_folder(out_dir, spec, spec_path: str | None, **manifest) -> ResultsStore:
    """The training run folder (``train.jsonl`` + ``manifest.json``, kind "train") of ``spec``, opened
    for appending; a rerun with another spec keeps the records and takes the new spec."""
    store = ResultsStore(Path(out_dir), kind="train", results=TRAIN_RESULTS, same_spec=False)
    store.open(spec.raw, spec_path=spec_path)
    store.manifest.update(name=spec.name, n_configs=len(spec.configs),
                          config_hashes=[c.config_hash() for c in spec.configs], device=_device(), **manifest)
    store.write_manifest()
    return store


def run_protocol(spec: TrainSpec, out_dir: str | Path, *, spec_path: str | None = None,
                 progress: bool = True, max_configs: int | None = None,
                 checkpoints: bool = True) -> list[dict]:
    """Train every configuration of ``spec`` not yet recorded in ``out_dir``.

    Returns all records of the spec's configurations present afterwards
    (earlier and new), in spec order.
    """
    from tqdm import tqdm

    store = open_run_folder(out_dir, spec, spec_path)
    existing = store.records
    done = {r.get("config_hash") for r in existing}
    todo = [c for c in spec.configs if c.config_hash() not in done]
    if max_configs is not None:
        todo = todo[:max_configs]
    n_done = len(spec.configs) - len([c for c in spec.configs if c.config_hash() not in done])
    bar = tqdm(total=len(spec.configs), initial=n_done, unit="cfg", desc="train",
               disable=not progress, dynamic_ncols=True, file=sys.stderr)
    status = "interrupted"
    try:
        for cfg in todo:
            bar.set_postfix_str(cfg.label(), refresh=True)
            ckpt = Path(out_dir) / CHECKPOINT_DIR / f"{cfg.config_hash()}.npz" if checkpoints else None
            res = train_one(cfg, checkpoint_path=ckpt, log=bar.write)
            store.append(res.record)
            existing.append(res.record)
            bar.update(1)
        status = "complete"
    finally:
        bar.close()
        store.finish({"configs_total": len(spec.configs)}, status)
    return in_spec_order(spec, existing)


def in_spec_order(spec, records: list[dict]) -> list[dict]:
    """The records of ``spec``'s configurations (by ``config_hash``), in the spec's order."""
    wanted = {c.config_hash(): i for i, c in enumerate(spec.configs)}
    mine = [r for r in records if r.get("config_hash") in wanted]
    return sorted(mine, key=lambda r: wanted[r["config_hash"]])
