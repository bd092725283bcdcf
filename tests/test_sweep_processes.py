"""`infoflow sweep` over several processes with jax.distributed (issue 21 item 4), on 127.0.0.1 with
2 CPU processes: the merged results equal a 1-process run's, and killing a process then rerunning
resumes to the same results. Bad process flags exit 2 with one line."""

from __future__ import annotations

import json
import random
import signal
import socket
import subprocess
import time

import numpy as np
import pytest

from infoflow_jax.cli import app as cli
from infoflow_jax.verification.store import part_dir, read_results
from helpers import run_sweep, sweep_command, sweep_env

# two families (C1 at T = 2 and at T = 4: one per process), each a real configuration and a mutant,
# one configuration per call (so a kill can fall between records)
SPEC = """
name = "two-families"
bucket = "pow2"
max_batch = 1
[budget]
samples = 128
starts = 2
steps = 40
grid_points = 81
chunk = 128
polish_levels = 4
[[run]]
construction = "C1"
T = [2, 4]
eps = [1e-1]
mutants = ["knot-dropped"]
"""
N_CONFIGS = 4
TIMING = ("seconds", "compile_seconds")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(spec, out, cache, n=2, logs=None):
    port = _free_port()
    procs = []
    for i in range(n):
        log = open(logs / f"p{i}.log", "a") if logs else subprocess.DEVNULL
        procs.append(subprocess.Popen(sweep_command(spec, out, cache, "--coordinator", f"127.0.0.1:{port}",
                                           "--num-processes", str(n), "--process-id", str(i)),
                                      env=sweep_env(), stdout=log, stderr=log))
    return procs


def _wait(procs, logs, timeout=300):
    codes = [p.wait(timeout=timeout) for p in procs]
    assert codes == [0] * len(procs), [(c, (logs / f"p{i}.log").read_text()[-2000:]) for i, c in enumerate(codes)]


@pytest.fixture(scope="module")
def one(tmp_path_factory):
    root = tmp_path_factory.mktemp("procs")
    spec = root / "spec.toml"
    spec.write_text(SPEC)
    cache = root / "xla_cache"
    run_sweep(spec, root / "one", cache)
    records = read_results(root / "one")
    assert len(records) == N_CONFIGS
    return {"root": root, "spec": spec, "cache": cache, "records": records}


def _same_as_one_process(records, one):
    """Deterministic estimators (grid, samplers, probes) equal; the ascent within the devices'
    documented tolerance (rtol 1e-12, docs/sweeps.md); everything else but timings equal."""
    got = {r["config_hash"]: r for r in records}
    ref = {r["config_hash"]: r for r in one["records"]}
    assert got.keys() == ref.keys()
    for h, r in ref.items():
        g = got[h]
        ascent = ("adversarial", "polish")
        assert {k: v for k, v in g["estimates"].items() if k not in ascent} == \
            {k: v for k, v in r["estimates"].items() if k not in ascent}, h
        for k in ascent:
            np.testing.assert_allclose(g["estimates"][k], r["estimates"][k], rtol=1e-12, atol=0)
        np.testing.assert_allclose(g["err_estimate"], r["err_estimate"], rtol=1e-12, atol=0)
        skip = set(TIMING) | {"estimates", "err_estimate", "worst_input"}
        assert {k: v for k, v in g.items() if k not in skip} == {k: v for k, v in r.items() if k not in skip}, h


def test_two_processes_merge_into_the_one_process_results(one, tmp_path):
    out = tmp_path / "two"
    _wait(_start(one["spec"], out, one["cache"], logs=tmp_path), tmp_path)
    merged = read_results(out)
    assert len(merged) == N_CONFIGS
    parts = [read_results(part_dir(out, i)) for i in range(2)]
    assert sorted(len(p) for p in parts) == [2, 2]  # the two families went to different processes
    assert {r["T"] for r in parts[0]} != {r["T"] for r in parts[1]}
    _same_as_one_process(merged, one)
    manifest = json.loads((out / "manifest.json").read_text())
    run = manifest["runs"][-1]
    assert run["status"] == "complete" and run["stats"]["process_count"] == 2
    assert manifest["devices"]["process_count"] == 2


def test_killing_a_process_then_rerunning_resumes(one, tmp_path):
    out = tmp_path / "killed"
    procs = _start(one["spec"], out, one["cache"], logs=tmp_path)
    rng = random.Random(time.time_ns())
    victim = rng.randrange(2)
    started = part_dir(out, victim) / "manifest.json"
    deadline = time.time() + 300
    while procs[victim].poll() is None and time.time() < deadline and not started.exists():
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 3.0))  # a random point: building, compiling, between records, or done
    procs[victim].send_signal(signal.SIGKILL)
    procs[victim].wait(timeout=60)
    time.sleep(0.5)
    for p in procs:  # the survivor cannot finish (its barrier waits for the dead one): stop it too
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)
    before = sum(len(read_results(part_dir(out, i))) for i in range(2))
    _wait(_start(one["spec"], out, one["cache"], logs=tmp_path), tmp_path)
    _same_as_one_process(read_results(out), one)
    done_before = sum(json.loads((part_dir(out, i) / "manifest.json").read_text())["runs"][-1]["stats"]
                      ["configs_done_before"] for i in range(2))
    assert done_before == 2 * before  # each process skips every configuration any process had stored


@pytest.mark.slow
def test_a_single_process_rerun_merges_the_parts(one, tmp_path):
    """A multi-process folder finished by one process: it skips the parts' records and merges them."""
    import shutil

    out = tmp_path / "mixed"
    part = part_dir(out, 1)
    part.mkdir(parents=True)
    ref = read_results(one["root"] / "one")
    lines = [json.dumps(r) + "\n" for r in ref[:2]]
    (part / "results.jsonl").write_text("".join(lines))
    run_sweep(one["spec"], out, one["cache"])
    stats = json.loads((out / "manifest.json").read_text())["runs"][-1]["stats"]
    assert stats["configs_done_before"] == 2 and stats["configs_run"] == N_CONFIGS - 2
    _same_as_one_process(read_results(out), one)
    shutil.rmtree(out)


BAD = {
    "num-processes-zero": (["--num-processes", "0", "--process-id", "0", "--coordinator", "127.0.0.1:1"],
                           "num-processes"),
    "process-id-too-large": (["--num-processes", "2", "--process-id", "2", "--coordinator", "127.0.0.1:1"],
                             "process-id"),
    "process-id-negative": (["--num-processes", "2", "--process-id=-1", "--coordinator", "127.0.0.1:1"],
                            "process-id"),
    "process-id-not-an-integer": (["--num-processes", "2", "--process-id", "one"], "process-id"),
    "process-id-missing": (["--num-processes", "2", "--coordinator", "127.0.0.1:1"], "process-id"),
    "coordinator-missing": (["--num-processes", "2", "--process-id", "1"], "coordinator"),
    "coordinator-without-port": (["--num-processes", "2", "--process-id", "1", "--coordinator", "localhost"],
                                 "coordinator"),
    "num-processes-missing": (["--process-id", "1"], "num-processes"),
}


@pytest.mark.parametrize("extra,argument", BAD.values(), ids=BAD.keys())
def test_bad_process_flags_exit_2_with_one_line(capsys, monkeypatch, tmp_path, extra, argument):
    for k in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(k, raising=False)
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    status = cli.main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--no-compile-cache", *extra])
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert status == 2
    assert len(lines) == 1 and lines[0].startswith(f"infoflow sweep: error: {argument} = "), captured.err
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "out").exists()
