"""A proof, checked end to end from the weights at the row's T: steps, their composition, the ideal program.

    proof_check(built, steps) → ProofCheck        proof_checked ⇔ steps ∧ derived ≤ bound ≤ ε ∧ ideal ≡ H

* **steps** (:mod:`~infoflow_jax.verification.steps`): every block against its claim, from the
  compiled weights, at the actual β and the row's T;
* **composition** (:mod:`~infoflow_jax.verification.composition`): the steps' errors carried
  through the program to a *derived* bound on sup |Ĥ − H*| — the declared weights and terms
  are not used — which must be ≤ the claimed bound ≤ ε;
* **ideal program** (:mod:`~infoflow_jax.verification.ideal`): H* ≡ H on the domain's samplers
  and cube corners and faces (and the structural probes when the falsifier built them), and
  the hypotheses the composition left to the samples.

Then sup |Ĥ − H| ≤ derived bound, resting on the sound parts (steps, composition) and on
what the ideal program's check samples (H* ≡ H, the sampled hypotheses). None of it runs the
network: the cost is O(samples · T · E), so it reaches T = 10⁶ where no forward pass fits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from infoflow_jax.core.precision import within_bound
from infoflow_jax.verification.composition import compose
from infoflow_jax.verification.ideal import check_ideal
from infoflow_jax.verification.memory import ITEM
from infoflow_jax.verification.probes import cube_probes

IDEAL_FLOATS = 2 ** 22  # inputs' floats (B·T·d) per sampler for the ideal program's check (32 MB; 4 inputs at T = 10⁶)
IDEAL_SAMPLES = 256  # draws per sampler where they fit
MIN_IDEAL_SAMPLES = 4  # draws per sampler at any T


@dataclass
class ProofCheck:
    """``proof_checked`` (None: the construction claims no steps), the derived bound, and per part
    "ok", or what failed (``parts``: steps, composition, ideal)."""

    proof_checked: bool | None
    derived_bound: float | None
    parts: dict


def _samples(T: int, d: int) -> int:
    return int(max(MIN_IDEAL_SAMPLES, min(IDEAL_SAMPLES, IDEAL_FLOATS // (T * d))))


def ideal_check_bytes(T: int, d: int, n_slots: int) -> int:
    """Bytes the ideal program's check needs at the least: one sampler's batch and the corner probes
    (MIN_IDEAL_SAMPLES inputs each, a few copies while drawn and retracted) and the slot values of one
    input ((T + 1)·(slots + 4)); larger batches are chunked (CHUNK_FLOATS slot values at once)."""
    return ITEM * (4 * 2 * MIN_IDEAL_SAMPLES * T * d + (T + 1) * (n_slots + 4))


def proof_check(built, steps: list[dict], *, seed: int = 0, structural: dict | None = None) -> ProofCheck:
    """Check ``built``'s proof (module docstring); ``steps`` from :func:`check_steps`, ``structural``:
    extra inputs for the ideal program (name → (B, T, d)), e.g. the structural probes."""
    if not steps:
        return ProofCheck(None, None, {})
    T, d = built.task.T, built.task.d
    failing = [s["name"] for s in steps if not s["ok"]]
    parts = {"steps": "ok" if not failing else f"failed: {', '.join(failing[:3])}"}
    comp = compose(built, steps)
    if comp.problems:
        parts["composition"] = f"failed: {comp.problems[0]}"
    elif not within_bound(comp.derived_bound, built.bound):
        parts["composition"] = f"failed: derived bound {comp.derived_bound:.6g} > claimed bound {built.bound:.6g}"
    elif not built.bound <= built.eps:
        parts["composition"] = f"failed: claimed bound {built.bound:.6g} > eps = {built.eps:g}"
    else:
        parts["composition"] = "ok"
    n = _samples(T, d)
    extra = {"probe:corners": cube_probes(T, d, np.random.default_rng(seed + 7), n_probes=n)}
    extra.update(structural or {})
    ideal = check_ideal(built, comp, seed=seed, n=n, structural=extra)
    parts["ideal"] = "ok" if ideal["ok"] else f"failed: {ideal['problem']}"
    parts["ideal_inputs"] = ideal["inputs"]
    ok = all(parts[p] == "ok" for p in ("steps", "composition", "ideal"))
    derived = comp.derived_bound if np.isfinite(comp.derived_bound) else None
    return ProofCheck(ok, derived, parts)
