"""A sound global certificate: sup over the domain of |Ĥ − H| by branch-and-bound over input boxes.

    certify_built(built) → Certificate      certificate ∈ {"certified", "refuted", "open"}

On a box B = [lo, hi] ⊆ [0,1]^{T×d}, Ĥ ∈ [a, b] (:func:`~infoflow_jax.core.intervals.propagate`:
interval bounds through embedding, softmax attention, one-input FFN groups exactly, deep FFNs
by linear bounds, :mod:`~infoflow_jax.core.linear_bounds`) and H ∈ [c, e]
(:mod:`~infoflow_jax.verification.target_bounds`), so

    sup_B |Ĥ − H| ≤ upper(B) = max(b − c, e − a)                                  (sound)

and |Ĥ(x) − H(x)| at the box's centre x (retracted onto the domain; the model's own
``apply`` and the task's own ``target``, exactly what the verifier evaluates) is a lower
bound on the sup. Boxes are kept in a priority queue on upper(B); each round takes the
``batch`` worst, splits each in two along the coordinate of largest estimated effect
(width × (|∂Ĥ/∂x| + |∂H/∂x|) at the centre, plus a share of the width so every coordinate
is eventually split) and bounds the children in one jit-compiled call of fixed shape (one
compilation per model shape). A box with upper(B) ≤ bound is closed.

* **certified**: every box is closed and bound ≤ ε; ``upper`` = the largest closed upper(B),
  a sound bound on sup_Ω |Ĥ − H|.
* **refuted**: an evaluated point has |Ĥ − H| > bound (beyond float64 rounding,
  :func:`~infoflow_jax.core.precision.within_bound`); ``witness`` is that input.
* **open**: the time budget ran out (``upper``: the largest upper(B) still queued, sound),
  or the task has no interval extension (``reason``: e.g. "not certifiable: primitive <name>
  in the target" for a user's fn).

Reductions (each sound, each decided from the objects, never from a name):

* **sorted inputs**: when the target is invariant under permuting tokens (declared per task
  class in :data:`~infoflow_jax.verification.target_bounds.TARGET_BOUNDS`) and the model is
  too — no positional features and no per-position input matrices (``cfg.n_pos == 0`` and not
  ``cfg.position_input``: every layer is then permutation-equivariant on the tokens and the
  CLS read-out invariant) — only inputs with x_{1,0} ≥ x_{2,0} ≥ … ≥ x_{T,0} are searched.
  The interval bounds hold for the float model at any permutation of a box's inputs: their
  rounding margins bound sums "in any order" (:mod:`~infoflow_jax.core.intervals`).
* **margin domains**: Ω_{γ,k} (:class:`~infoflow_jax.core.domains.Margin`) and Ω^set
  (:class:`~infoflow_jax.core.domains.TopSetMargin`) are, on inputs sorted by some order π,
  chains x_{π_j} − x_{π_{j+1}} ≥ g_j. A box is shrunk to the bounding box of its part of the
  chain — lo'_j = max_{i≥j}(lo_i + P_i) − P_j, hi'_j = min_{i≤j}(hi_i + P_i) − P_j with
  P_j = Σ_{l<j} g_l (a margin of 8u outward for the rounding of these sums) — and dropped
  when empty (lo' > hi'). Without the sorted reduction every order π (T! roots, T ≤ 4) is
  its own root; beyond that the margin is not used (the cube is bounded; sound, looser).
  A box partly outside the domain is still bounded as a whole (sound).

Rounding: the model's bounds carry outward margins (:mod:`~infoflow_jax.core.intervals`,
:mod:`~infoflow_jax.core.linear_bounds`), the target's are widened by 2⁻⁴⁰ relative
(:mod:`~infoflow_jax.verification.target_bounds`); upper(B) = b − c is one rounded
subtraction, widened by 4u relative.
"""

from __future__ import annotations

import functools
import itertools
import math
import time
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from infoflow_jax.core.domains import Cube, Margin, TopSetMargin
from infoflow_jax.core.intervals import DenseStage, bound_plan, ffn_bounds, propagate, U
from infoflow_jax.core.linear_bounds import linear_ffn_bounds, read_coordinates
from infoflow_jax.core.model import apply
from infoflow_jax.core.precision import require_float64, within_bound
from infoflow_jax.verification.certify_split import prepare_split, split_bounds
from infoflow_jax.verification.target_bounds import NotCertifiable, target_bounds_for

