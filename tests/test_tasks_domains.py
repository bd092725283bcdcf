"""Tasks T1–T3 targets, domains and samplers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infoflow_jax.core.domains import Margin
from infoflow_jax.core.errors import InputError
from infoflow_jax.core.functions import DEFAULT_F, TENT, LipschitzFn
from infoflow_jax.core.samplers import sample, samplers_for
from infoflow_jax.core.tasks import KthLargest, MaxRetrieval, TwoHop


def test_targets_match_a_numpy_reference():
    X = np.random.default_rng(0).uniform(size=(50, 7, 1))
    x = X[..., 0]
    F = lambda u: np.sin(2 * np.pi * u) / 2 + u
    psi = lambda u: 1 - 2 * np.abs(u - 0.5)
    m = x.max(-1, keepdims=True)
    assert np.allclose(MaxRetrieval(7).target(jnp.asarray(X)), F(x.max(-1)))
    assert np.allclose(TwoHop(7).target(jnp.asarray(X)), F(psi(m - x).max(-1)))
    assert np.allclose(KthLargest(7, k=3).target(jnp.asarray(X)), F(np.sort(x, -1)[:, -3]))


@pytest.mark.parametrize("k,gamma", [(2, 0.2), (4, 0.1)])
def test_margin_retraction_lands_in_the_domain(k, gamma):
    dom = Margin(gamma, k)
    X = jax.random.uniform(jax.random.PRNGKey(0), (500, 12, 1))
    assert bool(jnp.all(dom.contains(dom.retract(X))))


def test_margin_retraction_is_identity_on_the_domain():
    dom = Margin(0.1, 3)
    X = sample("margin_boundary", jax.random.PRNGKey(1), 200, 10, 1, dom)
    assert np.allclose(dom.retract(X), X, atol=1e-15)


def test_margin_boundary_sampler_sits_exactly_on_the_boundary():
    dom = Margin(0.1, 3)
    X = sample("margin_boundary", jax.random.PRNGKey(2), 100, 10, 1, dom)
    s = -np.sort(-np.asarray(X[..., 0]), -1)
    assert np.allclose(s[:, 0] - s[:, 1], 0.1) and np.allclose(s[:, 1] - s[:, 2], 0.1)


@pytest.mark.parametrize("name", ["uniform", "near_tie", "many_near_max", "clustered", "margin_boundary"])
def test_every_sampler_stays_in_its_domain(name):
    dom = Margin(0.1, 2)
    X = sample(name, jax.random.PRNGKey(3), 300, 16, 1, dom)
    assert bool(jnp.all(dom.contains(X)))


def test_near_tie_sampler_produces_close_top_values():
    from infoflow_jax.core.domains import Cube
    X = sample("near_tie", jax.random.PRNGKey(4), 1000, 8, 1, Cube())
    s = -np.sort(-np.asarray(X[..., 0]), -1)
    gaps = s[:, 0] - s[:, 1]
    assert np.all(gaps <= 1e-2 + 1e-12) and np.min(gaps) < 1e-5


def test_gamma_outside_zero_to_one_over_k_is_rejected():
    with pytest.raises(InputError, match="gamma"):
        KthLargest(8, k=4, gamma=0.3)


def test_k_larger_than_T_is_rejected():
    with pytest.raises(InputError, match="k"):
        KthLargest(3, k=4)


def test_a_false_lipschitz_constant_is_rejected():
    with pytest.raises(InputError, match="lipschitz"):
        LipschitzFn(lambda u: 5 * u, 2.0, "5u").checked()


def test_named_functions_have_true_lipschitz_constants():
    assert DEFAULT_F.checked() and TENT.checked()


_DOMAINS = {"cube": lambda: __import__("infoflow_jax.core.domains", fromlist=["Cube"]).Cube(),
            "margin": lambda: Margin(0.1, 2),
            "top_set": lambda: __import__("infoflow_jax.core.domains", fromlist=["TopSetMargin"]).TopSetMargin(0.1, 2)}


@pytest.mark.parametrize("domain", list(_DOMAINS))
@pytest.mark.parametrize("T", [3, 16])
def test_numpy_draws_are_host_arrays_in_the_domain(domain, T):
    from infoflow_jax.core.samplers import NumpyRandom

    dom = _DOMAINS[domain]()
    for i, name in enumerate(samplers_for(dom)):
        X = sample(name, NumpyRandom(i), 200, T, 1, dom)
        assert isinstance(X, np.ndarray) and X.shape == (200, T, 1), name  # NumPy: nothing compiled
        assert bool(jnp.all(dom.contains(jnp.asarray(X)))), name


def test_numpy_retraction_equals_the_jax_retraction():
    from infoflow_jax.core.domains import TopSetMargin

    X = np.random.default_rng(1).uniform(-0.2, 1.2, (300, 9, 1))
    X[:, 3] = X[:, 4]  # ties
    for dom in (Margin(0.07, 3), TopSetMargin(0.05, 4)):
        assert np.array_equal(dom.retract(X), np.asarray(dom.retract(jnp.asarray(X)))), dom


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_top_k_indices_are_the_stable_descending_argsorts_first_k(k):
    from infoflow_jax.core.domains import top_k_indices

    rng = np.random.default_rng(k)
    x = rng.integers(0, 4, (500, 11)).astype(float) / 4  # many ties, at the k-th value too
    assert np.array_equal(top_k_indices(x, k), np.argsort(-x, axis=-1, kind="stable")[:, :k])


@pytest.mark.parametrize("k", [1, 2, 4])
def test_numpy_retraction_equals_the_jax_retraction_with_ties_at_the_kth_value(k):
    from infoflow_jax.core.domains import TopSetMargin

    X = np.random.default_rng(k).integers(0, 5, (400, 12, 1)) / 4.0 - 0.1
    for dom in (Margin(0.05, k), TopSetMargin(0.05, k)):
        assert np.array_equal(dom.retract(X), np.asarray(dom.retract(jnp.asarray(X)))), dom


def test_numpy_sources_are_reproducible_and_split_independently():
    from infoflow_jax.core.samplers import NumpyRandom

    a, b = NumpyRandom(5).split(2)
    assert np.array_equal(a.uniform((4,)), NumpyRandom(5).split(2)[0].uniform((4,)))
    assert not np.array_equal(a.uniform((4,)), b.uniform((4,)))
    assert not np.array_equal(NumpyRandom(5).fold_in(0).uniform((4,)), a.uniform((4,)))


def test_near_tie_sampler_handles_a_single_token():
    from infoflow_jax.core.domains import Cube
    from infoflow_jax.core.samplers import NumpyRandom

    assert sample("near_tie", NumpyRandom(0), 5, 1, 1, Cube()).shape == (5, 1, 1)
