"""``DIR/report.md`` and figures from a sweep folder.

Tables: what ran (manifest), pass/fail per construction and lemma check,
fitted rates beside the expected exponents (:mod:`infoflow_jax.sweep.rates`),
negative controls (mutants), lemma checks, every configuration.
Figures (PNG, beside the report): err vs ε, params vs 1/ε with fits, err vs T
at fixed ε, mutant outcomes.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from infoflow_jax.core.errors import InputError
from infoflow_jax.core.figures import pyplot, save_figure
from infoflow_jax.sweep.rates import LEVEL, TOLERANCE, fit_rates
from infoflow_jax.verification.store import read_manifest, read_results
from infoflow_jax.verification.records import expected_outcome

REPORT = "report.md"
FIGURES = {
    "err_vs_eps": "fig_err_vs_eps.png",
    "params_vs_inv_eps": "fig_params_vs_inv_eps.png",
    "err_vs_T": "fig_err_vs_T.png",
    "mutants": "fig_mutants.png",
}


# ----------------------------------------------------------------------------- formatting
def _g(x, digits=3) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(x):
        return str(x)
    return f"{x:.{digits}g}"


def _e(x) -> str:
    if x is None:
        return "–"
    x = float(x)
    return f"{x:.2e}" if math.isfinite(x) and x != 0 else _g(x)


def _verdict(ok) -> str:
    return "–" if ok is None else ("**agree**" if ok else "**DISAGREE**")


def _table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _is_lemma(r: dict) -> bool:
    return r.get("eps") is None and r.get("task") is None


def _interval(fit) -> str:
    if not math.isfinite(fit.slope):
        return "–"
    if not math.isfinite(fit.lo):
        return f"{fit.slope:.3f}"
    return f"{fit.slope:.3f} [{fit.lo:.3f}, {fit.hi:.3f}]"


# ----------------------------------------------------------------------------- figures
def _constructions(records):
    names = []
    for r in records:
        if not _is_lemma(r) and r["name"] not in names:
            names.append(r["name"])
    return names


def _series_key(r):
    k = r.get("k")
    return (r["T"], k)


def _series_label(T, k):
    return f"T={T}" + (f", k={k}" if k is not None else "")


def _real(records):
    return [r for r in records if not _is_lemma(r) and r.get("mutant") is None and r.get("err_estimate") is not None
            and r.get("params_theorem")]


def _panels(records):
    """One panel per construction of the real records: (pyplot, figure, [(axes, name, its records,
    its (T, k) series)]); None when there is no construction to draw."""
    real = _real(records)
    names = _constructions(real)
    if not names:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 4.0), squeeze=False)
    rows = []
    for ax, name in zip(axes[0], names):
        rs = [r for r in real if r["name"] == name]
        rows.append((ax, name, rs, sorted({_series_key(r) for r in rs}, key=lambda t: (t[0], t[1] or 0))))
    return plt, fig, rows


def fig_err_vs_eps(records, path: Path) -> bool:
    panels = _panels(records)
    if panels is None:
        return False
    plt, fig, rows = panels
    for ax, name, rs, series in rows:
        cmap = plt.get_cmap("viridis")
        for i, (T, k) in enumerate(series):
            pts = sorted((r["eps"], max(r["err_estimate"], 1e-300), r["bound"]) for r in rs if _series_key(r) == (T, k))
            e, err, bound = map(np.array, zip(*pts))
            c = cmap(i / max(len(series) - 1, 1))
            ax.loglog(e, err, "o-", color=c, label=f"estimate {_series_label(T, k)}")
            ax.loglog(e, bound, "--", color=c, alpha=0.6, lw=1)
        allx = np.array(sorted({r["eps"] for r in rs}))
        ax.loglog(allx, allx, ":", color="gray", label="ε (target)")
        ax.set_xlabel("ε (target precision)")
        ax.set_ylabel("sup-error estimate (dashed: claimed bound)")
        ax.set_title(f"{name}: error vs ε")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    return True


def fig_params_vs_inv_eps(records, rate_rows, path: Path) -> bool:
    panels = _panels(records)
    if panels is None:
        return False
    plt, fig, rows = panels
    for ax, name, rs, series in rows:
        cmap = plt.get_cmap("plasma")
        for i, (T, k) in enumerate(series):
            pts = sorted((1 / r["eps"], r["params_theorem"]) for r in rs if _series_key(r) == (T, k))
            x, y = map(np.array, zip(*pts))
            c = cmap(i / max(len(series), 1))
            row = next((rr for rr in rate_rows if rr.name == name and rr.T == T and rr.k == k), None)
            lab = _series_label(T, k)
            if row is not None and math.isfinite(row.params_fit.slope):
                f = row.params_fit
                xs = np.geomspace(x.min(), x.max(), 50)
                ax.loglog(xs, np.exp(f.intercept) * xs ** f.slope, "-", color=c, alpha=0.7, lw=1)
                lab += f": b̂={f.slope:.2f}"
            ax.loglog(x, y, "o", color=c, label=lab)
        exp = next((rr.expected for rr in rate_rows if rr.name == name), None)
        if exp is not None:
            ax.text(0.02, 0.97, f"expected b = {exp:g}", transform=ax.transAxes, va="top", fontsize=8)
        ax.set_xlabel("1/ε")
        ax.set_ylabel("params (theorem convention)")
        ax.set_title(f"{name}: parameters vs 1/ε (lines: fits)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path)
    return True


def _fixed_eps(rs):
    """The ε present at the most T values (ties: closest to 1e-2)."""
    by_eps: dict[float, set] = {}
    for r in rs:
        by_eps.setdefault(r["eps"], set()).add(r["T"])
    return max(by_eps, key=lambda e: (len(by_eps[e]), -abs(math.log10(e) + 2)))


def fig_err_vs_T(records, path: Path) -> bool:
    real = _real(records)
    names = _constructions(real)
    if not names:
        return False
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    any_line = False
    for name in names:
        rs = [r for r in real if r["name"] == name]
        eps = _fixed_eps(rs)
        for k in sorted({r.get("k") for r in rs}, key=lambda v: v or 0):
            pts = sorted((r["T"], r["err_estimate"], r["bound"]) for r in rs if r["eps"] == eps and r.get("k") == k)
            if not pts:
                continue
            T, err, bound = map(np.array, zip(*pts))
            lab = f"{name}" + (f" k={k}" if k is not None else "") + f" (ε={eps:g})"
            line, = ax.loglog(T, np.maximum(err, 1e-300), "o-", label=lab)
            ax.loglog(T, bound, "--", color=line.get_color(), alpha=0.5, lw=1)
            any_line = True
    if not any_line:
        plt.close(fig)
        return False
    ax.set_xscale("log", base=2)
    ax.set_xlabel("T (sequence length)")
    ax.set_ylabel("sup-error estimate (dashed: bound)")
    ax.set_title("error vs T at fixed ε")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    return True


def fig_mutants(records, path: Path) -> bool:
    muts = [r for r in records if r.get("mutant") is not None and r.get("err_estimate") is not None
            and r.get("bound")]
    if not muts:
        return False
    plt = pyplot()
    muts = sorted(muts, key=lambda r: (r["name"], r["mutant"], r["T"], r.get("eps") or 0, str(r.get("beta"))))
    labels, logratio, colors = [], [], []
    for r in muts:
        where = f"T={r['T']}" + (f" k={r['k']}" if r.get("k") is not None else "")
        where += f" ε={r['eps']:g}" if r.get("eps") is not None else f" β={_g(r['beta'][0])}"
        labels.append(f"{r['name']} {r['mutant']} ({where})")
        ratio = float(r["err_estimate"]) / float(r["bound"])
        logratio.append(math.log10(ratio) if ratio > 0 else -math.inf)
        colors.append("tab:red" if not r["passed"] else "tab:gray")
    CAP = 6.0
    shown = np.clip(np.nan_to_num(np.array(logratio), neginf=-CAP), -CAP, CAP)
    fig, ax = plt.subplots(figsize=(7.5, 0.3 * len(muts) + 1.4))
    y = np.arange(len(muts))
    ax.barh(y, shown, color=colors)
    for yi, lr, sh in zip(y, logratio, shown):
        if abs(lr) > CAP:
            ax.text(sh, yi, f" {lr:.0f} " if math.isfinite(lr) else " -inf ", va="center",
                    ha="left" if sh > 0 else "right", fontsize=6)
    ax.axvline(0.0, color="black", lw=1)
    ax.set_xlim(-CAP - 0.8, CAP + 0.8)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("log10(estimate / claimed bound)   (> 0: caught; clipped at ±6)")
    ax.set_title("negative controls (red: failed as expected, gray: not caught)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    return True


# ----------------------------------------------------------------------------- report
def write_report(out_dir, *, figures: bool = True) -> Path:
    """Write ``out_dir/report.md`` (+ figures); a training folder is handed to the training report."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise InputError("DIR", str(out_dir), "an existing sweep or training folder")
    manifest = read_manifest(out_dir)
    if manifest is not None and manifest.get("kind") == "train":
        from infoflow_jax.training.report import write_training_report

        return Path(write_training_report(out_dir))
    records = read_results(out_dir)
    if manifest is None and not records:
        raise InputError("DIR", str(out_dir), "a folder holding manifest.json and results.jsonl (from infoflow sweep)")
    registry, unresolved = report_registry(manifest or {})
    rate_rows = fit_rates(records, registry)
    made = {}
    if figures and records:
        made["err_vs_eps"] = fig_err_vs_eps(records, out_dir / FIGURES["err_vs_eps"])
        made["params_vs_inv_eps"] = fig_params_vs_inv_eps(records, rate_rows, out_dir / FIGURES["params_vs_inv_eps"])
        made["err_vs_T"] = fig_err_vs_T(records, out_dir / FIGURES["err_vs_T"])
        made["mutants"] = fig_mutants(records, out_dir / FIGURES["mutants"])
    text = render(manifest or {}, records, rate_rows, {k: FIGURES[k] for k, v in made.items() if v}, unresolved)
    path = out_dir / REPORT
    path.write_text(text)
    return path


