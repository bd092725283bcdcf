"""The separation sweep: plan, formula rows, fits, CLI registration."""

import json

import pytest

from infoflow_jax.sweep.separation import Series, fit_series, formula_row, run_series, separation_series


def test_plan_covers_the_required_lines():
    labels = {(s.name, s.T, s.k, s.measured) for s in separation_series()}
    for T in (1, 2, 3):
        assert ("C5", T, None, True) in labels
    for r in (1, 2, 3):
        assert ("C6-coupled", 8, r, True) in labels and ("C6-decoupled", 8, r, True) in labels
    assert {s.T for s in separation_series() if s.name == "C2"} == {4, 16, 64}
    for s in separation_series(quick=True):
        assert len(s.eps) >= 4


def test_formula_rows_are_marked_not_measured_and_fit_separately():
    s = Series("C5 T=6 formula", "C5", 6, (0.01, 0.005, 0.003, 0.002), 6.0, 0.9, "depth", measured=False)
    rows = run_series(s)
    assert all(r["measured"] is False and r["passed"] is None for r in rows)
    f = fit_series(s, rows)
    assert f["measured"] is False and f["rows_pass"] is None and f["slope_ok"]


def test_measured_series_rows_pass_and_slope_is_1_for_C3():
    s = Series("C3 T=4", "C3", 4, (0.1, 0.03, 0.01, 0.003), 1.0, 0.15, "depth", k=2)
    rows = run_series(s)
    f = fit_series(s, rows)
    assert all(r["passed"] and r["measured"] for r in rows)
    assert f["slope_ok"] and f["rows_pass"]
    json.dumps(rows)


def test_cli_registers_separation():
    from infoflow_jax.cli.app import SUBCOMMANDS, build_parser

    assert "separation" in SUBCOMMANDS
    parser, _ = build_parser(["separation"])
    args = parser.parse_args(["separation", "--quick", "--out", "x"])
    assert args.quick and args.out == "x"


def test_plan_has_c8_at_several_T_beside_c5_on_the_same_task():
    full = {(s.name, s.T, s.figure, s.options.get("target")) for s in separation_series()}
    assert {T for n, T, fig, _ in full if n == "C8" and fig == "topk"} == {4, 16, 64}
    assert ("C5", 3, "topk", "top2-mean") in full
    assert len({s.T for s in separation_series(quick=True) if s.name == "C8"}) >= 2
