"""The sweep engine end to end, on a tiny spec (C1 at T = 4, two ε, one mutant: 2 pow2 buckets).

One uninterrupted reference run (a subprocess of ``infoflow sweep`` with a
persistent compilation cache shared by every run of this module) serves:
compilations ≤ buckets, records equal to ``verify_construction``'s, kill +
resume equality (SIGINT and SIGKILL at random points), and 1 vs 4 (virtual)
devices.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time

import numpy as np
import pytest

from infoflow_jax.core.precision import use_float64

use_float64()

from infoflow_jax.verification import records  # noqa: E402
from helpers import run_sweep, sweep_command, sweep_env  # noqa: E402
from infoflow_jax.verification.store import read_results, repair  # noqa: E402

SPEC = """
name = "tiny"
bucket = "pow2"
max_batch = 1
[budget]
samples = 512
starts = 4
steps = 400
grid_points = 81
chunk = 128
[[run]]
construction = "C1"
T = [4]
eps = [1e-1, 1e-2]
mutants = ["knot-dropped", "interval-short"]
"""
N_CONFIGS = 6
N_BUCKETS = 2  # ε = 0.1 → width 43 → 64; ε = 0.01 → 416 → 512 (a mutant shares its ε's bucket)
TIMING = ("seconds", "compile_seconds")


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    """The uninterrupted reference run (1 device), with JAX's compile log on."""
    root = tmp_path_factory.mktemp("sweep")
    spec = root / "tiny.toml"
    spec.write_text(SPEC)
    cache = root / "xla_cache"
    out = root / "ref"
    proc = run_sweep(spec, out, cache, JAX_LOG_COMPILES="1")
    return {"root": root, "spec": spec, "cache": cache, "out": out, "log": proc.stderr,
            "records": read_results(out), "manifest": json.loads((out / "manifest.json").read_text())}


def _strip(records):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def test_compilations_do_not_exceed_buckets(ref):
    stats = ref["manifest"]["runs"][-1]["stats"]
    compiled = [line for line in ref["log"].splitlines() if "Compiling jit(sweep_bucket_program)" in line]
    assert stats["buckets"] == N_BUCKETS
    assert stats["compilations"] <= stats["buckets"]
    assert 1 <= len(compiled) <= stats["buckets"]
    assert len(ref["records"]) == N_CONFIGS


def test_sweep_record_equals_verify_construction_record(ref):
    from infoflow_jax.catalog import lookup
    from infoflow_jax.verification.estimators import Budget
    from infoflow_jax.verification.verify import verify_construction

    budget = Budget(samples=512, starts=4, steps=400, grid_points=81, chunk=128)
    v = verify_construction(lookup("C1"), T=4, eps=0.1, budget=budget).to_json()
    (r,) = [r for r in ref["records"] if r["eps"] == 0.1 and r["mutant"] is None]
    assert set(r) == set(v)  # one record type
    sweep_only = {"config_hash", "bucket", "compile_seconds"}
    assert all(r[k] is not None for k in sweep_only) and all(v[k] is None for k in sweep_only)
    assert r["err_estimate"] == pytest.approx(v["err_estimate"], rel=1e-9)
    assert r["estimator"] == v["estimator"] and r["passed"] == v["passed"]
    for key in ("params_theorem", "bound", "beta", "choices", "step_certified", "proof_checked"):
        assert r[key] == v[key]
    assert r["derived_bound"] == pytest.approx(v["derived_bound"], rel=1e-12)


