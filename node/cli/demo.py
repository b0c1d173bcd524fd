"""``blindmatch demo``: the walk-through the README's first command runs."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo", help="run the demo: a hub, two platforms and a generator on this machine"
    )
    p.add_argument(
        "--walkthrough",
        action="store_true",
        help="instead, print one private match between two in-process parties step by step",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.walkthrough:
        from blindmatch.node.devtools.demo_walkthrough import main as walkthrough

        return walkthrough()
    from blindmatch.node.devtools.demo_federation import main

    return main()
