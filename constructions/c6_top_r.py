"""C6 — r-layer top-r retriever with a decoupled (T5) or coupled (T4) decode, on Ω_{γ,r}.

C3's exclusion layers (:mod:`constructions.exclusion`), each leaving its retrieved
maximum in its own CLS slot, so that after r layers CLS holds (x_(1), …, x_(r)).
Proof, as the program reads (K = 2, score range 3):

  layers l = 1..r−1   slot m_l ← soft-max of (x − K·f_{l−1}), every position (β_ex)      (L2)
                      slot f_l ← clip((x − m_l + γ/2)/(γ/2), 0, 1), exact flags
                      at CLS: |m_l − x_(l)| ≤ η := 3(T−1)e^{−β_ex γ}, with η ≤ γ/4
  layer r             slot z ← soft-max of (x − K·f_{r−1}) at CLS (β)                     (L1)
                      |z − x_(r)| ≤ e_max(T, β) (flagged tokens sit ≥ 1 below: lemmas.e_max_holds_beyond_unit_range)
                      decoupled: slots y_j ← Ĝ_j(m_j) (m_r := z), L3 decoders with N_j cells; y = Σ_j y_j
                      coupled:   slot  y  ← Ĝ(m_1, …, m_{r−1}, z), L4 (Kuhn) decoder, n cells per axis

Both decoders evaluate their interpolant at the clipped input and x_(j) ∈ [0,1], so
with δ = max(η, e_max(T, β)) (sup-norm distance of the retrieved vector to the true one):

  decoupled  |Σ_j Ĝ_j(m_j) − Σ_j G_j(x_(j))| ≤ Σ_j L_j/(2N_j) + (Σ_j L_j)·δ
  coupled    |Ĝ(m) − G(x_(1..r))|            ≤ C_r·L_G/n + L_G·δ       (C_r: kuhn_error_constant, < 3/4)

Choices: the decode gets 3ε/4 (N_j = ⌈L_j r/(2·3ε/4)⌉, n = ⌈C_r L_G/(3ε/4)⌉), the
retrievals ε/4 (L·δ ≤ ε/4, β from L1 / L2; β is free). Parameters (theorem):
decoupled Σ_j (2N_j + O(1)) + O(r) ∝ r/ε, exponent b = 1; coupled (n+1)^r·O(r), b = r.
Mechanism 2 of THEORY §0, side by side.

Here ``k`` is r (the registry's k argument; ``infoflow verify --k`` sets r).
"""

from __future__ import annotations

import numpy as np

from infoflow_jax.verification.mutants import BETA_SMALL, knot_dropped
from infoflow_jax.verification.construction import Built, ConstructionSpec, check_mutant
from infoflow_jax.core.claims import OnBox, OneInput, Retrieval, clipped
from infoflow_jax.core.decoders import piecewise_linear_decoder
from infoflow_jax.core.errors import InputError, check_int_range, check_open_interval
from infoflow_jax.core.kuhn import kuhn_cells_for, kuhn_decoder, kuhn_error_constant
from infoflow_jax.core.lemmas import (beta_for_margin, beta_for_soft_max, e_max, e_max_holds_beyond_unit_range,
                                 knots_for, margin_retrieval_error, pl_decoder_error)
from infoflow_jax.core.slots import FFNBlock, Program, max_retrieval
from infoflow_jax.core.tasks import CoupledTopR, DecoupledTopR
from constructions.exclusion import SCORE_RANGE, exclusion_layers
from infoflow_jax.core.kuhn import kuhn_ffn
from infoflow_jax.verification.mutants import (LOCALIZED_STRENGTH, calibrated_depth, one_cell_bump,
                                              random_vertex_shifted, vertex_shifted, weakened_band, weakened_flag_net,
                                              weakened_input)

DECODE_SHARE = 0.75  # of ε; the retrievals get the rest

MUTANTS_DECOUPLED = {
    "beta-small": "every β a hundredfold too small (flags and retrievals wrong)",
    "flag-dropped": "layer r scores x instead of x − K·f (retrieves x_(1) again)",
    "knot-dropped": "the last decoder's most significant breakpoint unit removed",
    "cell-bump": "a tent of ±2.2×bound confined to one random (reachable) cell of a random decoder (localized)",
    "exclusion-weakened": "one random exclusion layer's flag lowered on a narrow band of token values at the top "
                          "of [0, 1] (its depth set so that the error where it shows is 2.2×bound)",
}
MUTANTS_COUPLED = {
    "beta-small": "every β a hundredfold too small (flags and retrievals wrong)",
    "flag-dropped": "layer r scores x instead of x − K·f (retrieves x_(1) again)",
    "vertex-shifted": "one L4 vertex value (the one nearest the typical top-r point) moved by 1",
    "vertex-moved": "one random reachable L4 vertex (descending, gaps ≥ γ) moved by ±2.2×bound (localized)",
    "exclusion-weakened": "one random exclusion layer's flag lowered on a narrow band of token values at the top "
                          "of [0, 1] (its depth set so that the error where it shows is 2.2×bound)",
}


