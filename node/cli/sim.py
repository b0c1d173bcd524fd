"""``blindmatch sim``: the researchers' simulator.

    blindmatch sim SCENARIO [--seeds N]     one scenario (N seeds: means and 95% intervals)
    blindmatch sim sweep SWEEP              a parameter grid x seeds, locally or on Dask
    blindmatch sim examples [--check]       regenerate (or check) the committed example reports

A run writes ``results.json`` (deterministic for the seed, with the resolved scenario, code
version and environment), ``timing.json``, CSV tables, SVG + PNG figures and ``report.md`` to
``--out`` (default ``sim-out/<name>``). A long run checkpoints there; after an interruption,
``--resume`` continues from the last checkpoint. Exit status 2 for a scenario or sweep that
does not validate (the message names the field).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

ENGINES = ("processes", "dask", "serial")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "sim",
        help="run a simulated federation (researchers' simulator)",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "scenario",
        metavar="SCENARIO",
        help="scenario file (.toml or .json), or 'sweep' / 'examples'",
    )
    p.add_argument("sweep_file", metavar="SWEEP", nargs="?", help="with 'sweep': the sweep file")
    p.add_argument("--out", metavar="DIR", help="output directory (default sim-out/NAME)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument(
        "--seeds", type=int, default=1, metavar="N", help="run N seeds (s, s+1, ...) and aggregate"
    )
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="processes",
        help="where seeds and sweep points run: local worker processes (default), a Dask "
        "cluster (pip install 'blindmatch[cluster]'), or one after another",
    )
    p.add_argument("--workers", type=int, metavar="N", help="worker processes (default: CPUs)")
    p.add_argument(
        "--scheduler",
        metavar="ADDR",
        help="with --engine dask: a running Dask scheduler (default: a local cluster)",
    )
    p.add_argument("--check", action="store_true", help="with 'examples': only check staleness")
    p.add_argument(
        "--only", metavar="NAME", action="append", help="with 'examples': just this report"
    )
    p.set_defaults(func=run)


def _progress(quiet: bool) -> Callable[[int, int], None] | None:
    if quiet:
        return None

    def show(done: int, total: int) -> None:
        print(f"\r{done}/{total} runs", end="\n" if done == total else "", file=sys.stderr)

    return show


def run(args: argparse.Namespace) -> int:
    from blindmatch import sim  # heavy imports (numpy, matplotlib) only for this command
    from blindmatch.sim import sweep

    if args.scenario == "examples":
        from blindmatch.sim import examples

        argv = ["--check"] if args.check else []
        argv += ["--engine", args.engine]
        argv += ["--workers", str(args.workers)] if args.workers else []
        argv += [x for name in args.only or [] for x in ("--only", name)]
        return examples.main(argv)
    try:
        if args.scenario == "sweep":
            if not args.sweep_file:
                print("blindmatch sim sweep: name the sweep file", file=sys.stderr)
                return 2
            plan = sweep.load_sweep(args.sweep_file)
        elif args.seeds > 1:
            if args.resume:
                print("blindmatch sim: --resume runs one seed", file=sys.stderr)
                return 2
            sim.load(args.scenario)  # validate before starting any worker
            plan = sweep.single(args.scenario, args.seeds)
        else:
            plan = None
            scenario = sim.load(args.scenario)
    except (sim.ScenarioError, sweep.SweepError) as exc:
        print(f"blindmatch sim: {exc}", file=sys.stderr)
        return 2
    if plan is None:
        out = Path(args.out) if args.out else Path("sim-out") / scenario.name
        result = sim.run(scenario, out, resume=args.resume, progress=not args.quiet)
        print(f"{scenario.name}: report {out / 'report.md'} ({result.timing['total_s']} s)")
        return 0
    out = Path(args.out) if args.out else Path("sim-out") / plan.name
    try:
        sweep.run_sweep(
            plan,
            out,
            engine=args.engine,
            workers=args.workers,
            scheduler=args.scheduler,
            keep_runs=args.scenario != "sweep",  # --seeds: every seed's full report too
            progress=_progress(args.quiet),
        )
    except sweep.SweepError as exc:
        print(f"blindmatch sim: {exc}", file=sys.stderr)
        return 2
    print(f"{plan.name}: report {out / 'report.md'}")
    return 0
