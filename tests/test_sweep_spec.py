"""Sweep specs: TOML parsing, validation (one-line InputErrors naming the field), expansion."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from infoflow_jax.catalog import lookup

from infoflow_jax.core.errors import InputError
from infoflow_jax.sweep.spec import Config, Run, SweepSpec, expand, load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[1]


def _one_line_error(data, field):
    with pytest.raises(InputError) as exc:
        parse_spec(data)
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(f"{field} = "), msg
    return msg


def _run(**kw):
    return {"run": [dict(construction="C1", **kw)]}


@pytest.mark.parametrize("data, field", [
    ({"runs": []}, "runs"),  # unknown top-level key
    ({"bucket": "pow3", "run": [{"construction": "C1"}]}, "bucket"),
    ({"max_batch": 0, "run": [{"construction": "C1"}]}, "max_batch"),
    ({"seeds": [-1], "run": [{"construction": "C1"}]}, "seeds"),
    ({"dtype": "float16", "run": [{"construction": "C1"}]}, "dtype"),
    ({"budget": {"sample": 3}, "run": [{"construction": "C1"}]}, "budget.sample"),
    ({"budget": {"starts": -1}, "run": [{"construction": "C1"}]}, "budget.starts"),
    ({}, "run"),
    (_run(eps=[0.1, 0.0]), "run[0].eps"),
    (_run(eps=[1.5]), "run[0].eps"),
    (_run(eps="x"), "run[0].eps"),
    (_run(T=[0]), "run[0].T"),
    (_run(k=[2]), "run[0].k"),  # C1 takes no k
    (_run(mutants="some"), "run[0].mutants"),
    (_run(mutants=["no-such-mutant"]), "run[0].mutants"),
    (_run(epz=[0.1]), "run[0].epz"),
    (_run(base="yes"), "run[0].base"),
    (_run(options={"eps": 0.1}), "run[0].options.eps"),
    ({"run": [{"construction": "C9"}]}, "run[0].construction"),
    ({"run": [{"construction": "C1", "lemma": "L2-margin"}]}, "run[0].construction"),
    ({"run": [{"construction": "C3", "T": [4], "k": [5]}]}, "run[0].k"),
    ({"run": [{"lemma": "L1-softmax-max", "eps": [0.1]}]}, "run[0].eps"),
    ({"run": [{"lemma": "L1-softmax-max", "T": [1]}]}, "run[0].T"),
    ({"run": [{"lemma": "L1-softmax-max", "beta": [-1.0]}]}, "run[0].beta"),
])
def test_spec_errors_are_one_line_input_errors_naming_the_field(data, field):
    _one_line_error(data, field)


def test_spec_toml_syntax_error_is_one_line_input_error(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("name = \n[[run]]\nconstruction = 'C1'\n")
    with pytest.raises(InputError) as exc:
        load_spec(p)
    assert "\n" not in str(exc.value) and str(exc.value).startswith("spec = ")


def test_missing_spec_file_is_input_error(tmp_path):
    with pytest.raises(InputError, match="^spec = "):
        load_spec(tmp_path / "nope.toml")


def test_default_spec_grids_allow_rate_fits():
    """sweeps/default.toml: C1–C3 with ≥ 4 values of ε spanning ≥ 2 decades at T ∈ {4, 16, 64}."""
    spec = load_spec(ROOT / "sweeps" / "default.toml")
    configs = expand(spec)
    for name in ("C1", "C2", "C3"):
        eps = sorted({c.eps for c in configs if c.name == name and c.mutant is None})
        assert len(eps) >= 4 and math.log10(eps[-1] / eps[0]) >= 2 - 1e-9
        assert {c.T for c in configs if c.name == name} >= {4, 16, 64}
    assert {c.k for c in configs if c.name == "C3"} == {2, 3}
    assert any(c.mutant for c in configs) and {"L1-softmax-max", "L2-margin"} <= {c.name for c in configs}


def test_gpu_spec_parses():
    spec = load_spec(ROOT / "sweeps" / "gpu.toml")
    assert max(c.T for c in expand(spec)) >= 4096


def test_expand_dedupes_the_base_configuration_of_mutant_runs():
    spec = parse_spec({"run": [{"construction": "C1", "T": [4], "eps": [0.1, 0.01]},
                               {"construction": "C1", "T": [4], "eps": [0.1], "mutants": "all"}]})
    configs = expand(spec)
    assert len(configs) == 2 + len(lookup("C1").mutants)  # base at two ε + every mutant at one
    assert len({c.hash for c in configs}) == len(configs)


def test_spec_round_trips_through_its_dict():
    spec = load_spec(ROOT / "sweeps" / "default.toml")
    again = parse_spec(spec.to_dict())
    assert again == spec and [c.hash for c in expand(again)] == [c.hash for c in expand(spec)]


def test_python_spec_equals_toml_spec(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('[budget]\nsamples = 64\n[[run]]\nconstruction = "C1"\nT = [4]\neps = [0.1]\n')
    from infoflow_jax.verification.estimators import Budget

    py = SweepSpec(runs=(Run(name="C1", T=(4,), eps=(0.1,)),), budget=Budget(samples=64))
    assert [c.hash for c in expand(py)] == [c.hash for c in expand(load_spec(p))]


def test_config_hash_depends_on_every_field():
    a = Config(kind="construction", name="C1", T=4, eps=0.1)
    assert len({a.hash, Config(kind="construction", name="C1", T=4, eps=0.01).hash,
                Config(kind="construction", name="C1", T=4, eps=0.1, seed=1).hash,
                Config(kind="construction", name="C1", T=4, eps=0.1, mutant="knot-dropped").hash}) == 4


def test_cli_sweep_bad_spec_exits_2_with_one_line(tmp_path, capsys):
    from infoflow_jax.cli.app import main

    p = tmp_path / "bad.toml"
    p.write_text('[[run]]\nconstruction = "C1"\neps = [2.0]\n')
    assert main(["sweep", str(p), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("infoflow sweep: error: run[0].eps = 2.0")
    assert not (tmp_path / "out").exists()


def test_cli_report_of_a_missing_folder_exits_2(tmp_path, capsys):
    from infoflow_jax.cli.app import main

    assert main(["report", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.startswith("infoflow report: error: DIR = ")
