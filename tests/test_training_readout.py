"""Issue 12: ``readout_init = "centered"`` starts the §7 harness at the mean predictor."""

from __future__ import annotations

import pytest

from infoflow_jax.errors import InputError
from infoflow_jax.training import train_one
from infoflow_jax.training_spec import TrainConfig

BASE = dict(task="T1", T=8, L=1, W=16, E=8, seed=0, steps=2, batch=64, warmup=1, eval_every=1,
            eval_samples=256, patience=10)


def test_centered_readout_starts_near_the_mean_predictor_mse():
    rec = train_one(TrainConfig(readout_init="centered", **BASE), sup_error=False).record
    assert rec["eval_trace"][0][1] < 1.5 * rec["baseline_test_mse"]


def test_default_readout_starts_far_above_the_mean_predictor_mse():
    # the initial offset that preceded the T1 collapse (docs/training.md)
    rec = train_one(TrainConfig(**BASE), sup_error=False).record
    assert rec["eval_trace"][0][1] > 5 * rec["baseline_test_mse"]


def test_readout_init_default_keeps_the_old_config_hash_and_rejects_unknown_values():
    assert "readout_init" not in TrainConfig(**BASE).as_dict()
    assert TrainConfig(readout_init="centered", **BASE).config_hash() != \
        TrainConfig(**BASE).config_hash()
    with pytest.raises(InputError):
        TrainConfig(readout_init="zero", **BASE)
