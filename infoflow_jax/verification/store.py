"""Results that survive: ``DIR/results.jsonl`` (one record per line) and ``DIR/manifest.json``.

* Every finished configuration is appended at once: one ``os.write`` of the
  whole line (``O_APPEND``), then ``fsync``. A kill can at worst leave the last
  line half-written; :func:`repair` detects it (no trailing newline, or a line
  that is not JSON) and discards it before anything else is read or appended.
* Rerunning the same spec into the same folder skips every configuration whose
  ``config_hash`` is already in ``results.jsonl``.
* ``manifest.json`` (written atomically: temp file, fsync, rename) says what
  produced the folder: ``kind: "sweep"``, the package and jax/jaxlib/flax/optax
  versions, device kinds and count, the git commit (if any), the spec, and one
  entry per invocation (``runs``) with its statistics. A folder holding a
  different spec (or another kind) is refused.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from infoflow_jax.core.errors import InputError

RESULTS = "results.jsonl"
MANIFEST = "manifest.json"


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


def dumps(record: dict) -> str:
    return json.dumps(record, default=_json_default)


def repair(path: Path) -> tuple[list[dict], int]:
    """Read a JSONL file; drop a half-written last line and any unparsable line (rewriting the file).

    Returns ``(records, discarded)``.
    """
    path = Path(path)
    if not path.exists():
        return [], 0
    data = path.read_bytes()
    discarded = 0
    if data and not data.endswith(b"\n"):  # a kill mid-write: the tail has no newline
        cut = data.rfind(b"\n") + 1
        with open(path, "r+b") as f:
            f.truncate(cut)
            f.flush()
            os.fsync(f.fileno())
        data = data[:cut]
        discarded += 1
    records, good, bad = [], [], 0
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise ValueError
        except ValueError:
            bad += 1
            continue
        records.append(rec)
        good.append(line)
    if bad:
        _atomic_write(path, b"".join(g + b"\n" for g in good))
        discarded += bad
    return records, discarded


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # pragma: no cover (platforms without directory fsync)
        pass


def read_results(out_dir) -> list[dict]:
    """The records of a sweep folder (a half-written last line is ignored, the file left alone)."""
    path = Path(out_dir) / RESULTS
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().split(b"\n"):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def read_manifest(out_dir) -> dict | None:
    path = Path(out_dir) / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise InputError("manifest", str(path), "a JSON file (it is corrupt)") from None


def _version(dist: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:
        return None


def git_commit() -> dict:
    """The git commit of the package's checkout (and whether it has local changes), if any."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
        return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def environment() -> dict:
    from infoflow_jax.core.devices import device_info

    return {
        "package": {"name": "infoflow-jax", "version": _version("infoflow-jax")},
        "versions": {"python": platform.python_version(), "jax": _version("jax"), "jaxlib": _version("jaxlib"),
                     "flax": _version("flax"), "optax": _version("optax"), "numpy": _version("numpy"),
                     "scipy": _version("scipy")},
        "devices": device_info(),
        "host": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
        "git": git_commit(),
    }


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class ResultsStore:
    """The two files of a sweep folder."""

    def __init__(self, out_dir):
        self.dir = Path(out_dir)
        self.results_path = self.dir / RESULTS
        self.manifest_path = self.dir / MANIFEST
        self.manifest: dict | None = None
        self.discarded = 0
        self._records: list[dict] = []
        self._fd: int | None = None

    # -- setup
    def open(self, spec, *, spec_path: str | None = None) -> None:
        """Create or reopen the folder for ``spec``; refuse a folder holding something else."""
        if self.dir.exists() and not self.dir.is_dir():
            raise InputError("out", str(self.dir), "a folder (a file of that name exists)")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError("out", str(self.dir), f"a folder that can be created ({exc.strerror})") from None
        spec_dict = json.loads(dumps(spec.to_dict()))
        old = read_manifest(self.dir)
        if old is not None:
            if old.get("kind") != "sweep":
                raise InputError("out", str(self.dir), f"a new folder or a sweep folder (this one holds kind "
                                 f"{old.get('kind')!r})")
            if old.get("spec") != spec_dict:
                raise InputError("out", str(self.dir), "a new folder, or the folder of a sweep with the same spec "
                                 "(this one holds a different spec; see its manifest.json)")
            self.manifest = old
        elif self.results_path.exists() and self.results_path.stat().st_size > 0:
            raise InputError("out", str(self.dir), "a new folder or a sweep folder (results.jsonl without "
                             "manifest.json)")
        else:
            self.manifest = {"kind": "sweep", "created": _now(), **environment(), "spec": spec_dict,
                             "spec_path": spec_path, "runs": []}
        self._records, self.discarded = repair(self.results_path)
        run = {"started": _now(), "finished": None, "status": "running", "argv": sys.argv,
               "devices": environment()["devices"], "git": git_commit(), "discarded_lines": self.discarded}
        self.manifest.setdefault("runs", []).append(run)
        self.write_manifest()
        self._fd = os.open(self.results_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def done_hashes(self) -> set[str]:
        return {r["config_hash"] for r in self._records if "config_hash" in r}

    @property
    def records(self) -> list[dict]:
        return list(self._records)

    # -- writing
    def append(self, record: dict) -> None:
        """Append one record as one line, durably (write + fsync) before returning."""
        line = (dumps(record) + "\n").encode()
        view = memoryview(line)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        os.fsync(self._fd)
        self._records.append(record)

    def write_manifest(self) -> None:
        _atomic_write(self.manifest_path, (json.dumps(self.manifest, indent=2, default=_json_default) + "\n").encode())

    def finish(self, stats: dict, status: str | None = None) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        run = self.manifest["runs"][-1]
        run["finished"] = _now()
        run["status"] = status or ("complete" if stats.get("configs_total") is not None else "stopped")
        run["stats"] = stats
        self.write_manifest()
