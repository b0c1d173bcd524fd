"""The ``blindmatch`` command.

Each subcommand lives in its own module exposing ``register(subparsers)``; the module list
below is the only place that knows them all.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# Modules that contribute subcommands (each has ``register(subparsers) -> None`` and sets
# ``func`` on its parser with the signature ``func(args) -> int``).
COMMAND_MODULES: tuple[str, ...] = (
    "blindmatch.node.cli.demo",
    "blindmatch.node.cli.spec",
    "blindmatch.node.cli.bank",
    "blindmatch.node.cli.hash",
    "blindmatch.node.cli.node",
    "blindmatch.node.cli.audit",
    "blindmatch.node.cli.sim",
    "blindmatch.node.cli.reviewer",
    "blindmatch.node.cli.report",
    "blindmatch.node.cli.interop",
    "blindmatch.node.cli.keys",
)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("blindmatch")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blindmatch",
        description="Privacy-preserving federated matching of perceptual hashes: run a node"
        " ('init', 'roster', 'run', 'status', 'match'), manage its banks and reviewers, try the"
        " demo, verify the spec and logs, simulate federations. 'Running a node' in the README"
        " walks through it.",
    )
    parser.add_argument("--version", action="version", version=f"blindmatch {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # every known mistake becomes one line (BLINDMATCH_DEBUG=1: all)
        message = explain(exc, args)
        if message is None or os.environ.get("BLINDMATCH_DEBUG"):
            raise
        print(f"blindmatch {args.command}: error: {message}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1


def explain(exc: BaseException, args: argparse.Namespace) -> str | None:
    """One line (with a hint) for the mistakes an operator makes; None for a bug."""
    import aiohttp

    from blindmatch.node.api.client import ApiClientError

    if isinstance(exc, aiohttp.ClientConnectorError):
        return (
            f"the node is not answering at {exc.host}:{exc.port}; is 'blindmatch run' running"
            " with this --config?"
        )
    if isinstance(exc, aiohttp.ClientError):
        return f"the node's API failed: {exc.__class__.__name__}; see the node's log"
    if isinstance(exc, ApiClientError):
        return f"the node refused: {exc.message} ({exc.status} {exc.code})"
    import sqlite3

    from blindmatch.node.storage.database import StorageError

    if isinstance(exc, StorageError | sqlite3.Error):
        return (
            f"database: {exc}; check the file or server named by 'database' in the config"
            " (its permissions, free disk space), or restore it from a backup"
        )
    if isinstance(exc, FileNotFoundError) and exc.filename is not None:
        return f"no such file: {exc.filename}"
    if isinstance(exc, OSError | ValueError | TimeoutError):
        # ConfigError, KeyFileError, RosterError, PolicyError, BankValidationError and the
        # runtime's ListenError carry a sentence written for the operator.
        return str(exc) or exc.__class__.__name__
    return None


if __name__ == "__main__":
    sys.exit(main())
