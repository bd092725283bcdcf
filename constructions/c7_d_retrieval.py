"""C7 — one-layer, h-head D-retrieval (T6), h = D: one head per retrieved quantity.

Target: H(X) = G(max_s g_1(x_s), …, max_s g_D(x_s)) on the cube [0,1]^{T×d}. A single
attention step can only score with a form that is linear in the embedding, so the g_i
are linear: g_i(x) = ⟨w_i, x⟩ with w_i ≥ 0, Σ w_i ≤ 1 (:class:`~infoflow_jax.core.tasks.LinearFeature`;
values in [0,1]; default g_i = x[i], d = D = 2 — with d = 1 every such g_i is a multiple
of x and T6 degenerates to one retrieval). Proof, as the program reads:

  layer 1  head i: slot z_i ← soft-max over tokens of g_i(x) = ⟨w_i, x⟩, at CLS (β)
           |z_i − max_s g_i(x_s)| ≤ e_max(T, β)                              (L1, D heads)
  FFN 1    slot y ← Ĝ(z_1, …, z_D), L4 (Kuhn) decoder of G on [0,1]^D, n cells per axis.

Bound: C_D·L_G/n + L_G·e_max(T, β) (Ĝ evaluates the interpolant at clip(z), z is within
e_max of the true vector in ‖·‖_∞, G is L_G-Lipschitz in ‖·‖_∞). Choices: n =
⌈C_D·L_G/(ε/2)⌉, β with L_G·e_max ≤ ε/2. Parameters (n+1)^D·O(D), independent of T:
exponent D (coupled decode), not T·d. With h < D heads a single layer cannot do this
(THEORY §5, last row); see ``infoflow predict``.
"""

from __future__ import annotations



from infoflow_jax.verification.construction import Built, ConstructionSpec, check_mutant
from infoflow_jax.core.claims import OnBox, Retrieval
from infoflow_jax.core.errors import InputError, check_int_range, check_open_interval
from infoflow_jax.core.kuhn import kuhn_cells_for, kuhn_decoder, kuhn_error_constant
from infoflow_jax.core.lemmas import beta_for_soft_max, e_max
from infoflow_jax.core.slots import FFNBlock, Program, max_retrieval
from infoflow_jax.core.tasks import DRetrieval, LinearFeature
from infoflow_jax.core.kuhn import kuhn_ffn
import numpy as np

from infoflow_jax.verification.mutants import LOCALIZED_STRENGTH, random_vertex_shifted, vertex_shifted

MUTANTS = {
    "head-dropped": "the last head writes 0 instead of max_s g_D(x_s)",
    "heads-swapped": "heads 1 and 2 write into each other's slots",
    "vertex-shifted": "one L4 vertex value (the one nearest (1, …, 1)·0.8) moved by 1",
    "vertex-moved": "one random L4 vertex value moved by ±2.2×bound (localized to its simplices)",
    "corner-vertex-moved": "one random corner vertex of the L4 grid moved by ±2.2×bound (visible only near that corner)",
}


def build(T: int, eps: float, *, D: int = 2, d: int = 2, gs=None, G=None, beta: float | None = None,
          mutant: str | None = None, k=None, mutant_seed: int = 0) -> Built:
    check_int_range("T", T, 1)
    check_int_range("D", D, 1)
    check_int_range("d", d, 1)
    check_open_interval("eps", eps, 0.0, 1.0)
    mutant = check_mutant(SPEC, mutant)
    if mutant == "heads-swapped" and D < 2:
        raise InputError("D", D, "≥ 2 for the heads-swapped mutant")
    task = DRetrieval(T, d=d, D=D, gs=tuple(gs or ()), G=G)
    for g in task.gs:
        if not isinstance(g, LinearFeature):
            raise InputError("gs", g, "LinearFeature (one attention head scores linearly in the embedding)")
    L_G = float(task.G.lipschitz)
    n = kuhn_cells_for(D, L_G, eps / 2)
    beta = beta if beta is not None else beta_for_soft_max(T, eps / (2 * L_G))
    dec = kuhn_decoder(task.G, D, n)
    terms = {"decoder C_D·L_G/n": dec.error_bound(L_G), "attention L_G·e_max(T,β)": L_G * e_max(T, beta)}

    dec_term, att_term = list(terms)
    e = e_max(T, beta)
    prog = Program(d=d)
    one = prog.constant("one")
    xc = [prog.token_input(f"x{c}", coordinate=c) for c in range(d)]
    slots = [f"z{i + 1}" for i in range(D)]
    if mutant == "heads-swapped":
        slots[0], slots[1] = slots[1], slots[0]
    l1 = prog.layer()
    for i, g in enumerate(task.gs):
        key = xc[0] * 0.0
        for c, w in enumerate(g.w):
            if w:
                key = key + w * xc[c]
        value = key * 0.0 if (mutant == "head-dropped" and i == D - 1) else key
        # the claim is the proof's: head i writes max_s g_i(x_s) into z_{i+1}; G reads the z's in ‖·‖_∞
        l1.attend(max_retrieval(query=beta * one, key=key, value=value, into=slots[i],
                                note=f"{slots[i]} ← soft-max over tokens of g_{i + 1}(x) = {key} (β={beta:.4g})",
                                claim=Retrieval("L1", key=key, values=((key, f"z{i + 1}"),), tolerance=e,
                                                term=att_term, weight=L_G, combine="max",
                                                statement=f"L1: |z{i + 1} − max_s g_{i + 1}(x_s)| ≤ e_max(T, β)")))
    net = kuhn_ffn(dec)
    if mutant == "vertex-shifted":
        net = vertex_shifted(dec, 1.0, int(sum(round(0.8 * n) * (n + 1) ** i for i in range(D))))
    if mutant in ("vertex-moved", "corner-vertex-moved"):  # z_i = max_s g_i(x_s) reach every vertex of [0,1]^D
        net = random_vertex_shifted(dec, LOCALIZED_STRENGTH * sum(terms.values()), np.random.default_rng(mutant_seed),
                                    corner=mutant == "corner-vertex-moved")
    zs = tuple(prog[f"z{i + 1}"] for i in range(D))
    l1.ffn(FFNBlock(zs, net, ("y",), note=f"y ← Ĝ(z_1..z_{D}), L4 Kuhn decoder on [0,1]^{D}, n={n}",
                    claim=OnBox(task.G, L_G, n=n, box=(0.0, 1.0), tolerance=dec.error_bound(L_G), term=dec_term,
                                inputs=zs, statement=f"|Ĝ(z) − G(z)| ≤ C_D·L_G/n on [0,1]^{D} (z: averages of "
                                                     "g_i ∈ [0,1]), affine per Kuhn simplex")))
    prog.readout(prog["y"])
    return Built(name="C7", task=task, compiled=prog.compile(), eps=eps, bound=sum(terms.values()),
                 bound_terms=terms, betas=[beta], choices={"n": n, "C_D": kuhn_error_constant(D), "h": D, "d": d},
                 mutant=mutant)


SPEC = ConstructionSpec(
    name="C7", task_id="T6", summary="one-layer D-head D-retrieval (T6, linear g_i), O(ε^{-D}) params at any T",
    build=build, mutants=MUTANTS, layers=lambda k: 1,
    default_T=(4, 16), default_eps=(0.1,), expected_exponent=lambda D: D,
)
