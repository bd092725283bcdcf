"""Host-side work compiles nothing: named functions and built-in targets run in NumPy on NumPy arrays
(the same function as in jnp), and functions that compute the same thing compare equal, so that
rebuilt tasks share compiled programs."""

import jax.numpy as jnp
import numpy as np
import pytest

import infoflow_jax as ifj
from infoflow_jax.catalog import lookup
from infoflow_jax.core.functions import DEFAULT_F, TENT, array_module, function_key


def test_array_module_is_numpy_for_numpy_arrays_and_numbers_and_jnp_otherwise():
    assert array_module(np.zeros(3), 1.0, np.float64(2)) is np
    assert array_module(np.zeros(3), jnp.zeros(3)) is jnp


@pytest.mark.parametrize("name, T, kw", [("C1", 4, {}), ("C2", 4, {}), ("C3", 4, {"k": 2}), ("C7", 4, {}),
                                        ("C8", 4, {"k": 2}), ("C6-coupled", 8, {}), ("C6-decoupled", 8, {})])
def test_a_built_in_target_on_numpy_inputs_is_numpy_and_equals_its_jnp_value(name, T, kw):
    spec = lookup(name)
    task = spec.build(T, max(spec.default_eps), **kw).task
    X = np.asarray(task.domain.retract(np.random.default_rng(0).random((64, T, task.d))))
    host = task.target(X)
    assert isinstance(host, np.ndarray)
    np.testing.assert_allclose(host, np.asarray(task.target(jnp.asarray(X))), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("F", [DEFAULT_F, TENT])
def test_a_named_function_runs_in_numpy_on_numpy_arrays(F):
    u = np.linspace(0, 1, 101)
    assert isinstance(F(u), np.ndarray)
    np.testing.assert_allclose(F(u), np.asarray(F(jnp.asarray(u))), rtol=1e-14, atol=1e-15)


def test_two_lambdas_of_one_expression_and_closure_have_one_key():
    make = lambda c: (lambda x: c * x)  # noqa: E731
    assert function_key(make(2.0)) == function_key(make(2.0))


def test_a_different_closure_value_or_code_gives_another_key():
    make = lambda c: (lambda x: c * x)  # noqa: E731
    assert function_key(make(2.0)) != function_key(make(3.0))
    assert function_key(lambda x: x + 1) != function_key(lambda x: x - 1)


def test_a_task_rebuilt_from_the_same_lambda_is_equal_and_hashes_alike():
    build = lambda: ifj.FunctionTask(T=4, fn=lambda X: jnp.max(X[..., 0], -1), lipschitz_constant=1.0)  # noqa: E731
    a, b = build(), build()
    assert a == b and hash(a) == hash(b)
    assert a != ifj.FunctionTask(T=4, fn=lambda X: jnp.min(X[..., 0], -1), lipschitz_constant=1.0)
