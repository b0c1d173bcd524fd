"""``blindmatch demo``: the walk-through the README's first command runs."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="run the demo")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from blindmatch.node.demo_walkthrough import main

    return main()
