"""The sup-error estimator engine (THEORY §6): grid, domain samplers, probes, adversarial ascent, polish.

Every estimator gives a *lower* estimate of

    err(Ĥ, H; Ω) = sup_{X∈Ω} |Ĥ(X) − H(X)|;

the reported estimate is the max over estimators, with the input attaining it
and the name of the estimator that found it.

There is exactly one implementation, written for ONE configuration:

* :func:`draw` — the inputs that depend on the seed only: the exhaustive
  grid (retracted onto the domain), one batch per domain sampler, and fresh
  uniform starts for the ascent, drawn in NumPy (:func:`draw_for_seed`;
  nothing is compiled, and they are the same arrays on every device). Splits:
  ``src.split(n_samplers + 1)``; sampler i uses split i + 1, the fresh starts split 0.
* :func:`evaluate` — given the weights: |Ĥ − H| on every drawn input and every
  probe (one vectorised ``lax.map`` over all of them, in chunks), then
  projected Adam ascent (:func:`ascend`) from the best half of those inputs
  and the fresh starts, then, in the same scan, a multi-scale polish of each
  start's best input down to the construction's finest scale (``finest_scale``:
  1/β, 1/N, γ); returns, per candidate estimator, the largest error
  and the input attaining it (NaN counts as +∞: a NaN output is a failure).

The probes a verification evaluates are the construction's own (``built.probes``)
and the structural ones read off its compiled program
(:mod:`infoflow_jax.verification.probes`: corners and faces of the cube, positions,
every FFN block's knots, Kuhn vertices), drawn on the host like the samplers.

:func:`estimate_sup_error` runs ``evaluate ∘ draw`` for one configuration
(``draw`` on the host, ``evaluate`` jit-compiled); the sweep engine (:mod:`infoflow_jax.sweep.engine`)
draws the same inputs for each seed and applies ``jax.vmap`` to ``evaluate`` from outside
to run a batch of configurations in one compiled program. So ``verify`` of one
configuration is a sweep of one: same estimators, same inputs, same budget.

``err_fn(params, X) -> |Ĥ(X) − H(X)|`` is a pure function of one input X of
shape (T, d) (:func:`infoflow_jax.verification.construction.error_function`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import optax

from infoflow_jax.core.phases import phase
from infoflow_jax.core.samplers import NumpyRandom, as_source, sample, samplers_for


@dataclass(frozen=True)
class Budget:
    """How hard to look. The field defaults are the library's sweep/training budget; what
    ``infoflow verify`` and :func:`infoflow_jax.verify` use by default is :data:`DEFAULT_BUDGET`."""

    samples: int = 1024  # per sampler
    grid_points: int = 8192  # the exhaustive grid runs only if ≥ 3 points per axis fit
    starts: int = 24  # adversarial multi-start
    steps: int = 150  # adversarial ascent steps per start
    lr: float = 1e-2  # initial step; decays ×1e-4 over the run (fine structure ~ 1/β)
    chunk: int = 256  # inputs per vectorised evaluation
    polish_levels: int = 12  # multi-scale polish after Adam: step scales from POLISH_COARSEST to the finest
    polish_moves: int = 4  # candidate moves per scale and start (± the gradient, ± a pseudo-random direction)
    # the search's dtype (grid, samplers, probes' screening, ascent, polish): "float64", "float32" (every
    # estimator's VERDICT_TOP best inputs re-evaluated in float64 for the estimate and the verdict), or
    # None: the platform's default (core/precision.default_search_dtype: float32 on TPU, else float64)
    search_dtype: str | None = None


# What `infoflow verify` and `infoflow_jax.verify` use by default (one budget: the command line's
# default IS the library's, tests/test_public_api.py): every sampler and the adversarial search at
# half the sweep budget's samples (compilation, not evaluation, dominates a verification run
# except for the widest models, whose cost is proportional to the budget).
# Cost per configuration: (≤ 5 samplers × 512 + grid ≤ 8192 + the construction's probes +
# structural probes: 256 corners/faces, 256 knots, 128 positions (position-dependent models),
# 64 Kuhn points (Kuhn blocks)) forward evaluations, and 16 starts × (121 Adam + 48 polish)
# forward + backward evaluations (one traced value-and-gradient for both). Host side, the
# structural probes cost ≲ 0.3 s per build (NumPy; nothing compiled). The sweep budget
# (the Budget() defaults: 1024 samples, 24 × (151 + 48)) is stronger; QUICK_BUDGET (256 samples,
# 8 × (61 + 32)) is for tests and smoke runs. Measured wall and CPU times: README.md.
DEFAULT_BUDGET = Budget(samples=512, starts=16, steps=120)
QUICK_BUDGET = Budget(samples=256, starts=8, steps=60, polish_levels=8)
POLISH_COARSEST = 0.05  # the polish's first step (Adam's first steps are ~lr = 1e-2)
DEFAULT_FINEST_SCALE = 1e-7  # the polish's last step when the caller states no finer one (a sweep):
# below every built-in construction's 1/β, 1/N and γ on its default grids


@dataclass
class Estimate:
    value: float
    worst_input: np.ndarray
    estimator: str
    per_estimator: dict = field(default_factory=dict)
    search_dtype: str = "float64"  # the dtype the search ran in (the values are float64 evaluations either way)
    # float32 search: max |err in float32 − err in float64| over the re-evaluated candidates (finite ones)
    search_noise: float | None = None


#: float32 search: every estimator's this many best inputs are re-evaluated in float64
VERDICT_TOP = 4


def budget_fields(budget: "Budget") -> dict:
    """The budget as a dict for identities (sweep hashes, manifests): ``search_dtype`` appears only
    when set, so configurations and folders written before it existed keep their hashes."""
    from dataclasses import asdict

    d = asdict(budget)
    if d.get("search_dtype") is None:
        d.pop("search_dtype", None)
    return d


# ----------------------------------------------------------------------------- the candidates
def grid_side(T: int, d: int, max_points: int) -> int:
    """Points per axis of the exhaustive grid: the largest n with n^(T·d) ≤ max_points (used only if ≥ 3)."""
    return int(math.floor(max_points ** (1.0 / (T * d)) + 1e-9))


@functools.lru_cache(maxsize=32)
def grid_inputs(T: int, d: int, max_points: int):
    """The full grid {0, 1/(n−1), …, 1}^{T·d} with the largest n ≥ 3 that fits, or None; points in
    ``itertools.product`` order (the last coordinate fastest). Read-only: one array per (T, d,
    max_points) serves every row of a process."""
    n = grid_side(T, d, max_points)
    if n < 3:
        return None
    axis = np.linspace(0.0, 1.0, n)
    pts = axis[np.indices((n,) * (T * d)).reshape(T * d, -1).T]
    pts.flags.writeable = False
    return pts.reshape(-1, T, d)


def ascent_on(budget: Budget) -> bool:
    return budget.starts > 0 and budget.steps > 0


def candidate_names(domain, T: int, d: int, budget: Budget, probe_names: tuple[str, ...] = ()) -> list[str]:
    """The estimators, in the order :func:`evaluate` returns them."""
    names = ["grid"] if grid_side(T, d, budget.grid_points) >= 3 else []
    names += list(samplers_for(domain)) + list(probe_names)
    if ascent_on(budget):
        names.append("adversarial")
    if polish_on(budget):
        names.append("polish")
    return names


def grid_size(T: int, d: int, max_points: int) -> int:
    """Points of the exhaustive grid (:func:`grid_inputs`); 0 where it does not run."""
    n = grid_side(T, d, max_points)
    return n ** (T * d) if n >= 3 else 0


def polish_on(budget: Budget) -> bool:
    return ascent_on(budget) and budget.polish_levels > 0 and budget.polish_moves > 0


def polish_steps(budget: Budget) -> int:
    return budget.polish_levels * budget.polish_moves if polish_on(budget) else 0


def ascent_evaluations(budget: Budget, ascent_factor: int = 1) -> int:
    """Evaluations of the ascent per configuration: steps + 1 + polish steps value-and-gradient
    evaluations per start (:func:`ascend`), each counting ``ascent_factor``."""
    return budget.starts * (budget.steps + 1 + polish_steps(budget)) * ascent_factor if ascent_on(budget) else 0


def evaluations_per_config(domain, T: int, d: int, budget: Budget, probe_sizes: tuple[int, ...] = (),
                           ascent_factor: int = 1) -> int:
    """Forward evaluations of |Ĥ − H| per configuration (an ascent step counts ``ascent_factor``)."""
    return (grid_size(T, d, budget.grid_points) + len(samplers_for(domain)) * budget.samples + sum(probe_sizes)
            + ascent_evaluations(budget, ascent_factor))


def draw(src, grid, *, domain, T: int, d: int, budget: Budget):
    """Inputs that depend on the source only: ``([grid?, sampler_1, …], fresh ascent starts or None)``.

    ``src`` is a sampler source (:class:`~infoflow_jax.core.samplers.NumpyRandom` (seed) for the
    verifier: NumPy arrays, nothing compiled) or a JAX key. Splits: ``src.split(n_samplers + 1)``;
    sampler i uses split i + 1, the fresh starts split 0."""
    names = samplers_for(domain)
    srcs = as_source(src).split(len(names) + 1)
    Xs = [domain.retract(grid)] if grid is not None else []
    Xs += [sample(name, s, budget.samples, T, d, domain) for name, s in zip(names, srcs[1:])]
    n_best = (budget.starts + 1) // 2
    fresh = sample("uniform", srcs[0], budget.starts - n_best, T, d, domain) if ascent_on(budget) else None
    return Xs, fresh


def draw_for_seed(seed: int, *, domain, T: int, d: int, budget: Budget):
    """:func:`draw` from ``NumpyRandom(seed)`` with the exhaustive grid when it fits: what every
    verification of one seed evaluates (host NumPy arrays; identical on every device)."""
    grid = grid_inputs(T, d, budget.grid_points)
    return draw(NumpyRandom(seed), grid, domain=domain, T=T, d=d, budget=budget)


def polish_scales(budget: Budget, finest_scale, dtype):
    """The polish's step per polish step: ``polish_moves`` steps at each of ``polish_levels`` scales,
    geometric from POLISH_COARSEST down to ``finest_scale`` (traced: it may differ across a batch)."""
    J = budget.polish_levels
    coarse = jnp.asarray(POLISH_COARSEST, dtype)
    fine = jnp.clip(jnp.asarray(finest_scale, dtype), 1e-12, coarse)
    levels = coarse * (fine / coarse) ** (jnp.arange(J, dtype=dtype) / max(J - 1, 1))
    return jnp.repeat(levels, budget.polish_moves)


def ascend(err_fn, retract, params, X0, steps: int, lr: float, chunk: int | None = None, *,
           budget: Budget | None = None, finest_scale=DEFAULT_FINEST_SCALE):
    """Projected Adam ascent on err from each start in X0 (S, T, d), then a multi-scale polish;
    per start: (best value after Adam, its input, best value after the polish, its input).

    Adam: the step size lr decays exponentially to lr·1e-4 over ``steps``; after each step the
    input is retracted onto the domain; non-finite gradients count as 0.

    Polish (``budget.polish_levels`` × ``budget.polish_moves`` more steps, none without a
    budget): from the best input X* so far (value v*, gradient g*), try X* + s·D at scales s
    geometric from POLISH_COARSEST down to ``finest_scale`` (the construction's finest scale:
    min(1/β, 1/N, γ), :func:`infoflow_jax.verification.probes.finest_scale`), with D in turn
    ± g*/‖g*‖_∞ (both: at a kink the gradient is one-sided; in a flat region, where a localized
    defect hides, ± one coordinate instead: the largest entry of the step's pseudo-random direction)
    and ± a fixed pseudo-random direction (entries in [−1, 1); the padding mask and padding tokens of
    a padded input never move), retracted onto the domain; a candidate replaces
    X* iff its value is larger. So the polish never lowers the value, and its smallest step
    reaches the scale of a defect that Adam's first steps (~lr) jump over.

    Both phases are ONE ``lax.scan`` over one traced value-and-gradient (the candidate of step i
    is evaluated at step i + 1), so the polish adds no forward pass to the compiled program.
    Starts run vectorised, ``chunk`` at a time when given (memory), all at once otherwise.
    """
    opt = optax.adam(optax.exponential_decay(lr, steps, 1e-4))
    n_polish = polish_steps(budget) if budget is not None else 0
    S, T, d = X0.shape
    fixed = getattr(retract, "fixed_channels", 0)  # channels the search must not move (a padding mask)
    free = (jnp.arange(d) < d - fixed).astype(X0.dtype)
    if n_polish:
        # step i makes the candidate that step i + 1 evaluates: the polish's n_polish candidates are
        # made at steps `steps` … `steps + n_polish − 1` (the last step's is discarded)
        scales = jnp.concatenate([jnp.zeros(steps, X0.dtype), polish_scales(budget, finest_scale, X0.dtype),
                                  jnp.zeros(1, X0.dtype)])
        # fixed pseudo-random directions from a sine hash of (step, token, channel) (a few traced ops;
        # a PRNG would add a threefry graph to every program): entries in [−1, 1), the same for a
        # token whatever the padded length, so a padded bucket polishes as the unpadded input does
        s_, t_, c_ = (jnp.arange(n, dtype=X0.dtype) for n in (n_polish, T, d))
        phase = s_[:, None, None] * 12.9898 + t_[None, :, None] * 78.233 + c_[None, None, :] * 37.719
        R = (2.0 * jnp.mod(jnp.sin(phase) * 43758.5453, 1.0) - 1.0) * free
        R = jnp.concatenate([jnp.zeros((steps, T, d), X0.dtype), R, jnp.zeros((1, T, d), X0.dtype)])
    else:
        scales, R = jnp.zeros(steps + 1, X0.dtype), jnp.zeros((steps + 1, T, d), X0.dtype)
    moves = budget.polish_moves if n_polish else 1

    def one(X):
        neg = lambda Z: -err_fn(params, Z)

        # steps + 1 + n_polish evaluations: the value at the start, after each of the `steps`
        # updates, at each polish candidate; the last step's next candidate is discarded. One
        # traced forward + backward serves all of them (a separate forward for the first and the
        # last value, or for the polish, would double the compiled graph).
        def step(carry, xs):
            X, state, best, best_X, best_g, adam_best, adam_X = carry
            i, s, r = xs
            val, g = jax.value_and_grad(neg)(X)
            g = -jnp.where(jnp.isfinite(g), g, 0.0)  # gradient of err
            upd, state = opt.update(-g, state, X)
            v = jnp.where(jnp.isnan(val), jnp.inf, -val)  # a NaN output is a failure: +∞
            better = v > best
            best = jnp.where(better, v, best)
            best_X = jnp.where(better, X, best_X)
            best_g = jnp.where(better, g, best_g)
            adam_best = jnp.where(i <= steps, best, adam_best)
            adam_X = jnp.where(i <= steps, best_X, adam_X)
            # the polish candidate from the best input so far (move i − steps of its scale)
            m = (i - steps) % moves
            gn = best_g * free / jnp.maximum(jnp.max(jnp.abs(best_g * free)), 1e-30)
            # in a flat region (g* = 0) the gradient moves become ± one coordinate: the largest entry of
            # this step's pseudo-random direction over the real tokens (a padded input's mask says which)
            live = (X[:, -1:] > 0.5).astype(X.dtype) if fixed else jnp.ones((T, 1), X.dtype)
            rl = r * live
            e = jax.nn.one_hot(jnp.argmax(jnp.abs(rl).ravel()), T * d, dtype=X.dtype).reshape(T, d)
            sparse = e * jnp.sign(rl)
            flat = jnp.max(jnp.abs(gn)) == 0
            D = jnp.select([m == 0, m == 1, m == 2], [jnp.where(flat, sparse, gn), jnp.where(flat, -sparse, -gn), rl],
                           -rl)
            X_next = jnp.where(i < steps, optax.apply_updates(X, upd), best_X + s * D)
            return (retract(X_next), state, best, best_X, best_g, adam_best, adam_X), None

        inf = jnp.array(-jnp.inf, X.dtype)
        start = (X, opt.init(X), inf, X, jnp.zeros_like(X), inf, X)
        xs = (jnp.arange(steps + 1 + n_polish), scales, R)
        (_, _, best, best_X, _, adam_best, adam_X), _ = jax.lax.scan(step, start, xs)
        return adam_best, adam_X, best, best_X

    if chunk is None or chunk >= X0.shape[0]:
        return jax.vmap(one)(X0)
    return map_in_chunks(one, X0, chunk)


def map_in_chunks(f, X, chunk: int):
    """``vmap(f)(X)`` computed ``chunk`` inputs at a time (memory). The batch is padded with copies of
    its first input to a multiple of the chunk, so ``f`` is traced once (``lax.map`` with a remainder
    would trace and compile it twice); the padded results are dropped."""
    n = X.shape[0]
    c = max(1, min(chunk, n))
    pad = -n % c
    if pad:
        X = jnp.concatenate([X, jnp.broadcast_to(X[:1], (pad,) + X.shape[1:])])
    return jax.tree_util.tree_map(lambda y: y[:n], jax.lax.map(f, X, batch_size=c))


def segment_best(values, inputs, sizes, top: int | None = None):
    """Per segment of consecutive entries (``sizes``, static): the largest value and the input
    attaining it (the first maximum), ``((S,), (S, T, d))``; with ``top`` its ``top`` largest
    values, largest first, equal values in input order (a segment of fewer entries: its largest
    repeated), ``((S, top), (S, top, T, d))``.

    One masked reduction over an (S, N) view and one gather — the same picks as a slice and an
    ``argmax`` (or a stable sort) per segment, in a handful of traced operations instead of ~15 per
    segment (every one of them traced, lowered and compiled once per program)."""
    sizes = np.asarray(sizes)
    ends = np.cumsum(sizes)
    starts = ends - sizes
    i = jax.lax.broadcasted_iota(np.int32, (len(sizes), values.shape[0]), 1)
    own = (i >= starts[:, None]) & (i < ends[:, None])
    masked = jnp.where(own, values[None, :], -jnp.inf)
    if not top:
        idx = jnp.argmax(masked, axis=1)
        return values[idx], inputs[idx]
    _, idx = jax.lax.top_k(masked, top)
    idx = jnp.where(np.arange(top)[None, :] < sizes[:, None], idx, idx[:, :1])  # fewer: the largest repeated
    return values[idx], inputs[idx]


def evaluate(err_fn, params, drawn, probes, *, domain, budget: Budget, chunk: int, ascent_chunk: int | None = None,
             finest_scale=DEFAULT_FINEST_SCALE, top: int | None = None):
    """Per candidate estimator: (largest |Ĥ − H| (NaN → +∞), the input attaining it).

    ``top`` (the float32 search): per estimator its ``top`` largest values and their inputs instead,
    ``(values (n_cand, top), inputs (n_cand, top, T, d))``, for :func:`verdict` to re-evaluate.

    ``finest_scale`` (a scalar, may be traced) is the polish's smallest step (:func:`ascend`);
    the estimators "adversarial" (Adam) and "polish" (Adam, then the polish) share one scan.

    Returns ``(values (n_cand,), inputs (n_cand, T, d))`` in :func:`candidate_names` order.
    Every fixed input (grid, samplers, probes) goes through ONE vectorised map, so the
    forward pass is traced and compiled once per program.
    """
    Xs, fresh = drawn
    if probes:  # one retraction for every probe (it acts input by input)
        Xs = list(Xs) + [domain.retract(jnp.concatenate(probes))]
    sizes = [X.shape[0] for X in drawn[0]] + [P.shape[0] for P in probes]
    pool = jnp.concatenate(Xs)
    vals = map_in_chunks(lambda X: err_fn(params, X), pool, chunk)
    safe = jnp.where(jnp.isnan(vals), jnp.inf, vals)
    pool_v, pool_X = segment_best(safe, pool, sizes, top)
    if fresh is None:
        return pool_v, pool_X
    n_best = (budget.starts + 1) // 2
    best_start = jnp.argsort(-safe)[:n_best]
    X0 = jnp.concatenate([pool[best_start], fresh])
    v_adv, X_adv, v_pol, X_pol = ascend(err_fn, domain, params, X0, budget.steps, budget.lr, ascent_chunk,
                                        budget=budget, finest_scale=finest_scale)  # domain ≡ retraction
    runs = 1 + polish_on(budget)  # "adversarial" (Adam's best), then "polish"
    v = jnp.concatenate([v_adv, v_pol][:runs])
    v, X = segment_best(jnp.where(jnp.isnan(v), jnp.inf, v), jnp.concatenate([X_adv, X_pol][:runs]),
                        [v_adv.shape[0]] * runs, top)
    return jnp.concatenate([pool_v, v]), jnp.concatenate([pool_X, X])


def to_estimate(names: list[str], values, inputs) -> Estimate:
    """Per-candidate maxima → an :class:`Estimate` (the first maximum wins)."""
    per, best = {}, None
    for j, name in enumerate(names):
        v = float(values[j])
        per[name] = v
        if best is None or v > best[0]:
            best = (v, np.asarray(inputs[j]), name)
    return Estimate(value=best[0], worst_input=best[1], estimator=best[2], per_estimator=per)


# ----------------------------------------------------------------------------- one configuration
@functools.lru_cache(maxsize=128)
def evaluate_program(err_fn, domain, budget: Budget, chunk: int, ascent_chunk: int | None = None,
                     top: int | None = None):
    """``jit(evaluate)`` for one configuration: (params, drawn, probes) → (values, inputs)
    (``top``: every estimator's ``top`` best, for the float32 search).

    Cached on its static arguments (an error function is cached on (graphdef, task), a domain
    and a budget compare by value), so every build of one shape — a construction and its
    mutants of equal widths — shares one compiled program.
    """
    def program(params, drawn, probes, finest_scale=DEFAULT_FINEST_SCALE):
        return evaluate(err_fn, params, drawn, probes, domain=domain, budget=budget, chunk=chunk,
                        ascent_chunk=ascent_chunk, finest_scale=finest_scale, top=top)

    return jax.jit(program)


def float64_verdict(err_fn, params, candidates, *, domain, chunk: int):
    """The float64 verdict on a float32 search's candidates (n_cand, K, T, d): each retracted onto the
    domain and evaluated in float64; per estimator the largest |Ĥ − H| (NaN → +∞) and its input,
    and every candidate's float64 value. Returns ``(values (n_cand,), inputs (n_cand, T, d), all (n_cand, K))``."""
    n, K = candidates.shape[:2]
    X = domain.retract(candidates.reshape((n * K,) + candidates.shape[2:]))
    v = map_in_chunks(lambda Z: err_fn(params, Z), X, chunk)
    v = jnp.where(jnp.isnan(v), jnp.inf, v).reshape(n, K)
    j = jnp.argmax(v, axis=1)
    X = X.reshape(candidates.shape)
    return v[jnp.arange(n), j], X[jnp.arange(n), j], v


@functools.lru_cache(maxsize=128)
def verdict_program(err_fn, domain, chunk: int):
    """``jit(float64_verdict)`` (float64; a forward over every estimator's VERDICT_TOP candidates)."""
    return jax.jit(functools.partial(float64_verdict, err_fn, domain=domain, chunk=chunk))


def estimate_sup_error(err_fn, params, *, domain, T: int, d: int, seed: int, budget: Budget = DEFAULT_BUDGET,
                       extra_inputs: dict | None = None, chunk: int | None = None,
                       ascent_chunk: int | None = None, finest_scale: float = DEFAULT_FINEST_SCALE,
                       search_dtype: str = "float64") -> Estimate:
    """Max over estimators of |Ĥ − H| on ``domain`` for one configuration; the inputs are drawn
    from ``seed`` (:func:`draw_for_seed`).

    ``extra_inputs`` (name → (B, T, d)) adds probes: inputs a proof or a construction
    identifies as likely worst cases; they are retracted onto the domain first. ``chunk``
    (inputs per vectorised step, default ``budget.chunk``) and ``ascent_chunk`` (ascent starts
    at once, default all) come from the memory plan (:mod:`~infoflow_jax.verification.memory`).
    ``finest_scale`` is the polish's smallest step (:func:`infoflow_jax.verification.probes.finest_scale`).

    ``search_dtype = "float32"``: the search (every estimator, ascent and polish included) runs as one
    program compiled with 64-bit types off (:func:`infoflow_jax.core.precision.search_precision`: no
    float64 operation in it), on the weights, inputs and probes rounded to float32; every estimator's
    :data:`VERDICT_TOP` best inputs are then re-evaluated in float64 (:func:`verdict`) and the
    estimate is the largest float64 value — a true float64 evaluation at an input of the domain,
    so the verdict is judged in float64 exactly as after a float64 search. ``Estimate.search_noise``
    is the largest |float32 − float64| over those candidates (how far the float32 landscape was off;
    +∞ when one is finite in one dtype and not in the other).
    """
    probes = dict(extra_inputs or {})
    chunk = budget.chunk if chunk is None else min(chunk, budget.chunk)
    if ascent_chunk is not None and ascent_chunk >= budget.starts:
        ascent_chunk = None  # all at once: the same program as without a plan
    with phase("draw"):
        drawn = draw_for_seed(seed, domain=domain, T=T, d=d, budget=budget)
    names = candidate_names(domain, T, d, budget, tuple(probes))
    probe_arrays = tuple(np.asarray(P) for P in probes.values())
    if search_dtype == "float64":
        with phase("evaluate"):  # JAX's tracing, lowering and compiling inside it count as theirs
            values, inputs = evaluate_program(err_fn, domain, budget, chunk, ascent_chunk)(
                params, drawn, probe_arrays, np.asarray(finest_scale, np.float64))
            values, inputs = np.asarray(values), np.asarray(inputs)  # wait for the result inside the phase
        return to_estimate(names, values, inputs)
    from infoflow_jax.core.devices import float64_device
    from infoflow_jax.core.precision import check_search_dtype, search_precision, to_search_dtype

    check_search_dtype(search_dtype)
    with phase("evaluate"):
        with search_precision(search_dtype):
            v32, cands = evaluate_program(err_fn, domain, budget, chunk, ascent_chunk, VERDICT_TOP)(
                *to_search_dtype((params, drawn, probe_arrays, np.asarray(finest_scale)), search_dtype))
            v32, cands = np.asarray(v32), np.asarray(cands)
        params64, cands64 = params, cands.astype(np.float64)
        device = float64_device()  # a TPU has no float64: the verdict runs on its host's CPU
        if device is not None:
            params64, cands64 = jax.device_put((params64, cands64), device)
        values, inputs, v64 = verdict_program(err_fn, domain, chunk)(params64, cands64)
        values, inputs, v64 = np.asarray(values), np.asarray(inputs), np.asarray(v64)
    finite = np.isfinite(v32) & np.isfinite(v64)
    noise = float(np.max(np.abs(v32.astype(np.float64) - v64)[finite])) if finite.any() else 0.0
    if np.any(np.isfinite(v32) != np.isfinite(v64)):  # float32 overflowed (or NaN'd) where float64 did not
        noise = float("inf")
    est = to_estimate(names, values, inputs)
    est.search_dtype, est.search_noise = search_dtype, noise
    return est
