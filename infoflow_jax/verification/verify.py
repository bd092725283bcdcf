"""Verify one configuration: estimate the sup error of a built construction and judge it.

    verify(built) → Record        pass iff  err_estimate ≤ bound ≤ ε   (THEORY §6)

``verify`` is the single-configuration path of the one estimator engine
(:mod:`infoflow_jax.verification.estimators`); a sweep runs the same program vmapped over
a batch. A mutant keeps the original claim (its bound) and is expected to *fail*.
Verification runs in float64.
"""

from __future__ import annotations

import time


from infoflow_jax.core.errors import InputError
from infoflow_jax.core.fast_model import fast_ffn_widths, fast_pays, fast_plan, fast_query_rows, shared_shape
from infoflow_jax.core.phases import phase
from infoflow_jax.core.precision import F32_NOISE_FRACTION, require_float64, search_dtype_for
from infoflow_jax.core.samplers import samplers_for
from infoflow_jax.verification.memory import (ASCENT_FACTOR, ITEM, bytes_per_input, check_fits, chunk_for,
                                              fixed_input_bytes, human_bytes, memory_budget)
from infoflow_jax.verification.construction import Built, ConstructionSpec, error_function, fast_error_function
from infoflow_jax.verification.estimators import DEFAULT_BUDGET, DEFAULT_FINEST_SCALE, Budget, estimate_sup_error
from infoflow_jax.verification.probes import MAX_PROBE_INPUTS, finest_scale
from infoflow_jax.verification.proof import ideal_check_bytes, proof_check
from infoflow_jax.verification.records import Record, construction_record, expected_outcome
from infoflow_jax.verification.steps import check_steps