def report_registry(manifest: dict) -> tuple[dict, dict[str, str]]:
    """The specs a report reads expected exponents from, by record name: the catalog, plus the
    user's constructions the sweep's runs name by reference (the manifest keeps each reference
    in its canonical form). Returns (registry, {reference: why it cannot be resolved now}) — a
    moved file or an uninstalled package degrades the report (no expected exponent, and the
    reason stated), never stops it."""
    from infoflow_jax.catalog import catalog, is_reference, lookup

    try:
        registry = dict(catalog())
    except Exception:  # the report must not depend on every construction importing
        registry = {}
    unresolved: dict[str, str] = {}
    runs = (manifest.get("spec") or {}).get("run") or []
    for run in runs if isinstance(runs, list) else []:
        name = run.get("construction", run.get("lemma")) if isinstance(run, dict) else None
        if not isinstance(name, str) or name in registry or not is_reference(name):
            continue
        try:
            spec = lookup(name, argument="reference")
        except InputError as exc:
            unresolved[name] = str(exc)
            continue
        registry.setdefault(spec.name, spec)
    return registry, unresolved


def render(manifest: dict, records: list[dict], rate_rows, figures: dict,
           unresolved: dict[str, str] | None = None) -> str:
    spec = manifest.get("spec", {})
    lines = [f"# Sweep report: {spec.get('name', '?')}", ""]
    if spec.get("description"):
        lines += [spec["description"], ""]
    lines += _what_ran(manifest, records)
    lines += _summary(records, rate_rows)
    lines += _rates(rate_rows, unresolved or {})
    lines += _mutants(records)
    lines += _lemmas(records)
    if figures:
        lines += ["## Figures", ""]
        titles = {"err_vs_eps": "Sup-error estimate vs ε (dashed: claimed bound; dotted: ε)",
                  "params_vs_inv_eps": "Parameters (theorem convention) vs 1/ε, with least-squares fits",
                  "err_vs_T": "Error vs T at fixed ε", "mutants": "Negative controls: estimate / bound"}
        for key, fname in figures.items():
            lines += [f"**{titles[key]}**", "", f"![{key}]({fname})", ""]
    lines += _all_rows(records)
    return "\n".join(lines) + "\n"