def test_a_mutant_wrong_only_in_its_proofs_glue_fails_the_sweeps_proof_check(ref):
    # interval-short: C1's decoder claimed (and certified) on [0, 0.9] while its input reaches 1; the
    # falsifier passes it, the proof check does not — as in `infoflow verify`
    rows = [r for r in ref["records"] if r["mutant"] == "interval-short"]
    assert len(rows) == 2
    for r in rows:
        failed = [part for part, v in r["proof"].items() if part != "falsifier" and str(v).startswith("failed")]
        assert r["passed"] and r["proof_checked"] is False and failed, r["proof"]
        assert records.expected_outcome(r)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_kill_and_resume_equals_uninterrupted(ref, tmp_path, sig):
    """Killed at a random point (before, between or after records), then rerun: the same lines."""
    out = tmp_path / "run"
    rng = random.Random(f"{sig}-{time.time_ns()}")
    after_lines = rng.randint(0, N_CONFIGS - 1)
    log = open(tmp_path / "killed.log", "w")
    proc = subprocess.Popen(sweep_command(ref["spec"], out, ref["cache"]), env=sweep_env(), stdout=log, stderr=log)
    results = out / "results.jsonl"
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        n = results.read_bytes().count(b"\n") if results.exists() else -1
        if n >= after_lines and (n > 0 or (out / "manifest.json").exists()):
            time.sleep(rng.uniform(0.0, 0.3))
            proc.send_signal(sig)
            break
        time.sleep(0.005)
    proc.wait(timeout=300)
    log.close()
    if sig == signal.SIGINT:  # Ctrl-C stops cleanly (130), unless the run had already finished (0)
        assert proc.returncode in (0, 130, -signal.SIGINT), (tmp_path / "killed.log").read_text()[-2000:]
    killed_lines = len(read_results(out))
    run_sweep(ref["spec"], out, ref["cache"])
    assert _strip(read_results(out)) == _strip(ref["records"]), f"killed after {killed_lines} lines"
    runs = json.loads((out / "manifest.json").read_text())["runs"]
    assert runs[-1]["status"] == "complete" and runs[-1]["stats"]["configs_done_before"] == killed_lines


def test_half_written_last_line_is_discarded(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_bytes(b'{"config_hash": "a", "x": 1}\n{"config_hash": "b", "x": 2}\n{"config_hash": "c", "x"')
    records, discarded = repair(path)
    assert [r["config_hash"] for r in records] == ["a", "b"] and discarded == 1
    assert path.read_bytes().endswith(b'"x": 2}\n')


def test_rerun_of_a_finished_sweep_skips_everything(ref, tmp_path):
    import shutil

    out = tmp_path / "again"
    shutil.copytree(ref["out"], out)
    before = (out / "results.jsonl").read_bytes()
    run_sweep(ref["spec"], out, ref["cache"])
    assert (out / "results.jsonl").read_bytes() == before
    assert json.loads((out / "manifest.json").read_text())["runs"][-1]["stats"]["compilations"] == 0


def test_four_virtual_devices_match_one_device(ref, tmp_path):
    out = tmp_path / "dev4"
    run_sweep(ref["spec"], out, ref["cache"], XLA_FLAGS="--xla_force_host_platform_device_count=4")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["devices"]["device_count"] == 4
    four = {r["config_hash"]: r for r in read_results(out)}
    one = {r["config_hash"]: r for r in ref["records"]}
    assert four.keys() == one.keys()
    for h, r in one.items():
        for key in ("estimator", "passed"):
            assert four[h][key] == r[key], (key, h)
        # grid, samplers and probes: the same inputs (drawn on the host) and the same forward: equal
        deterministic = {k: v for k, v in r["estimates"].items() if k not in ("adversarial", "polish")}
        assert {k: four[h]["estimates"][k] for k in deterministic} == deterministic, h
        # the ascent and its polish (one scan): the partitioned program may fuse its forward-and-gradient
        # differently, so the
        # maximum it reaches agrees to float64 rounding, not bit for bit (docs/sweeps.md, devices)
        np.testing.assert_allclose(four[h]["err_estimate"], r["err_estimate"], rtol=1e-12, atol=0)
        for ascent in ("adversarial", "polish"):
            if ascent in r["estimates"]:
                np.testing.assert_allclose(four[h]["estimates"][ascent], r["estimates"][ascent], rtol=1e-12, atol=0)
        # the input attaining a (flat) maximum may move in its last bits: the partitioned
        # program rounds differently inside the ascent, not in the maximum it reaches
        np.testing.assert_allclose(four[h]["worst_input"], r["worst_input"], rtol=0, atol=1e-9)


def test_a_used_folder_refuses_a_different_spec(ref, tmp_path):
    from infoflow_jax.core.errors import InputError
    from infoflow_jax.verification.store import ResultsStore
    from infoflow_jax.sweep.spec import load_spec

    other = tmp_path / "other.toml"
    other.write_text(SPEC.replace("eps = [1e-1, 1e-2]", "eps = [1e-1]"))
    with pytest.raises(InputError, match="^out = .*different spec"):
        ResultsStore(ref["out"]).open(load_spec(other))
