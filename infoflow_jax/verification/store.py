"""The one results store: JSON lines that survive interruption, and a manifest.

Used by sweeps (``DIR/results.jsonl``), training (``DIR/train.jsonl``) and ``infoflow
verify --out FILE``.

* :class:`JsonlFile` — one record per line. Every record is appended at once: one
  ``os.write`` of the whole line (``O_APPEND``), then ``fsync``. A kill can at worst leave
  the last line half-written; opening the file (:func:`repair`) cuts such a torn tail
  (no trailing newline, or a last line that is not JSON) before anything else is read or
  appended. A bad line *before* the last is corruption, not an interruption: an
  :class:`~infoflow_jax.core.errors.InputError` naming the file and the line.
* Several processes (``infoflow sweep`` under ``jax.distributed``): process i writes its own
  complete store in ``DIR/parts/process-<i>`` (:func:`part_dir`); a rerun skips what any of them
  stored (:func:`all_records`), and :func:`merge_parts` writes the one ``DIR/results.jsonl``.
* :class:`ResultsStore` — a run folder: a :class:`JsonlFile` of records and
  ``manifest.json`` (written atomically: temp file, fsync, rename) saying what produced
  it: ``kind`` (``"sweep"`` or ``"train"``), the package and jax/jaxlib/flax/optax
  versions, device kinds and count, the git commit (if any), the spec, and one entry per
  invocation (``runs``) with its statistics. A folder holding a different spec (or
  another kind) is refused. A rerun skips every record whose ``config_hash`` is present.

Records may be :class:`~infoflow_jax.verification.records.Record` objects (written as
``to_json()``) or plain dicts; numpy values become JSON numbers and lists
(:func:`dumps`, the one JSON encoder of the package).
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

RESULTS = "results.jsonl"  # a sweep's records
TRAIN_RESULTS = "train.jsonl"  # a training run's records
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


def as_json(record) -> dict:
    """A record as a JSON-ready dict (a :class:`Record` via ``to_json()``; a dict as it is)."""
    return record.to_json() if hasattr(record, "to_json") else record


def dumps(record, **kw) -> str:
    """One record (or any JSON-able value) as JSON text; numpy values become numbers and lists."""
    return json.dumps(as_json(record), default=_json_default, **kw)


def _scan(path: Path, data: bytes) -> tuple[list[dict], int, int]:
    """(records, byte offset after the last good line, torn lines) of JSON-lines ``data``."""
    lines = data.split(b"\n")  # the last element is what follows the last newline (b"" if none)
    records: list[dict] = []
    good_end = pos = torn = 0
    for i, line in enumerate(lines[:-1]):
        pos += len(line) + 1
        rec = _parse(line) if line.strip() else {}
        if rec is None:
            if any(l.strip() for l in lines[i + 1:]):
                raise InputError(str(path), f"line {i + 1}", "valid JSON lines (only the last may be torn)")
            torn += 1
            break
        if rec:
            records.append(rec)
        good_end = pos
    if lines[-1].strip():  # an unfinished write: no newline after it
        torn += 1
    return records, good_end, torn


def repair(path: Path) -> tuple[list[dict], int]:
    """Read a JSON-lines file and cut a torn last line off it. Returns ``(records, discarded)``.

    A line before the last that does not parse is corruption: InputError naming file and line.
    """
    path = Path(path)
    if not path.exists():
        return [], 0
    data = path.read_bytes()
    records, good_end, torn = _scan(path, data)
    if good_end < len(data):
        with open(path, "r+b") as f:
            f.truncate(good_end)
            f.flush()
            os.fsync(f.fileno())
    return records, torn


def read_jsonl(path) -> list[dict]:
    """The complete records of a JSON-lines file, read only (a torn last line is skipped, the file
    left alone; a corrupt line before the last is an InputError)."""
    path = Path(path)
    if not path.exists():
        return []
    return _scan(path, path.read_bytes())[0]


def _parse(line: bytes) -> dict | None:
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) else None


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


def read_results(out_dir, results: str = RESULTS, *, argument: str | None = None) -> list[dict]:
    """The records of a run folder (:func:`read_jsonl` of ``results``: a sweep's ``results.jsonl``
    by default, a training run's :data:`TRAIN_RESULTS`). ``argument``: the option that named the
    folder; a folder without the file is then an InputError naming it (else: no records)."""
    path = Path(out_dir) / results
    if argument is not None and not path.is_file():
        raise InputError(argument, str(out_dir), f"a directory containing {results}")
    return read_jsonl(path)


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


def library_versions() -> dict:
    """Python's version and the installed versions of the libraries a result depends on."""
    return {"python": platform.python_version(), "jax": _version("jax"), "jaxlib": _version("jaxlib"),
            "flax": _version("flax"), "optax": _version("optax"), "numpy": _version("numpy"),
            "scipy": _version("scipy")}


def environment() -> dict:
    from infoflow_jax.core.devices import device_info

    return {
        "package": {"name": "infoflow-jax", "version": _version("infoflow-jax")},
        "versions": library_versions(),
        "devices": device_info(),
        "host": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
        "git": git_commit(),
    }


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class JsonlFile:
    """An append-only JSON-lines file of records (repaired on open, each append durable)."""

    def __init__(self, path):
        self.path = Path(path)
        self.records: list[dict] = []
        self.discarded = 0
        self._fd: int | None = None

    def open(self) -> "JsonlFile":
        """Repair the file (cut a torn tail), read its records, open it for appending."""
        if self.path.is_dir():
            raise InputError("out", str(self.path), "a file (a folder of that name exists)")
        try:
            self.records, self.discarded = repair(self.path)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise InputError("out", str(self.path), f"a writable file ({exc.strerror})") from None
        return self

    def append(self, record) -> None:
        """Append one record as one line, durably (write + fsync) before returning."""
        data = as_json(record)
        view = memoryview((dumps(data) + "\n").encode())
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        os.fsync(self._fd)
        self.records.append(data)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()


class ResultsStore:
    """A run folder: ``manifest.json`` and a :class:`JsonlFile` of records (``results.jsonl`` for
    a sweep, ``train.jsonl`` for training)."""

    def __init__(self, out_dir, *, kind: str = "sweep", results: str = RESULTS, same_spec: bool = True):
        self.dir = Path(out_dir)
        self.kind = kind
        self.same_spec = same_spec  # refuse a folder of another spec (sweeps); else the manifest takes the new one
        self.file = JsonlFile(self.dir / results)
        self.results_path = self.file.path
        self.manifest_path = self.dir / MANIFEST
        self.manifest: dict | None = None

    # -- setup
    def open(self, spec, *, spec_path: str | None = None) -> "ResultsStore":
        """Create or reopen the folder for ``spec`` (an object with ``to_dict()``, or a dict);
        refuse a folder holding something else."""
        if self.dir.exists() and not self.dir.is_dir():
            raise InputError("out", str(self.dir), "a folder (a file of that name exists)")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError("out", str(self.dir), f"a folder that can be created ({exc.strerror})") from None
        spec_dict = json.loads(dumps(spec.to_dict() if hasattr(spec, "to_dict") else spec))
        old = read_manifest(self.dir)
        what = f"a new folder or a {self.kind} folder"
        if old is not None:
            if old.get("kind") != self.kind:
                raise InputError("out", str(self.dir), f"{what} (this one holds kind {old.get('kind')!r})")
            if old.get("spec") != spec_dict and self.same_spec:
                raise InputError("out", str(self.dir), f"a new folder, or the folder of a {self.kind} with the same "
                                 "spec (this one holds a different spec; see its manifest.json)")
            self.manifest = {**old, "spec": spec_dict, "spec_path": spec_path or old.get("spec_path")}
        elif self.results_path.exists() and self.results_path.stat().st_size > 0:
            raise InputError("out", str(self.dir), f"{what} ({self.results_path.name} without manifest.json)")
        else:
            self.manifest = {"kind": self.kind, "created": _now(), **environment(), "spec": spec_dict,
                             "spec_path": spec_path, "runs": []}
        self.file.open()
        run = {"started": _now(), "finished": None, "status": "running", "argv": sys.argv,
               "devices": environment()["devices"], "git": git_commit(), "discarded_lines": self.file.discarded}
        self.manifest.setdefault("runs", []).append(run)
        self.write_manifest()
        return self

    @property
    def discarded(self) -> int:
        return self.file.discarded

    def done_hashes(self) -> set[str]:
        return {r["config_hash"] for r in self.file.records if "config_hash" in r}

    @property
    def records(self) -> list[dict]:
        return list(self.file.records)

    # -- writing
    def append(self, record) -> None:
        """Append one record as one line, durably (write + fsync) before returning."""
        self.file.append(record)

    def write_manifest(self) -> None:
        _atomic_write(self.manifest_path, (dumps(self.manifest, indent=2) + "\n").encode())

    def finish(self, stats: dict, status: str | None = None) -> None:
        self.file.close()
        run = self.manifest["runs"][-1]
        run["finished"] = _now()
        run["status"] = status or ("complete" if stats.get("configs_total") is not None else "stopped")
        run["stats"] = stats
        self.write_manifest()


# ----------------------------------------------------------------------------- spec files
def read_spec_file(path) -> dict:
    """A TOML spec file's top-level table (``tomllib``): the one reader of every kind of spec (sweep,
    training, papers' protocol); each kind's schema is its parser (``sweep.spec.parse_spec``,
    ``training.spec.parse_train_spec``, ``training.papers.parse_paper_spec``). An unreadable or
    malformed file is an InputError naming ``spec``."""
    import tomllib

    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise InputError("spec", str(path), f"a readable TOML file ({exc.strerror})") from None
    try:
        return tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError("spec", str(path), f"valid TOML ({' '.join(str(exc).split())})") from None


def spec_kind(path) -> str | None:
    """The ``kind`` a spec file declares at its top level; None when it declares none, or cannot be
    read (its loader then reports why)."""
    try:
        kind = read_spec_file(path).get("kind")
    except InputError:
        return None
    return kind if isinstance(kind, str) else None


# ----------------------------------------------------------------------------- several processes
PARTS = "parts"  # DIR/parts/process-<i>/: one process's own store (manifest + results.jsonl)


def part_dir(out_dir, process_id: int) -> Path:
    """The folder process ``process_id`` of a multi-process sweep writes: ``DIR/parts/process-<i>``,
    a complete :class:`ResultsStore` of its own (only that process appends to it)."""
    return Path(out_dir) / PARTS / f"process-{int(process_id)}"


def part_dirs(out_dir) -> list[Path]:
    """Every part folder present, in process order."""
    root = Path(out_dir) / PARTS
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("process-")
             and p.name[len("process-"):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len("process-"):]))


def all_records(out_dir) -> list[dict]:
    """The records of a sweep folder and of every part folder in it (read only; a configuration
    stored twice, e.g. merged and in its part, counts once: the first copy, merged file first)."""
    seen, out = set(), []
    for path in [Path(out_dir) / RESULTS] + [p / RESULTS for p in part_dirs(out_dir)]:
        for r in read_jsonl(path):
            h = r.get("config_hash")
            if h is None or h not in seen:
                seen.add(h)
                out.append(r)
    return out


def merge_parts(out_dir, order: list[str] | None = None) -> int:
    """Write ``DIR/results.jsonl`` as the union of itself and every part's records (one line per
    configuration), in ``order`` (config hashes; others after them, as found), atomically
    (temp file, fsync, rename): an interruption leaves the old file or the new one, never half.
    Returns the number of records written. Idempotent."""
    records = all_records(out_dir)
    if order is not None:
        rank = {h: i for i, h in enumerate(order)}
        records = sorted(records, key=lambda r: rank.get(r.get("config_hash"), len(rank)))
    data = "".join(dumps(r) + "\n" for r in records).encode()
    _atomic_write(Path(out_dir) / RESULTS, data)
    return len(records)