def _what_ran(manifest, records) -> list[str]:
    out = ["## What ran", ""]
    v = manifest.get("versions", {})
    dev = manifest.get("devices", {})
    git = manifest.get("git", {})
    pkg = manifest.get("package", {})
    out.append(f"- package {pkg.get('name', 'infoflow-jax')} {pkg.get('version', '?')}; jax {v.get('jax')}, "
               f"jaxlib {v.get('jaxlib')}, flax {v.get('flax')}, optax {v.get('optax')}")
    out.append(f"- devices: {dev.get('device_count')} × {', '.join(dev.get('device_kinds', []) or ['?'])} "
               f"({dev.get('platform')})")
    if git.get("commit"):
        out.append(f"- git commit {git['commit'][:12]}" + (" (with local changes)" if git.get("dirty") else ""))
    spec = manifest.get("spec", {})
    if spec:
        out.append(f"- bucketing `{spec.get('bucket')}`, max_batch {spec.get('max_batch')}, "
                   f"budget {spec.get('budget')}")
    for i, run in enumerate(manifest.get("runs", [])):
        st = run.get("stats") or {}
        out.append(f"- invocation {i + 1}: {run.get('status')} — {st.get('configs_run', '?')} configurations run, "
                   f"{st.get('configs_done_before', '?')} already done; {st.get('buckets_run', '?')} buckets, "
                   f"{st.get('compilations', '?')} compilations ({_g(st.get('compile_seconds'))} s compiling), "
                   f"{_g(st.get('eval_seconds'))} s evaluating, wall {_g(st.get('wall_seconds'))} s")
    out.append(f"- {len(records)} records")
    out.append("")
    return out


