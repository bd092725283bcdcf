"""The public API: what a user imports to write and check a construction."""

from __future__ import annotations

import dataclasses
import json

import jax.numpy as jnp
import pytest

import infoflow_jax as ifj

ifj.use_float64()


def _user_build(T, eps, *, mutant=None, beta=None, k=None):
    """A construction not in the catalog: y ← F̂(soft-max of x), F(u) = u²/2 (Lipschitz 1)."""
    F = ifj.LipschitzFn(lambda u: 0.5 * u ** 2, 1.0, "u²/2")
    task = ifj.FunctionTask(T=T, fn=lambda X: F(jnp.max(X[..., 0], axis=-1)), lipschitz_constant=1.0,
                            task_id="Tsq", title="squared max")
    N = ifj.knots_for(1.0, eps / 2)
    beta = beta or ifj.beta_for_soft_max(T, eps / 2)
    terms = {"attention": ifj.e_max(T, beta), "decoder": ifj.pl_decoder_error(1.0, N)}
    prog = ifj.Program()
    one, x = prog.constant("one"), prog.token_input("x")
    layer = prog.layer()
    layer.attend(ifj.max_retrieval(query=(beta / 100 if mutant else beta) * one, key=x, into="m"))
    layer.ffn(ifj.FFNBlock((prog["m"],), tuple(ifj.piecewise_linear_decoder(F, N)), ("y",)))
    prog.readout(prog["y"])
    return ifj.Built(name="Csq", task=task, compiled=prog.compile(), eps=eps, bound=sum(terms.values()),
                     bound_terms=terms, betas=[beta], choices={"N": N}, mutant=mutant)


def _spec(summary="squared max"):
    return ifj.ConstructionSpec(name="Csq", task_id="Tsq", summary=summary, build=_user_build,
                                mutants={"beta-small": "β/100"}, layers=lambda k: 1)


def test_every_name_in_all_is_importable_from_the_package():
    assert all(hasattr(ifj, name) for name in ifj.__all__)


def test_verify_of_a_user_construction_passes_and_carries_the_documented_keys():
    rec = ifj.verify(_user_build(8, 1e-2), budget=ifj.QUICK_BUDGET)
    assert rec.passed and rec.err_estimate <= rec.bound <= rec.eps
    assert set(ifj.RECORD_KEYS) == set(rec.to_json())
    assert {"err_estimate", "bound", "eps", "passed", "worst_input", "estimator", "schema"} <= set(rec.to_json())


def test_verify_of_a_broken_user_construction_fails():
    assert not ifj.verify(_user_build(8, 1e-2, mutant="beta-small"), budget=ifj.QUICK_BUDGET).passed


def test_verify_defaults_to_the_budget_of_infoflow_verify():
    from infoflow_jax.cli.verify import estimator_budget

    assert estimator_budget(quick=False) == ifj.DEFAULT_BUDGET
    built = _user_build(4, 1e-1)
    assert ifj.verify(built).estimates == ifj.verify(built, budget=ifj.DEFAULT_BUDGET).estimates


def test_record_json_is_plain_json_with_a_schema_version():
    rec = ifj.verify(_user_build(4, 1e-1), budget=ifj.QUICK_BUDGET)
    data = json.loads(json.dumps(rec.to_json()))
    assert data["schema"] == ifj.Record.__dataclass_fields__["schema"].default
    assert ifj.RECORD_KEYS == tuple(f.name for f in dataclasses.fields(ifj.Record))


def test_verify_grid_gives_one_record_per_point_and_t_independent_params():
    rows = ifj.verify_grid(_user_build, T=[4, 32], eps=[1e-1, 1e-2], budget=ifj.QUICK_BUDGET)
    assert [(r.T, r.eps) for r in rows] == [(4, 1e-1), (4, 1e-2), (32, 1e-1), (32, 1e-2)]
    assert [r.params_theorem for r in rows[:2]] == [r.params_theorem for r in rows[2:]]


def test_registering_a_name_twice_replaces_the_first_entry():
    try:
        ifj.register(_spec("first"))
        ifj.register(_spec("second"))
        assert ifj.lookup("Csq").summary == "second"
        assert list(ifj.catalog()).count("Csq") == 1
    finally:
        ifj.unregister("Csq")


def test_registering_a_built_in_name_is_refused_naming_the_argument():
    with pytest.raises(ifj.InputError, match="^name = "):
        ifj.register(dataclasses.replace(_spec(), name="C2"))


def test_lookup_of_an_unknown_name_is_an_input_error():
    with pytest.raises(ifj.InputError, match="^name = "):
        ifj.lookup("no-such-construction")

