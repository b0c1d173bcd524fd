"""``blindmatch spec verify``: the conformance runner."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("spec", help="protocol specification tools")
    ssub = p.add_subparsers(dest="spec_command", metavar="SUBCOMMAND")
    v = ssub.add_parser("verify", help="check an implementation against specs/vectors")
    v.add_argument(
        "--impl",
        metavar="CMD",
        help="external implementation speaking the JSON-lines interface (default: this one)",
    )
    v.add_argument("--vectors", metavar="DIR", help="vector directory (default: bundled)")
    v.add_argument(
        "--profile",
        metavar="NAME",
        help="exit 0 only if this profile is certified (core, node, log, ...; spec 9.3); "
        "default: no case may fail and at least one profile must be certified",
    )
    v.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        default=30.0,
        help="seconds the implementation has to answer each request (default 30)",
    )
    v.set_defaults(func=run_verify)
    s = ssub.add_parser(
        "serve-impl",
        help="answer conformance requests as JSON lines on stdin/stdout (this implementation)",
    )
    s.set_defaults(func=run_serve)
    p.set_defaults(func=lambda args: _help(p))


def run_verify(args: argparse.Namespace) -> int:
    from blindmatch.node.devtools.conformance import main

    return main(
        impl=args.impl, vectors_dir=args.vectors, profile=args.profile, timeout_s=args.timeout
    )


def run_serve(args: argparse.Namespace) -> int:
    from blindmatch.node.devtools.conformance import serve_jsonl

    return serve_jsonl()


def _help(parser: argparse.ArgumentParser) -> int:
    """A command group run without its subcommand: its help, exit status 2."""
    parser.print_help()
    return 2