def _summary(records, rate_rows) -> list[str]:
    out = ["## Pass / fail", "",
           "A real configuration passes when estimate ≤ claimed bound ≤ ε (lemma checks: estimate in "
           "[0.99·attained, bound]); a mutant (negative control) is expected to fail.", ""]
    names = []
    for r in records:
        if r["name"] not in names:
            names.append(r["name"])
    rows = []
    all_ok = True
    for name in names:
        rs = [r for r in records if r["name"] == name]
        real = [r for r in rs if r.get("mutant") is None]
        muts = [r for r in rs if r.get("mutant") is not None]
        unexpected = [r for r in rs if not expected_outcome(r)]
        all_ok &= not unexpected
        rate = [rr for rr in rate_rows if rr.name == name]
        verdicts = [_rate_verdict(rr) for rr in rate]
        counts = [(verdicts.count("PASS"), "agree"), (verdicts.count("FAIL"), "**disagree**"),
                  (verdicts.count("insufficient ε grid"), "insufficient ε grid"),
                  (verdicts.count("no expected exponent"), "no expected exponent")]
        rate_txt = ", ".join(f"{n} {what}" for n, what in counts if n) or "–"
        rows.append([name, f"{sum(r['passed'] for r in real)}/{len(real)}",
                     f"{sum(not r['passed'] for r in muts)}/{len(muts)}" if muts else "–", rate_txt,
                     "ok" if not unexpected else f"**{len(unexpected)} UNEXPECTED**"])
    out.append(_table(["name", "real configs passed", "mutants caught", "rate fits", "overall"], rows))
    out += ["", f"Overall: **{'every row as expected' if all_ok else 'UNEXPECTED rows present'}**", ""]
    return out


