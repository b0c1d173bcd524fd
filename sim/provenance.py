"""What a result came from: the resolved scenario, the code version and the environment.

``inputs_sha256`` is the staleness key of a committed report: a hash of everything that
decides the numbers in ``results.json`` -- the resolved scenario, the simulator's model sources
and data, the CPU costs it charges (from ``bench/results/crypto.json``) and the LSH scheme's
parameters. It deliberately leaves out the modules that only present or orchestrate runs
(``PRESENTATION``: a new table or figure style does not change a number), the rest of the
package (a refactor of node/ does not change a simulated federation) and the environment
(recorded, not hashed). ``code`` records the
version a reader would cite: the package version, ``git describe`` when run from a checkout,
and a hash of every source file of the package.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from .scenario import Scenario

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
SIM_ROOT = Path(__file__).resolve().parent


def resolved(s: Scenario) -> dict[str, Any]:
    """The scenario with every default filled in, as plain JSON data."""
    return json.loads(json.dumps(asdict(s), sort_keys=True))


def _files_digest(files: list[Path], root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(str(f.relative_to(root)).encode() + b"\x00")
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


# Simulator modules that write, render, aggregate or schedule runs but compute no result, and
# tools a run never imports (make_data writes sim/data, which is hashed; extraction is its own
# benchmark).
PRESENTATION = frozenset(
    {
        "report.py",
        "figures.py",
        "sweep.py",
        "examples.py",
        "provenance.py",
        "make_data.py",
        "extraction.py",
        "distinguisher.py",  # a standalone model, like extraction.py: no scenario runs it
    }
)
# Modules that compute results only for scenarios that ask for them: a change to one stales the
# reports of those scenarios alone. A new optional model module is listed here with its test.
OPTIONAL: dict[str, Callable[[Scenario], bool]] = {
    "uploaders.py": lambda s: s.uploaders is not None,
}


def _model_files(s: Scenario | None) -> list[Path]:
    files = [
        p
        for p in SIM_ROOT.rglob("*.py")
        if "__pycache__" not in p.parts
        and p.name not in PRESENTATION
        and (s is None or p.name not in OPTIONAL or OPTIONAL[p.name](s))
    ]
    return files + sorted((SIM_ROOT / "data").glob("*.json"))


def model_sha256(s: Scenario | None = None) -> str:
    """The simulator's model sources (those ``s`` uses; all of them without ``s``) and data,
    the CPU costs it charges and the LSH schemes."""
    return _model_sha256(tuple(sorted(str(p) for p in _model_files(s))))


@cache
def _model_sha256(files: tuple[str, ...]) -> str:
    from blindmatch.protocol.lsh import SCHEMES

    from .exchange import calibrated_costs

    h = hashlib.sha256(_files_digest([Path(f) for f in files], SIM_ROOT).encode())
    h.update(json.dumps(calibrated_costs(), sort_keys=True).encode())
    for name in sorted(SCHEMES):
        scheme = SCHEMES[name]
        h.update(name.encode() + json.dumps(repr(scheme.table_positions)).encode())
        h.update(str(scheme.probe_budget).encode())
    return h.hexdigest()


def inputs_sha256(s: Scenario) -> str:
    """The staleness key: a committed report whose key differs from this one is stale."""
    payload = json.dumps({"scenario": resolved(s), "model": model_sha256(s)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


@cache
def code_version() -> dict[str, Any]:
    try:
        version = metadata.version("blindmatch")
    except metadata.PackageNotFoundError:
        version = None
    try:
        describe = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=PACKAGE_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        describe = None
    sources = [
        p
        for p in PACKAGE_ROOT.rglob("*.py")
        if not ({"__pycache__", ".venv", "tests", "build"} & set(p.relative_to(PACKAGE_ROOT).parts))
    ]
    return {
        "package_version": version,
        "git_describe": describe,
        "source_sha256": _files_digest(sources, PACKAGE_ROOT),
        "model_sha256": model_sha256(),
    }


@cache
def environment() -> dict[str, Any]:
    import numpy

    from blindmatch.crypto import sodium

    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "numpy": numpy.__version__,
        "libsodium": sodium.version(),
        "executable": Path(sys.executable).name,
    }


def record(s: Scenario) -> dict[str, Any]:
    """The provenance block of a results.json."""
    return {
        "scenario": resolved(s),
        "inputs_sha256": inputs_sha256(s),
        "code": code_version(),
        "environment": environment(),
    }
