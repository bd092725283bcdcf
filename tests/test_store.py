"""The one JSON-lines store: durable appends, torn-tail repair, corruption refused."""

from __future__ import annotations

import pytest

from infoflow_jax.core.errors import InputError
from infoflow_jax.verification.store import JsonlFile, read_jsonl, repair


def test_opening_cuts_a_torn_last_line_and_appends_after_it(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": 2}\n{"c": 3')
    with JsonlFile(path) as f:
        assert f.records == [{"a": 1}, {"b": 2}] and f.discarded == 1
        f.append({"d": 4})
    assert read_jsonl(path) == [{"a": 1}, {"b": 2}, {"d": 4}]


def test_a_corrupt_line_before_the_last_is_an_input_error_naming_the_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"a": 1}\n{"broken\n{"b": 2}\n')
    with pytest.raises(InputError, match="line 2"):
        repair(path)


def test_reading_leaves_a_torn_file_untouched(tmp_path):
    path = tmp_path / "r.jsonl"
    data = b'{"a": 1}\n{"b"'
    path.write_bytes(data)
    assert read_jsonl(path) == [{"a": 1}] and path.read_bytes() == data


def test_records_and_numpy_values_are_written_as_plain_json(tmp_path):
    import numpy as np

    from infoflow_jax.verification.records import failure_record

    with JsonlFile(tmp_path / "r.jsonl") as f:
        f.append(failure_record("C1", task="T1", T=np.int64(4), error="x"))
        f.append({"v": np.float64(0.5), "a": np.arange(2)})
    rows = read_jsonl(tmp_path / "r.jsonl")
    assert rows[0]["kind"] == "failure" and rows[0]["T"] == 4 and rows[1] == {"v": 0.5, "a": [0, 1]}
