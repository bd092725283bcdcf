"""`infoflow verify`: records, exit status, mutant policy, --list, --out, the console script.

Each test checks one claim. The estimator runs use --quick and one grid point;
one module-scoped run of C1 (a real row and its three mutants) is shared by
the tests that only read its output.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
from helpers import run_main

from infoflow_jax.cli import app as cli
from infoflow_jax.cli import verify as cli_verify
from infoflow_jax.catalog import catalog, lookup
from infoflow_jax.core.errors import InputError
from infoflow_jax.verification.records import RECORD_KEYS

C1_ARGS = ["verify", "C1", "--T", "4", "--eps", "0.1", "--quick"]
SENTINEL = '{"sentinel": true}\n'


@pytest.fixture(scope="module")
def c1_run(tmp_path_factory):
    """One table-mode run of C1 at T=4, ε=0.1 with its mutants (default policy), --out onto a
    file that already holds a line. Its records are read back from that file."""
    out_file = tmp_path_factory.mktemp("verify") / "records.jsonl"
    out_file.write_text(SENTINEL)
    status, out, err = run_main([*C1_ARGS, "--out", str(out_file)])
    lines = out_file.read_text().splitlines()
    records = [json.loads(line) for line in lines[1:]]
    return types.SimpleNamespace(status=status, out=out, err=err, lines=lines, records=records)


def test_records_carry_every_record_key(c1_run):
    assert c1_run.records and all(set(RECORD_KEYS) <= set(r) for r in c1_run.records)


def test_record_beta_is_a_list_per_layer(c1_run):
    assert all(isinstance(r["beta"], list) and len(r["beta"]) == 1 for r in c1_run.records)


def test_default_policy_runs_the_real_row_and_every_mutant(c1_run):
    mutants = [r["mutant"] for r in c1_run.records]
    assert mutants == [None, *catalog()["C1"].mutants]


def test_real_row_passes(c1_run):
    assert c1_run.records[0]["mutant"] is None and c1_run.records[0]["passed"]


def test_every_mutant_row_fails_the_falsifier_a_step_or_the_proof_check(c1_run):
    # C1's glue mutants (interval-short, weight-understated) keep an error below the bound: only the
    # proof check sees them
    assert all(not r["passed"] or r["step_certified"] is False or r["proof_checked"] is False
               for r in c1_run.records if r["mutant"] is not None)


def test_exit_zero_when_real_rows_pass_and_mutants_fail(c1_run):
    assert c1_run.status == 0


def test_out_keeps_earlier_lines_and_appends_one_line_per_row(c1_run):
    assert c1_run.lines[0] == SENTINEL.strip() and len(c1_run.records) == 1 + len(catalog()["C1"].mutants)


def test_table_has_a_header_and_one_line_per_row(c1_run):
    lines = c1_run.out.splitlines()
    assert lines[0].split()[:3] == ["name", "task", "T"]
    body = [line for line in lines[2:] if line.startswith("C1 ")]
    assert len(body) == 1 + len(catalog()["C1"].mutants) and "PASS" in body[0]
    # every mutant line shows a failure: the falsifier's (FAIL) or the part of the proof check that failed
    assert all("FAIL" in line or any(f" {part} " in line for part in ("steps", "composition", "ideal"))
               for line in body[1:])


def test_table_ends_with_the_summary_line(c1_run):
    n = len(catalog()["C1"].mutants)
    assert c1_run.out.splitlines()[-1].startswith(f"{n + 1} rows: 1 passed, {n} mutants caught, 0 unexpected")


def test_real_row_failing_exits_one(capsys):
    # β = 1e-3 at ε = 1e-3: the bound computed from this β exceeds ε, so the real row must fail
    status = cli.main(["verify", "C1", "--T", "4", "--eps", "1e-3", "--beta", "1e-3", "--mutant", "none", "--quick", "--json"])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert status == 1 and len(records) == 1 and not records[0]["passed"] and not records[0]["expected"]


def test_mutant_that_passes_is_unexpected():
    record = {"mutant": "beta-small", "passed": True}
    from infoflow_jax.verification.records import expected_outcome

    assert not expected_outcome(record)


def test_list_shows_c1_and_l1(capsys):
    assert cli.main(["verify", "--list"]) == 0
    out = capsys.readouterr().out
    assert "C1" in out and "L1-softmax-max" in out and "beta-small" in out


def test_list_json_is_one_object_per_name(capsys):
    assert cli.main(["verify", "--list", "--json"]) == 0
    names = [json.loads(line)["name"] for line in capsys.readouterr().out.splitlines()]
    assert names == list(catalog())


# ----------------------------------------------------------------------------- mutant policy (planning only)
def _plan(names, **kw):
    registry = catalog()
    return cli_verify.plan_rows([registry[n] for n in names], **kw)


def test_default_mutant_policy_uses_one_representative_point():
    rows = _plan(["C1"])
    points = {(r.T, r.eps) for r in rows if r.mutant is not None}
    assert points == {(4, 1e-2)} and sum(r.mutant is None for r in rows) == 9


def test_mutant_all_runs_every_mutant_at_every_point():
    rows = _plan(["C1"], mutant="all")
    assert len(rows) == 9 * (1 + len(catalog()["C1"].mutants))


def test_mutant_none_runs_no_mutant():
    assert all(r.mutant is None for r in _plan(["C1", "L1-softmax-max"], mutant="none"))


def test_named_mutant_runs_only_that_mutant():
    rows = _plan(["C1"], mutant="knot-dropped")
    assert {r.mutant for r in rows} == {None, "knot-dropped"} and sum(r.mutant is not None for r in rows) == 9


def test_lemma_grid_is_T_times_beta():
    rows = _plan(["L1-softmax-max"], T=[2, 16], beta=[10.0, 100.0, 1e3], mutant="none")
    assert [(r.T, r.beta) for r in rows] == [(t, b) for t in (2, 16) for b in (10.0, 100.0, 1e3)]


def test_default_k_grid_skips_k_above_T():
    rows = _plan(["C3"], T=[2], mutant="none")
    assert rows and all(r.k <= 2 for r in rows)


def test_groups_keep_a_configuration_and_its_mutants_together():
    groups = cli_verify.family_groups(_plan(["C1"]))
    where = {(r.T, r.eps): i for i, g in enumerate(groups) for r in g if r.mutant is None}
    assert all(where[(r.T, r.eps)] == i for i, g in enumerate(groups) for r in g)


def test_groups_are_the_families_that_share_a_compiled_program():
    # one group per (spec, T, k): every ε and mutant of it runs in one process, on one program shape
    rows = _plan(["C1", "C3"])
    groups = cli_verify.family_groups(rows)
    assert sorted(len(g) for g in groups) == sorted(
        sum(1 for r in rows if (r.spec.name, r.T, r.k) == key) for key in {(r.spec.name, r.T, r.k) for r in rows})
    assert all(len({(r.spec.name, r.T, r.k) for r in g}) == 1 for g in groups)


def test_parallel_workers_return_every_row(capsys):
    argv = ["verify", "L1-softmax-max", "--T", "2", "--beta", "10,100", "--mutant", "none", "--quick", "--json"]
    status = cli.main([*argv, "--jobs", "2"])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert status == 0 and sorted(r["beta"][0] for r in records) == [10.0, 100.0]


# ----------------------------------------------------------------------------- dispatch
def test_input_error_in_any_subcommand_is_one_line_exit_two(monkeypatch):
    fake = types.ModuleType("infoflow_jax.cli.fake")
    fake.add_parser = lambda sub: sub.add_parser("fake")

    def run(args):
        raise InputError("widget", 3, "an even number")

    fake.run = run
    monkeypatch.setitem(sys.modules, "infoflow_jax.cli.fake", fake)
    monkeypatch.setattr(cli, "SUBCOMMANDS", [*cli.SUBCOMMANDS, "fake"])
    status, out, err = run_main(["fake"])
    assert status == 2 and err == "infoflow fake: error: widget = 3 is out of range: must be an even number\n"


def test_missing_subcommand_module_breaks_only_that_subcommand(monkeypatch):
    monkeypatch.setattr(cli, "SUBCOMMANDS", [*cli.SUBCOMMANDS, "nonexistent"])
    status, _, err = run_main(["nonexistent"])
    assert status == 1 and len(err.strip().splitlines()) == 1
    assert run_main(["verify", "--list"])[0] == 0


def test_subcommands_start_with_verify_and_predict():
    assert cli.SUBCOMMANDS[:2] == ["verify", "predict"]


# ----------------------------------------------------------------------------- console script
def _console_script():
    here = Path(sys.executable).parent / "infoflow"
    return str(here) if here.exists() else shutil.which("infoflow")


def test_console_script_runs_verify():
    exe = _console_script()
    assert exe, "the infoflow console script is not installed (pip install -e .)"
    proc = subprocess.run([exe, "verify", "C1", "--T", "4", "--eps", "0.1", "--quick", "--json"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]  # --json: stdout is records only
    n_mut = len(lookup("C1").mutants)
    assert len(records) == 1 + n_mut and all(set(RECORD_KEYS) <= set(r) for r in records)
    assert f"{1 + n_mut} rows: 1 passed, {n_mut} mutants caught, 0 unexpected" in proc.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers are forked on Linux only")
def test_workers_are_forked_before_the_xla_backend_starts_and_spawned_after():
    code = ("import jax; from infoflow_jax.cli.verify import fork_is_safe; before = fork_is_safe(); "
            "jax.devices(); print(before, fork_is_safe())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False"]


def test_a_jax_compilation_cache_dir_the_user_set_keeps_every_program(monkeypatch, tmp_path):
    import jax

    from infoflow_jax.core.devices import default_compile_cache, enable_compile_cache

    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", raising=False)
    monkeypatch.delenv("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", raising=False)
    enable_compile_cache(default_compile_cache())
    assert jax.config.jax_compilation_cache_dir == str(tmp_path)  # theirs, not ours
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 0.0  # not JAX's 1 s
    assert jax.config.jax_persistent_cache_min_entry_size_bytes == 0


def test_cache_thresholds_the_user_set_are_left_alone(monkeypatch, tmp_path):
    import jax

    from infoflow_jax.core.devices import enable_compile_cache

    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "2.5")
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "1000")
    enable_compile_cache(str(tmp_path))
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 2.5
    assert jax.config.jax_persistent_cache_min_entry_size_bytes == 1000
