"""The exact fast path inside sweeps: plans of one family stack into one program, results unchanged."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infoflow_jax.core.precision import use_float64

use_float64()

from infoflow_jax.catalog import catalog  # noqa: E402
from infoflow_jax.core.fast_model import apply_fast, fast_plan, same_shape_plans  # noqa: E402
from infoflow_jax.core.model import apply  # noqa: E402
from infoflow_jax.sweep import buckets  # noqa: E402
from infoflow_jax.sweep import engine  # noqa: E402
from infoflow_jax.sweep.spec import parse_spec  # noqa: E402

REG = catalog()


def test_plans_padded_to_one_shape_keep_each_function_and_gradient():
    builds = [REG["C2"].build(8, e) for e in (1e-1, 1e-2)] + [REG["C2"].build(8, 1e-2, mutant="psi-knot-dropped")]
    fam = buckets.join([b.compiled.model.cfg for b in builds])
    plans = same_shape_plans([fast_plan(*buckets.pad_state(b, fam)) for b in builds])
    assert len({jax.tree_util.tree_structure(p) for p in plans}) == 1
    assert len({tuple(x.shape for x in jax.tree_util.tree_leaves(p)) for p in plans}) == 1
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *plans)
    X = jnp.asarray(np.random.default_rng(0).uniform(size=(64, 8, 1)))
    f = lambda p, x: apply_fast(p, x)
    vals = jax.vmap(lambda p: jax.vmap(lambda x: f(p, x))(X))(stacked)
    grads = jax.vmap(lambda p: jax.vmap(jax.grad(lambda x: f(p, x)))(X))(stacked)
    for i, b in enumerate(builds):
        g, s = b.split()
        np.testing.assert_allclose(vals[i], jax.vmap(lambda x: apply(g, s, x))(X), rtol=0, atol=1e-13)
        np.testing.assert_allclose(grads[i], jax.vmap(jax.grad(lambda x: apply(g, s, x)))(X), rtol=0, atol=1e-11)


SPEC = {"name": "fast", "bucket": "auto", "pad_T": True, "budget": {"samples": 64, "starts": 4, "steps": 20},
        "run": [{"construction": "C2", "T": [3, 8], "eps": [1e-1, 1e-2], "mutants": ["psi-knot-dropped"]}]}


@pytest.fixture(scope="module")
def fast_and_dense(tmp_path_factory):
    out = {}
    for fast in (True, False):
        folder = tmp_path_factory.mktemp(f"fast{fast}")
        mp = pytest.MonkeyPatch()
        if not fast:
            mp.setattr(engine, "fast_pays", lambda plan, T: False)
        try:
            stats = engine.run_sweep(parse_spec(SPEC), folder, progress=False)
        finally:
            mp.undo()
        recs = {r["config_hash"]: r for r in map(json.loads, (folder / "results.jsonl").read_text().splitlines())}
        out[fast] = (stats, recs)
    return out


def test_a_fast_family_compiles_one_program_under_auto(fast_and_dense):
    assert fast_and_dense[True][0].compilations == 1  # T = 3, 8 and both ε (and the mutant): one program


def test_fast_sweep_rows_equal_dense_ones_and_say_so(fast_and_dense):
    fast, dense = fast_and_dense[True][1], fast_and_dense[False][1]
    assert fast.keys() == dense.keys()
    for h, r in dense.items():
        q = fast[h]
        assert (q["path"], r["path"]) == ("fast", "dense")
        assert (q["passed"], sorted(q["estimates"])) == (r["passed"], sorted(r["estimates"])), h
        for name, v in r["estimates"].items():
            if name != "adversarial":  # the same inputs through an exactly equal forward
                assert abs(q["estimates"][name] - v) <= 1e-12, (h, name)
        assert abs(q["err_estimate"] - r["err_estimate"]) <= 1e-6 * max(r["err_estimate"], 1e-12), h
