"""Shared test setup: verification runs in float64 (THEORY §6), so enable it at import.

Every compiled CPU executable holds ~3 memory mappings until it is freed, and the suite compiles
thousands of programs in one process: near its end the process reached Linux's 65 530 mappings
per process (vm.max_map_count) and XLA's next compilation crashed (SIGSEGV in
backend_compile_and_load; measured 65 453 mappings at the crash, 94 % of the suite). So after a
test module, once the process holds more than MAX_MAPPINGS mappings, JAX's compilation caches are
cleared and the executables freed. Below that the compiled programs stay: a later module that
verifies the same shapes (most of them verify C1–C3 at small T) reuses them instead of compiling
again, which is most of a verification's cost. (Clearing after every module, as before, kept the
peak near 10 000 mappings and compiled every shared program once per module.)

Tests compile with the command line's XLA flags (:func:`~infoflow_jax.cli.verify.prefer_fast_compilation`).

The two crashes before that one (an abort writing JAX's persistent compilation cache, a segfault
reading it, at the same point of the suite) were most likely the same exhaustion. The test
process keeps that cache off anyway (a test's programs have no business in a user's cache):
`INFOFLOW_COMPILE_CACHE=off` for `infoflow verify`/`certify` in-process (subprocesses inherit
it), and after every test a cache another command switched on (a sweep's `DIR/xla_cache`) is
switched off again.
"""

import gc
import os

import pytest

os.environ.setdefault("INFOFLOW_COMPILE_CACHE", "off")
os.environ.setdefault("INFOFLOW_RECORD_CACHE", "off")  # every test computes its rows (a test may patch the code)

from infoflow_jax.cli.verify import prefer_fast_compilation  # noqa: E402
from infoflow_jax.core.precision import use_float64  # noqa: E402

# The XLA flags `infoflow verify` runs with (cheap compilation: backend optimisation level 0, the
# classic CPU emitters; no numerics change beyond float64 rounding), set before JAX's backend
# starts: the tests then exercise the programs the command line compiles, and most of the suite is
# XLA compilation (the intrinsic-diagnosis smoke run: 62 s → 20 s).
prefer_fast_compilation()
use_float64()


@pytest.fixture(autouse=True)
def _no_persistent_cache_after_the_test():
    yield
    import jax
    from jax._src import compilation_cache

    if jax.config.jax_compilation_cache_dir is not None:
        jax.config.update("jax_compilation_cache_dir", None)
        compilation_cache.reset_cache()
        for name in ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
                     "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"):
            os.environ.pop(name, None)


MAX_MAPPINGS = 30_000  # under half of vm.max_map_count (65 530): a module compiles ≲ 3 000 programs


def memory_mappings() -> int:
    """This process's memory mappings (Linux; 0 where /proc is missing)."""
    try:
        with open("/proc/self/maps") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs_when_the_mappings_pile_up():
    yield
    if memory_mappings() > MAX_MAPPINGS:
        import jax

        jax.clear_caches()
        gc.collect()
