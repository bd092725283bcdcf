"""Where a run's wall time goes: exclusive seconds per named phase, and JAX's tracing, lowering and
XLA compilation carved out of them (``benchmarks/verify_breakdown.py`` reads it).

Off by default, and then :func:`phase` costs one attribute test. :func:`enable` turns it on for
this process: every ``with phase("build"):`` block records its interval, and JAX's own compile
events (``jax.monitoring``: jaxpr tracing, lowering to MLIR, backend compilation — or loading from
the persistent cache —, each with its start and end) are recorded too. :func:`totals` then
attributes every instant of the calling thread's recorded time to exactly ONE label, the innermost
interval covering it: a trace inside an evaluation counts as ``trace``, not as ``evaluate``; a
phase inside another counts once. So the labels' seconds add up to the recorded time, and a
share of wall time is meaningful. Intervals nest (they come from ``with`` blocks and from calls
inside them); events of other threads (the sweep's compile threads) are not attributed here.

The number of XLA programs compiled (or loaded) is the number of backend-compile events.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict

#: JAX's compile events (jax._src.dispatch) and the label each is attributed to
JAX_EVENTS = {"/jax/core/compile/jaxpr_trace_duration": "trace",
              "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
              "/jax/core/compile/backend_compile_duration": "compile"}

_state = {"on": False, "listening": False}
_intervals: list[tuple[float, float, str]] = []  # (start, end, label) of the recording thread, time.time()
_programs: list[str] = []  # one entry per backend compile event: the program's name
_lock = threading.Lock()
_thread = [None]


def enable() -> None:
    """Record phases and JAX compile events from now on, for the calling thread (what an earlier
    recording left is dropped)."""
    if not _state["listening"]:
        from jax._src import monitoring

        monitoring.register_event_time_span_listener(_on_jax_span)
        _state["listening"] = True
    _thread[0] = threading.get_ident()
    reset()
    _state["on"] = True


def disable() -> None:
    """Stop recording (what was recorded stays until :func:`reset`)."""
    _state["on"] = False


def enabled() -> bool:
    return _state["on"]


def _on_jax_span(event: str, start: float, end: float, **kw) -> None:
    label = JAX_EVENTS.get(event)
    if label is None or not _state["on"] or threading.get_ident() != _thread[0]:
        return
    with _lock:
        _intervals.append((start, end, label))
        if label == "compile":
            _programs.append(str(kw.get("fun_name", "?")))


@contextlib.contextmanager
def phase(name: str):
    """Attribute the block's wall time to ``name`` (minus what nested phases and JAX events take)."""
    if not _state["on"] or threading.get_ident() != _thread[0]:
        yield
        return
    t0 = time.time()
    try:
        yield
    finally:
        with _lock:
            _intervals.append((t0, time.time(), name))


def record(name: str, start: float, end: float) -> None:
    """Attribute an interval measured otherwise (``time.time()`` seconds) to ``name``."""
    if _state["on"] and threading.get_ident() == _thread[0]:
        with _lock:
            _intervals.append((start, end, name))


def process_start_time() -> float | None:
    """When this process started (``time.time()`` seconds, to 10 ms; Linux's /proc), else None."""
    import os

    try:
        with open("/proc/uptime") as f:
            up = float(f.read().split()[0])  # seconds since boot
        with open("/proc/self/stat") as f:
            ticks = float(f.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime, ticks since boot
        return time.time() - (up - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def reset() -> None:
    with _lock:
        _intervals.clear()
        _programs.clear()


def exclusive_seconds(intervals) -> dict[str, float]:
    """Seconds per label, each instant given to the innermost interval covering it. Intervals
    must nest or be disjoint (a child is clipped to its parent's window: clocks tick unevenly)."""
    out: dict[str, float] = defaultdict(float)
    stack: list[tuple[float, float, str]] = []
    for t0, t1, label in sorted(intervals, key=lambda x: (x[0], -x[1])):
        while stack and stack[-1][1] <= t0:
            stack.pop()
        if stack:
            t1 = min(t1, stack[-1][1])
            out[stack[-1][2]] -= t1 - t0
        out[label] += max(t1 - t0, 0.0)
        stack.append((t0, t1, label))
    return dict(out)


def totals(reset_after: bool = False) -> dict:
    """``{"seconds": {label: s}, "recorded": s, "programs": n, "program_names": {name: n}}`` of this
    process so far (``recorded``: the time covered by some interval)."""
    with _lock:
        intervals, programs = list(_intervals), list(_programs)
        if reset_after:
            _intervals.clear()
            _programs.clear()
    seconds = exclusive_seconds(intervals)
    names: dict[str, int] = defaultdict(int)
    for p in programs:
        names[p] += 1
    return {"seconds": seconds, "recorded": sum(seconds.values()), "programs": len(programs),
            "program_names": dict(names)}


def merge(parts: list[dict]) -> dict:
    """The sum of several :func:`totals` (processes, or batches of one process)."""
    seconds: dict[str, float] = defaultdict(float)
    names: dict[str, int] = defaultdict(int)
    for p in parts:
        for k, v in p["seconds"].items():
            seconds[k] += v
        for k, v in p["program_names"].items():
            names[k] += v
    return {"seconds": dict(seconds), "recorded": sum(seconds.values()),
            "programs": sum(p["programs"] for p in parts), "program_names": dict(names)}
