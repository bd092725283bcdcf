"""benchmarks/sweep_throughput.py: one run writes one JSON that names the machine and whose numbers are
consistent with each other; its NumPy reference is the model; its FLOP count is XLA's.

The quick forward-only run (peak + C1) takes seconds; the whole ``--quick`` run (every section)
is marked slow.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infoflow_jax.core.numpy_forward import numpy_weights, predict_np

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "sweep_throughput.py"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _run(out: Path, *args: str) -> dict:
    proc = subprocess.run([sys.executable, str(SCRIPT), *args, "--out", str(out)], capture_output=True, text=True,
                          timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def quick_forward(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "quick_forward.json"
    return _run(out, "--quick", "--sections", "peak,forward", "--constructions", "C1")


def test_the_json_names_the_machine_and_its_load(quick_forward):
    m = quick_forward["machine"]
    assert m["cpu_model"] and m["cpu_count"] >= 1 and m["jax_backend"] == jax.default_backend()
    assert m["device_kind"] and m["versions"]["jax"] == jax.__version__
    assert len(m["load_average_start"]) == 3 and len(m["load_average_end"]) == 3
    assert quick_forward["summary"]["machine"].startswith(m["cpu_model"])


def test_the_peak_is_the_best_matmul_rate_measured(quick_forward):
    peaks = quick_forward["peak"]
    assert len(peaks) == 2  # at the start and at the end of the run
    for p in peaks:
        for key in ("float64", "numpy_float64"):
            assert p[key]["gflops"] == max(p[key]["by_size"].values()) > 0
    assert quick_forward["summary"]["peak_gflops_float64"] == max(p["float64"]["gflops"] for p in peaks)


def test_each_forward_path_agrees_with_jax_dense(quick_forward):
    (row,) = quick_forward["forward"]
    assert row["construction"] == "C1" and row["fast"] is not None
    assert row["fast"]["max_abs_diff_vs_dense"] < 1e-12
    assert row["numpy"]["max_abs_diff_vs_jax"] < 1e-12


def test_fraction_of_peak_is_flops_per_input_times_rate_over_peak(quick_forward):
    (row,) = quick_forward["forward"]
    peak = quick_forward["summary"]["peak_gflops_float64"]
    dense = row["dense"]
    assert dense["xla_flops_per_input"] > 0
    rate = dense["xla_flops_per_input"] * dense["inputs_per_s"] / 1e9
    assert dense["gflops"] == pytest.approx(rate, rel=1e-12)
    assert dense["fraction_of_peak"] == pytest.approx(rate / peak, rel=1e-12)
    assert row["jax_dense_over_numpy"] == pytest.approx(dense["inputs_per_s"] / row["numpy"]["inputs_per_s"])


def test_xla_flops_counts_a_matmul_as_two_m_k_n():
    from benchmarks.measure import compile_ahead, xla_flops

    a, b = jnp.ones((32, 48)), jnp.ones((48, 16))
    compiled, _ = compile_ahead(lambda x, y: x @ y, a, b)
    assert xla_flops(compiled) == 2 * 32 * 48 * 16


@pytest.mark.parametrize("name, T, eps, options", [
    ("C4", 4, 1e-2, {"k": 2}),  # one-hot positional code
    ("C5", 2, 0.3, {}),  # per-position input matrix A_s, grouped FFN layers
    ("C7", 4, 0.1, {}),  # two heads, d = 2
])
@pytest.mark.parametrize("shortcuts", [False, True])
def test_numpy_forward_is_the_model(name, T, eps, options, shortcuts):
    from infoflow_jax.catalog import catalog
    from infoflow_jax.core.model import apply
    from infoflow_jax.core.samplers import sample

    built = catalog()[name].build(T, eps, **options)
    task = built.task
    X = np.asarray(sample("uniform", jax.random.PRNGKey(3), 32, T, task.d, task.domain))
    graphdef, state = built.split()
    want = np.asarray(jax.jit(jax.vmap(lambda x: apply(graphdef, state, x)))(jnp.asarray(X)))
    model = built.compiled.model
    got = predict_np(model, X, numpy_weights(model, shortcuts=shortcuts))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("args, argument", [
    (["--sections", "peak,nope"], "--sections"),
    (["--device", "tpu"], "--device"),
    (["--dtype", "float16"], "--dtype"),
    (["--constructions", "C9"], "--constructions"),
])
def test_bad_arguments_exit_2_with_one_line_naming_them(args, argument, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("sweep_throughput_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and argument in err[0] and "out of range" in err[0]


@pytest.mark.slow
def test_the_quick_run_writes_every_section_and_the_ways_agree(tmp_path):
    r = _run(tmp_path / "quick.json", "--quick")
    assert set(r["sections"]) == {"peak", "forward", "sweep", "batching"}
    (sw,) = r["sweep"]
    assert sw["engine"]["compilations"] < sw["per_config_jit"]["compilations"] == sw["per_config_jit"]["configs"]
    # the engine and the fresh per-configuration jit estimate the same thing (same seed, same inputs)
    assert sw["estimates_max_rel_diff_engine_vs_per_config"] < 1e-9
    # NumPy on the same fixed inputs finds the engine's non-ascent maxima
    assert sw["numpy_fixed_inputs"]["max_rel_diff_vs_engine_fixed_estimators"] < 1e-9
    s = r["summary"]["sweep_float64"]
    assert s["wall_per_config_jit_over_engine"] == [pytest.approx(
        sw["per_config_jit"]["wall_seconds"] / sw["engine"]["wall_seconds"])]
    assert {row["construction"] for row in r["summary"]["forward"]} == {"C1", "C2", "C3"}
