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
    "blindmatch.node.cmd_demo",
    "blindmatch.node.cmd_spec",
    "blindmatch.node.cmd_bank",
    "blindmatch.node.cmd_hash",
    "blindmatch.node.cmd_node",
    "blindmatch.node.cmd_audit",
    "blindmatch.node.cmd_sim",
    "blindmatch.node.cmd_reviewer",
    "blindmatch.node.cmd_report",
    "blindmatch.node.cmd_interop",
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
