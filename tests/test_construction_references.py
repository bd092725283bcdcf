"""A user's construction on the command line: references `file.py:SPEC` and `package.module:SPEC`,
installed entry points, in `infoflow verify`, sweep specs, `certify` and `report`.

The user's construction is verify/own_construction.py (`SPEC`, "Cmin"). Each test checks one
claim; runs use --quick, one ε and small T. The package cases (`mypkg.mine:SPEC`, entry points)
run in subprocesses whose PYTHONPATH holds a tiny package with a `mypkg-0.1.dist-info` folder,
which importlib.metadata discovers without pip; the worktree comes first on that path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
from helpers import run_main

from infoflow_jax.cli import app as cli
from infoflow_jax.verification.records import RECORD_KEYS

ROOT = Path(__file__).resolve().parents[1]
OWN = ROOT / "verify" / "own_construction.py"
REF = f"{OWN}:SPEC"
QUICK_POINT = ["--T", "4", "--eps", "1e-1", "--quick"]


def _own_spec():
    from infoflow_jax.catalog import lookup

    return lookup(REF)


def _records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# ----------------------------------------------------------------------------- verify, a path reference
@pytest.fixture(scope="module")
def path_run(tmp_path_factory):
    """`infoflow verify /abs/own_construction.py:SPEC` in table mode, --jobs 1, records to --out."""
    out_file = tmp_path_factory.mktemp("refs") / "records.jsonl"
    status, out, err = run_main(["verify", REF, *QUICK_POINT, "--jobs", "1", "--out", str(out_file)])
    return types.SimpleNamespace(status=status, out=out, err=err, records=_records(out_file.read_text()))


def test_path_reference_rows_carry_the_spec_name_and_every_record_key(path_run):
    recs = path_run.records
    assert [r["mutant"] for r in recs] == [None, *_own_spec().mutants]
    assert all(r["name"] == "Cmin" and r["task"] == "Tmin" and set(RECORD_KEYS) <= set(r) for r in recs)


def test_path_reference_prints_table_rows_and_summary_like_a_builtin(path_run):
    lines = path_run.out.splitlines()
    n = 1 + len(_own_spec().mutants)  # the real row and one per mutant
    assert lines[0].split()[:3] == ["name", "task", "T"] and all(line.startswith("Cmin ") for line in lines[2:2 + n])
    assert lines[-1].startswith(f"{n} rows: 1 passed, {n - 1} mutants caught, 0 unexpected")


def test_path_reference_exits_zero_when_rows_are_as_expected(path_run):
    assert path_run.status == 0 and path_run.err == ""


def test_relative_path_reference_runs_in_worker_processes(tmp_path, monkeypatch):
    """--jobs 2: the workers are spawned and resolve the reference again, from its absolute form."""
    monkeypatch.chdir(tmp_path)
    rel = os.path.relpath(OWN, tmp_path) + ":SPEC"
    status, out, _ = run_main(["verify", rel, "--T", "4,16", "--eps", "1e-1", "--mutant", "none", "--quick",
                               "--json", "--jobs", "2"])
    recs = _records(out)
    assert status == 0 and sorted((r["name"], r["T"]) for r in recs) == [("Cmin", 4), ("Cmin", 16)]


def test_list_of_a_file_without_spec_lists_what_it_defines(capsys):
    assert cli.main(["verify", str(OWN), "--list", "--json"]) == 0
    (info,) = _records(capsys.readouterr().out)
    assert info["name"] == "Cmin" and info["origin"] == REF


# ----------------------------------------------------------------------------- bad references
@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "raises.py").write_text("raise ZeroDivisionError('boom at import')\n")
    (d / "exits.py").write_text("import sys\nsys.exit(3)\n")
    (d / "empty.py").write_text("X = 1\n")
    (d / "clash.py").write_text("import dataclasses\nfrom constructions.c1_max_retriever import SPEC as C1\n"
                                "SPEC = dataclasses.replace(C1, summary='my C1')\n")
    return d


BAD_REFERENCES = {  # reference (DIR: the fixture's folder) → what the one line must say
    "no-such-file": ("DIR/nope.py:SPEC", "no such file"),
    "no-such-module": ("no_such_pkg_4711.mine:SPEC", "no module named no_such_pkg_4711.mine"),
    "no-such-attribute": (f"{OWN}:NOPE", "defines NOPE"),
    "not-a-spec": (f"{OWN}:build", "build is a function"),
    "module-raises-on-import": ("DIR/raises.py:SPEC", "ZeroDivisionError: boom at import"),
    "module-exits-on-import": ("DIR/exits.py:SPEC", "SystemExit: 3"),
    "module-defines-no-spec": ("DIR/empty.py", "defines none"),
    "built-in-name": ("DIR/clash.py:SPEC", "C1 is"),
}


@pytest.mark.parametrize("ref,says", BAD_REFERENCES.values(), ids=BAD_REFERENCES.keys())
def test_bad_reference_exits_2_with_one_line_naming_it(bad_files, capsys, ref, says):
    ref = ref.replace("DIR", str(bad_files))
    status = cli.main(["verify", ref, *QUICK_POINT])
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert status == 2 and captured.out == ""
    assert len(lines) == 1 and lines[0].startswith(f"infoflow verify: error: name = {ref!r} is out of range: ")
    assert says in lines[0]


def test_bad_reference_in_a_sweep_spec_names_the_run_field(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text('[[run]]\nconstruction = "nope.py:SPEC"\n')
    assert cli.main(["sweep", str(spec), "--out", str(tmp_path / "out")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("infoflow sweep: error: run[0].construction = 'nope.py:SPEC'") and \
        f"no such file: {tmp_path / 'nope.py'}" in line


# ----------------------------------------------------------------------------- sweep and report
@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    """A one-configuration sweep of the user's construction, named relative to the spec's folder."""
    d = tmp_path_factory.mktemp("sweep")
    rel = os.path.relpath(OWN, d) + ":SPEC"
    (d / "mine.toml").write_text(
        'name = "mine"\nmax_batch = 1\n[budget]\nsamples = 64\nstarts = 2\nsteps = 10\ngrid_points = 0\n'
        f'[[run]]\nconstruction = "{rel}"\nT = [4]\neps = [1e-1]\n')
    out = d / "out"
    status = run_main(["sweep", str(d / "mine.toml"), "--out", str(out), "--no-progress", "--no-compile-cache"])[0]
    report = run_main(["report", str(out), "--no-figures"])[0]
    return types.SimpleNamespace(status=status, out=out, report=report)


def test_sweep_of_a_reference_relative_to_the_spec_folder_runs(sweep_dir):
    (rec,) = _records((sweep_dir.out / "results.jsonl").read_text())
    assert sweep_dir.status == 0 and rec["name"] == "Cmin" and rec["passed"]


def test_sweep_manifest_keeps_the_absolute_reference(sweep_dir):
    manifest = json.loads((sweep_dir.out / "manifest.json").read_text())
    assert manifest["spec"]["run"][0]["construction"] == REF


def test_report_reads_the_expected_exponent_of_a_referenced_construction(sweep_dir):
    text = (sweep_dir.out / "report.md").read_text()
    (row,) = [line for line in text.splitlines() if line.startswith("| Cmin | 4 | – | 1 |")]
    assert sweep_dir.report == 0 and row.split("|")[7].strip() == "1"  # the column "expected b"


def test_report_of_an_unresolvable_reference_states_why(tmp_path):
    from infoflow_jax.sweep.report import write_report

    rec = {"name": "Cmin", "task": "Tmin", "T": 4, "eps": 0.1, "params_theorem": 37, "err_estimate": 0.03,
           "passed": True, "mutant": None}
    (tmp_path / "results.jsonl").write_text(json.dumps(rec) + "\n")
    spec = {"name": "gone", "run": [{"construction": "/nowhere/mine.py:SPEC"}]}
    (tmp_path / "manifest.json").write_text(json.dumps({"kind": "sweep", "spec": spec, "runs": []}))
    text = write_report(tmp_path, figures=False).read_text()
    assert "`/nowhere/mine.py:SPEC`: the reference cannot be resolved now" in text
    assert "no such file: /nowhere/mine.py" in text and "no expected exponent" in text


# ----------------------------------------------------------------------------- certify
def test_certify_resolves_a_path_reference_and_gives_a_row(capsys):
    cli.main(["certify", REF, "--T", "2", "--eps", "1e-1", "--mutant", "none", "--quick", "--budget-seconds", "1",
              "--json"])
    (rec,) = _records(capsys.readouterr().out)
    assert rec["name"] == "Cmin" and rec["certificate"] in ("certified", "refuted", "open")


# ----------------------------------------------------------------------------- packages and entry points
MINE = f'''"""A package module providing constructions (a renamed copy of the guide's Cmin)."""
import dataclasses
from infoflow_jax.catalog import lookup

SPEC = dataclasses.replace(lookup({REF!r}), name="Cmod")
PLUGGED = [dataclasses.replace(SPEC, name="Cplug")]
'''

# one in-process CLI call per key, in one interpreter: what each printed and returned
CALLS = """
import contextlib, io, json, sys
from infoflow_jax.cli.app import main
results = {}
for key, argv in json.loads(sys.argv[1]).items():
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    results[key] = {"status": status, "out": out.getvalue(), "err": err.getvalue()}
print(json.dumps(results))
"""


def _dist_info(folder: Path, name: str, entry_points: str) -> None:
    info = folder / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[infoflow_jax.constructions]\n{entry_points}\n")


def _env(*folders: Path) -> dict:
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *map(str, folders), env.get("PYTHONPATH", "")])
    return env


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    """good/: mypkg (a module and an entry point); broken/: an entry point whose module is missing."""
    good, broken = tmp_path_factory.mktemp("good"), tmp_path_factory.mktemp("broken")
    (good / "mypkg").mkdir()
    (good / "mypkg" / "__init__.py").write_text("")
    (good / "mypkg" / "mine.py").write_text(MINE)
    _dist_info(good, "mypkg", "plug = mypkg.mine:PLUGGED")
    _dist_info(broken, "brokenpkg", "broken = brokenpkg_missing.mod:SPEC")
    return types.SimpleNamespace(good=good, broken=broken)


@pytest.fixture(scope="module")
def package_calls(packages):
    calls = {
        "list": ["verify", "--list", "--json"],
        "entry": ["verify", "Cplug", *QUICK_POINT, "--mutant", "none", "--json", "--jobs", "1"],
        "module": ["verify", "mypkg.mine:SPEC", *QUICK_POINT, "--mutant", "none", "--json", "--jobs", "1"],
        "module-list": ["verify", "mypkg.mine", "--list", "--json"],
    }
    proc = subprocess.run([sys.executable, "-c", CALLS, json.dumps(calls)], capture_output=True, text=True,
                          env=_env(packages.good), timeout=600, cwd=packages.good)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_entry_point_construction_appears_in_list(package_calls):
    r = package_calls["list"]
    infos = {i["name"]: i for i in _records(r["out"])}
    assert r["status"] == 0 and infos["Cplug"]["origin"] == "entry point plug = mypkg.mine:PLUGGED (package mypkg)" and "C1" in infos and r["err"] == ""


def test_entry_point_construction_verifies_by_its_name(package_calls):
    r = package_calls["entry"]
    (rec,) = _records(r["out"])
    assert r["status"] == 0 and rec["name"] == "Cplug" and rec["passed"]


def test_module_reference_verifies(package_calls):
    r = package_calls["module"]
    (rec,) = _records(r["out"])
    assert r["status"] == 0 and rec["name"] == "Cmod" and rec["passed"]


def test_list_of_a_module_reference_lists_its_specs(package_calls):
    r = package_calls["module-list"]
    assert r["status"] == 0 and [(i["name"], i["origin"]) for i in _records(r["out"])] == [("Cmod", "mypkg.mine:SPEC")]


def test_broken_entry_point_warns_in_one_line_and_keeps_the_builtins(packages):
    proc = subprocess.run([sys.executable, "-m", "infoflow_jax.cli", "verify", "--list"], capture_output=True,
                          text=True, env=_env(packages.good, packages.broken), timeout=300)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 0 and "C1  [construction" in proc.stdout and "Cplug  [construction" in proc.stdout
    assert len(lines) == 1 and lines[0].startswith("infoflow: warning: entry point broken = brokenpkg_missing.mod")
    assert "ModuleNotFoundError" in lines[0]
