"""benchmarks/verify_breakdown.py: its smoke run works end to end (so the benchmark cannot rot), and
the phase accounting it rests on (infoflow_jax.core.phases) gives each instant to one label."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import verify_breakdown as vb  # noqa: E402
from infoflow_jax.core.phases import exclusive_seconds  # noqa: E402


def test_exclusive_seconds_give_each_instant_to_the_innermost_interval():
    # build 0–10 s with a trace 2–3 s and a compile 3–6 s inside it, then evaluate 10–12 s
    got = exclusive_seconds([(0, 10, "build"), (2, 3, "trace"), (3, 6, "compile"), (10, 12, "evaluate")])
    assert got == {"build": 6, "trace": 1, "compile": 3, "evaluate": 2}


def test_exclusive_seconds_count_a_nested_trace_once():
    got = exclusive_seconds([(0, 4, "trace"), (1, 2, "trace"), (4, 5, "compile")])
    assert got == {"trace": 4, "compile": 1}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("breakdown")
    vb.main(["--smoke", "--out", str(out)])
    return out


def test_smoke_run_writes_the_table_and_every_section(smoke):
    doc = json.loads((smoke / "verify_breakdown_cpu_smoke.json").read_text())
    names = [s["section"] for s in doc["sections"]]
    assert names == ["verify (smoke)", "sweep (smoke)", "user first (smoke)", "user again (smoke)"]
    assert all(s["unexpected"] == 0 for s in doc["sections"])
    assert "| verify (smoke) |" in (smoke / "verify_breakdown_cpu_smoke.md").read_text()


def test_every_section_s_shares_add_up_to_its_busy_time(smoke):
    for s in json.loads((smoke / "verify_breakdown_cpu_smoke.json").read_text())["sections"]:
        assert abs(sum(s["share"].values()) - 1.0) < 1e-9 and s["seconds"].get("evaluate", 0) > 0


def test_a_second_build_of_the_same_construction_compiles_no_new_estimator_program(smoke):
    again = json.loads((smoke / "verify_breakdown_cpu_smoke.json").read_text())["sections"][3]
    assert "jit(program)" not in again["program_names"]
