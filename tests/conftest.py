"""Shared test setup: verification runs in float64 (THEORY §6), so enable it at import.

The command line turns on JAX's persistent compilation cache for its process. Tests that run a
command in-process must not leave it on for the rest of the session: other tests' programs
would then be serialized into it, and XLA's CPU serializer has aborted the suite on one of them
(the training harness's program). So the test process keeps the cache off: `INFOFLOW_COMPILE_CACHE
=off` for `infoflow verify`/`certify` in-process (subprocesses inherit it), and after every test a
cache another command switched on (a sweep's `DIR/xla_cache`) is switched off again.

Every compiled CPU executable keeps ~3 memory mappings until it is freed, and the suite compiles
thousands of programs in one process: near its end the process passed Linux's 65 530 mappings
per process (vm.max_map_count) and XLA's next compilation crashed (SIGSEGV in
backend_compile_and_load, measured: 41 000 mappings at 70 % of the suite). So after every test
module JAX's compilation caches are cleared and the executables freed.
"""

import gc
import os

import pytest

os.environ.setdefault("INFOFLOW_COMPILE_CACHE", "off")

from infoflow_jax.core.precision import use_float64  # noqa: E402

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


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs_after_the_module():
    yield
    import jax

    jax.clear_caches()
    gc.collect()

