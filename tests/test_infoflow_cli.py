"""`infoflow predict` CLI: JSON keys, table, bad input, --plot."""

import json

import pytest
from helpers import run_predict


JSON_KEYS = {"task", "L", "h", "T", "d", "k", "r", "D", "exponent", "exponent_formula",
             "needed_L", "schedule", "reason"}


def json_lines(capsys, argv):
    assert run_predict(argv) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_json_records_have_the_documented_keys(capsys):
    records = json_lines(capsys, ["T2", "--L", "1,2", "--T", "4", "--json"])
    assert len(records) == 2 and all(JSON_KEYS <= set(r) for r in records)


def test_json_two_hop_values_match_the_table(capsys):
    r1, r2 = json_lines(capsys, ["two-hop", "--L", "1,2", "--T", "16", "--json"])
    assert (r1["exponent"], r1["exponent_formula"], r1["needed_L"]) == (16, "T*d", 2)
    assert (r2["exponent"], r2["exponent_formula"], r2["schedule"]) == (1, "1", [["m"], ["r"]])


def test_json_unused_parameters_are_null(capsys):
    (rec,) = json_lines(capsys, ["T6", "--L", "2", "--T", "4", "--D", "3", "--json"])
    assert (rec["k"], rec["r"], rec["D"]) == (None, None, 3)


def test_task_names_are_case_insensitive(capsys):
    (rec,) = json_lines(capsys, ["t4", "--L", "3", "--T", "4", "--r", "3", "--json"])
    assert (rec["task"], rec["exponent_formula"], rec["exponent"]) == ("T4", "r", 3)


def test_grid_iterates_over_every_axis(capsys):
    recs = json_lines(capsys, ["T3", "--L", "1,2", "--h", "1,2", "--T", "4,16", "--k", "2,3",
                               "--json"])
    assert len(recs) == 16


def test_table_output_lists_exponents(capsys):
    assert run_predict(["T2", "--L", "1,2", "--T", "4"]) == 0
    out = capsys.readouterr().out
    assert "needed_L" in out and "T*d" in out and "why:" in out


@pytest.mark.parametrize("argv, argument", [
    (["T9"], "task"),
    (["T3", "--k", "0"], "k"),
    (["T3", "--k", "5", "--T", "4"], "k"),
    (["T2", "--L", "0"], "L"),
    (["T2", "--h", "0"], "h"),
    (["T2", "--T", "0"], "T"),
    (["T2", "--d", "0"], "d"),
    (["T2", "--L", "x"], "--L"),
    ([], "TASK"),
])
def test_bad_input_exits_2_with_a_one_line_message_naming_the_argument(capsys, argv, argument):
    assert run_predict(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"infoflow predict: error: {argument} ") and "\n" not in err


@pytest.mark.parametrize("ext", ["png", "pdf"])
def test_plot_option_writes_the_figure(tmp_path, capsys, ext):
    path = tmp_path / f"flow.{ext}"
    assert run_predict(["T2", "--L", "1", "--T", "4", "--plot", str(path)]) == 0
    assert path.stat().st_size > 1000
