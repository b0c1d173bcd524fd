"""``blindmatch report``: a transparency report from a node's verifiable log.

    blindmatch report --url http://node:8443 --key HEX --out report/ [--period week]
    blindmatch report --log log.jsonl --sth sth.hex --key HEX --out report/ [--period day]
    blindmatch report --demo --out report/     (a demo federation's log; see translog_demo)

The log is audited against its signed tree head first (a log that does not match its head
gets no report: the audit's verdict is printed instead, exit 1). The report (``report.md``,
``report.json`` and PNG plots) is built from the log entries alone and states the head it
covers, so anyone with the log rebuilds the same report.

Exit status: 0 written; 1 the log failed its audit; 2 the inputs could not be read.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from blindmatch.node.cli.audit import InputError, read_export, read_tree_head
from blindmatch.node.translog import report as report_mod
from blindmatch.node.translog.report import fetch_log, make_report
from blindmatch.protocol import transparency as tl


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report", help="build a transparency report (markdown, JSON, plots) from a verifiable log"
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--log", metavar="FILE", help="exported log (JSON lines); needs --sth")
    source.add_argument("--url", metavar="URL", help="a live node's federation endpoint")
    source.add_argument(
        "--demo",
        action="store_true",
        help="run a demo federation on loopback for three simulated weeks and report the log "
        "of its platform (also writes the log, head and key next to the report)",
    )
    p.add_argument("--sth", metavar="FILE", help="signed tree head (hex), with --log")
    p.add_argument("--key", metavar="HEX", help="the log's Ed25519 public key (not with --demo)")
    p.add_argument("--days", type=int, default=21, help="with --demo: days to simulate")
    p.add_argument("--out", required=True, metavar="DIR", help="directory to write the report to")
    p.add_argument("--period", choices=report_mod.PERIODS, default="week")
    p.add_argument("--no-plots", action="store_true", help="markdown and JSON only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.demo:
        from blindmatch.node.devtools.translog_demo import run_demo

        if not 1 <= args.days <= 28:
            print("--days must be 1..28 (the demo roster is valid for 30 days)")
            return 2
        return asyncio.run(run_demo(Path(args.out), days=args.days, period=args.period))
    if not args.key:
        print("--key is required: the log's Ed25519 public key (hex)")
        return 2
    try:
        public_key = bytes.fromhex(args.key)
    except ValueError:
        print("--key must be the hex of an Ed25519 public key")
        return 2
    if args.url:
        from blindmatch.node.translog.monitor import LogFetchError

        try:
            entries, stored, sth = asyncio.run(fetch_log(args.url, public_key))
        except LogFetchError as exc:
            print(f"cannot read the log at {args.url}: {exc}")
            return 2
        except tl.LogError as exc:
            print(f"FAIL [{exc.code}] {exc.detail}")
            return 1
    else:
        if not args.sth:
            print("--log needs --sth (the signed tree head the report is built on)")
            return 2
        try:
            entries, stored = read_export(Path(args.log))
            sth = read_tree_head(Path(args.sth))
        except (OSError, InputError, ValueError) as exc:
            print(f"cannot read the inputs: {exc}")
            return 2
    return make_report(
        entries, stored, sth, public_key, Path(args.out), args.period, not args.no_plots
    )
