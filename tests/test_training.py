"""Trained-network harness, protocol and agreement rule (issue 6, THEORY §7). CPU, small."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infoflow_jax.core import tasks as core_tasks
from infoflow_jax.core.model import apply
from infoflow_jax.training import harness as training
from infoflow_jax.training import report as tr
from infoflow_jax.core.errors import InputError
from infoflow_jax.training.harness import (TrainResult, load_checkpoint, make_task,
                                   run_protocol, save_checkpoint, train_one)
from infoflow_jax.training.spec import TrainConfig, parse_train_spec
from infoflow_jax.verification.store import MANIFEST, TRAIN_RESULTS, read_jsonl

TINY = TrainConfig(task="T1", T=4, L=1, W=16, E=8, seed=0, steps=300, batch=64, warmup=20,
                   eval_every=100, eval_samples=256, patience=100)


@pytest.fixture(scope="module")
def trained_t1():
    return TINY, train_one(TINY, sup_error=False)


def test_training_reduces_held_out_mse_on_T1_below_a_quarter_of_the_constant_predictor(trained_t1):
    _, res = trained_t1
    rec = res.record
    assert rec["best_test_mse"] < 0.25 * rec["baseline_test_mse"]
    assert rec["dtype"] == "float32" and rec["eval_dtype"] == "float64"


def test_same_seed_gives_bit_identical_loss_trace():
    a = train_one(TINY, sup_error=False)
    b = train_one(TINY, sup_error=False)
    assert a.loss_trace.shape == (TINY.steps,)
    assert np.array_equal(a.loss_trace, b.loss_trace)
    assert a.eval_trace == b.eval_trace


def test_best_weights_checkpoint_round_trips_through_npz(trained_t1, tmp_path):
    cfg, res = trained_t1
    path = save_checkpoint(tmp_path / "best.npz", res.best_state)
    model = load_checkpoint(path, cfg)
    X = jax.random.uniform(jax.random.PRNGKey(3), (5, cfg.T, 1), dtype=jnp.float32)
    ref = jax.vmap(lambda x: apply(res.graphdef, res.best_state, x))(X)
    got = jax.vmap(model)(X)
    assert np.array_equal(np.asarray(ref), np.asarray(got))


# ---------------------------------------------------------------------------- protocol

SPEC2 = {
    "name": "two",
    "defaults": {"E": 8, "steps": 50, "warmup": 5, "batch": 16, "seeds": [0]},
    "grid": [{"task": "T1", "L": 1, "T": 4, "W": [4, 8]}],
}


def _fake_train(cfg, *, checkpoint_path=None, sup_error=True, log=None):
    rec = {"task": cfg.task, "L": cfg.L, "h": cfg.h, "T": cfg.T, "d": cfg.d, "k": cfg.k, "r": cfg.r,
           "D": cfg.D, "gamma": cfg.gamma, "E": cfg.E, "W": cfg.W, "seed": cfg.seed,
           "steps": cfg.steps, "seconds": 0.0, "final_test_mse": 0.1, "best_test_mse": 0.1,
           "baseline_test_mse": 1.0, "sup_error_estimate": 0.5, "params_total": 10,
           "params_nonzero": 10, "params_theorem": 5 * cfg.W, "config_hash": cfg.config_hash(),
           "dtype": "float32", "eval_dtype": "float64"}
    return TrainResult(rec, np.zeros(1), [], None, None, None)


def test_rerun_after_truncated_last_line_completes_spec_without_duplicates(tmp_path, monkeypatch):
    monkeypatch.setattr(training, "train_one", _fake_train)
    spec = parse_train_spec(SPEC2)
    run_protocol(spec, tmp_path, progress=False, checkpoints=False)
    path = tmp_path / TRAIN_RESULTS
    data = path.read_bytes()
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(data[: last_start + (len(data) - last_start) // 2])  # killed mid-write
    assert len(read_jsonl(path)) == 1
    run_protocol(spec, tmp_path, progress=False, checkpoints=False)
    hashes = [r["config_hash"] for r in read_jsonl(path)]
    assert len(hashes) == len(set(hashes)) == 2
    assert set(hashes) == {c.config_hash() for c in spec.configs}


def test_rerun_into_same_dir_trains_nothing_already_recorded(tmp_path, monkeypatch):
    monkeypatch.setattr(training, "train_one", _fake_train)
    spec = parse_train_spec(SPEC2)
    run_protocol(spec, tmp_path, progress=False, checkpoints=False)
    calls = []
    monkeypatch.setattr(training, "train_one", lambda cfg, **kw: calls.append(cfg))
    run_protocol(spec, tmp_path, progress=False, checkpoints=False)
    assert calls == []
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["kind"] == "train"


def test_corrupt_line_before_the_last_is_an_error_not_a_truncation(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"a": 1}\n{"broken\n{"b": 2}\n')
    with pytest.raises(InputError):
        read_jsonl(path)


def test_spec_grid_expands_to_the_product_of_its_lists():
    spec = parse_train_spec({"grid": [{"task": "T3", "k": 2, "gamma": 0.05, "L": [1, 2], "T": [4, 8],
                                 "W": [8, 32, 128]}], "defaults": {"seeds": [0, 1]}})
    assert len(spec.configs) == 2 * 2 * 3 * 2
    assert len({c.config_hash() for c in spec.configs}) == len(spec.configs)


def test_spec_with_unknown_key_is_rejected_naming_the_key():
    with pytest.raises(InputError, match="widht"):
        parse_train_spec({"grid": [{"task": "T1", "L": 1, "T": 4, "W": 8, "widht": 3}]})


def test_make_task_names_the_missing_class_for_T4(monkeypatch):
    monkeypatch.delattr(core_tasks, "CoupledTopR", raising=False)
    with pytest.raises(InputError, match="CoupledTopR"):
        make_task("T4", 8, r=2, gamma=0.05)


# ---------------------------------------------------------------------------- agreement rule

PARAMS = [300.0, 1200.0, 4800.0]


def _curves(fn):
    return {T: [(p, fn(T, p)) for p in PARAMS] for T in (4, 8, 16)}


def test_rule_calls_error_that_falls_with_width_alike_at_every_T_an_agreement_with_exponent_1():
    obs = tr.observe(_curves(lambda T, p: 3.0 * p ** -0.5))
    assert obs.category == tr.FALLS
    assert tr.verdict("const", obs) == "agree" and tr.verdict("T", obs) == "disagree"


def test_rule_calls_error_that_stalls_as_T_grows_an_agreement_with_exponent_T():
    # InfoFlow's own rate for exponent T: error ~ params^(-1/T), flattening as T grows
    obs = tr.observe(_curves(lambda T, p: p ** (-1.0 / T)))
    assert obs.category == tr.DEGRADES
    assert tr.verdict("T", obs) == "agree" and tr.verdict("const", obs) == "disagree"


def test_rule_calls_scattered_curves_inconclusive():
    wiggle = {300.0: 3.0, 1200.0: 1 / 3.0, 4800.0: 3.0}
    obs = tr.observe(_curves(lambda T, p: 0.1 * wiggle[p]))
    assert obs.category == tr.NOISY
    assert tr.verdict("T", obs) == "inconclusive" and tr.verdict("const", obs) == "inconclusive"


def test_rule_does_not_count_a_stall_at_every_T_for_a_T_dependent_prediction():
    obs = tr.observe(_curves(lambda T, p: 0.2))
    assert obs.category == tr.STALLS
    assert tr.verdict("T", obs) == "inconclusive" and tr.verdict("const", obs) == "disagree"


def test_report_writes_markdown_with_agreement_table_and_figures(tmp_path):
    recs = []
    for L, fn in ((1, lambda T, p: p ** (-1.0 / T)), (2, lambda T, p: 3.0 * p ** -0.5)):
        for T in (4, 8, 16):
            for W, p in zip((8, 32, 128), PARAMS):
                recs.append({"task": "T2", "k": None, "r": None, "D": None, "gamma": None, "d": 1,
                             "L": L, "h": 1, "E": 16, "T": T, "W": W, "seed": 0,
                             "params_theorem": int(p), "best_test_mse": fn(T, p) ** 2,
                             "sup_error_estimate": 2 * fn(T, p), "baseline_test_mse": 0.06,
                             "config_hash": f"{L}{T}{W}", "dtype": "float32", "eval_dtype": "float64"})
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    path = tr.write_training_report(tmp_path)
    text = path.read_text()
    assert "| T2 L=1 |" in text and "**agree**" in text
    assert (tmp_path / "fig_train_T2_L1.png").stat().st_size > 0
    assert (tmp_path / "fig_train_overview.png").exists()
