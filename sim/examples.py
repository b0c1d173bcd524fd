"""The committed example reports: regenerate them all with one command, or check that none is
stale without running anything heavy.

    blindmatch sim examples            # re-run every example scenario and sweep
    blindmatch sim examples --check    # exit 1 if a committed report is stale

A report is stale when the ``inputs_sha256`` recorded in it (scenario, simulator sources and
data, CPU costs, LSH schemes: :mod:`.provenance`) differs from the one the current checkout
computes, or when one of its files is missing. Scenarios are ``examples/sims/*.toml`` (report in
``examples/sims/reports/<name>/``); sweeps are ``examples/sims/sweeps/*.toml`` (report in
``examples/sims/reports/<sweep name>/``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from . import provenance, sweep
from .scenario import load

EXAMPLES = provenance.PACKAGE_ROOT / "examples" / "sims"
REGENERATE = "blindmatch sim examples"
REQUIRED_SCENARIO_FILES = ("results.json", "report.md", "metrics.csv", "recall.csv")
REQUIRED_SWEEP_FILES = ("sweep.json", "report.md", "summary.csv", "runs.csv")


@dataclass
class Example:
    kind: str  # scenario | sweep
    source: Path
    report: Path


def examples(root: Path = EXAMPLES) -> list[Example]:
    found = []
    for path in sorted(root.glob("*.toml")):
        found.append(Example("scenario", path, root / "reports" / load(path).name))
    for path in sorted((root / "sweeps").glob("*.toml")):
        found.append(Example("sweep", path, root / "reports" / sweep.load_sweep(path).name))
    return found


def stale(example: Example) -> str | None:
    """Why a committed report is stale, or None if it is current."""
    required = REQUIRED_SCENARIO_FILES if example.kind == "scenario" else REQUIRED_SWEEP_FILES
    missing = [f for f in required if not (example.report / f).exists()]
    if missing:
        return f"missing {', '.join(missing)}"
    if example.kind == "scenario":
        recorded = json.loads((example.report / "results.json").read_text())
        recorded_key = recorded.get("provenance", {}).get("inputs_sha256")
        current = provenance.inputs_sha256(load(example.source))
    else:
        recorded_key = json.loads((example.report / "sweep.json").read_text()).get("inputs_sha256")
        current = sweep.sweep_inputs_sha256(sweep.load_sweep(example.source))
    if recorded_key != current:
        return f"inputs changed (recorded {str(recorded_key)[:12]}, now {current[:12]})"
    return None


def regenerate(example: Example, engine: str = "processes", workers: int | None = None) -> None:
    from .run import run

    if example.report.exists():
        shutil.rmtree(example.report)
    if example.kind == "scenario":
        run(load(example.source), example.report)
    else:
        sweep.run_sweep(sweep.load_sweep(example.source), example.report, engine, workers)


def main(argv: list[str] | None = None, root: Path = EXAMPLES) -> int:
    parser = argparse.ArgumentParser(prog=REGENERATE, description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale reports")
    parser.add_argument("--only", metavar="NAME", action="append", help="just these examples")
    parser.add_argument("--engine", choices=sweep.ENGINES, default="processes")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    chosen = [e for e in examples(root) if not args.only or e.report.name in args.only]
    if args.check:
        bad = [(e, why) for e in chosen if (why := stale(e))]
        for e, why in bad:
            print(f"stale: {e.report.relative_to(root.parent.parent)}: {why}")
        if bad:
            print(f"regenerate with: {REGENERATE}")
        return 1 if bad else 0
    for e in chosen:
        print(f"{e.kind} {e.source.name} -> {e.report.relative_to(root.parent.parent)}", flush=True)
        regenerate(e, args.engine, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
