"""Named residual slots: conflicts and shape errors are caught at build time; slots hold what they say."""

import jax
import numpy as np
import pytest

from infoflow_jax.core.decoders import piecewise_linear_decoder
from infoflow_jax.core.functions import IDENTITY
from infoflow_jax.core.relu_net import Dense
from infoflow_jax.core.slots import BuildError, FFNBlock, Form, Program, max_retrieval


def test_writing_a_slot_twice_is_a_build_error():
    prog = Program()
    one, x = prog.constant("one"), prog.token_input("x")
    prog.layer().attend(max_retrieval(query=one, key=x, into="m"))
    with pytest.raises(BuildError, match="slot 'm' is written by"):
        prog.layer().attend(max_retrieval(query=one, key=x, into="m"))


def test_reading_a_slot_before_it_is_written_is_a_build_error():
    prog = Program()
    one = prog.constant("one")
    with pytest.raises(BuildError, match="'p'"):
        prog.layer().attend(max_retrieval(query=one, key=Form.of(p=1.0), into="m"))


def test_ffn_block_with_wrong_input_count_is_a_build_error():
    with pytest.raises(BuildError, match="takes 1 inputs, 2 forms"):
        FFNBlock((Form.of(x=1.0), Form.of(y=1.0)), tuple(piecewise_linear_decoder(IDENTITY.fn, 4)), ("z",))


def test_ffn_block_whose_layers_do_not_chain_is_a_build_error():
    with pytest.raises(BuildError, match="do not chain"):
        FFNBlock((Form.of(x=1.0),), (Dense(np.ones((1, 3)), np.zeros(3)), Dense(np.ones((2, 1)), np.zeros(1))), ("z",))


def test_forms_combine_linearly():
    f = 2 * Form.of(x=1.0) - Form.of(m=1.0) + Form.of(x=-1.0)
    assert f.as_dict() == {"m": -1.0, "x": 1.0}


def test_max_retrieval_slot_holds_soft_max_at_every_position():
    prog = Program()
    one, x = prog.constant("one"), prog.token_input("x")
    prog.layer().attend(max_retrieval(query=1e4 * one, key=x, into="m"))
    prog.readout(prog["m"])
    compiled = prog.compile()
    X = jax.random.uniform(jax.random.PRNGKey(0), (6, 1))
    m = np.asarray(compiled.read_slot(X, "m", after_layer=1))
    assert np.allclose(m, float(X.max()), atol=1e-3) and np.all(m <= float(X.max()) + 1e-12)


def test_trace_reads_like_the_proof():
    prog = Program()
    one, x = prog.constant("one"), prog.token_input("x")
    prog.layer().attend(max_retrieval(query=one, key=x, into="m"))
    prog.readout(prog["m"])
    assert "m ← max over tokens of (x)" in prog.compile().describe()
