"""The ``infoflow`` command line: one subcommand per module ``infoflow_jax.cli.<name>``.

Each subcommand module exposes

    add_parser(subparsers) -> argparse.ArgumentParser   # registers "<name>"
    run(args) -> int                                   # the exit status

and is imported lazily: only the module of the subcommand being run is
imported, so a missing or broken module breaks that subcommand alone (the
others, and ``infoflow --help``, keep working).

Exit status and errors, for every subcommand:

* bad user input — an :class:`infoflow_jax.core.errors.InputError` raised anywhere
  while the subcommand runs — prints one line,
  ``infoflow <sub>: error: <message>``, on stderr and exits with status 2
  (no traceback);
* argparse usage errors (unknown option, missing value) also exit with 2;
* otherwise the subcommand's own status (``infoflow verify``: 0 iff every row
  came out as expected).

An installed entry point that cannot be loaded (:class:`infoflow_jax.core.errors.EntryPointWarning`)
is reported as one line, ``infoflow: warning: <message>``, on stderr; the command goes on.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

# Subcommands, in --help order. Later subcommands append their name here and
# provide infoflow_jax/cli/<name>.py with add_parser(subparsers) and run(args).
SUBCOMMANDS = ["verify", "predict", "train", "sweep", "report", "separation", "certify"]

PROG = "infoflow"
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 1
EXIT_INTERRUPTED = 130


def _module_name(name: str) -> str:
    return f"infoflow_jax.cli.{name}"


def _import(name: str):
    """The subcommand module, or (None, reason) when it cannot be imported."""
    try:
        return importlib.import_module(_module_name(name)), None
    except Exception as exc:  # a missing/broken module breaks only its own subcommand
        return None, f"{type(exc).__name__}: {exc}"


def _requested(argv: list[str]) -> str | None:
    """The subcommand named on the command line (first token not starting with '-')."""
    for tok in argv:
        if tok == "--":
            return None
        if not tok.startswith("-"):
            return tok
    return None


def build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, dict]:
    """Top-level parser. Imports the requested subcommand's module only (all of
    them when none is requested, so that ``--help`` can describe each)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Numerically verify approximation theory of softmax Transformers "
                    "(constructions, lemmas, InfoFlow predictions).",
        epilog="Run 'infoflow <command> --help' for a command's options.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = _requested(argv)
    modules: dict[str, object] = {}
    for name in SUBCOMMANDS:
        if wanted is not None and name != wanted:
            # placeholder, so that the name is a valid choice and shows in --help
            subparsers.add_parser(name, help=f"(see 'infoflow {name} --help')", add_help=False)
            continue
        mod, reason = _import(name)
        if mod is None:
            p = subparsers.add_parser(name, help=f"unavailable ({reason})", add_help=False)
            p.add_argument("rest", nargs=argparse.REMAINDER)
            modules[name] = reason
        else:
            mod.add_parser(subparsers)
            modules[name] = mod
    return parser, modules


def _one_line_warnings(show, category):
    """``warnings.showwarning`` that prints warnings of ``category`` as one line naming the
    program (a user reads them like the error lines); every other warning goes to ``show``."""
    def showwarning(message, cat, filename, lineno, file=None, line=None):
        if issubclass(cat, category):
            print(f"{PROG}: warning: {' '.join(str(message).split())}", file=file or sys.stderr, flush=True)
        else:
            show(message, cat, filename, lineno, file, line)
    return showwarning


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``infoflow`` console script. Returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, modules = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    sub = args.command
    mod = modules.get(sub)
    if not hasattr(mod, "run"):
        print(f"{PROG} {sub}: error: subcommand unavailable: {mod}", file=sys.stderr)
        return EXIT_UNAVAILABLE

    from infoflow_jax.core.errors import EntryPointWarning, InputError

    try:
        with warnings.catch_warnings():  # restores the warning display on the way out
            warnings.showwarning = _one_line_warnings(warnings.showwarning, EntryPointWarning)
            status = mod.run(args)
    except InputError as exc:
        msg = " ".join(str(exc).split())  # exactly one line
        sys.stdout.flush()
        print(f"{PROG} {sub}: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stdout.flush()
        print(f"{PROG} {sub}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return int(status or 0)


if __name__ == "__main__":  # python -m infoflow_jax.cli.app
    sys.exit(main())
