"""A user's construction with step claims, written only with ``import infoflow_jax as ifj``.

Specification (issue 18, item 1): every claim kind — OneInput, SumOfOneInputs, OnBox and
Retrieval with each lemma — with or without a ``statement``, built from public names only,
verifies and is step-certified; a broken variant (weights changed, claim kept) or a claim
stricter than what the weights do fails the step it breaks, and only that step.

The constructions here are small users' constructions (T = 4), each written the way its proof
reads; ``verify`` runs once per kind at the quick budget, the broken variants are step-checked
only (``ifj.check_steps``: no forward pass).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import infoflow_jax as ifj

T = 4
F = ifj.LipschitzFn(lambda u: 0.5 * jnp.sin(2.0 * u), 1.0, "sin(2u)/2")


def _with_statement(claim_cls, statement: bool, text: str, **kw):
    return claim_cls(**kw, statement=text) if statement else claim_cls(**kw)


def _built(name, task, prog, eps, terms, betas, **choices) -> ifj.Built:
    prog.readout(prog["y"])
    return ifj.Built(name=name, task=task, compiled=prog.compile(), eps=eps, bound=sum(terms.values()),
                     bound_terms=terms, betas=betas, choices=choices)


# ----------------------------------------------------------------------------- the constructions
def min_retriever(eps=0.1, *, statement=False, beta_scale=1.0, attention_claim_scale=1.0, decoder_tolerance=None,
                  drop_knot=False):
    """H = F(min_s x_s): m ← soft max of 1 − x (L1), y ← Ĝ(m) with G(u) = F(1 − u) (L3)."""
    G = ifj.LipschitzFn(lambda u: F(1.0 - u), 1.0, "F(1 − u)")
    N = ifj.knots_for(1.0, eps / 2)
    beta = ifj.beta_for_soft_max(T, eps / 2)
    terms = {"attention": attention_claim_scale * ifj.e_max(T, beta),
             "decoder": ifj.pl_decoder_error(1.0, N) if decoder_tolerance is None else decoder_tolerance}
    task = ifj.FunctionTask(T=T, fn=lambda X: F(jnp.min(X[..., 0], axis=-1)), lipschitz_constant=1.0, task_id="Tmin")
    prog = ifj.Program()
    one, x = prog.constant("one"), prog.token_input("x")
    key = one - x
    layer = prog.layer()
    layer.attend(ifj.max_retrieval(query=beta_scale * beta * one, key=key, into="m", claim=_with_statement(
        ifj.Retrieval, statement, "L1: |m − max(1 − x)| ≤ e_max(T, β)", lemma="L1", key=key,
        values=((key, "m"),), tolerance=terms["attention"], term="attention")))
    net = ifj.knot_dropped(G, N) if drop_knot else ifj.piecewise_linear_decoder(G, N)
    layer.ffn(ifj.FFNBlock((prog["m"],), tuple(net), ("y",), claim=_with_statement(
        ifj.OneInput, statement, "|Ĝ − G| ≤ 1/(2N) on [0, 1]", target=G, lipschitz=1.0, intervals=((0.0, 1.0),),
        tolerance=terms["decoder"], term="decoder", input=prog["m"])))
    return _built("Umin", task, prog, eps, terms, [beta], N=N)


def margin_retriever(eps=0.1, gamma=0.2, *, statement=False, beta_scale=1.0, margin_k=2):
    """H = F(max_s x_s) on Ω_{γ,2} (x_(1) − x_(2) ≥ γ: the top token γ above the rest): m ← top x by margin
    (L2), y ← F̂(m). (On Ω_{γ,1}, the whole cube, L2's margin fails: the proof check says so.)"""
    N = ifj.knots_for(1.0, eps / 2)
    beta = ifj.beta_for_margin(T, gamma, eps / 2)
    terms = {"attention": ifj.margin_retrieval_error(T, beta, gamma), "decoder": ifj.pl_decoder_error(1.0, N)}
    task = ifj.FunctionTask(T=T, fn=lambda X: F(jnp.max(X[..., 0], axis=-1)), lipschitz_constant=1.0,
                            on=ifj.Margin(gamma, margin_k), task_id="Tmargin")
    prog = ifj.Program()
    one, x = prog.constant("one"), prog.token_input("x")
    layer = prog.layer()
    layer.attend(ifj.max_retrieval(query=beta_scale * beta * one, key=x, into="m", claim=_with_statement(
        ifj.Retrieval, statement, "L2: |m − top x| ≤ (T−1)e^(−βγ)", lemma="L2", key=x, values=((x, "m"),),
        gamma=gamma, tolerance=terms["attention"], term="attention")))
    layer.ffn(ifj.FFNBlock((prog["m"],), tuple(ifj.piecewise_linear_decoder(F, N)), ("y",), claim=_with_statement(
        ifj.OneInput, statement, "|F̂ − F| ≤ 1/(2N) on [0, 1]", target=F, lipschitz=1.0, intervals=((0.0, 1.0),),
        tolerance=terms["decoder"], term="decoder", input=prog["m"])))
    return _built("Umargin", task, prog, eps, terms, [beta], N=N, gamma=gamma)


def mean_decoder(eps=0.1, *, statement=False, value_scale=1.0):
    """H = F(mean_s x_s): a ← uniform average of x (no score: exact), y ← F̂(a)."""
    N = ifj.knots_for(1.0, eps)
    terms = {"decoder": ifj.pl_decoder_error(1.0, N)}
    task = ifj.FunctionTask(T=T, fn=lambda X: F(jnp.mean(X[..., 0], axis=-1)), lipschitz_constant=1.0 / T,
                            task_id="Tmean")
    prog = ifj.Program()
    prog.constant("one")
    x = prog.token_input("x")
    layer = prog.layer()
    layer.attend(ifj.Head(score=(), values=((value_scale * x, "a"),), claim=_with_statement(
        ifj.Retrieval, statement, "a = (1/T)Σ_s x_s exactly", lemma="uniform", key=None, values=((x, "a"),),
        tolerance=0.0, term=None)))
    layer.ffn(ifj.FFNBlock((prog["a"],), tuple(ifj.piecewise_linear_decoder(F, N)), ("y",), claim=_with_statement(
        ifj.OneInput, statement, "|F̂ − F| ≤ 1/(2N) on [0, 1]", target=F, lipschitz=1.0, intervals=((0.0, 1.0),),
        tolerance=terms["decoder"], term="decoder", input=prog["a"])))
    return _built("Umean", task, prog, eps, terms, [0.0], N=N)


def product_of_maxima(eps=0.2, *, statement=False, shift=0.0):
    """d = 2, H = G(max_s x_{s,0}, max_s x_{s,1}), G(u, v) = uv/2 (Lipschitz 1 in ‖·‖_∞): two L1 heads
    z_i ← max_s x_{s,i}, then y ← Ĝ(z) by a Kuhn decoder (L4), checked per simplex (OnBox)."""
    G = ifj.LipschitzFn(lambda u: 0.5 * u[..., 0] * u[..., 1], 1.0, "uv/2")
    n = ifj.kuhn_cells_for(2, 1.0, eps / 2)
    beta = ifj.beta_for_soft_max(T, eps / 2)
    dec = ifj.kuhn_decoder(G, 2, n)
    terms = {"attention": ifj.e_max(T, beta), "decoder": dec.error_bound(1.0)}
    task = ifj.FunctionTask(T=T, d=2, fn=lambda X: G(jnp.max(X, axis=-2)), lipschitz_constant=1.0, task_id="Tprod")
    prog = ifj.Program(d=2)
    one = prog.constant("one")
    xs = [prog.token_input(f"x{c}", coordinate=c) for c in range(2)]
    layer = prog.layer()
    for i, x in enumerate(xs):  # a sup-norm Lipschitz G reads both: each head's share is the whole term
        layer.attend(ifj.max_retrieval(query=beta * one, key=x, into=f"z{i}", claim=_with_statement(
            ifj.Retrieval, statement, f"L1: |z{i} − max x{i}| ≤ e_max", lemma="L1", key=x, values=((x, f"z{i}"),),
            tolerance=terms["attention"], term="attention", combine="max")))
    zs = (prog["z0"], prog["z1"])
    net = ifj.vertex_shifted(dec, shift) if shift else ifj.kuhn_ffn(dec)
    layer.ffn(ifj.FFNBlock(zs, tuple(net), ("y",), claim=_with_statement(
        ifj.OnBox, statement, "|Ĝ − G| ≤ C_2·L/n on [0,1]^2", target=G, lipschitz=1.0, n=n, box=(0.0, 1.0),
        tolerance=terms["decoder"], term="decoder", inputs=zs)))
    return _built("Uprod", task, prog, eps, terms, [beta], n=n)


def _two_decoders(f1, f2, N: int, drop_first_knot: bool = False) -> tuple:
    """One FFN block computing f̂1(z1) + f̂2(z2): the two L3 decoders' hidden units side by side."""
    a = ifj.knot_dropped(f1, N) if drop_first_knot else ifj.piecewise_linear_decoder(f1, N)
    b = ifj.piecewise_linear_decoder(f2, N)
    (Wa, ba), (Va, ca) = [(np.asarray(layer.W), np.asarray(layer.b)) for layer in a]
    (Wb, bb), (Vb, cb) = [(np.asarray(layer.W), np.asarray(layer.b)) for layer in b]
    W = np.zeros((2, Wa.shape[1] + Wb.shape[1]))
    W[0, :Wa.shape[1]], W[1, Wa.shape[1]:] = Wa[0], Wb[0]
    return (ifj.Dense(W, np.concatenate([ba, bb])), ifj.Dense(np.concatenate([Va, Vb]), ca + cb))


def sum_of_maxima(eps=0.2, *, statement=False, drop_knot=False):
    """d = 2, H = F(max x_0) + F(max x_1) / 2 ... as one block: y ← F̂(z0) + F̂(z1)/2 (SumOfOneInputs)."""
    F2 = ifj.LipschitzFn(lambda u: 0.5 * F(u), 0.5, "F/2")
    N = ifj.knots_for(1.0, eps / 4)
    beta = ifj.beta_for_soft_max(T, eps / 4)
    terms = {"attention": 1.5 * ifj.e_max(T, beta), "decoder": ifj.pl_decoder_error(1.0, N) + ifj.pl_decoder_error(0.5, N)}
    task = ifj.FunctionTask(T=T, d=2, fn=lambda X: F(jnp.max(X[..., 0], -1)) + F2(jnp.max(X[..., 1], -1)),
                            lipschitz_constant=1.5, task_id="Tsum")
    prog = ifj.Program(d=2)
    one = prog.constant("one")
    xs = [prog.token_input(f"x{c}", coordinate=c) for c in range(2)]
    layer = prog.layer()
    for i, (x, w) in enumerate(zip(xs, (1.0, 0.5))):  # each head's error moves y by its decoder's constant
        layer.attend(ifj.max_retrieval(query=beta * one, key=x, into=f"z{i}", claim=_with_statement(
            ifj.Retrieval, statement, f"L1: |z{i} − max x{i}| ≤ e_max", lemma="L1", key=x, values=((x, f"z{i}"),),
            tolerance=ifj.e_max(T, beta), term="attention", weight=w)))
    z0, z1 = prog["z0"], prog["z1"]
    parts = (ifj.OneInput(F, 1.0, intervals=((0.0, 1.0),), tolerance=ifj.pl_decoder_error(1.0, N), term=None, input=z0),
             ifj.OneInput(F2, 0.5, intervals=((0.0, 1.0),), tolerance=ifj.pl_decoder_error(0.5, N), term=None, input=z1))
    layer.ffn(ifj.FFNBlock((z0, z1), _two_decoders(F, F2, N, drop_knot), ("y",), claim=_with_statement(
        ifj.SumOfOneInputs, statement, "|ŷ − F(z0) − F(z1)/2| ≤ sum of the parts' errors", parts=parts,
        tolerance=terms["decoder"], term="decoder")))
    return _built("Usum", task, prog, eps, terms, [beta], N=N)


KINDS = {"L1 + OneInput": min_retriever, "L2 + OneInput": margin_retriever, "uniform + OneInput": mean_decoder,
         "L1 ×2 + OnBox": product_of_maxima, "L1 ×2 + SumOfOneInputs": sum_of_maxima}


def _failing(built) -> list[str]:
    steps, _ = ifj.check_steps(built)
    return [s["name"] for s in steps if not s["ok"]]


# ----------------------------------------------------------------------------- the claims
@pytest.mark.parametrize("kind", KINDS)
def test_a_user_construction_of_each_claim_kind_verifies_step_certified(kind):
    rec = ifj.verify(KINDS[kind](), budget=ifj.QUICK_BUDGET)
    assert rec.passed and rec.step_certified is True, (rec.err_estimate, rec.bound, rec.steps)
    assert rec.proof_checked is True, rec.proof  # the steps compose to the claimed bound and the target


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("statement", [False, True], ids=["no statement", "statement"])
def test_every_step_of_each_claim_kind_is_certified_with_or_without_a_statement(kind, statement):
    steps, certified = ifj.check_steps(KINDS[kind](statement=statement))
    assert certified is True, [s for s in steps if not s["ok"]]
    assert all(s["claim"] for s in steps)  # each step says what it claims, in words


def test_a_claim_without_statement_is_described_by_its_lemma():
    x = ifj.Form.of(x=1.0)
    lines = {lemma: ifj.Retrieval(lemma, key=None if lemma == "uniform" else x, values=((x, "m"),), tolerance=0.1,
                                  term=None, gamma=0.1 if lemma == "L2" else None, k=2 if lemma == "L2-set" else None)
             for lemma in ("L1", "L1-self", "L2", "L2-set", "uniform")}
    from infoflow_jax.verification.steps import describe

    described = {lemma: describe(claim) for lemma, claim in lines.items()}
    assert all(text.startswith(lemma.split("-")[0]) for lemma, text in described.items()), described
    assert "γ=0.1" in described["L2"] and "2 flagged" in described["L2-set"]


def test_an_attention_claim_below_what_the_weights_do_fails_its_step():
    assert _failing(min_retriever(attention_claim_scale=0.5)) == ["attn1:m"]


def test_a_decoder_claim_below_what_the_weights_do_fails_its_step():
    steps, _ = ifj.check_steps(min_retriever())
    does = next(s["attained"] for s in steps if s["name"] == "ffn1:y")  # an error the decoder's weights reach
    assert _failing(min_retriever(decoder_tolerance=0.9 * does)) == ["ffn1:y"]


def test_a_soft_max_head_at_a_too_small_beta_fails_the_l1_step():
    assert _failing(min_retriever(beta_scale=0.1)) == ["attn1:m"]


def test_a_dropped_decoder_knot_fails_the_one_input_step():
    assert _failing(min_retriever(drop_knot=True)) == ["ffn1:y"]


def test_a_margin_head_at_a_too_small_beta_fails_the_l2_step():
    assert _failing(margin_retriever(beta_scale=0.2)) == ["attn1:m"]


def test_a_uniform_head_averaging_the_wrong_value_fails_its_step():
    assert _failing(mean_decoder(value_scale=0.5)) == ["attn1:a"]


def test_a_moved_kuhn_vertex_fails_the_box_step():
    assert _failing(product_of_maxima(shift=0.3)) == ["ffn1:y"]


def test_a_dropped_knot_in_one_part_fails_the_sum_of_one_inputs_step():
    assert _failing(sum_of_maxima(drop_knot=True)) == ["ffn1:y"]


def test_an_l2_head_on_a_domain_without_its_margin_fails_the_proof_check():
    built = margin_retriever(margin_k=1)  # Ω_{γ,1} is the whole cube: the top key need not beat the next by γ
    steps, certified = ifj.check_steps(built)
    from infoflow_jax.verification.proof import proof_check

    result = proof_check(built, steps)
    assert certified is True and result.proof_checked is False and "beats the next by" in result.parts["ideal"]
