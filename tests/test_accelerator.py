"""Accelerator readiness (issue 21): the install extras, the device line, the float32 search with a
float64 verdict, and the prepared accelerator benchmark's smoke run."""

from __future__ import annotations

import importlib.metadata as md
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _readme_extras() -> list[str]:
    return re.findall(r"pip install -e '\.\[([a-z0-9-]+)\]'", (ROOT / "README.md").read_text())


def test_readme_accelerator_extras_are_extras_of_the_installed_jax():
    """Every `pip install -e '.[X]'` of the README is a declared extra; an accelerator extra requires
    jax[Y] with Y an extra the installed jax provides (so pip can resolve it; not installed in CI)."""
    extras = _readme_extras()
    assert {"cuda12", "tpu", "test"} <= set(extras)
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    provided = set(md.metadata("jax").get_all("Provides-Extra"))
    for extra in extras:
        assert extra in declared, extra
        if extra == "test":
            continue
        (req,) = declared[extra]
        m = re.fullmatch(r"jax\[([a-z0-9-]+)\](>=[0-9.]+)?", req)
        assert m and m.group(1) in provided, (extra, req, sorted(provided))


def test_device_info_names_the_backend_and_its_devices():
    import jax

    proc = subprocess.run([sys.executable, "-m", "infoflow_jax.cli.app", "verify", "--device-info"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (line,) = proc.stdout.splitlines()
    assert line.startswith(f"backend {jax.default_backend()} ")
    assert f"{jax.device_count()} device" in line and "process 0 of 1" in line
