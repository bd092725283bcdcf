"""benchmarks/estimate_quality.py: it writes a row per configuration and resumes; its independent
search finds defects planted where the verifier's samplers rarely look (a search that cannot find
anything would prove nothing about the default estimate)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import estimate_quality as eq  # noqa: E402
from benchmarks.independent_search import in_domain, retraction, search  # noqa: E402
from infoflow_jax.catalog import lookup  # noqa: E402
from infoflow_jax.core.domains import Margin  # noqa: E402
from infoflow_jax.core.tasks import FunctionTask  # noqa: E402


def with_bumped_target(built, bump):
    """The same weights against H + bump: |Ĥ − (H + bump)| ≥ bump − bound wherever bump is large."""
    task = built.task
    planted = FunctionTask(T=task.T, d=task.d, fn=lambda X: task.target(X) + bump(X), on=task.domain)
    return dataclasses.replace(built, task=planted)


def test_the_benchmark_writes_one_row_and_skips_it_on_a_rerun(tmp_path, capsys):
    out = tmp_path / "eq.json"
    args = ["--names", "C1", "--T", "2", "--eps", "0.1", "--seconds-per-config", "1.5", "--out", str(out)]
    assert eq.main(args) == 0
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 1
    row = rows[0]
    assert (row["name"], row["T"], row["eps"]) == ("C1", 2, 0.1)
    assert row["independent_in_domain"] and abs(row["independent_recheck"] - row["independent_max"]) < 1e-12
    assert row["ratio"] == row["err_estimate"] / row["independent_max"]
    assert eq.main(args) == 0  # resumed: nothing new
    assert len(json.loads(out.read_text())["rows"]) == 1


def test_bad_arguments_exit_2_with_one_line(capsys):
    assert eq.main(["--T", "0"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_the_search_finds_a_bump_one_tenth_of_a_decoder_cell_wide():
    built = lookup("C1").build(2, 0.1)
    N, h = built.choices["N"], 3 * built.bound
    c, w = 0.6180339887, 0.1 / N  # off every knot, midpoint and grid value
    bump = lambda X: h * jnp.maximum(0.0, 1 - jnp.abs(jnp.max(X[..., 0], axis=-1) - c) / w)
    res = search(with_bumped_target(built, bump), seconds=2.5, seed=1)
    assert res.value >= 2 * built.bound
    assert abs(np.max(res.X) - c) < w


def test_the_search_finds_a_defect_seen_only_near_one_token_at_1_and_the_rest_at_0():
    built = lookup("C1").build(4, 0.1)
    h, w = 3 * built.bound, 0.02
    # large only when token 3 is within w of 1 and every other token within w of 0: a corner region of
    # volume w^4 = 1.6e-7 of the cube
    def bump(X):
        x = X[..., 0]
        near = jnp.maximum(0.0, 1 - jnp.abs(x - jnp.array([0.0, 0.0, 1.0, 0.0])) / w)
        return h * jnp.prod(near, axis=-1)
    res = search(with_bumped_target(built, bump), seconds=2.5, seed=2)
    assert res.value >= 2 * built.bound
    assert np.allclose(res.X[:, 0], [0, 0, 1, 0], atol=w)


def test_the_margin_retraction_is_the_identity_on_the_domain_and_lands_in_it():
    dom = Margin(0.2, 3)
    R = retraction(dom)
    rng = np.random.default_rng(0)
    X = rng.random((500, 6, 1))
    Y = R(X)
    assert all(in_domain(dom, y) for y in Y)
    assert np.array_equal(R(Y), Y)
