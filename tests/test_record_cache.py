"""The record cache: `infoflow verify` reads back a built-in row that identical code, environment and
arguments verified before, and computes everything else (infoflow_jax/verification/record_cache.py).

Each test points INFOFLOW_RECORD_CACHE at its own folder (the suite keeps it off, conftest.py) and
runs one quick row of C1 in this process.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import run_main

from infoflow_jax.verification import record_cache
from infoflow_jax.verification.estimators import QUICK_BUDGET
from infoflow_jax.verification.records import failure_record

ROOT = Path(__file__).resolve().parents[1]
ROW = ["verify", "C1", "--T", "4", "--eps", "1e-1", "--quick", "--mutant", "none", "--jobs", "1", "--json"]
FROM_CACHE = "from the record cache"


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    folder = tmp_path / "records"
    monkeypatch.setenv(record_cache.CACHE_ENV, str(folder))
    return folder


def _entries(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.json"))


def test_a_rerun_reads_the_row_back_with_an_identical_record(cache_dir):
    status1, out1, err1 = run_main(ROW)
    status2, out2, err2 = run_main(ROW)
    assert status1 == status2 == 0
    assert FROM_CACHE not in err1 and "1 from the record cache" in err2
    assert json.loads(out1) == json.loads(out2)
    assert len(_entries(cache_dir)) == 1


def test_a_change_to_the_code_is_a_miss(cache_dir, monkeypatch):
    run_main(ROW)
    monkeypatch.setattr(record_cache, "code_fingerprint", lambda: "another version of the library")
    _, _, err = run_main(ROW)
    assert FROM_CACHE not in err and len(_entries(cache_dir)) == 2


def test_fresh_recomputes_the_row(cache_dir):
    run_main(ROW)
    _, _, err = run_main([*ROW, "--fresh"])
    assert FROM_CACHE not in err and len(_entries(cache_dir)) == 1


def test_an_unreadable_entry_is_computed_again_and_rewritten(cache_dir):
    _, out1, _ = run_main(ROW)
    (entry,) = _entries(cache_dir)
    entry.write_text('{"kind": "construction", "name"')  # torn
    status, out2, err = run_main(ROW)
    assert status == 0 and FROM_CACHE not in err
    assert json.loads(entry.read_text())["err_estimate"] == json.loads(out1)["err_estimate"]


def test_off_reads_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(record_cache.CACHE_ENV, "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    run_main(ROW)
    _, _, err = run_main(ROW)
    assert FROM_CACHE not in err and not list(tmp_path.rglob("*.json"))


def test_without_the_variable_the_cache_is_under_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.delenv(record_cache.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    run_main(ROW)
    _, _, err = run_main(ROW)
    assert "1 from the record cache" in err and len(_entries(tmp_path / "infoflow-jax" / "records")) == 1


def test_a_users_construction_is_never_cached(cache_dir):
    ref = f"{ROOT / 'verify' / 'own_construction.py'}:SPEC"
    argv = ["verify", ref, *ROW[2:]]
    run_main(argv)
    _, _, err = run_main(argv)
    assert FROM_CACHE not in err and not _entries(cache_dir)


def test_a_failure_record_is_not_stored(tmp_path):
    cache = record_cache.RecordCache(tmp_path)
    cache.put("ab" * 32, failure_record("C1", task="T1", T=4, error="MemoryError"))
    assert not _entries(tmp_path)


@pytest.mark.parametrize("change", [dict(name="C2"), dict(T=16), dict(eps=1e-2), dict(k=2), dict(beta=50.0),
                                    dict(mutant="value-sign-flipped"), dict(seed=1), dict(memory=1 << 30),
                                    dict(budget=replace(QUICK_BUDGET, steps=61)),
                                    dict(budget=replace(QUICK_BUDGET, search_dtype="float32"))])
def test_every_argument_of_a_row_is_in_its_key(tmp_path, change):
    row = dict(name="C1", T=4, eps=1e-1, k=None, beta=None, mutant=None, seed=0, budget=QUICK_BUDGET, memory=None)
    cache = record_cache.RecordCache(tmp_path)
    assert cache.key(**row) != cache.key(**{**row, **change})


def test_the_code_fingerprint_changes_with_a_construction_file(tmp_path):
    """The fingerprint reads the packages' files: a copy reads the same, a copy with one construction
    edited does not."""
    import shutil

    for name in record_cache.CODE_PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    roots = tuple((name, str(tmp_path / name)) for name in record_cache.CODE_PACKAGES)
    same = record_cache.code_fingerprint(roots)
    path = tmp_path / "constructions" / "c1_max_retriever.py"
    path.write_text(path.read_text() + "\n# an edit\n")
    record_cache.code_fingerprint.cache_clear()
    edited = record_cache.code_fingerprint(roots)
    assert same == record_cache.code_fingerprint() and edited != same