BATCH = 1024  # children bounded per compiled call
SMALL_BATCH = 32  # the second compiled shape, for the first rounds (few boxes)
MAX_QUEUE = 4_000_000  # boxes kept at most (memory: T·d·16 bytes each); beyond, the run stops "open"
MAX_ORDER_ROOTS = 24  # T! roots for non-invariant models on margin domains, up to T = 4


class _NoMemory(Exception):
    """Even the smallest batch of boxes could not be bounded in the available memory."""


@dataclass
class Certificate:
    """The outcome of one branch-and-bound run."""

    status: str  # "certified" | "refuted" | "open"
    upper: float | None  # sound upper bound on sup |Ĥ − H| over the searched region (None: nothing bounded)
    lower: float  # the largest |Ĥ − H| evaluated
    witness: np.ndarray | None  # the input attaining ``lower``
    boxes: int  # boxes bounded
    seconds: float
    reason: str | None = None
    notes: list = field(default_factory=list)
    worst_box: tuple | None = None  # (lo, hi) of the queued box with the largest upper bound (open runs)


# ----------------------------------------------------------------------------- structure
def model_permutation_invariant(cfg) -> bool:
    """No positional features and no per-position input matrices: Ĥ(πX) = Ĥ(X) in exact arithmetic."""
    return cfg.n_pos == 0 and not cfg.position_input


def chain_gaps(domain, T: int) -> np.ndarray | None:
    """g (T−1,): the domain on inputs sorted by some order is the chain x_j − x_{j+1} ≥ g_j
    (Cube: zeros; Margin(γ, k): γ for j < k; TopSetMargin(γ, k): γ at j = k); None if unknown."""
    g = np.zeros(max(T - 1, 0))
    if isinstance(domain, Cube):
        return g
    if isinstance(domain, Margin):
        g[: domain.k - 1] = domain.gamma
        return g
    if isinstance(domain, TopSetMargin):
        if domain.k - 1 < T - 1:
            g[domain.k - 1] = domain.gamma
        return g
    return None


def tighten(lo, hi, order, gaps):
    """Shrink boxes (B, T, d) to the bounding box of their part of the chain x_{π_j,0} −
    x_{π_{j+1},0} ≥ g_j (π = ``order`` (B, T)); ``empty`` (B,) where that part is empty."""
    x_lo = np.take_along_axis(lo[..., 0], order, -1)
    x_hi = np.take_along_axis(hi[..., 0], order, -1)
    P = np.concatenate([[0.0], np.cumsum(gaps)])  # P_j = Σ_{l<j} g_l
    slack = 8 * U * (1.0 + P[-1] + np.abs(x_lo) + np.abs(x_hi))  # the rounding of these sums, outward
    new_lo = np.maximum(x_lo, np.maximum.accumulate((x_lo + P)[..., ::-1], -1)[..., ::-1] - P - slack)
    new_hi = np.minimum(x_hi, np.minimum.accumulate(x_hi + P, -1) - P + slack)
    empty = np.any(new_lo > new_hi, -1)
    inv = np.argsort(order, -1)
    lo, hi = lo.copy(), hi.copy()
    lo[..., 0] = np.take_along_axis(new_lo, inv, -1)
    hi[..., 0] = np.take_along_axis(new_hi, inv, -1)
    return lo, hi, empty


def _uses_linear(stage) -> bool:
    """Deep FFNs (≥ 2 hidden layers, e.g. Kuhn decoders) get linear bounds; plain IBP is loose there."""
    return isinstance(stage, DenseStage) and len(stage.Ws) >= 3


