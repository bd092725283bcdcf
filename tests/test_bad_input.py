"""Bad input to `infoflow verify`: rejected before anything runs, exit status 2,
one line on stderr that names the argument, never a traceback."""

from __future__ import annotations

import pytest

from infoflow_jax.cli import app as cli

BAD = {
    "eps-zero": (["C1", "--eps", "0"], "eps"),
    "eps-above-one": (["C1", "--eps", "1.5"], "eps"),
    "eps-nan": (["C1", "--eps", "nan"], "eps"),
    "eps-inf": (["C1", "--eps", "inf"], "eps"),
    "eps-not-a-number": (["C1", "--eps", "tiny"], "eps"),
    "eps-empty-item": (["C1", "--eps", "0.1,"], "eps"),
    "T-zero": (["C1", "--T", "0"], "T"),
    "T-not-integer": (["C1", "--T", "4.5"], "T"),
    "T-one-for-lemma-check": (["L1-softmax-max", "--T", "1"], "T"),
    "k-zero": (["C3", "--k", "0"], "k"),
    "k-above-T": (["C3", "--T", "4", "--k", "5"], "k"),
    "k-above-T-any-spec": (["C1", "--T", "4", "--k", "5"], "k"),
    "unknown-name": (["C99"], "name"),
    "unknown-mutant": (["C1", "--mutant", "beta-huge"], "mutant"),
    "mutant-of-another-spec": (["C1", "--mutant", "hop-skipped"], "mutant"),
    "beta-negative": (["C1", "--beta=-1"], "beta"),
    "beta-negative-separate": (["L1-softmax-max", "--beta", "-1"], "beta"),
    "beta-zero": (["L1-softmax-max", "--beta", "0"], "beta"),
    "beta-nan": (["L1-softmax-max", "--beta", "nan"], "beta"),
    "seed-negative": (["C1", "--seed=-3"], "seed"),
    "jobs-zero": (["C1", "--jobs", "0"], "jobs"),
    "out-unwritable": (["C1", "--out", "/nonexistent-dir/records.jsonl"], "out"),
    "every-default-k-above-T": (["C3", "--T", "1"], "k"),
    "T-too-large-for-memory": (["C1", "--T", "1000000000"], "T"),
    "eps-too-small-for-an-L3-decoder": (["C1", "--eps", "1e-9"], "eps"),
    "eps-tiny-names-eps-not-beta": (["C1", "--eps", "1e-300"], "eps"),
    "eps-too-small-for-an-L4-decoder": (["C7", "--T", "4", "--eps", "1e-6"], "eps"),
    "memory-not-a-size": (["C1", "--memory", "lots"], "memory"),
    "memory-zero": (["C1", "--memory", "0"], "memory"),
    "memory-negative": (["C1", "--memory=-8G"], "memory"),
    "memory-unknown-suffix": (["C1", "--memory", "8X"], "memory"),
    "memory-too-small-for-T": (["C1", "--T", "64", "--memory", "1K"], "T"),
    "search-dtype-float16": (["C1", "--search-dtype", "float16"], "search-dtype"),
}


@pytest.mark.parametrize("argv,argument", BAD.values(), ids=BAD.keys())
def test_bad_input_exits_2_with_one_line_naming_the_argument(capsys, argv, argument):
    status = cli.main(["verify", *argv, "--quick"])
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert status == 2
    assert len(lines) == 1 and lines[0].startswith("infoflow verify: error: ")
    assert f"{argument} = " in lines[0]
    assert "Traceback" not in captured.err + captured.out
    assert captured.out == ""  # nothing ran


def test_unknown_name_message_lists_allowed_names(capsys):
    assert cli.main(["verify", "C99"]) == 2
    assert "C1" in capsys.readouterr().err


def test_unknown_mutant_message_lists_allowed_mutants(capsys):
    assert cli.main(["verify", "C1", "--mutant", "beta-huge"]) == 2
    err = capsys.readouterr().err
    assert "beta-small" in err and "all" in err and "none" in err


def test_usage_error_exits_2(capsys):
    assert cli.main(["verify", "--no-such-option"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_unknown_subcommand_exits_2(capsys):
    assert cli.main(["no-such-command"]) == 2
