"""``blindmatch sim SCENARIO``: run a simulated federation from a scenario file.

Writes ``results.json`` (deterministic for the seed), ``timing.json``, ``report.md`` and PNG
plots to ``--out`` (default ``sim-out/<scenario name>``). A long run checkpoints there; after an
interruption, ``--resume`` continues from the last checkpoint. Exit status 2 for a scenario
that does not validate (the message names the field).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sim", help="run a simulated federation (researchers' simulator)")
    p.add_argument("scenario", metavar="SCENARIO", help="scenario file (.toml or .json)")
    p.add_argument("--out", metavar="DIR", help="output directory (default sim-out/NAME)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from blindmatch import sim  # heavy imports (numpy, matplotlib) only for this command

    try:
        scenario = sim.load(args.scenario)
    except sim.ScenarioError as exc:
        print(f"blindmatch sim: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path("sim-out") / scenario.name
    result = sim.run(scenario, out, resume=args.resume, progress=not args.quiet)
    print(f"{scenario.name}: report {out / 'report.md'} ({result.timing['total_s']} s)")
    return 0