def default_gamma(r: int) -> float:
    """γ = 1/(2r): inside the allowed (0, 1/r)."""
    return 0.5 / r


def typical_point(T: int, r: int, gamma: float) -> np.ndarray:
    """Expected top-r order statistics of T uniforms, pushed apart to margin γ."""
    p = [1.0 - 1.0 / (T + 1)]
    for j in range(2, r + 1):
        p.append(min(1.0 - j / (T + 1), p[-1] - gamma))
    return np.clip(np.array(p), 0.0, 1.0)


def nearest_vertex(point: np.ndarray, n: int) -> int:
    """C-order index of the grid vertex nearest ``point`` on {0, 1/n, …, 1}^D."""
    idx = np.rint(np.asarray(point) * n).astype(int)
    D = len(idx)
    return int(sum(int(a) * (n + 1) ** (D - 1 - i) for i, a in enumerate(idx)))


def _build(T: int, eps: float, *, coupled: bool, k: int = 2, gamma: float | None = None, G=None, Gs=None,
           beta: float | None = None, mutant: str | None = None, mutant_seed: int = 0,
           weaken_depth: float | None = None) -> Built:
    r = k
    check_int_range("T", T, 1)
    check_int_range("r", r, 1, T)
    check_open_interval("eps", eps, 0.0, 1.0)
    spec = SPEC_COUPLED if coupled else SPEC_DECOUPLED
    mutant = check_mutant(spec, mutant)
    gamma = default_gamma(r) if gamma is None else gamma
    task = CoupledTopR(T, r=r, gamma=gamma, G=G) if coupled else DecoupledTopR(T, r=r, gamma=gamma, Gs=tuple(Gs or ()))
    L = task.lipschitz
    eps_dec, eps_att = DECODE_SHARE * eps, (1 - DECODE_SHARE) * eps

    beta_ex = beta_for_margin(T, gamma, min(gamma / 4, eps_att / L), SCORE_RANGE)
    beta_last = beta if beta is not None else beta_for_soft_max(T, eps_att / L)
    if r > 1 and not e_max_holds_beyond_unit_range(T, beta_last):
        raise AssertionError(f"C6: β = {beta_last:g} too small for L1 with excluded tokens")
    eta = margin_retrieval_error(T, beta_ex, gamma, SCORE_RANGE) if r > 1 else 0.0
    assert eta <= gamma / 4
    delta = max(eta, e_max(T, beta_last))
    if coupled:
        n = kuhn_cells_for(r, L, eps_dec)
        dec = kuhn_decoder(task.G, r, n)
        terms = {"decoder C_r·L/n": dec.error_bound(L), "retrieval L·max(η, e_max(T,β))": L * delta}
        choices = {"n": n, "C_r": kuhn_error_constant(r), "split": dec.split}
    else:
        Ns = [knots_for(Gj.lipschitz, eps_dec / r) for Gj in task.Gs]
        terms = {"decoders Σ L_j/(2N_j)": sum(pl_decoder_error(Gj.lipschitz, Nj) for Gj, Nj in zip(task.Gs, Ns)),
                 "retrieval ΣL_j·max(η, e_max(T,β))": L * delta}
        choices = {"N": Ns}
    choices.update({"r": r, "gamma": gamma, "eta": eta, "K": 2.0})

    scale = BETA_SMALL(1.0) if mutant == "beta-small" else 1.0
    # claims: every retrieved m_j (L2, η) and z (L1, e_max) feeds the decode through its Lipschitz
    # weight; the coupled decoder reads them in ‖·‖_∞, so there each share is the whole term ("max")
    dec_term, ret_term = list(terms)
    weights = [L] * r if coupled else [Gj.lipschitz for Gj in task.Gs]
    combine = "max" if coupled else "sum"
    e_last = e_max(T, beta_last)
    prog = Program()
    one, x = prog.constant("one"), prog.token_input("x")
    rng = np.random.default_rng(mutant_seed)
    if mutant == "exclusion-weakened" and r < 2:
        raise InputError("k", k, "≥ 2 for the exclusion-weakened mutant (r = 1 has no exclusion layer)")
    weaken = None
    if mutant == "exclusion-weakened":  # depth: the error where it shows is 2.2×bound
        layer, band = int(rng.integers(1, r)), weakened_band(rng)
        depth = weaken_depth if weaken_depth is not None else calibrated_depth(
            lambda dp: _build(T, eps, coupled=coupled, k=k, gamma=gamma, G=G, Gs=Gs, beta=beta, mutant=mutant,
                              mutant_seed=mutant_seed, weaken_depth=dp),
            weakened_input(T, layer, band[0], gamma), LOCALIZED_STRENGTH * sum(terms.values()))
        weaken = {layer: lambda net: weakened_flag_net(net, depth, band)}
    score = exclusion_layers(prog, x, one, r, scale * beta_ex, gamma, eta=eta, retrieval_term=ret_term,
                             retrieval_weights=weights[:-1], combine=combine, weaken=weaken)  # layers 1..r−1
    proof = x if r == 1 else x - 2.0 * prog[f"f{r - 1}"]  # the claims' score, whatever a mutant compiles
    if mutant == "flag-dropped":
        score = x
    last = prog.layer()
    last.attend(max_retrieval(query=scale * beta_last * one, key=score, into="z",
                              note=f"z ← soft-max over tokens of ({score}) = x_({r}) at CLS (β={scale * beta_last:.4g})",
                              claim=Retrieval("L1", key=proof, values=((proof, "z"),), excluded=r > 1, tolerance=e_last,
                                              term=ret_term, weight=weights[-1], combine=combine,
                                              statement=f"L1 (flagged tokens ≥ 1 below): |z − x_({r})| ≤ e_max(T, β)")))
    retrieved = [prog[f"m{j}"] for j in range(1, r)] + [prog["z"]]
    slack = [eta] * (r - 1) + [e_last]  # retrieved values lie in [−slack_j, 1]
    if coupled:
        net = kuhn_ffn(dec)
        if mutant == "vertex-shifted":
            net = vertex_shifted(dec, 1.0, nearest_vertex(typical_point(T, r, gamma), n))
        if mutant == "vertex-moved":  # a vertex the retrieved values reach: descending with gaps ≥ γ
            net = random_vertex_shifted(dec, LOCALIZED_STRENGTH * sum(terms.values()), rng,
                                        reachable=lambda v: bool(np.all(np.diff(v) <= -gamma * n)))
        last.ffn(FFNBlock(tuple(retrieved), net, ("y",),
                          note=f"y ← Ĝ(m1..m{r - 1}, z), L4 Kuhn decoder on [0,1]^{r}, n={n}",
                          claim=OnBox(task.G, L, n=n, box=(-max(slack), 1.0), tolerance=dec.error_bound(L),
                                      term=dec_term, inputs=tuple(retrieved),
                                      statement=f"|Ĝ(z) − G(clip z)| ≤ C_r·L/n on [−δ, 1]^{r}, affine per Kuhn simplex")))
        prog.readout(prog["y"])
    else:
        outs = []
        bumped = int(rng.integers(1, r + 1))
        for j, (Gj, Nj, u, sl) in enumerate(zip(task.Gs, Ns, retrieved, slack), start=1):
            net = piecewise_linear_decoder(Gj, Nj)
            if mutant == "cell-bump" and j == bumped:  # a cell x_(j) reaches: (r − j)γ ≤ x_(j) ≤ 1 − (j − 1)γ
                net = one_cell_bump(net, LOCALIZED_STRENGTH * sum(terms.values()), rng,
                                    within=((r - j) * gamma, 1 - (j - 1) * gamma))
            if mutant == "knot-dropped" and j == r:
                net = knot_dropped(Gj, Nj)
            last.ffn(FFNBlock((u,), tuple(net), (f"y{j}",), note=f"y{j} ← Ĝ_{j}({u}), L3 decoder, N={Nj}",
                              claim=OneInput(clipped(Gj), Gj.lipschitz, intervals=((-sl, 1.0),),
                                             tolerance=pl_decoder_error(Gj.lipschitz, Nj), term=dec_term, input=u,
                                             statement=f"|Ĝ_{j}(u) − G_{j}(clip u)| ≤ L_j/(2N_j) on u ∈ [−δ_j, 1]")))
            outs.append(prog[f"y{j}"])
        total = outs[0]
        for o in outs[1:]:
            total = total + o
        prog.readout(total)
    return Built(name="C6-coupled" if coupled else "C6-decoupled", task=task, compiled=prog.compile(), eps=eps,
                 bound=sum(terms.values()), bound_terms=terms, betas=[beta_ex] * (r - 1) + [beta_last],
                 choices=choices, mutant=mutant)


