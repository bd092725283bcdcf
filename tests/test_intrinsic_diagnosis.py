"""Issue 23: the intrinsic-dimension diagnosis, the FFN / zero-query model variants, the probes."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infoflow_jax.core.precision import use_float64
from infoflow_jax.training import intrinsic_diagnosis as diag
from infoflow_jax.training.paper_model import (PaperArch, paper_param_count, forward, init_params,
                                               layer_attention, layer_states)
from infoflow_jax.training.paper_tasks import IntrinsicDim, pair_argmax
from infoflow_jax.training.papers import PaperConfig, intrinsic_attention_masses

ROOT = Path(__file__).resolve().parents[1]
use_float64()


def test_pair_argmax_finds_each_querys_partner_and_the_maximising_pair_on_a_hand_checked_input():
    task = IntrinsicDim(T=2, D=1, d=2)
    object.__setattr__(task, "forms", np.array([[[0.0, 1.0], [0.0, 0.0]]]))  # x(s)_1 · x(t)_2
    X = jnp.array([[[2.0, -1.0], [-3.0, 5.0]]])
    # scores: (s=0,t=0) -2, (0,1) 10, (1,0) 3, (1,1) -15
    partner, pair = pair_argmax(task, X)
    assert partner.tolist() == [[[1, 0]]]
    assert pair.tolist() == [[[0, 1]]]


def test_zero_query_heads_start_uniform_so_the_masses_are_at_chance():
    arch = PaperArch(d=4, T=6, L=2, h=2, E=8, W=8, residual=True, ffn=8, query_init="zero")
    p = init_params(arch, jax.random.PRNGKey(0), jnp.float64)
    assert all(not np.any(np.asarray(layer["Wq"])) for layer in p["layers"])
    task = IntrinsicDim(T=6, D=2)
    X = task.sample(jax.random.PRNGKey(1), 40).astype(jnp.float64)
    m = intrinsic_attention_masses(arch, task, p, X)
    assert np.allclose(m["partner_mass"], 1 / 6)
    _, pair = pair_argmax(task, X)
    distinct = np.mean(np.asarray(pair[..., 0] != pair[..., 1]), axis=0)  # per form
    assert np.allclose(m["pair_mass"], (1 + distinct) / 6)
    # uniform layer 1: a token holds x(s) and the mean token, and u_i(s) = max_t x(s)ᵀA_i x(t)
    # is even in the sign of x(s) on average: no linear read of it
    assert len(m["u_probe_error"]) == 2 and min(m["u_probe_error"]) > 0.5


def test_a_plain_model_is_unchanged_by_the_new_options_and_the_ffn_block_is_used_and_counted():
    plain = PaperArch(d=4, T=5, L=2, h=2, E=8, W=16, residual=True)
    with_ffn = PaperArch(d=4, T=5, L=2, h=2, E=8, W=16, residual=True, ffn=12)
    key = jax.random.PRNGKey(3)
    p0, p1 = init_params(plain, key, jnp.float64), init_params(with_ffn, key, jnp.float64)
    for name in ("Wq", "Wk", "Wv", "Wo"):  # attention weights drawn from the same keys
        assert np.array_equal(p0["layers"][0][name], p1["layers"][0][name])
    n = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(p1)) - 2 * 8 * 2  # unused LN
    assert paper_param_count(with_ffn) == n == paper_param_count(plain) + 2 * (2 * 8 * 12 + 12 + 8)
    X = jax.random.normal(jax.random.PRNGKey(4), (5, 4), jnp.float64)
    p0["w2"] = p1["w2"] = jnp.ones(16)
    assert float(forward(plain, p0, X)) != float(forward(with_ffn, p1, X))
    assert len(layer_attention(with_ffn, p1, X)) == 2
    last = layer_states(with_ffn, p1, X)[-1][0]
    y = jax.nn.gelu(last @ p1["W1"] + p1["b1"]) @ p1["w2"] + p1["b2"]
    assert float(y) == pytest.approx(float(forward(with_ffn, p1, X)), rel=1e-12)


def test_configs_of_the_recorded_runs_keep_their_hashes():
    """ffn and query_init at their defaults stay out of the hash: old run folders resume."""
    for name in ("infoflow_cpu.jsonl", "headcount_cpu.jsonl"):
        for line in (ROOT / "docs/data" / name).read_text().splitlines()[:5]:
            rec = json.loads(line)
            assert PaperConfig(**rec["config"]).config_hash() == rec["config_hash"]
    base = PaperConfig(task="intrinsic", D=2, T=16, L=2, h=2, seed=0)
    assert base.config_hash() != PaperConfig(**{**base.as_dict(), "ffn": 64}).config_hash()


def test_the_baseline_variant_is_the_recorded_cpu_protocol_and_every_variant_is_distinct():
    pairs = diag.diagnosis_configs()
    assert len(pairs) == len(diag.SEEDS) * sum(len(diag.VARIANT_CELLS.get(v, diag.CELLS))
                                               for v in diag.VARIANTS)
    assert len({c.config_hash() for _, c in pairs}) == len(pairs)
    smoke = diag.diagnosis_configs(smoke=True)
    assert len({c.config_hash() for _, c in smoke}) == len(smoke)
    recorded = {json.loads(x)["config_hash"]
                for x in (ROOT / "docs/data/infoflow_cpu.jsonl").read_text().splitlines()}
    base = [c for v, c in pairs if v == "base_1500"]
    assert base and all(c.config_hash() in recorded for c in base)
    with pytest.raises(ValueError):
        diag.diagnosis_configs(["nope"])
    with pytest.raises(ValueError):
        diag.diagnosis_configs(cells=["(3,3)"])


def test_the_recorded_diagnosis_runs_keep_their_variant_and_hash_and_only_the_60k_variant_adds_2_1():
    by_hash = {c.config_hash(): v for v, c in diag.diagnosis_configs()}
    recs = [json.loads(x) for x in (ROOT / "docs/data/intrinsic_diagnosis.jsonl").read_text().splitlines()]
    assert recs and all(by_hash.get(r["config_hash"]) == r["variant"] for r in recs)
    heads = {(v, c.layer_heads) for v, c in diag.diagnosis_configs()}
    assert {v for v, h in heads if h == (2, 1)} == {"ffn_qzero_n64k_60k"}
    # the 60k variant is the adopted protocol but for its steps (and how often it evaluates)
    adopted = {(c.layer_heads, c.seed): c.as_dict() for _, c in diag.diagnosis_configs([diag.PROTOCOL_VARIANT])}
    for _, c in diag.diagnosis_configs(["ffn_qzero_n64k_60k"], cells=["(2,2)", "(1,2)"]):
        a = adopted[(c.layer_heads, c.seed)]
        assert {k for k in a if a[k] != c.as_dict()[k]} == {"steps", "eval_every"}
    # its (2,1) cell is the CPU spec's (2,1) cell at 60 000 steps
    from infoflow_jax.training.papers import load_paper_spec
    spec21 = {c.seed: c.as_dict() for c in load_paper_spec(ROOT / "sweeps/intrinsic_cpu.toml").configs
              if c.D == 2 and c.layer_heads == (2, 1)}
    for _, c in diag.diagnosis_configs(["ffn_qzero_n64k_60k"], cells=["(2,1)"]):
        a = spec21[c.seed]
        assert {k for k in a if a[k] != c.as_dict()[k]} == {"steps", "eval_every"}


def test_target_statistics_floors_are_ordered_as_their_predictors_are_nested():
    st = diag.target_statistics(T=8, D=2, n=4000)
    f = st["nmse_floor"]
    assert f["constant"] == 1.0 and f["linear"] > 0.95  # x → −x leaves y unchanged
    assert f["pooled_quadratic"] < 0.9
    assert f["one_chain_missing"] < f["pooled_quadratic"]
    assert st["var"] > 0 and len(st["var_share_m"]) == 2


def test_smoke_diagnosis_records_every_seed_of_the_cell_and_resumes(tmp_path, monkeypatch):
    recs = diag.run_diagnosis(tmp_path, ["base_1500"], smoke=True, progress=False, cells=["(2,2)"])
    assert sorted((r["variant"], tuple(r["heads"]), r["seed"]) for r in recs) == [
        ("base_1500", (2, 2), s) for s in diag.SEEDS]
    for r in recs:
        assert len(r["train_trace"]) == len(r["eval_trace"]) and "partner_mass" in r
        assert np.array(r["partner_mass"]).shape == (r["heads"][0], 2)
    monkeypatch.setattr(diag, "train_seeds", lambda cfgs: pytest.fail("retrained"))
    again = diag.run_diagnosis(tmp_path, ["base_1500"], smoke=True, progress=False, cells=["(2,2)"])
    assert len(again) == len(recs)
    fake = [{**r, "heads": [1, 2], "best_test_nmse": 2 * r["best_test_nmse"]} for r in again]
    table = diag.format_diagnosis(diag.summarize_diagnosis(again + fake))
    assert table.count("| base_1500 |") == 2 and "| 2.00× |" in table
    assert diag.plot_curves(again, tmp_path / "c.png").stat().st_size > 0
    probes = diag.format_probes(again)
    assert len(probes.splitlines()) == 2 + len(again) and "(" in probes.splitlines()[2]


def _fake(heads, nmse, D=2, ffn=0):
    return {"protocol": "papers", "task": "intrinsic", "D": D, "d": 4, "L": 2, "heads": list(heads),
            "h": heads[0], "T": 16, "E": 32, "W": 64, "residual": True, "layer_norm": False,
            "positional": "none", "steps": 100, "lr": 1e-3, "n_train": 80, "seed": 0,
            "seconds": 1.0, "best_test_nmse": nmse, "config": {"ffn": ffn}}


@pytest.mark.parametrize("values, verdict", [
    ((1e-3, 2e-2, 1.5e-2), "agrees"),          # 15× below both
    ((1e-3, 2e-2, 5e-3), "inconclusive"),      # only 5× below (D, D−1), and not all learned
    ((1e-4, 5e-4, 9e-4), "disagrees"),         # every cell learned: no separation to find
])
def test_intrinsic_separation_verdicts(values, verdict):
    from infoflow_jax.training.paper_report import format_separation, intrinsic_separation, summarize

    recs = [_fake(h, v) for h, v in zip(((2, 2), (1, 2), (2, 1)), values)]
    recs += [_fake((2, 2), 0.5, ffn=64)]  # another protocol: its own group, incomplete
    seps = intrinsic_separation(summarize(recs))
    assert len(seps) == 1 and seps[0]["verdict"] == verdict
    assert seps[0]["separation"] == pytest.approx(min(values[1:]) / values[0])
    assert f"| {verdict} |" in format_separation(seps)


def test_the_cpu_spec_runs_the_adopted_variant_and_the_gpu_spec_its_protocol():
    from infoflow_jax.training.papers import load_paper_spec

    adopted = {c.config_hash() for v, c in diag.diagnosis_configs([diag.PROTOCOL_VARIANT])}
    cpu = load_paper_spec(ROOT / "sweeps/intrinsic_cpu.toml").configs
    d2 = {c.config_hash() for c in cpu if c.D == 2 and c.layer_heads in diag.CELLS.values()}
    assert d2 == adopted
    gpu = [c for c in load_paper_spec(ROOT / "sweeps/infoflow_gpu.toml").configs
           if c.task == "intrinsic"]
    assert gpu and all(c.ffn > 0 and c.n_train == 64000 and c.query_init == "zero" and c.T == 64
                       for c in gpu)


def test_the_60k_spec_is_the_cpu_spec_at_4x_the_steps_and_its_d2_cells_are_the_third_round():
    from infoflow_jax.training.papers import load_paper_spec

    short = load_paper_spec(ROOT / "sweeps/intrinsic_cpu.toml").configs
    long = load_paper_spec(ROOT / "sweeps/intrinsic_cpu_60k.toml").configs
    assert len(long) == len(short)
    for a, b in zip(short, long):
        assert {k for k in a.as_dict() if a.as_dict()[k] != b.as_dict()[k]} == {"steps", "eval_every"}
        assert b.steps == 4 * a.steps
    third = {c.config_hash() for _, c in diag.diagnosis_configs(["ffn_qzero_n64k_60k"])}
    assert {c.config_hash() for c in long if c.D == 2} == third


def test_the_60k_spec_resumes_from_its_committed_records_with_nothing_left_to_train(tmp_path, capsys):
    """docs/data/intrinsic_cpu_60k.jsonl holds every configuration of the spec (its documented command
    would train nothing more), and `infoflow train --list` reads the spec."""
    from infoflow_jax.cli.train import main
    from infoflow_jax.training.papers import load_paper_spec

    assert main([str(ROOT / "sweeps/intrinsic_cpu_60k.toml"), "--out", str(tmp_path), "--list"]) == 0
    assert capsys.readouterr().out.strip().endswith("18 configurations")
    recorded = {json.loads(line)["config_hash"] for line in (ROOT / "docs/data/intrinsic_cpu_60k.jsonl").open()}
    assert {c.config_hash() for c in load_paper_spec(ROOT / "sweeps/intrinsic_cpu_60k.toml").configs} == recorded


def test_infoflow_predict_against_a_papers_run_prints_its_cells(tmp_path, capsys):
    from infoflow_jax.cli.app import main

    (tmp_path / "train.jsonl").write_text((ROOT / "docs/data/intrinsic_cpu.jsonl").read_text())
    assert main(["predict", "--against", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("| intrinsic |") == 6 and "fits, b = 1" in out
