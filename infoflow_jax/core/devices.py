"""Devices: shard the configuration-batch axis over every device.

One :class:`jax.sharding.Mesh` with a single axis ``"batch"`` over all devices;
arrays whose leading axis is the batch of configurations get
``NamedSharding(mesh, P("batch"))``, shared inputs (the exhaustive grid) are
replicated. On one device nothing is placed explicitly (plain arrays).

The engine pads each call's batch to a multiple of the device count (repeating
the first configuration; the padded rows are computed and dropped), so every
device gets the same number of configurations. Each configuration's numbers do
not depend on which device computes it (``tests/test_sweep_devices.py``).
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "batch"


class Placement:
    """Where a call's arrays go: one device (no-op) or sharded over a 1-D mesh."""

    def __init__(self, devices=None):
        self.devices = list(devices if devices is not None else jax.devices())
        self.mesh = Mesh(np.array(self.devices), (AXIS,)) if len(self.devices) > 1 else None

    @property
    def count(self) -> int:
        return len(self.devices)

    def batch(self, tree):
        """Put a pytree whose leaves have the config batch as leading axis."""
        if self.mesh is None:
            return jax.tree_util.tree_map(lambda x: jax.device_put(x, self.devices[0]), tree)
        sharding = NamedSharding(self.mesh, P(AXIS))
        return jax.tree_util.tree_map(lambda x: jax.device_put(x, sharding), tree)

    def replicated(self, tree):
        """Put a pytree every device needs whole."""
        if self.mesh is None:
            return jax.tree_util.tree_map(lambda x: jax.device_put(x, self.devices[0]), tree)
        sharding = NamedSharding(self.mesh, P())
        return jax.tree_util.tree_map(lambda x: jax.device_put(x, sharding), tree)

    def round_up(self, n: int) -> int:
        """n rounded up to a multiple of the device count."""
        return -(-n // self.count) * self.count


def device_info() -> dict:
    """Device kinds and count, for the manifest: the backend (``platform``: cpu, gpu, tpu), every
    device of the run (all processes), this process's own (``local_device_count``) and its index."""
    devs = jax.devices()
    kinds = sorted({d.device_kind for d in devs})
    return {"platform": devs[0].platform, "device_kinds": kinds, "device_count": len(devs),
            "local_device_count": jax.local_device_count(), "process_count": jax.process_count(),
            "process_index": jax.process_index()}


def describe_devices() -> str:
    """One line saying which backend and devices run this process's programs, e.g.
    ``backend cpu (jaxlib 0.10.2): 1 device, cpu; process 0 of 1``."""
    import importlib.metadata as md

    info = device_info()
    try:
        lib = f" (jaxlib {md.version('jaxlib')})"
    except md.PackageNotFoundError:  # pragma: no cover
        lib = ""
    n = info["device_count"]
    local = "" if info["local_device_count"] == n else f", {info['local_device_count']} of them here"
    return (f"backend {info['platform']}{lib}: {n} device{'s' if n != 1 else ''}{local}, "
            f"{', '.join(info['device_kinds'])}; process {info['process_index']} of {info['process_count']}")


def accelerator_installed() -> bool:
    """A GPU or TPU plugin of jaxlib is installed and ``JAX_PLATFORMS`` does not pin the CPU (decided
    without starting a backend, so that a parent process leaves the device to its workers)."""
    import importlib.util
    import os

    platforms = os.environ.get("JAX_PLATFORMS", "").strip().lower()
    if platforms and all(p.strip() == "cpu" for p in platforms.split(",")):
        return False
    names = ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_plugins.xla_cuda12", "jax_plugins.xla_cuda13",
             "libtpu", "jax_rocm7_plugin")
    for name in names:
        try:
            if importlib.util.find_spec(name) is not None:
                return True
        except (ImportError, ValueError):
            continue
    return False


def float64_device(platform: str | None = None):
    """Where a float64 program runs: None (the default device) unless the default backend has no
    float64 (a TPU), then the host's first CPU device — the float64 verdict of a float32 search is
    a small forward over a few candidates, so a TPU run judges them on its host."""
    platform = platform or jax.default_backend()
    return jax.devices("cpu")[0] if platform == "tpu" else None


# ----------------------------------------------------------------------------- compilation cache
CACHE_ENV = "INFOFLOW_COMPILE_CACHE"  # a folder, or "off"


def default_compile_cache() -> str | None:
    """Where the command line keeps JAX's persistent compilation cache: ``$INFOFLOW_COMPILE_CACHE``
    (``off`` disables it), else ``$XDG_CACHE_HOME/infoflow-jax/xla`` (``~/.cache/infoflow-jax/xla``).
    A ``JAX_COMPILATION_CACHE_DIR`` the user set wins over both: their folder is the one used. None
    when the user chose ``off``."""
    import os

    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return os.environ["JAX_COMPILATION_CACHE_DIR"]
    return cache_folder(CACHE_ENV, "xla")


