"""Where the main jobs' wall time goes: import, build, probes, tracing, lowering, XLA compilation
(and how many programs), evaluation, step checks, the rest — cold and warm.

    python benchmarks/verify_breakdown.py            # the full measurement (≈ 10 min on 2 cores)
    python benchmarks/verify_breakdown.py --smoke    # seconds, in-process (tests/test_verify_breakdown.py)

Sections (each in a fresh process, except with ``--smoke``):

* ``import`` — ``python -c "import infoflow_jax"``, median of 3, and the slowest modules of one
  ``python -X importtime`` run (cumulative microseconds);
* ``verify cold`` / ``verify warm`` / ``verify recompute`` — the default ``infoflow verify`` (every
  row): first with an empty persistent compilation cache and an empty record cache
  (:mod:`infoflow_jax.verification.record_cache`), then again with both (a rerun with nothing
  changed), then with the compilation cache warm and the record cache off (every row computed
  again: a rerun after a change to the library);
* ``sweep cold`` — ``infoflow sweep sweeps/default.toml --out DIR`` (its cache in DIR/xla_cache);
* ``user first`` / ``user again`` — ``ifj.verify`` of the guide's one-head, one-decoder construction
  (``verify/own_construction.py``'s ``build(16, 1e-2)``) in a fresh process, then a fresh build of
  the same construction at ε = 1e-1 (the same shape bucket) in that process.

Each process records its phases (:mod:`infoflow_jax.core.phases`, ``INFOFLOW_PHASES``): exclusive
seconds per label, JAX's trace/lower/compile carved out of the phase they happen in, and the number
of XLA programs compiled (or loaded from the cache). With worker processes the seconds are summed
over processes, and a share is of that sum (``busy``: the parent's waiting on its workers is not
counted; ``startup`` is the parent's interpreter start and imports before its ``run``).

Writes ``benchmarks/results/verify_breakdown_<backend>.json`` (every figure, the machine, the load
before and after each section) and ``verify_breakdown_<backend>.md`` (the table).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import machine  # noqa: E402

LABELS = ("startup", "import", "build", "probes", "plan", "draw", "trace", "lower", "compile", "evaluate",
          "steps", "wait for compile", "wait for build", "rest")
USER_FILE = ROOT / "verify" / "own_construction.py"


# ----------------------------------------------------------------------------- helpers
def _env(**extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _run(cmd: list[str], **env) -> tuple[float, subprocess.CompletedProcess]:
    """Wall seconds and the finished process; ``proc.cpu_seconds``: user + system CPU of it and its
    children (its workers), the figure a loaded shared machine disturbs least."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(**env), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc.cpu_seconds = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, proc


def breakdown(wall: float, doc: dict) -> dict:
    """One section's figures from a phases document (the CLI's INFOFLOW_PHASES file)."""
    from infoflow_jax.core.phases import merge

    procs = [doc["main"]] + list(doc.get("workers", {}).values())
    total = merge(procs)
    seconds = dict(total["seconds"])
    startup = max(wall - doc.get("run_wall_seconds", wall), 0.0)
    seconds["startup"] = startup
    if not doc.get("workers"):  # one process: what no phase covers is the rest of its wall time
        seconds["rest"] = max(wall - startup - total["recorded"], 0.0)
    busy = sum(seconds.values())
    return {"wall_seconds": wall, "processes": len(procs), "busy_seconds": busy, "seconds": seconds,
            "share": {k: v / busy for k, v in seconds.items()} if busy else {},
            "programs": total["programs"], "program_names": total["program_names"]}


def _summary_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if " rows: " in ln or "every row as expected" in ln]
    return lines[-1].strip() if lines else ""


# ----------------------------------------------------------------------------- sections
def section_import(repeats: int) -> dict:
    walls = [_run([sys.executable, "-c", "import infoflow_jax"])[0] for _ in range(repeats)]
    _, proc = _run([sys.executable, "-X", "importtime", "-c", "import infoflow_jax"])
    rows = []
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].strip()))
    top = sorted(rows, reverse=True)[:25]
    return {"walls": walls, "median_seconds": statistics.median(walls),
            "importtime_top_cumulative_us": [[name, us] for us, name in top]}


