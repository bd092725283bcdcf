"""Structural probes cost what they return, never a T·d × T·d array (issue 19: `--T 100000` ended in a
74.5 GiB `np.eye(T·d)` before the memory plan was consulted)."""

import tracemalloc

import numpy as np

from infoflow_jax.verification.probes import N_CORNERS, cube_probes


def test_cube_probes_at_fifty_thousand_tokens_allocate_only_the_probes():
    # np.eye(50 000) alone would need 20 GB; the probes themselves are 256 × 50 000 floats (100 MB)
    tracemalloc.start()  # NumPy reports its allocations here (a lazily zeroed eye would not show in RSS)
    try:
        X = cube_probes(50_000, 1, np.random.default_rng(0))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert X.shape == (N_CORNERS, 50_000, 1)
    assert peak < 4 * X.nbytes, f"peak {peak / 2 ** 30:.1f} GiB for {X.nbytes / 2 ** 30:.2f} GiB of probes"
    hot = X[2:2 + (N_CORNERS // 2 - 2) // 2, :, 0]
    assert np.all(hot.sum(1) == 1.0) and np.all((hot == 0) | (hot == 1))  # one-hots, then their complements
    assert np.all(X[2 + hot.shape[0]:2 + 2 * hot.shape[0], :, 0] == 1.0 - hot)


def test_cube_probes_list_every_one_hot_when_they_fit():
    X = cube_probes(8, 2, np.random.default_rng(0))[:, :, :].reshape(N_CORNERS, 16)
    assert np.array_equal(X[2:18], np.eye(16)) and np.array_equal(X[18:34], 1 - np.eye(16))


def test_a_sweep_at_a_billion_tokens_writes_a_failed_row_that_says_why(tmp_path, capsys):
    import json

    from infoflow_jax.cli import app

    spec = tmp_path / "big.toml"
    spec.write_text('name = "big"\n[[run]]\nconstruction = "C1"\nT = [1000000000]\neps = [1e-1]\n')
    status = app.main(["sweep", str(spec), "--out", str(tmp_path / "runs"), "--no-progress"])
    err = capsys.readouterr().err
    rows = [json.loads(line) for line in (tmp_path / "runs" / "results.jsonl").read_text().splitlines()]
    assert status == 1 and "Traceback" not in err
    assert len(rows) == 1 and rows[0]["kind"] == "failure" and rows[0]["config_hash"]
    assert "structural probes" in rows[0]["error"] and "T = 1000000000" in rows[0]["error"]
