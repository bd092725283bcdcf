"""The machine a benchmark ran on, as the JSON names it.

``describe(device)``: CPU model (``/proc/cpuinfo``'s ``model name``, else ``platform``),
logical cores, the cores this process may use, memory, OS, Python, the JAX backend and the
device kind measured, every JAX device, the versions of jax, jaxlib, numpy and flax, and the
load average (1, 5, 15 min) when it was called. A shared machine's load changes during a
run: a benchmark calls :func:`load_average` again at its end and beside each section.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata


def cpu_model() -> str:
    """The CPU's model name (Linux: ``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_mhz() -> float | None:
    """The first core's clock as ``/proc/cpuinfo`` reports it (a VM may report the nominal one)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("cpu mhz"):
                    return float(line.split(":", 1)[1])
    except (OSError, ValueError):
        pass
    return None


def memory_bytes() -> int | None:
    """Physical memory of the host."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def load_average() -> list[float] | None:
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def describe(device=None) -> dict:
    """Everything that names the machine; ``device`` is the JAX device measured (default: JAX's first)."""
    import jax

    device = device or jax.devices()[0]
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu_model": cpu_model(), "cpu_mhz": cpu_mhz(), "cpu_count": os.cpu_count(), "cpus_usable": usable,
        "memory_bytes": memory_bytes(), "os": platform.platform(), "python": platform.python_version(),
        "hostname": platform.node(),
        "jax_backend": device.platform, "device_kind": device.device_kind, "device": str(device),
        "jax_devices": [f"{d.platform}:{d.device_kind}" for d in jax.devices(device.platform)],
        "versions": {p: _version(p) for p in ("jax", "jaxlib", "numpy", "flax")},
        "xla_flags": os.environ.get("XLA_FLAGS"), "jax_enable_x64": bool(jax.config.jax_enable_x64),
        "jax_default_matmul_precision": jax.config.jax_default_matmul_precision,
        "load_average_start": load_average(),
    }


def name(m: dict) -> str:
    """One line naming the machine, for tables and the README."""
    what = m["cpu_model"] if m["jax_backend"] == "cpu" else f"{m['device_kind']} (host: {m['cpu_model']})"
    return f"{what}, {m['cpu_count']} cores, jax {m['versions']['jax']} on {m['jax_backend']}"
