"""C5 — the one-layer memorizer: any target on [0,1]^{T×d} (here d = 1; T1, T2, T3 or T7 with k = 2).

One layer, one head, one-hot product embedding (token s writes x_s into its own
slot xs_s, THEORY's A·φ(x_s) + p(s) with φ(x_s, s) = x_s ⊗ e_s; see
``TFConfig.position_input``). Proof, as the program reads:

  layer 1  slots z_1..z_T ← uniform attention at CLS (β = 0: all scores 0) with values T·xs_j:
           z_j = Σ_s (1/T)·T·[s = j]·x_s = x_j                        (exact: CLS holds X)
  FFN 1    slot y ← Ĥ(z_1, …, z_T), L4 (Kuhn) decoder of H on [0,1]^T, n cells per axis.

Bound: C_T·L_∞/n (kuhn_error_constant C_T < 3/4, the exact worst case of L4; THEORY's
L_∞/n is the weaker form), with n = ⌈C_T·L_∞/ε⌉ and L_∞ the task's sup-norm Lipschitz
constant. Params (n+1)^T·O(T): exponent b = T·d — the one-layer upper bound whose form
matches the lower bound. Instantiated only where it fits (T ≤ 4 and (n+1)^T ≲ 10^6);
beyond, :func:`formula_params` gives the count, reported as a formula, never as measured.
"""

from __future__ import annotations

import math

from infoflow_jax.verification.construction import Built, ConstructionSpec, check_mutant
from infoflow_jax.core.claims import OnBox, Retrieval
from infoflow_jax.core.errors import InputError, check_choice, check_int_range, check_open_interval
from infoflow_jax.core.functions import DEFAULT_F, LipschitzFn
from infoflow_jax.core.kuhn import kuhn_cells_for, kuhn_decoder, kuhn_error_constant, kuhn_param_formula
from infoflow_jax.core.slots import FFNBlock, Head, Program
from infoflow_jax.core.tasks import KthLargest, MaxRetrieval, TopKMean, TwoHop
from infoflow_jax.core.kuhn import kuhn_ffn
import numpy as np

from infoflow_jax.verification.mutants import LOCALIZED_STRENGTH, random_vertex_shifted, vertex_shifted

MAX_VERTICES = 2_000_000  # refuse to instantiate beyond this; use formula_params

MUTANTS = {
    "beta-positive": "CLS scores β·x_s (β = 50) instead of uniform attention",
    "vertex-shifted": "one L4 vertex value (the one nearest (1/2, …, 1/2)) moved by 1",
    "position-dropped": "the value of the last position is left out (CLS sees x_T = 0)",
    "vertex-moved": "one random L4 vertex value moved by ±2.2×bound (localized to its simplices)",
    "corner-vertex-moved": "one random corner vertex of the L4 grid moved by ±2.2×bound (visible only near that corner)",
}
TARGETS = ("max", "two-hop", "second", "top2-mean")


def make_task(T: int, target: str, F: LipschitzFn):
    check_choice("target", target, TARGETS)
    if target == "max":
        return MaxRetrieval(T, F)
    if target == "two-hop":
        return TwoHop(T, F)
    if target == "top2-mean":  # T7 with k = 2 on the cube: F((x_(1) + x_(2))/2), L_∞ = L_F
        return TopKMean(T, k=min(2, T), gaps="none", F=F)
    return KthLargest(T, k=min(2, T), gamma=None, F=F)


def cells_for(T: int, L: float, eps: float) -> int:
    """n = ⌈C_T·L_∞/ε⌉: the least n with C_T·L_∞/n ≤ ε."""
    return kuhn_cells_for(T, L, eps, max_vertices=math.inf)  # counted, not built: no vertex cap here


def formula_params(T: int, eps: float, *, target: str = "max", F: LipschitzFn = DEFAULT_F) -> int:
    """params_theorem of C5 without building it: the L4 decoder's dense count
    (kuhn_param_formula; its few structural zeros make the built count ≤ this) plus the
    embedding (T entries of A_s, one constant) and the readout (1)."""
    n = cells_for(T, make_task(T, target, F).lipschitz, eps)
    return kuhn_param_formula(T, n) + T + 2