def verify(built: Built, *, seed: int = 0, budget: Budget | None = None, memory: int | None = None,
           fast: bool | None = None) -> Record:
    """Estimate sup_{X∈Ω} |Ĥ(X) − H(X)| of ``built`` and judge it against its claim.

    The estimate is the max over the exhaustive grid (when 3 points per axis fit), every
    sampler of the task's domain, the construction's probes (``built.probes``, which include the structural
    probes read off its compiled program (cube corners and faces, positions, every FFN block's
    knots, Kuhn vertices: :mod:`~infoflow_jax.verification.probes`)), multi-start projected
    gradient ascent and a multi-scale polish down to the construction's finest scale
    (:mod:`~infoflow_jax.verification.estimators`).
    ``budget`` defaults to :data:`~infoflow_jax.verification.estimators.DEFAULT_BUDGET`,
    exactly what ``infoflow verify`` uses. The record passes iff
    ``err_estimate ≤ built.bound ≤ built.eps``; a mutant (``built.mutant``) is expected to fail.
    The record also carries the proof-step checks (``steps``, ``step_certified``;
    :mod:`~infoflow_jax.verification.steps`), judged separately from ``passed``.
    ``memory`` (bytes; default: a safe fraction of what is free) sizes the vectorised chunks;
    a configuration that cannot fit is an InputError naming T and ε.

    ``fast``: evaluate Ĥ on the exact fast path (:mod:`infoflow_jax.core.fast_model`: every
    one-input FFN group through its sorted breakpoints, and every layer whose token queries
    are proven shared on two query rows, planned from the compiled weights) — True, False (the
    dense reference), or None (default): fast iff :func:`~infoflow_jax.core.fast_model.fast_pays`
    (a one-input group of at least ``MIN_FAST_UNITS`` units, or a shared-query layer at
    T ≥ ``MIN_SHARED_T``). The record's ``path`` says which ran.

    ``budget.search_dtype`` (None: float32 on a TPU, float64 elsewhere): with float32 the estimators
    search in float32 and every estimator's best inputs are judged in float64
    (:func:`~infoflow_jax.verification.estimators.estimate_sup_error`). Below ε =
    :data:`~infoflow_jax.core.precision.F32_SEARCH_MIN_EPS`, or when a re-evaluated candidate's
    float32 error is off its float64 error by more than ``F32_NOISE_FRACTION``·ε (the float32
    landscape is rounding noise at the scale of the claim), the search runs in float64 instead:
    one line on stderr, and the record's ``search_note`` says why. ``search_dtype`` says which ran.
    """
    require_float64("verification")
    budget = DEFAULT_BUDGET if budget is None else budget
    t0 = time.perf_counter()
    T, d = built.task.T, built.task.d
    with phase("plan"):
        plan = memory_budget(memory)
        graphdef, state = built.split()
        fast_params = None if fast is False else fast_plan(graphdef, state)
        path = "fast" if fast or (fast is None and fast_pays(fast_params, T)) else "dense"
        if path == "fast":
            # one pytree shape for every ε and mutant of this structure (exactly the same function):
            # they share one compiled program (evaluate_program is cached, jit keys on shapes)
            err_fn, params = fast_error_function(built.task), shared_shape(fast_params)
            per = bytes_per_input(built.compiled.model.cfg, T, d, fast_ffn_widths(fast_params),
                                      fast_query_rows(fast_params, T))
        else:
            err_fn, params = error_function(graphdef, built.task), state
            per = bytes_per_input(built.compiled.model.cfg, T, d)
        fixed = fixed_input_bytes(T, d, budget.samples, len(samplers_for(built.task.domain)) + 1) + \
            ITEM * T * d * MAX_PROBE_INPUTS  # the structural probes, counted before they are built
    least = ideal_check_bytes(T, d, len(built.compiled.slots))  # what any row needs: the proof check's few inputs
    if least > plan:
        raise InputError("T", T, f"small enough to fit in memory: at T = {T} the proof check's sampled inputs "
                         f"need {human_bytes(least)} and {human_bytes(plan)} may be used (--memory to change)")
    with phase("steps"):
        steps, step_certified = check_steps(built)  # the proof's steps against the compiled weights
    try:
        check_fits(T=T, eps=built.eps, per_input=per, fixed=fixed, budget=plan)
        skipped = None
    except InputError as exc:
        if step_certified is None:  # nothing else could decide the row
            raise
        skipped = f"skipped: {exc}"  # the proof check below decides, without a forward pass
    est, probes, note = None, None, None
    if not skipped:
        with phase("probes"):
            probes = dict(built.probes)  # the construction's own and the structural ones (computed on first read)
        search, note = search_dtype_for(budget.search_dtype, built.eps)

        def search_in(dtype):
            return estimate_sup_error(err_fn, params, domain=built.task.domain,
                                      T=T, d=d, seed=seed, budget=budget, extra_inputs=probes,
                                      # the sweep's polish stops at DEFAULT_FINEST_SCALE too; finer only when needed
                                      finest_scale=min(finest_scale(built), DEFAULT_FINEST_SCALE),
                                      chunk=chunk_for(per, plan, fixed, budget.chunk),
                                      ascent_chunk=chunk_for(per, plan, fixed, budget.starts, ASCENT_FACTOR),
                                      search_dtype=dtype)
        est = search_in(search)
        if search == "float32" and est.search_noise > F32_NOISE_FRACTION * built.eps:
            note = (f"the float32 search's candidates were off their float64 errors by up to {est.search_noise:.3g} "
                    f"> {F32_NOISE_FRACTION:g}·eps")
            est = search_in("float64")
        if note is not None and (budget.search_dtype or "float64") == "float32":
            import sys

            print(f"infoflow: {built.name} T={T} eps={built.eps:g}{' ' + built.mutant if built.mutant else ''}: "
                  f"searching in float64, not float32: {note}", file=sys.stderr, flush=True)
    record = construction_record(built, est, T=built.task.T, eps=built.eps, seed=seed, path=path,
                                 search_note=note)
    judge_proof(record, built, steps, step_certified, seed=seed, probes=probes, skipped=skipped)
    record.seconds = time.perf_counter() - t0
    return record


