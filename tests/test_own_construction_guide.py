"""docs/own_construction.md runs exactly as written, and its file is the shipped example.

The guide has three kinds of code block: files the user saves (a block right after a line
``<!-- NAME -->``: parts of ``own_construction.py``, joined, and a sweep spec), Python typed
into one session (every other ```python block, in order) and shell commands (```bash, each
run in the folder of the files). There is no fourth kind: a block that is not run would drift
from the code.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "own_construction.md"
SCRIPT = ROOT / "verify" / "own_construction.py"


def guide_blocks(text: str) -> list[tuple[str, str]]:
    """(kind, code) for every fenced block: kind "file:NAME", "python" or "bash" (or the fence's info string)."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = re.match(r"^```(\S*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        info, start = m.group(1), i
        i += 1
        body = []
        while not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        i += 1
        before = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        tag = re.match(r"^<!-- (\S+) -->$", before.strip())
        kind = f"file:{tag.group(1)}" if tag else info
        out.append((kind, "\n".join(body) + "\n"))
    return out


BLOCKS = guide_blocks(GUIDE.read_text())


def _of(kind: str) -> list[str]:
    return [code for k, code in BLOCKS if k == kind]


def _files() -> dict[str, str]:
    """The files the guide has the user save: name → text (a file's blocks joined by a blank line)."""
    names = dict.fromkeys(k[5:] for k, _ in BLOCKS if k.startswith("file:"))
    return {name: "\n\n".join(_of(f"file:{name}")) for name in names}


def test_every_block_of_the_guide_is_a_file_python_or_shell():
    assert {k for k, _ in BLOCKS if not k.startswith("file:")} == {"python", "bash"}
    assert set(_files()) == {"own_construction.py", "cmin.toml"}


def test_the_guides_file_blocks_are_the_shipped_example_verbatim():
    assert SCRIPT.read_text() == _files()["own_construction.py"]


def _env() -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("guide")
    for name, text in _files().items():
        (d / name).write_text(text)
    return d


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)


def test_the_guides_python_session_runs_as_written(workdir):
    (workdir / "session.py").write_text("\n".join(_of("python")))
    done = _run([sys.executable, "session.py"], workdir)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.parametrize("index", range(len(_of("bash"))))
def test_the_guides_shell_commands_run_as_written(workdir, index):
    done = _run(["bash", "-euo", "pipefail", "-c", _of("bash")[index]], workdir)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
