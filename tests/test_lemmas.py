"""Lemmas L1–L3: the bound formulas hold where they claim to, and are not vacuous."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infoflow_jax.core.decoders import clip_unit_interval_net, piecewise_linear_decoder
from infoflow_jax.core.functions import DEFAULT_F, TENT
from infoflow_jax.core.lemmas import (beta_for_margin, beta_for_soft_max, e_max, knots_for, l1_attained,
                                 margin_retrieval_error, pl_decoder_error)
from infoflow_jax.core.precision import FLOAT64_FLOOR
from infoflow_jax.core.relu_net import relu_net_apply


@pytest.mark.parametrize("T,beta", [(2, 10.0), (16, 10.0), (256, 1e3), (64, 1e5)])
def test_attained_configuration_lies_below_e_max(T, beta):
    W, _ = l1_attained(T, beta)
    assert 0 < W <= e_max(T, beta)


@pytest.mark.parametrize("T,beta", [(4, 30.0), (64, 1e3)])
def test_softmax_gap_never_exceeds_e_max_on_random_scores(T, beta):
    v = jax.random.uniform(jax.random.PRNGKey(0), (20000, T)) ** 0.1  # mass near the max
    gap = jnp.max(v, -1) - jnp.sum(jax.nn.softmax(beta * v, -1) * v, -1)
    assert float(gap.max()) <= e_max(T, beta) and float(gap.min()) >= -1e-15


def test_attained_configuration_really_attains_W():
    T, beta = 16, 50.0
    W, delta = l1_attained(T, beta)
    v = jnp.array([1.0] + [1.0 - delta] * (T - 1))
    gap = float(jnp.max(v) - jnp.sum(jax.nn.softmax(beta * v) * v))
    assert gap == pytest.approx(W, rel=1e-9)


@pytest.mark.parametrize("T,target", [(4, 1e-2), (256, 1e-4)])
def test_beta_for_soft_max_meets_its_target(T, target):
    assert e_max(T, beta_for_soft_max(T, target)) <= target


def test_beta_for_margin_meets_its_target():
    beta = beta_for_margin(64, 0.1, 1e-3, 3.0)
    assert margin_retrieval_error(64, beta, 0.1, 3.0) <= 1e-3


@pytest.mark.parametrize("F", [DEFAULT_F, TENT])
@pytest.mark.parametrize("N", [3, 10, 101])
def test_pl_decoder_error_is_within_L_over_2N(F, N):
    u = jnp.linspace(0.0, 1.0, 100001)
    approx = relu_net_apply(piecewise_linear_decoder(F, N), u[:, None])[:, 0]
    assert float(jnp.max(jnp.abs(approx - F(u)))) <= pl_decoder_error(F.lipschitz, N) + FLOAT64_FLOOR


def test_pl_decoder_interpolates_the_knots():
    N = 17
    knots = jnp.linspace(0, 1, N + 1)
    approx = relu_net_apply(piecewise_linear_decoder(DEFAULT_F, N), knots[:, None])[:, 0]
    assert np.allclose(approx, DEFAULT_F(knots), atol=1e-12)


def test_pl_decoder_is_constant_outside_the_unit_interval():
    net = piecewise_linear_decoder(DEFAULT_F, 9)
    out = relu_net_apply(net, jnp.array([[-0.3], [0.0], [1.0], [1.7]]))[:, 0]
    assert float(out[0]) == pytest.approx(float(out[1])) and float(out[2]) == pytest.approx(float(out[3]))


def test_knots_for_gives_the_least_sufficient_N():
    N = knots_for(math.pi + 1, 1e-3)
    assert pl_decoder_error(math.pi + 1, N) <= 1e-3 < pl_decoder_error(math.pi + 1, N - 1)


def test_clip_net_is_clip():
    u = jnp.linspace(-1, 2, 301)[:, None]
    out = relu_net_apply(clip_unit_interval_net(3.0, 0.5), u)[:, 0]
    assert np.allclose(out, np.clip(3 * np.asarray(u[:, 0]) + 0.5, 0, 1))