def formula_counts(T: int, eps: float, *, target: str = "max", F: LipschitzFn = DEFAULT_F) -> dict:
    """``ConstructionSpec.formula``: the counts of C5 at (T, ε) without building it."""
    n = cells_for(T, make_task(T, target, F).lipschitz, eps)
    return {"params_theorem": formula_params(T, eps, target=target, F=F), "choices": {"n": n},
            "note": "formula (kuhn_param_formula + embedding + readout), not built"}


def build(T: int, eps: float, *, target: str = "max", F: LipschitzFn = DEFAULT_F, beta: float | None = None,
          mutant: str | None = None, k=None, mutant_seed: int = 0) -> Built:
    check_int_range("T", T, 1)
    check_open_interval("eps", eps, 0.0, 1.0)
    mutant = check_mutant(SPEC, mutant)
    task = make_task(T, target, F)
    L = task.lipschitz
    n = cells_for(T, L, eps)
    if (n + 1) ** T > MAX_VERTICES:
        raise InputError("eps", eps, f"large enough that (n+1)^T ≤ {MAX_VERTICES} at T = {T} "
                         f"(n = {n}); use formula_params beyond")
    H = lambda V: task.target(np.asarray(V)[..., None])  # NumPy: the vertex table compiles nothing
    dec = kuhn_decoder(H, T, n)
    terms = {"decoder C_T·L_∞/n": dec.error_bound(L), "uniform attention (exact)": 0.0}

    prog = Program(max_T=T)
    one = prog.constant("one")
    xs = prog.position_inputs_of("xs")  # xs_j = x_j at token j, 0 elsewhere
    values = tuple((T * xs[j], f"z{j + 1}") for j in range(T))
    if mutant == "position-dropped":
        values = values[:-1] + ((0.0 * xs[-1], f"z{T}"),)
    score = ()
    if mutant == "beta-positive":
        total = xs[0]
        for f in xs[1:]:
            total = total + f
        score = ((50.0 * one, total),)
    dec_term, att_term = list(terms)
    proof_values = tuple((T * xs[j], f"z{j + 1}") for j in range(T))  # the claim's, whatever a mutant compiles
    l1 = prog.layer()
    l1.attend(Head(score=score, values=values, note="z_j ← uniform average of T·x_s⊗e_s = x_j at CLS (β = 0)",
                   claim=Retrieval("uniform", key=None, values=proof_values, tolerance=0.0, term=att_term,
                                   key_range=float(T), statement="uniform attention: z_j = (1/T)Σ_s T·xs_j = x_j, exactly")))
    net = kuhn_ffn(dec)
    if mutant == "vertex-shifted":
        net = vertex_shifted(dec, 1.0, int(sum((n // 2) * (n + 1) ** i for i in range(T))))
    if mutant in ("vertex-moved", "corner-vertex-moved"):  # z = x: every vertex of [0,1]^T is reached
        net = random_vertex_shifted(dec, LOCALIZED_STRENGTH * sum(terms.values()), np.random.default_rng(mutant_seed),
                                    corner=mutant == "corner-vertex-moved")
    zs = tuple(prog[f"z{j + 1}"] for j in range(T))
    l1.ffn(FFNBlock(zs, net, ("y",), note=f"y ← Ĥ(z_1..z_{T}), L4 Kuhn decoder on [0,1]^{T}, n={n}",
                    claim=OnBox(H, L, n=n, box=(0.0, 1.0), tolerance=dec.error_bound(L), term=dec_term, inputs=zs,
                                statement=f"|Ĥ(z) − H(z)| ≤ C_T·L_∞/n on [0,1]^{T}, affine per Kuhn simplex")))
    prog.readout(prog["y"])
    return Built(name="C5", task=task, compiled=prog.compile(), eps=eps, bound=sum(terms.values()),
                 bound_terms=terms, betas=[0.0], choices={"n": n, "C_T": kuhn_error_constant(T), "target": target,
                                                          "split": dec.split}, mutant=mutant)


SPEC = ConstructionSpec(
    name="C5", task_id="T1", summary="one-layer memorizer (uniform attention + L4 decoder), O(ε^{-T}) params",
    build=build, mutants=MUTANTS, layers=lambda k: 1,
    default_T=(1, 2, 3), default_eps=(0.3,), expected_exponent=lambda T: T,  # T·d with d = 1
    formula=formula_counts,
)
