"""Accelerator readiness (issue 21): the install extras, the device line, the float32 search with a
float64 verdict, and the prepared accelerator benchmark's smoke run."""

from __future__ import annotations

import importlib.metadata as md
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _readme_extras() -> list[str]:
    return re.findall(r"pip install -e '\.\[([a-z0-9-]+)\]'", (ROOT / "README.md").read_text())


def test_readme_accelerator_extras_are_extras_of_the_installed_jax():
    """Every `pip install -e '.[X]'` of the README is a declared extra; an accelerator extra requires
    jax[Y] with Y an extra the installed jax provides (so pip can resolve it; not installed in CI)."""
    extras = _readme_extras()
    assert {"cuda12", "tpu", "test"} <= set(extras)
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    provided = set(md.metadata("jax").get_all("Provides-Extra"))
    for extra in extras:
        assert extra in declared, extra
        if extra == "test":
            continue
        (req,) = declared[extra]
        m = re.fullmatch(r"jax\[([a-z0-9-]+)\](>=[0-9.]+)?", req)
        assert m and m.group(1) in provided, (extra, req, sorted(provided))


def test_device_info_names_the_backend_and_its_devices():
    import jax

    proc = subprocess.run([sys.executable, "-m", "infoflow_jax.cli.app", "verify", "--device-info"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (line,) = proc.stdout.splitlines()
    assert line.startswith(f"backend {jax.default_backend()} ")
    assert f"{jax.device_count()} device" in line and "process 0 of 1" in line


# ----------------------------------------------------------------------------- float32 search, float64 verdict
def _search_program_text(name, T, eps, k=None, fast=False):
    import numpy as np

    from infoflow_jax.catalog import lookup
    from infoflow_jax.core.fast_model import fast_plan, shared_shape
    from infoflow_jax.core.precision import search_precision, to_search_dtype, use_float64
    from infoflow_jax.verification.construction import error_function, fast_error_function
    from infoflow_jax.verification.estimators import QUICK_BUDGET, VERDICT_TOP, draw_for_seed, evaluate_program

    use_float64()
    built = lookup(name).build(T, eps, **({"k": k} if k else {}))
    graphdef, state = built.split()
    if fast:
        err, params = fast_error_function(built.task), shared_shape(fast_plan(graphdef, state))
    else:
        err, params = error_function(graphdef, built.task), state
    drawn = draw_for_seed(0, domain=built.task.domain, T=T, d=built.task.d, budget=QUICK_BUDGET)
    probes = tuple(np.asarray(p) for p in dict(built.probes).values())
    args = (params, drawn, probes, np.asarray(1e-7))
    program = evaluate_program(err, built.task.domain, QUICK_BUDGET, 128, None, VERDICT_TOP)
    with search_precision("float32"):
        f32 = program.lower(*to_search_dtype(args, "float32")).as_text()
    f64 = program.lower(*args).as_text()
    return f32, f64


@pytest.mark.parametrize("name,T,k,fast", [("C2", 4, None, False), ("C3", 4, 2, True)], ids=["C2-dense", "C3-fast"])
def test_the_float32_search_program_compiles_no_float64_operation(name, T, k, fast):
    """The lowered float32 search (grid, samplers, probes, ascent, polish) has no f64 (and no 64-bit
    integer tensor): it runs on a TPU. The same program lowered for float64 has them (the check can fail)."""
    f32, f64 = _search_program_text(name, T, 1e-2, k, fast)
    assert "f64" not in f32 and not re.search(r"tensor<[^>]*i64>", f32)
    assert "f32" in f32 and "f64" in f64


def test_a_float32_search_estimate_is_the_float64_error_at_the_input_it_found():
    import numpy as np
    from dataclasses import replace

    from infoflow_jax.catalog import lookup
    from infoflow_jax.core.precision import use_float64
    from infoflow_jax.verification.construction import error_function
    from infoflow_jax.verification.estimators import QUICK_BUDGET
    from infoflow_jax.verification.verify import verify

    use_float64()
    built = lookup("C1").build(4, 1e-2, mutant="beta-small")
    rec = verify(built, budget=replace(QUICK_BUDGET, search_dtype="float32"), fast=False)
    assert rec.search_dtype == "float32" and rec.search_note is None
    graphdef, state = built.split()
    X = np.asarray(rec.worst_input, np.float64)
    np.testing.assert_array_equal(np.asarray(built.task.domain.retract(X)), X)  # an input of the domain
    # its float64 error, to float64 rounding (a batched evaluation may differ in the last bit)
    assert rec.err_estimate == pytest.approx(float(error_function(graphdef, built.task)(state, X)), rel=1e-12)
    assert not rec.passed and rec.err_estimate > rec.bound  # caught by the float32 search


def test_below_the_float32_floor_the_search_falls_back_to_float64_with_a_line(capsys):
    from infoflow_jax.cli import app as cli
    from infoflow_jax.core.precision import F32_SEARCH_MIN_EPS

    eps = F32_SEARCH_MIN_EPS / 2
    status = cli.main(["verify", "C1", "--T", "2", "--eps", f"{eps:g}", "--mutant", "none", "--quick", "--jobs", "1",
                       "--search-dtype", "float32", "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    import json

    (rec,) = [json.loads(line) for line in captured.out.splitlines()]
    assert rec["search_dtype"] == "float64" and "below" in rec["search_note"]
    assert any(line.startswith("infoflow: C1 T=2") and "searching in float64, not float32" in line
               for line in captured.err.splitlines())


# ----------------------------------------------------------------------------- the prepared accelerator run
@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks import accelerator

    out = tmp_path_factory.mktemp("accelerator")
    doc = accelerator.main(["--smoke", "--out", str(out), "--budget-seconds", "600"])
    return out, doc


def test_accelerator_smoke_run_completes_every_section_and_names_the_device(smoke):
    import jax

    out, doc = smoke
    stem = f"accelerator_{jax.default_backend()}_smoke"
    assert json_load(out / f"{stem}.json")["device"] == doc["device"]
    assert [s["section"] for s in doc["sections"]] == ["rows", "sweep", "roofline", "verify-default"]
    assert all("result" in s for s in doc["sections"]), [s.get("skipped") for s in doc["sections"]]
    md = (out / f"{stem}.md").read_text()
    assert doc["device"] in md and "| roofline |" in md and "| verify-default |" in md
    sec = {s["section"]: s["result"] for s in doc["sections"]}
    for dtype, run in sec["rows"]["by_search_dtype"].items():  # C2 and C3, each in the dtype asked for
        assert run["status"] == "ok" and [r["name"] for r in run["rows"]] == ["C2", "C3"], run
        assert all(r["search_dtype"] == dtype and r["passed"] for r in run["rows"])
    assert sec["sweep"]["status"] == "ok" and sec["sweep"]["unexpected"] == 0 and sec["sweep"]["rows"] >= 1


def test_accelerator_smoke_roofline_divides_measured_rates_by_the_datasheet_peak(smoke):
    from benchmarks.accelerator import peak_for

    _, doc = smoke
    roof = next(s["result"] for s in doc["sections"] if s["section"] == "roofline")
    assert roof["peak"] == peak_for(roof["device_kind"])
    for dtype, row in roof["by_dtype"].items():
        assert row["flops"] > 0 and row["flop_per_s"] == pytest.approx(row["flops"] / row["min_s"])
        if roof["peak"] is None:  # a CPU: no datasheet entry, no fraction claimed
            assert "flop_fraction_of_peak" not in row
    assert peak_for("NVIDIA H100 80GB HBM3")["float64"] == 34e12 and peak_for("NVIDIA H100 PCIe")["match"] == "H100 PCIe"
    assert peak_for("cpu") is None


def test_accelerator_smoke_float32_search_gives_every_row_the_float64_search_outcome(smoke):
    _, doc = smoke
    cmp = next(s["result"] for s in doc["sections"] if s["section"] == "verify-default")
    runs = cmp["by_search_dtype"]
    assert runs["float32"]["searched"]["float32"] == runs["float32"]["rows"] > 1  # the mutants too
    assert cmp["same_rows"] and cmp["expected_differs"] == [] and runs["float64"]["unexpected"] == 0
    assert cmp["wall_ratio_float64_over_float32"] == pytest.approx(runs["float64"]["wall_s"] / runs["float32"]["wall_s"])


def json_load(path):
    import json

    return json.loads(Path(path).read_text())


def test_the_float64_verdict_runs_on_the_host_cpu_where_the_backend_has_no_float64():
    import jax

    from infoflow_jax.core.devices import float64_device

    assert float64_device("tpu") == jax.devices("cpu")[0]
    assert float64_device("cpu") is None and float64_device("gpu") is None
