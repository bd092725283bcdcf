"""Helpers that several test files share, written once (tests import no private name).

Test modules import it as ``helpers`` (pytest puts ``tests/`` on ``sys.path``: the folder is not
a package). Module-level and public, like the library's own helpers."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys


def run_main(argv) -> tuple[int, str, str]:
    """``infoflow ARGV`` in this process: (exit status, stdout, stderr)."""
    from infoflow_jax.cli import app as cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(argv)
    return status, out.getvalue(), err.getvalue()


def run_predict(argv) -> int:
    """``infoflow predict ARGV`` through its own parser (prints to the real stdout); the exit status."""
    from infoflow_jax.cli import predict as cli_predict

    parser = argparse.ArgumentParser(prog="infoflow")
    sub = parser.add_subparsers(dest="command")
    cli_predict.add_parser(sub)
    return cli_predict.run(parser.parse_args(["predict", *argv]))


def dense_and_fast(graphdef_state, plan, Xs):
    """Values and input gradients of the dense model and of its fast plan on a batch Xs."""
    import jax

    from infoflow_jax.core.fast_model import apply_fast
    from infoflow_jax.core.model import apply

    graphdef, state = graphdef_state
    dense = jax.vmap(jax.value_and_grad(lambda X: apply(graphdef, state, X)))(Xs)
    fast = jax.vmap(jax.value_and_grad(apply_fast, argnums=1), in_axes=(None, 0))(plan, Xs)
    return dense, fast


def sweep_command(spec, out, cache, *extra) -> list[str]:
    """``infoflow sweep SPEC --out OUT`` as a subprocess command (no progress bar, its own compile cache)."""
    return [sys.executable, "-m", "infoflow_jax.cli.app", "sweep", str(spec), "--out", str(out), "--no-progress",
            "--compile-cache", str(cache), *extra]


def run_sweep(spec, out, cache, *extra, **env):
    """Run ``infoflow sweep SPEC --out OUT`` in a subprocess (:func:`sweep_command`, :func:`sweep_env` plus
    ``env``), assert it exits 0 (the failure shows its stderr's end), return the finished process."""
    import subprocess

    proc = subprocess.run(sweep_command(spec, out, cache, *extra), env=sweep_env(**env), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def sweep_env(**extra) -> dict:
    """This environment for a sweep subprocess: without XLA_FLAGS (the command sets its own) and without
    the JAX_* multi-process variables (a sweep is one process unless the test says otherwise), plus ``extra``."""
    env = dict(os.environ)
    for k in ("XLA_FLAGS", "JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        env.pop(k, None)
    env.update(extra)
    return env
