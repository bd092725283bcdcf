"""Cmin, a one-layer soft-min retriever: your own construction, checked end to end (docs/own_construction.md).

Task: H(X) = F(min_s x_s) on [0,1]^T, F(u) = sin(2u)/2. Proof, one layer, one head:
  slot m ← soft max over tokens of 1 − x     |m − max_s (1 − x_s)| ≤ e_max(T, β)     (L1)
  slot y ← Ĝ(m), G(u) = F(1 − u), N cells    |Ĝ − G| ≤ L/(2N) on [0, 1]            (L3)
so |y − H| ≤ L·e_max(T, β) + L/(2N) ≤ ε, with 2N + O(1) parameters at every T.
"""

import jax.numpy as jnp
import numpy as np

import infoflow_jax as ifj

F = ifj.LipschitzFn(lambda u: 0.5 * jnp.sin(2.0 * u), 1.0, "sin(2u)/2")  # function, Lipschitz constant, name


def soft_min_task(T: int) -> ifj.FunctionTask:
    """H(X) = F(min_s x_s): X has shape (..., T, d=1); written in jax.numpy, vectorised."""
    return ifj.FunctionTask(T=T, fn=lambda X: F(jnp.min(X[..., 0], axis=-1)), lipschitz_constant=F.lipschitz,
                            task_id="Tmin", title="min retrieval")


G = ifj.LipschitzFn(lambda u: F(1.0 - u), F.lipschitz, "F(1 − u)")  # the decoder reads m ≈ max(1 − x) = 1 − min x
MUTANTS = {"beta-small": ifj.BETA_SMALL.description,
           "cell-bump": "a tent of 2.2× the bound inside one decoder cell (placed by mutant_seed)"}


def build(T: int, eps: float, *, mutant: str | None = None, beta: float | None = None, k=None,
          mutant_seed: int = 0) -> ifj.Built:
    L = F.lipschitz
    N = ifj.knots_for(L, eps / 2)                                                 # L/(2N) ≤ ε/2
    beta = beta if beta is not None else ifj.beta_for_soft_max(T, eps / (2 * L))  # L·e_max(T, β) ≤ ε/2
    terms = {"attention L·e_max(T,β)": L * ifj.e_max(T, beta), "decoder L/(2N)": ifj.pl_decoder_error(L, N)}
    attention, decoder = terms

    prog = ifj.Program()
    one, x = prog.constant("one"), prog.token_input("x")
    key = one - x
    layer = prog.layer()
    beta_used = ifj.BETA_SMALL(beta) if mutant == "beta-small" else beta  # a mutant changes weights, never the claim
    layer.attend(ifj.max_retrieval(
        query=beta_used * one, key=key, into="m", note="m ← soft max over tokens of 1 − x",
        claim=ifj.Retrieval("L1", key=key, values=((key, "m"),), tolerance=ifj.e_max(T, beta),
                            term=attention, weight=L)))
    net = ifj.piecewise_linear_decoder(G, N)
    if mutant == "cell-bump":
        net = ifj.one_cell_bump(net, ifj.LOCALIZED_STRENGTH * sum(terms.values()), np.random.default_rng(mutant_seed),
                                within=(0.0, 1.0))
    layer.ffn(ifj.FFNBlock(
        (prog["m"],), tuple(net), ("y",), note=f"y ← Ĝ(m), L3 decoder, N={N}",
        claim=ifj.OneInput(G, L, intervals=((0.0, 1.0),), tolerance=ifj.pl_decoder_error(L, N),
                           term=decoder, input=prog["m"])))
    prog.readout(prog["y"])
    return ifj.Built(name="Cmin", task=soft_min_task(T), compiled=prog.compile(), eps=eps,
                     bound=sum(terms.values()), bound_terms=terms, betas=[beta], choices={"N": N}, mutant=mutant)


SPEC = ifj.ConstructionSpec(name="Cmin", task_id="Tmin", summary="one-layer soft-min retriever, O(1/ε) params",
                            build=build, mutants=MUTANTS, layers=lambda k: 1, expected_exponent=1.0,
                            default_T=(4, 16), default_eps=(1e-1, 1e-2))