def build_decoupled(T: int, eps: float, *, k: int = 2, **kw) -> Built:
    """C6 for T5 (Σ_j G_j(x_(j))); ``k`` is r."""
    return _build(T, eps, coupled=False, k=k, **kw)


def build_coupled(T: int, eps: float, *, k: int = 2, **kw) -> Built:
    """C6 for T4 (G(x_(1), …, x_(r))); ``k`` is r."""
    return _build(T, eps, coupled=True, k=k, **kw)


SPEC_DECOUPLED = ConstructionSpec(
    name="C6-decoupled", task_id="T5",
    summary="r-layer top-r retriever, decoupled decode Σ_j G_j(x_(j)) (T5), r·O(1/ε) params (k = r)",
    build=build_decoupled, mutants=MUTANTS_DECOUPLED, layers=lambda k: k, uses_k=True,
    default_T=(8,), default_eps=(1e-2,), default_k=(2, 1, 3), expected_exponent=1.0,
)
SPEC_COUPLED = ConstructionSpec(
    name="C6-coupled", task_id="T4",
    summary="r-layer top-r retriever, coupled L4 decode G(x_(1..r)) (T4), O(ε^{-r}) params (k = r)",
    build=build_coupled, mutants=MUTANTS_COUPLED, layers=lambda k: k, uses_k=True,
    default_T=(8,), default_eps=(0.3,), default_k=(2, 1, 3), expected_exponent=lambda r: r,
)
