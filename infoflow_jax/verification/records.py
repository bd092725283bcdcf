"""The record type: one row of a verification, and the verdicts that judge it.

Every verification — a construction at (T, ε, k), a lemma check at (T, β), a row that
could not be verified — is one :class:`Record`; ``infoflow verify --json/--out``, sweeps
and the separation sweep write ``record.to_json()`` as one JSON line. The documented key
list :data:`RECORD_KEYS` is generated from the dataclass fields; every record carries
``schema`` (:data:`SCHEMA`), bumped whenever a key changes meaning or goes away.

Verdicts (THEORY §6):

* construction: ``err_estimate ≤ bound ≤ ε`` (the first up to float64 rounding,
  :func:`~infoflow_jax.core.precision.within_bound`, since some bounds are attained exactly);
* lemma check: ``0.99·attained ≤ err_estimate ≤ bound`` (the search found the known worst
  case, and nothing exceeds the lemma);
* a row is *as expected* when a real row passes and a mutant row fails; with proof-step
  checks (``step_certified`` not None) a real row must also be step-certified and
  proof-checked (``proof_checked``: steps, their composition, the ideal program), and a mutant
  row is caught when it fails the global check, a step or the proof check; where the
  falsifier was skipped (``err_estimate`` None: it does not fit in memory at this T) the
  proof check alone decides;
* a certify row (``certificate`` not None): the certificate replaces the estimate — a real
  row is as expected when it is "certified" (and step-certified), a mutant row when it is not
  certified or fails a step (a certificate never calls a true bound false: a mutant that is
  not broken at a configuration is certified there, and only its step can catch it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from infoflow_jax.core.precision import within_bound

SCHEMA = 3  # 1: the untyped dicts of the first release (no `schema`, `kind`); 3: err_estimate None = falsifier skipped
KINDS = ("construction", "lemma", "failure")


@dataclass
class Record:
    """One verification row. Fields that do not apply to a kind are ``None``."""

    kind: str  # "construction" | "lemma" | "failure" (could not be verified; see `error`)
    name: str  # catalog name (C1, L1-softmax-max, a user's construction)
    task: str | None  # task id (T1 …), None for lemma checks
    T: int
    eps: float | None = None  # target precision ε (None for lemma checks)
    d: int | None = None
    L: int | None = None  # layers
    h: int | None = None  # heads per layer (max over layers)
    k: int | None = None
    r: int | None = None
    D: int | None = None
    gamma: float | None = None
    beta: list | None = None  # inverse temperature per layer
    params_total: int | None = None  # dense entries
    params_nonzero: int | None = None
    params_theorem: int | None = None  # nonzero entries of embedding + FFNs + readout
    bound: float | None = None  # the claimed sup-norm bound (a lemma's bound for lemma checks)
    bound_terms: dict | None = None  # its named terms
    choices: dict | None = None  # what the construction chose (N, γ, K, …)
    attained: float | None = None  # lemma checks: the known attained value
    err_estimate: float | None = None  # max over estimators of |Ĥ − H| (a lower estimate of the sup)
    estimator: str | None = None  # which estimator attained it
    estimates: dict | None = None  # every estimator's value
    passed: bool = False
    steps: list | None = None  # proof-step checks: [{name, note, claim, certified_error, tolerance, term, ok, …}]
    step_certified: bool | None = None  # every claimed step certified (None: the construction claims none)
    proof_checked: bool | None = None  # steps ∧ derived_bound ≤ bound ≤ ε ∧ ideal program ≡ target (None: no claims)
    derived_bound: float | None = None  # sup |Ĥ − H*| carried through the program from the steps (not declared)
    proof: dict | None = None  # what the verdict rests on: {steps, composition, ideal, falsifier}: "ok" / why not
    worst_input: list | None = None  # the input (T × d) attaining the estimate
    mutant: str | None = None  # None for the real construction
    expected: bool | None = None  # real row passed, or mutant row failed
    error: str | None = None  # why the row could not be verified (kind "failure")
    measured: bool = True  # measured, not a formula
    dtype: str = "float64"
    search_dtype: str | None = None  # the dtype the estimators searched in (float32: candidates judged in float64)
    search_note: str | None = None  # why a float32 search was not used (the row searched in float64)
    path: str | None = None  # which forward produced the estimate: "dense" or "fast" (exact fast path)
    seed: int | None = None
    seconds: float | None = None  # wall time of the row
    config_hash: str | None = None  # sweeps: identity of the configuration (resume key)
    bucket: str | None = None  # sweeps: the compiled program's bucket
    compile_seconds: float | None = None  # sweeps: that bucket's trace + compile time
    certificate: str | None = None  # `infoflow certify`: "certified" | "refuted" | "open" (None: not certified)
    certified_upper: float | None = None  # a sound upper bound on sup |Ĥ − H| (branch-and-bound)
    boxes: int | None = None  # input boxes the branch-and-bound bounded
    witness: list | None = None  # refuted: the input (T × d) whose error exceeds the bound
    certificate_note: str | None = None  # why a certificate is open; the reductions used
    schema: int = SCHEMA

    def __post_init__(self):
        self.expected = expected_outcome(self)

    def to_json(self) -> dict:
        """A JSON-ready dict (numpy scalars and arrays become Python numbers and lists)."""
        self.expected = expected_outcome(self)
        return {k: _plain(v) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict) -> "Record":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known and k != "expected"})

    # read access by key, as for the dicts records used to be (notebooks, old scripts)
    def __getitem__(self, key: str):
        return getattr(self, key)

    def get(self, key: str, default=None):
        return getattr(self, key, default)


RECORD_KEYS = tuple(f.name for f in fields(Record))


def _plain(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


# ----------------------------------------------------------------------------- verdicts
def construction_passes(err_estimate: float, bound: float, eps: float) -> bool:
    """err_estimate ≤ bound ≤ ε (the first up to float64 rounding)."""
    return bool(np.isfinite(err_estimate) and within_bound(err_estimate, bound) and bound <= eps)


def lemma_passes(err_estimate: float, bound: float, attained: float) -> bool:
    """0.99·attained ≤ err_estimate ≤ bound (the second up to float64 rounding)."""
    return bool(0.99 * attained <= err_estimate and within_bound(err_estimate, bound))


def expected_outcome(record) -> bool:
    """A row is as expected when a real construction passes (and, where it claims proof steps,
    is step-certified) and a mutant fails (the global check, or a step)."""
    steps_failed = record.get("step_certified") is False
    certificate = record.get("certificate")
    if certificate is not None:  # a certify row: the certificate replaces the estimate's pass/fail
        if record["mutant"] is None:
            return certificate == "certified" and not steps_failed
        # a mutant whose global error stays within the bound at this configuration (e.g. C3
        # beta-small at T = 2) is rightly certified; its defect is then caught by its proof step
        return certificate != "certified" or steps_failed
    proof_failed = record.get("proof_checked") is False
    if record.get("err_estimate") is None and record.get("kind") == "construction":  # the falsifier was skipped
        if record["mutant"] is None:
            return record.get("proof_checked") is True
        return proof_failed or steps_failed
    if record["mutant"] is None:
        return bool(record["passed"] and not steps_failed and not proof_failed)
    return bool(not record["passed"] or steps_failed or proof_failed)


# ----------------------------------------------------------------------------- constructors
def construction_record(built, est, *, T: int, eps: float, seed: int, dtype: str = "float64",
                        name: str | None = None, path: str = "dense", search_note: str | None = None) -> Record:
    """The record of one built configuration and its :class:`~infoflow_jax.verification.estimators.Estimate`
    (``est`` None: the falsifier did not run; ``passed`` is then decided by the proof check)."""
    cfg = built.compiled.model.cfg
    tp = built.task.hyperparams()
    return Record(
        kind="construction", name=name or built.name, task=built.task.id, T=T, eps=eps, d=built.task.d,
        L=cfg.L, h=max(l.heads for l in cfg.layers), k=tp.get("k"), r=tp.get("r"), D=tp.get("D"),
        gamma=tp.get("gamma"), beta=[None if b is None else float(b) for b in built.betas],
        **built.param_count.as_record(), bound=float(built.bound),
        bound_terms={k_: float(v) for k_, v in built.bound_terms.items()}, choices=dict(built.choices),
        err_estimate=None if est is None else float(est.value), estimator=None if est is None else est.estimator,
        estimates=None if est is None else dict(est.per_estimator),
        passed=False if est is None else construction_passes(est.value, built.bound, eps),
        worst_input=None if est is None else np.asarray(est.worst_input).tolist(),
        mutant=built.mutant, dtype=dtype, path=path, seed=seed,
        search_dtype=None if est is None else getattr(est, "search_dtype", "float64"), search_note=search_note,
    )


def lemma_record(name: str, *, T: int, beta: float, bound: float, attained: float, est, mutant: str | None,
                 seed: int, gamma: float | None = None, dtype: str = "float64") -> Record:
    return Record(
        kind="lemma", name=name, task=None, T=T, d=1, gamma=gamma, beta=[float(beta)], bound=float(bound),
        attained=float(attained), err_estimate=float(est.value), estimator=est.estimator,
        estimates=dict(est.per_estimator), passed=lemma_passes(est.value, bound, attained),
        worst_input=np.asarray(est.worst_input).tolist(), mutant=mutant, dtype=dtype, path="dense", seed=seed,
        search_dtype=getattr(est, "search_dtype", "float64"),
    )


def failure_record(name: str, *, task: str | None, T: int, error: str, eps: float | None = None,
                   k: int | None = None, beta: float | None = None, mutant: str | None = None,
                   seed: int | None = None, seconds: float | None = None, dtype: str = "float64") -> Record:
    """A row that could not be verified: it fails, and ``error`` says why."""
    return Record(kind="failure", name=name, task=task, T=T, eps=eps, k=k,
                  beta=None if beta is None else [float(beta)], passed=False, mutant=mutant, error=error,
                  measured=False, dtype=dtype, seed=seed, seconds=seconds)