def _rate_verdict(rr) -> str:
    if rr.expected is None:
        return "no expected exponent"
    if not rr.sufficient:
        return "insufficient ε grid"
    return "PASS" if rr.passed else "FAIL"


def _rates(rate_rows, unresolved: dict[str, str]) -> list[str]:
    out = ["## Fitted rates", "",
           f"Parameter exponent b̂: slope of log(params_theorem) on log(1/ε). Error slope: slope of "
           f"log(err_estimate) on log(params_theorem), expected −1/b. Intervals: {int(LEVEL * 100)}% Student-t. "
           f"A fit agrees when the expected value is inside the interval or within ±{TOLERANCE}. "
           f"THEORY §6 asks for ≥ 4 values of ε spanning ≥ 2 decades.", ""]
    for ref, why in unresolved.items():  # its rows are fitted, but nothing says what to expect of them
        out += [f"Expected exponent unknown for the runs of `{ref}`: the reference cannot be resolved now "
                f"({why}).", ""]
    if not rate_rows:
        return out + ["(no construction records to fit)", ""]
    rows = []
    for rr in rate_rows:
        rows.append([rr.name, rr.T, "–" if rr.k is None else rr.k, rr.n_eps, f"{rr.decades:.1f}",
                     _interval(rr.params_fit), _g(rr.expected), _verdict(rr.params_ok),
                     _interval(rr.err_fit), _g(rr.expected_err_slope), _verdict(rr.err_ok),
                     _rate_verdict(rr)])
    out.append(_table(["name", "T", "k", "#ε", "decades", "b̂ [95% CI]", "expected b", "b",
                       "err slope [95% CI]", "expected", "slope", "verdict"], rows))
    out.append("")
    return out


def _mutants(records) -> list[str]:
    muts = [r for r in records if r.get("mutant") is not None]
    out = ["## Negative controls (mutants)", ""]
    if not muts:
        return out + ["(none in this sweep)", ""]
    rows = []
    for r in muts:
        where = f"ε={_g(r['eps'])}" if r.get("eps") is not None else f"β={_g((r.get('beta') or [None])[0])}"
        rows.append([r["name"], r["mutant"], r["T"], "–" if r.get("k") is None else r["k"], where,
                     _e(r.get("err_estimate")), _e(r.get("bound")), "failed (as expected)" if not r["passed"]
                     else "**PASSED — not caught**"])
    out.append(_table(["name", "mutant", "T", "k", "at", "estimate", "bound", "outcome"], rows))
    out.append("")
    return out


def _lemmas(records) -> list[str]:
    ls = [r for r in records if _is_lemma(r) and r.get("mutant") is None]
    out = ["## Lemma checks", ""]
    if not ls:
        return out + ["(none in this sweep)", ""]
    rows = [[r["name"], r["T"], _g((r.get("beta") or [None])[0]), _e(r.get("attained")), _e(r.get("err_estimate")),
             _e(r.get("bound")), r.get("estimator"), "pass" if r["passed"] else "**FAIL**"] for r in ls]
    out.append(_table(["check", "T", "β", "attained (0.99× is the floor)", "estimate", "bound", "estimator",
                       "result"], rows))
    out.append("")
    return out


def _all_rows(records) -> list[str]:
    out = ["## Every configuration", ""]
    rows = []
    for r in records:
        at = f"ε={_g(r['eps'])}" if r.get("eps") is not None else f"β={_g((r.get('beta') or [None])[0])}"
        rows.append([r["name"], r["T"], "–" if r.get("k") is None else r["k"], at, r.get("mutant") or "–",
                     _g(r.get("params_theorem")), _e(r.get("bound")), _e(r.get("err_estimate")),
                     r.get("estimator") or "–", "pass" if r["passed"] else "fail",
                     "ok" if expected_outcome(r) else "**UNEXPECTED**", r.get("bucket", "–"),
                     r.get("error", "") or ""])
    out.append(_table(["name", "T", "k", "at", "mutant", "params", "bound", "estimate", "estimator", "result",
                       "expected", "bucket", "error"], rows))
    out.append("")
    return out