def cache_folder(env: str, name: str) -> str | None:
    """A cache of the command line: the folder ``$ENV`` names (None when it says ``off``, ``0``, ``no``
    or nothing), else ``$XDG_CACHE_HOME/infoflow-jax/NAME`` (``~/.cache/infoflow-jax/NAME``)."""
    import os

    chosen = os.environ.get(env)
    if chosen is not None:
        return None if chosen.strip().lower() in ("off", "0", "no", "") else chosen
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "infoflow-jax", name)


def enable_compile_cache(path: str | None) -> None:
    """Turn on JAX's persistent compilation cache in ``path`` for this process and the worker
    processes it starts (through the environment): every compiled program is kept, so a rerun
    of the same shapes skips XLA compilation.

    "Every": JAX's own thresholds (keep only programs that took ≥ 1 s to compile) are set to 0,
    unless the user set them (``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS``,
    ``JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES``): at backend optimisation level 0 most programs
    of a verification run compile in under a second, and with JAX's default only a few of the
    default run's 43 were kept."""
    import os

    if path is None:
        return
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(path)
    min_seconds = os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    min_bytes = os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_seconds))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", int(min_bytes))


# ----------------------------------------------------------------------------- several processes
#: environment variables read when the flags are left out (JAX reads JAX_COORDINATOR_ADDRESS itself)
COORDINATOR_ENV, NUM_PROCESSES_ENV, PROCESS_ID_ENV = "JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"


def _env_int(name: str, env: str, value):
    import os

    if value is None and os.environ.get(env, "").strip():
        value = os.environ[env].strip()
    if value is None:
        return None
    try:
        return int(str(value))
    except ValueError:
        from infoflow_jax.core.errors import InputError

        raise InputError(name, value, "an integer") from None


def process_layout(coordinator: str | None = None, num_processes=None, process_id=None,
                   auto: bool = False) -> dict | None:
    """Where this process stands in a multi-process run, from the flags or, where a flag is left
    out, the environment (``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``).

    Returns None for a single process (nothing given, or one process), ``{"auto": True}`` when only
    ``auto`` is set (JAX detects SLURM, a TPU pod slice, Open MPI: :func:`jax.distributed.initialize`
    without arguments), else ``{"coordinator", "num_processes", "process_id"}``, validated: an
    InputError naming the argument and its range otherwise (never a traceback)."""
    import os

    from infoflow_jax.core.errors import InputError, check_int_range

    coordinator = coordinator or os.environ.get(COORDINATOR_ENV) or None
    n = _env_int("num-processes", NUM_PROCESSES_ENV, num_processes)
    i = _env_int("process-id", PROCESS_ID_ENV, process_id)
    if n is None and i is None and coordinator is None:
        return {"auto": True} if auto else None
    if n is None:
        if auto:
            return {"auto": True}
        raise InputError("num-processes", None, "an integer >= 1 (--num-processes or JAX_NUM_PROCESSES) when "
                         "--process-id or --coordinator is given")
    check_int_range("num-processes", n, 1)
    if n == 1 and not i:
        return None
    if i is None:
        raise InputError("process-id", None, f"an integer with 0 <= process-id <= {n - 1} (--process-id or "
                         "JAX_PROCESS_ID)")
    check_int_range("process-id", i, 0, n - 1)
    if coordinator is None:
        raise InputError("coordinator", None, "HOST:PORT of process 0 (--coordinator or JAX_COORDINATOR_ADDRESS)")
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise InputError("coordinator", coordinator, "HOST:PORT with 1 <= PORT <= 65535, e.g. 127.0.0.1:12345")
    return {"coordinator": coordinator, "num_processes": n, "process_id": i}


def init_processes(layout: dict | None, timeout_s: int = 300) -> tuple[int, int]:
    """Start JAX's multi-controller runtime (:func:`jax.distributed.initialize`) for ``layout``
    (:func:`process_layout`) before any computation; returns (process index, process count).
    A failed start (no coordinator within ``timeout_s``, a cluster JAX cannot detect) is an
    InputError naming what to pass."""
    from infoflow_jax.core.errors import InputError

    if layout is None:
        return 0, 1
    try:
        if layout.get("auto"):
            jax.distributed.initialize(initialization_timeout=timeout_s)
        else:
            jax.distributed.initialize(coordinator_address=layout["coordinator"],
                                       num_processes=layout["num_processes"], process_id=layout["process_id"],
                                       initialization_timeout=timeout_s)
    except (ValueError, RuntimeError, TypeError) as exc:
        what = " ".join(str(exc).split())[:200]
        if layout.get("auto"):
            raise InputError("distributed", "auto", "run inside a cluster JAX detects (SLURM, a TPU pod slice, Open "
                             f"MPI), or give --coordinator, --num-processes and --process-id ({what})") from None
        raise InputError("coordinator", layout["coordinator"], "the address of process 0, reachable from every "
                         f"process within {timeout_s} s ({what})") from None
    return jax.process_index(), jax.process_count()


def barrier(name: str) -> None:
    """Wait until every process of a multi-process run gets here (no-op for one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