# ----------------------------------------------------------------------------- the compiled batch
@functools.lru_cache(maxsize=32)
def box_program(graphdef, task, domain, reads: tuple, with_split: bool = False):
    """jit: (plan, state, lo, hi[, split]) (B, T, d) → upper, witness error, witness input, split effect.
    ``with_split``: Ĥ's range and a second upper bound come from the retrieve-then-decode split
    (:mod:`~infoflow_jax.verification.certify_split`); the smaller of the two uppers is kept."""
    bounds = target_bounds_for(task).bounds

    def one(plan, lo, hi):
        out = propagate(plan, lo, hi, ffn=_ffn_by_position(plan, reads))
        return out.lo, out.hi

    def model_value(state, X):
        return apply(graphdef, state, X)

    def run(plan, state, lo, hi, split=None):
        if with_split:
            up_split, net_lo, net_hi = jax.vmap(split_bounds, in_axes=(None, None, 0, 0))(split, plan, lo, hi)
        else:
            net_lo, net_hi = jax.vmap(one, in_axes=(None, 0, 0))(plan, lo, hi)
        tgt_lo, tgt_hi = bounds(task, lo, hi)
        up = jnp.maximum(net_hi - tgt_lo, tgt_hi - net_lo)
        upper = up * (1 + 4 * U) + 2.0 ** -1000
        if with_split:
            upper = jnp.minimum(upper, up_split)
        centre = domain.retract(0.5 * lo + 0.5 * hi)
        y, dy = jax.vmap(jax.value_and_grad(model_value, argnums=1), in_axes=(None, 0))(state, centre)
        h, dh = jax.vmap(jax.value_and_grad(lambda X: task.target(X)))(centre)
        err = jnp.abs(y - h)
        effect = (hi - lo) * (jnp.abs(dy) + jnp.abs(dh))
        return upper, err, centre, effect

    return jax.jit(run)


def _ffn_by_position(plan, reads):
    """The FFN bound of each layer, in order: linear bounds where ``reads[i]`` is not False."""
    calls = iter(range(len(plan.ffn)))

    def ffn(stage, H):
        i = next(calls)
        if reads[i] is not False:
            return linear_ffn_bounds(stage.Ws, stage.bs, stage.grouped, H, reads[i])
        return ffn_bounds(stage, H)
    return ffn


def linear_reads(plan) -> tuple:
    """Per layer: False (interval bounds) or the first layer's read coordinates (linear bounds)."""
    return tuple(read_coordinates(st.Ws[0], st.grouped[0]) if _uses_linear(st) else False for st in plan.ffn)


# ----------------------------------------------------------------------------- branch and bound
def _roots(T: int, d: int, symmetric: bool, gaps):
    """Root boxes and their token orders: one sorted root, or one per order (margin domains)."""
    cube_lo, cube_hi = np.zeros((1, T, d)), np.ones((1, T, d))
    if symmetric and gaps is not None:
        return cube_lo, cube_hi, np.arange(T)[None], gaps, ["sorted inputs (permutation-invariant)"]
    if gaps is not None and np.any(gaps > 0) and math.factorial(T) <= MAX_ORDER_ROOTS:
        orders = np.array(list(itertools.permutations(range(T))))
        n = len(orders)
        return (np.repeat(cube_lo, n, 0), np.repeat(cube_hi, n, 0), orders, gaps,
                [f"{n} orders of the tokens, margin chains pruned"])
    return cube_lo, cube_hi, np.arange(T)[None], None, ["whole cube (no reduction)"]


