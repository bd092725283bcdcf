"""The ``infoflow`` command line (one module per subcommand); the entry point is :func:`main`."""

from infoflow_jax.cli.app import main

__all__ = ["main"]
