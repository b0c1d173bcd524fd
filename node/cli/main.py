"""The ``blindmatch`` command.

Each subcommand lives in its own module exposing ``register(subparsers)``; the module list
below is the only place that knows them all.
"""

from __future__ import annotations

import argparse
import importlib
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
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blindmatch",
        description="Privacy-preserving federated matching of perceptual hashes.",
    )
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


if __name__ == "__main__":
    sys.exit(main())