def judge_proof(record: Record, built: Built, steps: list[dict], step_certified: bool | None, *, seed: int,
                probes: dict | None = None, skipped: str | None = None) -> Record:
    """Complete ``record`` (the falsifier's, or None's when ``skipped`` says why it did not run) with the
    proof: the step checks (``steps``, ``step_certified`` from :func:`check_steps`), the proof check
    (:func:`~infoflow_jax.verification.proof.proof_check`, the ideal program also on ``probes``), and
    the expected outcome judged again on all of them. ``verify`` and a sweep's rows both end here."""
    record.steps, record.step_certified = steps, step_certified
    with phase("proof"):
        proof = proof_check(built, steps, seed=seed, structural=probes)
    record.proof_checked, record.derived_bound = proof.proof_checked, proof.derived_bound
    if proof.parts:
        falsifier = skipped or ("ok" if record.passed else
                                f"failed: estimate {record.err_estimate:.6g} > bound {built.bound:.6g}")
        record.proof = {**proof.parts, "falsifier": falsifier}
    if skipped:
        record.passed = proof.proof_checked is True  # the verdict rests on the proof alone
    record.expected = expected_outcome(record)  # judged again now that the steps and the proof are known
    return record


def verify_construction(spec: ConstructionSpec, *, T: int, eps: float, k: int | None = None,
                        mutant: str | None = None, seed: int = 0, budget: Budget | None = None,
                        beta: float | None = None, memory: int | None = None, fast: bool | None = None,
                        **options) -> Record:
    """Build catalog entry ``spec`` at (T, ε, k) — a mutant, a user's β — and :func:`verify` it."""
    t0 = time.perf_counter()
    kw = dict(options)
    if spec.uses_k:
        kw["k"] = k
    try:
        with phase("build"):
            built = spec.build(T, eps, mutant=mutant, beta=beta, **kw)
    except MemoryError:
        raise InputError("T", T, f"small enough that {spec.name}'s weights fit in memory (building it at "
                         f"T = {T}, eps = {eps:g} ran out of memory)") from None
    if mutant is None and beta is None and not built.bound <= eps:
        # the construction chose its own β, N: its claim must be ≤ ε by construction
        raise AssertionError(f"{spec.name}: claimed bound {built.bound:.3e} exceeds eps = {eps:.3e}")
    record = verify(built, seed=seed, budget=budget, memory=memory, fast=fast)
    record.name = spec.name
    record.seconds = time.perf_counter() - t0
    return record


def verify_grid(build, *, T, eps, k=None, seed: int = 0, budget: Budget | None = None, progress: bool = False,
                **options) -> list[Record]:
    """:func:`verify` over the grid T × k × ε of a construction; one record per point.

    ``build`` is a :class:`ConstructionSpec` (a catalog entry) or any callable
    ``build(T, eps, **kw) -> Built``; ``k`` (a list) is passed as ``k=`` when given. Points
    are built and verified one after another (builds of one shape share one compiled
    program). Fit the parameter exponent with :func:`infoflow_jax.core.rates.fit_exponent`
    on ``[1/r.eps for r in records]`` and ``[r.params_theorem for r in records]``.
    """
    from infoflow_jax.core.errors import check_int_range, check_open_interval

    make = build.build if isinstance(build, ConstructionSpec) else build
    Ts, epss = _as_list(T), _as_list(eps)
    ks = [None] if k is None else _as_list(k)
    for t in Ts:
        check_int_range("T", t, 1)
    for e in epss:
        check_open_interval("eps", e, 0.0, 1.0)
    records = []
    points = [(t, kk, e) for t in Ts for kk in ks for e in epss]
    for i, (t, kk, e) in enumerate(points):
        kw = dict(options) if kk is None else {**options, "k": kk}
        records.append(verify(make(t, e, **kw), seed=seed, budget=budget))
        if progress:
            r = records[-1]
            print(f"[{i + 1}/{len(points)}] T={t} k={kk} eps={e:g}: estimate {r.err_estimate:.3e}, bound {r.bound:.3e}, "
                  f"{'PASS' if r.passed else 'FAIL'}", flush=True)
    return records


def _as_list(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]