def section_verify(args, cache: Path, records, label: str) -> dict:
    """``records``: the record cache's folder, or "off"."""
    with tempfile.TemporaryDirectory() as tmp:
        ph = Path(tmp) / "phases.json"
        cmd = [sys.executable, "-m", "infoflow_jax.cli", "verify", "--json", "--out", str(Path(tmp) / "rows.jsonl")]
        load0 = machine.load_average()
        wall, proc = _run(cmd + args.verify_args, INFOFLOW_COMPILE_CACHE=cache, INFOFLOW_RECORD_CACHE=records,
                          INFOFLOW_PHASES=ph)
        out = breakdown(wall, json.loads(ph.read_text()))
        rows = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if args.rows_out and label.endswith("cold"):  # the records, to compare verdicts with another commit's
            Path(args.rows_out).write_text("".join(ln + "\n" for ln in proc.stdout.splitlines() if ln.startswith("{")))
    out.update(section=label, command="infoflow verify " + " ".join(args.verify_args), exit=proc.returncode,
               cpu_seconds=proc.cpu_seconds,
               rows=len(rows), unexpected=sum(not r["expected"] for r in rows), summary=_summary_line(proc.stderr),
               load_before=load0, load_after=machine.load_average())
    return out


def section_sweep(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        ph = Path(tmp) / "phases.json"
        load0 = machine.load_average()
        wall, proc = _run([sys.executable, "-m", "infoflow_jax.cli", "sweep", args.sweep_spec, "--out",
                           str(Path(tmp) / "sweep"), "--no-progress"], INFOFLOW_PHASES=ph)
        doc = json.loads(ph.read_text())
    out = breakdown(wall, doc)
    st = doc["stats"]
    out.update(section="sweep cold", command=f"infoflow sweep {args.sweep_spec} --out DIR", exit=proc.returncode,
               cpu_seconds=proc.cpu_seconds,
               rows=doc["configurations"], unexpected=doc["unexpected"], summary=_summary_line(proc.stdout),
               load_before=load0, load_after=machine.load_average(),
               sweep_stats={k: st[k] for k in ("buckets_run", "compilations", "compile_seconds", "prep_seconds",
                                              "eval_seconds", "build_seconds", "wall_seconds")},
               note="the sweep compiles in worker threads and builds in another: compile_seconds (summed over "
                    "threads) and build_seconds are in sweep_stats; the main thread's share of them is 'wait for "
                    "compile' and 'wait for build'")
    return out


def user_child(out_path: str, budget: str) -> None:
    """In a fresh process: ifj.verify of the guide's construction at (16, 1e-2), then a fresh build at
    (16, 1e-1) (the same bucket); phases of each, written to ``out_path``."""
    t0 = time.time()
    import importlib.util

    from infoflow_jax.core import phases

    phases.enable()
    with phases.phase("import"):
        import infoflow_jax as ifj

        spec = importlib.util.spec_from_file_location("own_construction", USER_FILE)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        ifj.use_float64()
    b = ifj.QUICK_BUDGET if budget == "quick" else ifj.DEFAULT_BUDGET
    runs = []
    for eps in (1e-2, 1e-1):
        t1 = time.time()
        with phases.phase("build"):
            built = mod.build(16, eps)
        rec = ifj.verify(built, budget=b)
        runs.append({"eps": eps, "wall": time.time() - t1, "passed": rec.passed, "expected": rec.expected,
                     "main": phases.totals(reset_after=True)})
    Path(out_path).write_text(json.dumps({"process_seconds": time.time() - t0, "runs": runs}))


def section_user(args) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        ph = Path(tmp) / "user.json"
        load0 = machine.load_average()
        wall, proc = _run([sys.executable, str(Path(__file__).resolve()), "--user-child", str(ph),
                           "--user-budget", args.user_budget], INFOFLOW_COMPILE_CACHE="off")
        if proc.returncode:
            raise RuntimeError(proc.stderr[-2000:])
        doc = json.loads(ph.read_text())
    out = []
    for i, r in enumerate(doc["runs"]):
        b = breakdown(r["wall"], {"main": r["main"], "run_wall_seconds": r["wall"]})
        b.update(section="user first" if i == 0 else "user again",
                 command=f"ifj.verify(own_construction.build(16, {r['eps']:g}))" + (" (after 1e-2 in the process)" if i else ""),
                 rows=1, unexpected=int(not r["expected"]), load_before=load0, load_after=machine.load_average())
        out.append(b)
    out[0]["process_wall_seconds"] = wall
    return out


# ----------------------------------------------------------------------------- smoke (in-process)
def smoke(out_dir: Path) -> dict:
    """Every section in this process, tiny: C1 at T = 4 (quick), a one-family sweep, the guide's
    construction at T = 4 — the benchmark's code runs end to end in seconds."""
    from infoflow_jax.cli import app
    from infoflow_jax.core import phases

    sections = []
    with tempfile.TemporaryDirectory() as tmp:
        ph = Path(tmp) / "phases.json"
        os.environ["INFOFLOW_PHASES"] = str(ph)
        try:
            import contextlib
            import io

            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                status = app.main(["verify", "C1", "--T", "4", "--eps", "1e-1", "--quick", "--mutant", "none",
                                   "--jobs", "1", "--json"])
            wall = time.perf_counter() - t0
            s = breakdown(wall, json.loads(ph.read_text()))
            s.update(section="verify (smoke)", command="infoflow verify C1 --T 4 --eps 1e-1 --quick --mutant none",
                     exit=status, rows=1, unexpected=int(status != 0))
            sections.append(s)
            spec = Path(tmp) / "tiny.toml"
            spec.write_text('name = "tiny"\n[budget]\nsamples = 64\nstarts = 2\nsteps = 4\n'
                            '[[run]]\nconstruction = "C1"\nT = [4]\neps = [1e-1]\n')
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                status = app.main(["sweep", str(spec), "--out", str(Path(tmp) / "sw"), "--no-progress",
                                   "--no-compile-cache"])
            wall = time.perf_counter() - t0
            doc = json.loads(ph.read_text())
            s = breakdown(wall, doc)
            s.update(section="sweep (smoke)", command="infoflow sweep tiny.toml", exit=status,
                     rows=doc["configurations"], unexpected=doc["unexpected"])
            sections.append(s)
        finally:
            os.environ.pop("INFOFLOW_PHASES", None)
            phases.disable()
            phases.reset()
        user = Path(tmp) / "user.json"
        phases.reset()
        user_child_inprocess(user)
        for i, r in enumerate(json.loads(user.read_text())["runs"]):
            s = breakdown(r["wall"], {"main": r["main"], "run_wall_seconds": r["wall"]})
            s.update(section=f"user {'first' if i == 0 else 'again'} (smoke)", rows=1,
                     unexpected=int(not r["expected"]), command=f"ifj.verify(build(4, {r['eps']:g}))")
            sections.append(s)
        phases.disable()
        phases.reset()
    return write(out_dir, {"mode": "smoke", "sections": sections}, suffix="_smoke")


def user_child_inprocess(out_path: Path) -> None:
    import importlib.util

    import infoflow_jax as ifj
    from infoflow_jax.core import phases

    spec = importlib.util.spec_from_file_location("own_construction_bench", USER_FILE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    phases.enable()
    runs = []
    for eps in (1e-1, 5e-2):
        t1 = time.time()
        with phases.phase("build"):
            built = mod.build(4, eps)
        rec = ifj.verify(built, budget=ifj.QUICK_BUDGET)
        runs.append({"eps": eps, "wall": time.time() - t1, "expected": rec.expected,
                     "main": phases.totals(reset_after=True)})
    out_path.write_text(json.dumps({"runs": runs}))


# ----------------------------------------------------------------------------- output
def table(sections: list[dict]) -> str:
    """Markdown: one row per section; seconds and share of the section's busy time per label."""
    used = [k for k in LABELS if any(k in s["seconds"] for s in sections)]
    used += sorted({k for s in sections for k in s["seconds"]} - set(used))
    head = ["section", "wall s", "CPU s", "load", "rows", "unexpected", "programs"] + used
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in sections:
        load = s.get("load_before")
        cells = [s["section"], f"{s['wall_seconds']:.1f}",
                 f"{s['cpu_seconds']:.0f}" if s.get("cpu_seconds") is not None else "",
                 f"{load[0]:.1f}→{s['load_after'][0]:.1f}" if load else "", str(s.get("rows", "")),
                 str(s.get("unexpected", "")), str(s["programs"])]
        for k in used:
            v = s["seconds"].get(k)
            cells.append("" if v is None else f"{v:.1f} ({100 * s['share'].get(k, 0):.0f}%)")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write(out_dir: Path, doc: dict, suffix: str = "") -> dict:
    import jax

    out_dir.mkdir(parents=True, exist_ok=True)
    if "machine" not in doc:  # (a re-rendered document keeps the machine and loads it was measured with)
        doc["machine"] = machine.describe()
        doc["machine_name"] = machine.name(doc["machine"])
        doc["load_average_end"] = machine.load_average()
    backend = jax.default_backend()
    (out_dir / f"verify_breakdown_{backend}{suffix}.json").write_text(json.dumps(doc, indent=1))
    start = doc.get("load_average_start", doc["machine"]["load_average_start"])
    md = [f"# Where the time goes ({doc['mode']})", "",
          f"Machine: {doc['machine_name']}; load average (1, 5, 15 min) at start {[round(x, 2) for x in start]}, "
          f"at end {[round(x, 2) for x in doc['load_average_end']]}; each section's own 1-minute load before → after "
          "is in the table (the machine is shared: compare CPU seconds, and ratios measured side by side).", "",
          "Seconds per label (summed over processes) and its share of the section's busy time; JAX's "
          "tracing, lowering and XLA compilation are carved out of the phase they happen in; programs = "
          "XLA programs compiled or loaded from the persistent cache.", "", table(doc["sections"])]
    if doc.get("import"):
        imp = doc["import"]
        md += ["", f"`import infoflow_jax`: median {imp['median_seconds']:.2f} s of {len(imp['walls'])} "
                   f"({', '.join(f'{w:.2f}' for w in imp['walls'])}). Slowest modules (cumulative, one "
                   f"`-X importtime` run):", ""]
        md += [f"* `{name}` {us / 1e6:.2f} s" for name, us in imp["importtime_top_cumulative_us"][:12]]
    for sec in doc["sections"]:
        if "sweep_stats" in sec:
            st = sec["sweep_stats"]
            md += ["", f"{sec['section']}: the engine compiles in worker threads and builds in another "
                       f"({st['compilations']} programs, "
                       f"{st['compile_seconds']:.1f} s compiling summed over threads, {st['eval_seconds']:.1f} s "
                       f"evaluating, {st['build_seconds']:.1f} s building with the probes, {st['prep_seconds']:.1f} s "
                       "preparing inputs): the table shows its main thread, where compiling is `wait for compile` and "
                       "building `wait for build`."]
    (out_dir / f"verify_breakdown_{backend}{suffix}.md").write_text("\n".join(md) + "\n")
    return doc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny, in-process (seconds): the test's mode")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="folder for the JSON and the table")
    p.add_argument("--sections", default="import,verify,sweep,user",
                   help="comma-separated subset of import, verify, sweep, user")
    p.add_argument("--verify-args", default="", help="extra arguments of the verify sections (default: none)")
    p.add_argument("--sweep-spec", default="sweeps/default.toml")
    p.add_argument("--user-budget", default="default", choices=["default", "quick"])
    p.add_argument("--rows-out", help="write the cold verify run's records (JSON lines) to this file")
    p.add_argument("--render", metavar="JSON", help="write the table again from a stored JSON (no measuring)")
    p.add_argument("--user-child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.user_child:
        user_child(args.user_child, args.user_budget)
        return 0
    from infoflow_jax.core.precision import use_float64

    use_float64()
    out_dir = Path(args.out)
    if args.render:
        write(out_dir, json.loads(Path(args.render).read_text()))
        return 0
    if args.smoke:
        smoke(out_dir)
        return 0
    args.verify_args = args.verify_args.split()
    wanted = set(args.sections.split(","))
    doc: dict = {"mode": "full", "sections": [], "load_average_start": machine.load_average()}
    if "import" in wanted:
        doc["import"] = section_import(3)
        print(f"import: {doc['import']['median_seconds']:.2f} s", flush=True)
    if "verify" in wanted:
        with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as records:
            for label, rec in (("verify cold", records), ("verify warm", records), ("verify recompute", "off")):
                s = section_verify(args, Path(cache), rec, label)
                doc["sections"].append(s)
                print(f"{label}: {s['wall_seconds']:.1f} s, {s['summary']}", flush=True)
    if "sweep" in wanted:
        s = section_sweep(args)
        doc["sections"].append(s)
        print(f"sweep cold: {s['wall_seconds']:.1f} s, {s['summary']}", flush=True)
    if "user" in wanted:
        for s in section_user(args):
            doc["sections"].append(s)
            print(f"{s['section']}: {s['wall_seconds']:.2f} s", flush=True)
    write(out_dir, doc)
    print(table(doc["sections"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