def certify_built(built, *, budget_seconds: float = 60.0, batch: int = BATCH, progress=None) -> Certificate:
    """Branch-and-bound for sup_Ω |Ĥ − H| ≤ built.bound (module docstring). ``progress``: called
    as progress(dict) every few seconds on long runs (boxes, queued, upper, lower, seconds)."""
    require_float64("certification")
    t0 = time.perf_counter()
    task, bound = built.task, float(built.bound)
    try:
        entry = target_bounds_for(task)
    except NotCertifiable as exc:
        return Certificate("open", None, 0.0, None, 0, time.perf_counter() - t0, reason=str(exc))
    T, d = task.T, task.d
    graphdef, state = built.split()
    plan = bound_plan(graphdef, state)
    symmetric = entry.symmetric and model_permutation_invariant(built.compiled.model.cfg)
    gaps = chain_gaps(task.domain, T)
    lo, hi, orders, gaps, notes = _roots(T, d, symmetric, gaps)
    if entry.note is not None:
        notes.append(entry.note(task))  # how the target is bounded (a FunctionTask: automatic or fallback)
    order_of = np.arange(len(orders))  # each root's order index
    split, why_not = prepare_split(built, graphdef, state)
    if split is not None:
        notes.append("retrieve-then-decode split bound (per-cell Kuhn errors + local retrieval error)")
        program = functools.partial(box_program(graphdef, task, task.domain, (False,) * len(plan.ffn), True),
                                    split=split)
    else:
        program = box_program(graphdef, task, task.domain, linear_reads(plan))

    sizes = {"batch": batch}  # shrinks (÷4, at least SMALL_BATCH) when a batch does not fit in memory

    def run_chunks(lo, hi, n):
        ups, errs, wits, effs = [], [], [], []
        size = SMALL_BATCH if n <= SMALL_BATCH else sizes["batch"]  # two fixed shapes: the first rounds are small
        for s in range(0, n, size):  # fixed shape: pad the last chunk with copies
            l, h = lo[s:s + size], hi[s:s + size]
            m = len(l)
            if m < size:
                l = np.concatenate([l, np.repeat(l[-1:], size - m, 0)])
                h = np.concatenate([h, np.repeat(h[-1:], size - m, 0)])
            up, err, wit, eff = program(plan, state, jnp.asarray(l), jnp.asarray(h))
            ups.append(np.asarray(up)[:m]); errs.append(np.asarray(err)[:m])
            wits.append(np.asarray(wit)[:m]); effs.append(np.asarray(eff)[:m])
        return ups, errs, wits, effs

    def bound_boxes(lo, hi, oidx):
        if gaps is not None:
            lo, hi, empty = tighten(lo, hi, orders[oidx], gaps)
            keep = ~empty
            lo, hi, oidx = lo[keep], hi[keep], oidx[keep]
        n = len(lo)
        while True:
            try:
                ups, errs, wits, effs = run_chunks(lo, hi, n)
                break
            except jax.errors.JaxRuntimeError as exc:  # XLA could not allocate the batch's buffers
                if "RESOURCE_EXHAUSTED" not in str(exc):
                    raise
                if sizes["batch"] <= SMALL_BATCH:
                    raise _NoMemory(f"a batch of {SMALL_BATCH} boxes does not fit in memory") from None
                sizes["batch"] = max(SMALL_BATCH, sizes["batch"] // 4)
                notes.append(f"batch reduced to {sizes['batch']} boxes (memory)")
        if n == 0:
            z = np.zeros((0,))
            return lo, hi, oidx, z, z, np.zeros((0, T, d)), np.zeros((0, T, d))
        return lo, hi, oidx, np.concatenate(ups), np.concatenate(errs), np.concatenate(wits), np.concatenate(effs)

    def choose_split(lo, hi, eff):
        width = (hi - lo).reshape(len(lo), -1)
        e = eff.reshape(len(lo), -1)
        g = e / np.maximum(width, 1e-300)  # |∂Ĥ| + |∂H| at the centre
        score = width * (g + 0.5 * g.max(-1, keepdims=True) + 1e-3)  # a floor: no coordinate starves
        return np.argmax(score, -1)

    lower, witness = 0.0, None
    closed_upper = -np.inf
    n_boxes = 0
    try:
        q_lo, q_hi, q_o, q_up, q_err, q_wit, q_eff = bound_boxes(lo, hi, order_of)
    except _NoMemory as exc:
        return Certificate("open", None, 0.0, None, 0, time.perf_counter() - t0, reason=str(exc), notes=notes)
    n_boxes += len(q_lo)
    last_report = time.perf_counter()
    status, reason = None, None
    while True:
        if len(q_err):
            i = int(np.argmax(q_err))
            if q_err[i] > lower:
                lower, witness = float(q_err[i]), q_wit[i].copy()
        if witness is not None and not within_bound(lower, bound):
            status = "refuted"
            break
        done = q_up <= bound
        if np.any(done):
            closed_upper = max(closed_upper, float(np.max(q_up[done])))
            keep = ~done
            q_lo, q_hi, q_o, q_up, q_err, q_wit, q_eff = (a[keep] for a in (q_lo, q_hi, q_o, q_up, q_err, q_wit, q_eff))
        if len(q_lo) == 0:
            status = "certified" if bound <= built.eps else "open"
            if status == "open":
                reason = f"sup ≤ bound proved, but bound {bound:.3e} exceeds eps {built.eps:.3e}"
            break
        now = time.perf_counter()
        if now - t0 > budget_seconds:
            status, reason = "open", f"time budget of {budget_seconds:g} s spent ({len(q_lo)} boxes left)"
            break
        if len(q_lo) > MAX_QUEUE:
            status, reason = "open", f"queue of {len(q_lo)} boxes exceeds {MAX_QUEUE}"
            break
        if progress is not None and now - last_report > 5.0:
            progress(dict(boxes=n_boxes, queued=len(q_lo), upper=float(np.max(q_up)), lower=lower,
                          seconds=now - t0))
            last_report = now
        # the worst `batch // 2` boxes (a priority queue on upper), each split in two
        take = min(len(q_lo), max(1, sizes["batch"] // 2))
        pick = np.argpartition(-q_up, take - 1)[:take] if take < len(q_lo) else np.arange(len(q_lo))
        rest = np.ones(len(q_lo), bool)
        rest[pick] = False
        p_lo, p_hi, p_o = q_lo[pick], q_hi[pick], q_o[pick]
        dim = choose_split(p_lo, p_hi, q_eff[pick])
        flat_lo, flat_hi = p_lo.reshape(take, -1), p_hi.reshape(take, -1)
        mid = 0.5 * (flat_lo[np.arange(take), dim] + flat_hi[np.arange(take), dim])
        a_hi, b_lo = flat_hi.copy(), flat_lo.copy()
        a_hi[np.arange(take), dim] = mid
        b_lo[np.arange(take), dim] = mid
        c_lo = np.concatenate([flat_lo, b_lo]).reshape(2 * take, T, d)
        c_hi = np.concatenate([a_hi, flat_hi]).reshape(2 * take, T, d)
        c_o = np.concatenate([p_o, p_o])
        try:
            c = bound_boxes(c_lo, c_hi, c_o)
        except _NoMemory as exc:
            status, reason = "open", str(exc)
            break
        n_boxes += len(c[0])
        q_lo, q_hi, q_o, q_up, q_err, q_wit, q_eff = (np.concatenate([a[rest], b]) for a, b in
                                                      zip((q_lo, q_hi, q_o, q_up, q_err, q_wit, q_eff), c))
    if status == "certified" or (status == "open" and len(q_lo) == 0):
        upper = closed_upper if np.isfinite(closed_upper) else 0.0
    else:
        upper = float(max(closed_upper, np.max(q_up))) if len(q_up) else closed_upper
    worst = None
    if status != "certified" and len(q_up):
        j = int(np.argmax(q_up))
        worst = (q_lo[j].copy(), q_hi[j].copy())
    return Certificate(status, float(upper), float(lower), witness, n_boxes, time.perf_counter() - t0,
                       reason=reason, notes=notes, worst_box=worst)


# ----------------------------------------------------------------------------- records
DEFAULT_BUDGET_SECONDS = 120.0


def certify(built, *, budget_seconds: float = DEFAULT_BUDGET_SECONDS, seed: int = 0, budget=None,
            progress=None, batch: int = BATCH):
    """:func:`~infoflow_jax.verification.verify.verify` (the estimate ``err_estimate`` and the step
    checks), then the branch-and-bound certificate; one :class:`~infoflow_jax.verification.records.Record`
    with ``certificate``, ``certified_upper``, ``boxes``, ``witness`` and ``certificate_note``.
    An estimate above the bound refutes at once (its worst input is the witness)."""
    from infoflow_jax.core.errors import check_positive
    from infoflow_jax.verification.records import expected_outcome
    from infoflow_jax.verification.verify import verify

    check_positive("budget_seconds", budget_seconds)
    t0 = time.perf_counter()
    record = verify(built, seed=seed, budget=budget)
    if not within_bound(record.err_estimate, built.bound):
        cert = Certificate("refuted", None, float(record.err_estimate), np.asarray(record.worst_input), 0, 0.0,
                           notes=["the estimators' worst input exceeds the bound"])
    else:
        cert = certify_built(built, budget_seconds=budget_seconds, progress=progress, batch=batch)
    record.certificate = cert.status
    record.certified_upper = cert.upper
    record.boxes = cert.boxes
    record.witness = None if cert.status != "refuted" or cert.witness is None else np.asarray(cert.witness).tolist()
    record.certificate_note = "; ".join([*([cert.reason] if cert.reason else []), *cert.notes]) or None
    record.seconds = time.perf_counter() - t0
    record.expected = expected_outcome(record)  # now judged by the certificate
    return record


def certify_construction(spec, *, T: int, eps: float, k: int | None = None, mutant: str | None = None,
                         budget_seconds: float = DEFAULT_BUDGET_SECONDS, seed: int = 0, budget=None,
                         progress=None, **options):
    """Build catalog entry ``spec`` at (T, ε, k) (a mutant) and :func:`certify` it."""
    kw = dict(options)
    if spec.uses_k:
        kw["k"] = k
    built = spec.build(T, eps, mutant=mutant, **kw)
    record = certify(built, budget_seconds=budget_seconds, seed=seed, budget=budget, progress=progress)
    record.name = spec.name
    return record
