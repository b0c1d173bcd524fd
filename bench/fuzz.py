"""Coverage-guided fuzzing of every decoder and parser (atheris, i.e. libFuzzer for Python).

    ./dev bench fuzz                         # every target, 600 s each, one after another
    ./dev bench fuzz --targets media,roster --seconds 60

Each target of bench/_fuzz_targets.py runs in its own process, seeded with valid inputs from
the real encoders plus every finding kept so far. An input that ends in anything but the
target's refusals is a finding: its bytes are kept under tests/data/fuzz/<target>/ (the tests
replay them, so a finding fails CI until it is fixed) and the run restarts for the time left.
The working corpus lives in a temporary folder; only findings are kept.

Writes bench/results/fuzz.md and .json: per target the seconds fuzzed, inputs executed, the
rate, the coverage libFuzzer reports (edges and features of the instrumented Python code), the
corpus it grew and the findings. atheris is an optional dependency (the ``fuzz`` extra:
``pip install -e ".[fuzz]"``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._fuzz_targets import FINDINGS, ROOT, TARGETS

RESULTS = ROOT / "bench" / "results"
MAX_LEN = {"messages": 65536, "media": 65536}


def _fuzz_one(name: str, seconds: int, work: Path) -> dict[str, object]:
    target = TARGETS[name]
    corpus = work / name / "corpus"
    artifacts = work / name / "artifacts"
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    for seed in target.seeds() + [p.read_bytes() for p in target.findings()]:
        (corpus / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
    seeds = len(list(corpus.iterdir()))
    findings: list[dict[str, str]] = []
    runs, execs, cov, ft = 0, 0, 0, 0
    started = time.monotonic()
    while (left := seconds - (time.monotonic() - started)) > 5:
        runs += 1
        cmd = [
            sys.executable,
            "-m",
            "bench._fuzz_worker",
            name,
            f"-max_total_time={int(left)}",
            f"-max_len={MAX_LEN.get(name, 8192)}",
            "-timeout=60",
            "-rss_limit_mb=3072",
            "-print_final_stats=1",
            f"-artifact_prefix={artifacts}/",
            str(corpus),
        ]
        run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, errors="replace")
        log = run.stdout + run.stderr  # atheris prints the uncaught exception to either
        for m in re.finditer(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+)", log):
            cov, ft = max(cov, int(m.group(2))), max(ft, int(m.group(3)))
        done = re.findall(r"stat::number_of_executed_units: (\d+)", log)
        execs += int(done[-1]) if done else 0
        if run.returncode == 0:
            break
        for artifact in sorted(artifacts.iterdir()):
            data = artifact.read_bytes()
            kept = (
                FINDINGS
                / name
                / f"{artifact.name.split('-')[0]}-{hashlib.sha1(data).hexdigest()[:16]}"
            )
            kept.parent.mkdir(parents=True, exist_ok=True)
            kept.write_bytes(data)
            error = _error_line(log)
            findings.append({"file": str(kept.relative_to(ROOT)), "error": error})
            print(f"  {name}: finding {kept.name}: {error}", flush=True)
            artifact.unlink()
            (corpus / hashlib.sha1(data).hexdigest()).unlink(missing_ok=True)
        if not findings or runs > 50:
            print(f"  {name}: worker failed without a finding:\n{log[-2000:]}", flush=True)
            break
    elapsed = time.monotonic() - started
    return {
        "target": name,
        "seconds": round(elapsed),
        "executions": execs,
        "per_second": round(execs / elapsed) if elapsed else 0,
        "coverage_edges": cov,
        "features": ft,
        "seeds": seeds,
        "corpus": len(list(corpus.iterdir())),
        "findings": findings,
    }


def _error_line(log: str) -> str:
    lines = [ln for ln in log.splitlines() if re.match(r"^\w*(Error|Exception)\b", ln)]
    if lines:
        return lines[-1][:200]
    m = re.search(r"==\d+== ERROR: (.*)", log)
    return m.group(1)[:200] if m else "crash (see libFuzzer output)"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="./dev bench fuzz")
    p.add_argument("--targets", default=",".join(TARGETS))
    p.add_argument("--seconds", type=int, default=600, help="per target")
    p.add_argument("--no-write", action="store_true", help="do not write bench/results")
    args = p.parse_args(argv)
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed: pip install atheris (the property tests in")
        print("tests/test_parsers_property.py run the same targets under hypothesis)")
        return 2
    names = [n for n in args.targets.split(",") if n]
    unknown = set(names) - set(TARGETS)
    if unknown:
        print(f"unknown target(s) {sorted(unknown)}; known: {', '.join(TARGETS)}")
        return 2
    for name in names:  # everything the targets import is loaded now, not mid-run
        TARGETS[name].seeds()
    work = Path(tempfile.mkdtemp(prefix="blindmatch-fuzz-"))
    rows = []
    try:
        for name in names:
            print(f"fuzzing {name} for {args.seconds} s", flush=True)
            row = _fuzz_one(name, args.seconds, work)
            rows.append(row)
            print(
                f"  {name}: {row['executions']} inputs in {row['seconds']} s"
                f" ({row['per_second']}/s), coverage {row['coverage_edges']} edges,"
                f" corpus {row['seeds']} -> {row['corpus']}, findings {len(row['findings'])}",
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not args.no_write:
        _write(rows, args.seconds)
    return 1 if any(r["findings"] for r in rows) else 0


def _write(rows: list[dict[str, object]], seconds: int) -> None:
    import atheris

    meta = {
        "atheris": getattr(atheris, "__version__", "3.x"),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "seconds_per_target": seconds,
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }
    RESULTS.mkdir(exist_ok=True)
    previous = {}
    json_path = RESULTS / "fuzz.json"
    if json_path.exists():  # a run of some targets keeps the others' last results
        previous = {r["target"]: r for r in json.loads(json_path.read_text())["targets"]}
    for r in rows:
        previous[str(r["target"])] = r
    merged = [previous[n] for n in TARGETS if n in previous]
    json_path.write_text(json.dumps({"meta": meta, "targets": merged}, indent=2) + "\n")
    lines = [
        "# Fuzzing every decoder and parser (atheris)",
        "",
        "`./dev bench fuzz` — coverage-guided (libFuzzer via atheris 3), one target at a time,",
        "each in its own process, seeded with valid inputs from the real encoders. A finding is",
        "an input that ends in anything but the target's refusals; its bytes are kept under",
        "`tests/data/fuzz/<target>/` and replayed by `tests/test_parsers_property.py`.",
        f"Machine: {meta['cpus']} cores shared with other work; Python {meta['python']}.",
        "",
        "| target | what it parses | seconds | inputs | inputs/s | coverage (edges) | corpus"
        " (seeds → grown) | findings |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    what = {
        "messages": "envelopes; every message body, schema then the node's own checks",
        "canonical": "canonical msgpack (decode, then re-encode must be identical)",
        "transparency": "log entries; signed tree heads",
        "feed_entries": "index deltas into a replica; uploader deltas; feedback records",
        "roster": "roster files as the node loads them (UTF-8, JSON, signatures)",
        "bank_formats": "JSON lines, ThreatExchange lines/CSV, HMA JSON; vPDQ signal strings",
        "operator_files": "policy and node config files (TOML)",
        "media": "image files (every format Pillow is allowed to open), then PDQ",
    }
    for r in merged:
        found = r["findings"]
        findings = (
            "none"
            if not found
            else "; ".join(
                f"`{Path(f['file']).name}`: {f['error']}"
                for f in found  # type: ignore[index]
            )
        )
        lines.append(
            f"| {r['target']} | {what.get(str(r['target']), '')} | {r['seconds']} |"
            f" {r['executions']} | {r['per_second']} | {r['coverage_edges']} |"
            f" {r['seeds']} → {r['corpus']} | {findings} |"
        )
    lines += [
        "",
        "Every finding listed was fixed in the same change and is replayed by the tests.",
        "",
    ]
    (RESULTS / "fuzz.md").write_text("\n".join(lines))
