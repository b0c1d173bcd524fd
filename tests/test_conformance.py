"""The conformance contract (specs/protocol.md chapter 9): profiles, the error-code registry,
the JSON encoding, and the independent second implementation of ``core`` in
tests/independent_impl, which must pass it without importing this package."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from blindmatch.node.devtools import conformance
from blindmatch.protocol import conformance_ops, conformance_profiles
from blindmatch.protocol.conformance_profiles import PROFILES, certify

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "specs" / "vectors"
INDEPENDENT = ROOT / "tests" / "independent_impl"
SPEC = (ROOT / "specs" / "protocol.md").read_text()


def _vector_cases() -> list[dict]:
    cases = []
    for path in sorted(VECTORS.glob("*.json")):
        doc = json.loads(path.read_text())
        if isinstance(doc, dict) and "cases" in doc:
            cases += doc["cases"]
    return cases


def _run(command: str) -> list[conformance.Outcome]:
    impl = conformance.External(command)
    try:
        return conformance.run_vectors(impl, VECTORS)
    finally:
        impl.close()


def _pairs(outcomes: list[conformance.Outcome]) -> list[tuple[str, str]]:
    return [(o.op, o.status) for o in outcomes]


@pytest.fixture(scope="module")
def independent_outcomes() -> list[conformance.Outcome]:
    return _run(f"{sys.executable} {INDEPENDENT / 'impl.py'}")


def test_independent_implementation_passes_core(independent_outcomes) -> None:
    verdict = certify("core", _pairs(independent_outcomes))
    assert verdict.certified, verdict
    core = conformance_profiles.required_ops("core")
    answered = [o for o in independent_outcomes if o.op in core]
    assert len(answered) > 150 and all(o.status == "pass" for o in answered)
    # It implements core only: everything else is an honest skip, never a failure.
    assert all(o.status == "skip" for o in independent_outcomes if o.op not in core)
    assert not certify("node", _pairs(independent_outcomes)).certified
    assert not certify("log", _pairs(independent_outcomes)).certified


def test_independent_implementation_imports_nothing_from_blindmatch() -> None:
    files = sorted(INDEPENDENT.glob("*.py"))
    assert len(files) >= 4
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n.split(".")[0] == "blindmatch" for n in names), path


SKIPPER = """
import json, subprocess, sys
skip = set(sys.argv[1].split(",")) if sys.argv[1] != "*" else None
inner = subprocess.Popen([sys.executable, "-m", "blindmatch", "spec", "serve-impl"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
for line in sys.stdin:
    req = json.loads(line)
    if skip is None or req["op"] in skip:
        print(json.dumps({"id": req["id"], "error": "unsupported-op"}), flush=True)
        continue
    inner.stdin.write(line)
    inner.stdin.flush()
    sys.stdout.write(inner.stdout.readline())
    sys.stdout.flush()
"""


def test_skipping_a_required_op_withholds_the_profile(tmp_path: Path) -> None:
    script = tmp_path / "skipper.py"
    script.write_text(SKIPPER)
    outcomes = _run(f"{sys.executable} {script} threshold.respond")
    assert not any(o.status == "fail" for o in outcomes)
    core = certify("core", _pairs(outcomes))
    assert not core.certified and core.skipped_required == ["threshold.respond"]
    assert certify("log", _pairs(outcomes)).certified
    # Skipping an optional op as a whole keeps the profile.
    outcomes = _run(f"{sys.executable} {script} pdq.from_float")
    node = certify("node", _pairs(outcomes))
    assert node.certified and node.optional_skipped == ["pdq.from_float"]


def test_builtin_is_certified_for_every_profile() -> None:
    outcomes = conformance.run_vectors(conformance.Builtin(), VECTORS)
    for name in PROFILES:
        assert certify(name, _pairs(outcomes)).certified, name


def test_a_required_op_without_vectors_is_not_certified() -> None:
    verdict = certify("core", [("oprf.blind", "pass")])
    assert not verdict.certified and "threshold.decide" in verdict.missing_vectors


def test_every_vector_op_is_in_a_profile_and_every_profile_op_has_vectors() -> None:
    ops = {c["op"] for c in _vector_cases()}
    assert ops == conformance_profiles.all_ops()


def _spec_table_row(profile: str) -> list[str]:
    row = re.search(rf"^\| `{profile}` \|.*$", SPEC, re.M)
    assert row, profile
    return row.group(0).split(" | ")


def test_spec_profile_table_lists_the_profiles_ops() -> None:
    for name, p in PROFILES.items():
        cells = _spec_table_row(name)
        required = set(re.findall(r"`([a-z_.]+)`", cells[2]))
        optional = set(re.findall(r"`([a-z_.]+)`", cells[3]))
        assert set(p.required) <= required, name
        assert required - set(p.required) <= set(p.extends) | {"core"}, name
        assert optional == set(p.optional), name


def test_error_codes_registry_spec_and_vectors_agree() -> None:
    registry = set(conformance_profiles.ERROR_CODES)
    used = {c["expected"]["error"] for c in _vector_cases() if "error" in c["expected"]}
    assert used <= registry, used - registry
    assert registry - used == {"unsupported-op"}
    section = SPEC[SPEC.index("### 9.6 Error codes") : SPEC.index("### 9.7")]
    table = {
        c
        for line in section.splitlines()
        if line.startswith("| `")
        for c in re.findall(r"`([a-z0-9:-]+)`", line.split(" | ")[0])
    }
    assert table == registry


TRICKY = [
    b"\x00",
    {"hex": "00"},
    {"hex": b"\x00"},
    {"int": 1},
    {"map": {}},
    {"hex": "00", "int": 2},
    2**53 - 1,
    2**53,
    -(2**63),
    2**64 - 1,
    [b"", "", None, True, {"a": [{"map": b"\x01"}]}],
]


@pytest.mark.parametrize("value", TRICKY, ids=repr)
def test_json_encoding_of_protocol_values_round_trips(value) -> None:
    encoded = conformance_ops.to_json_value(value)
    assert conformance_ops.from_json_value(json.loads(json.dumps(encoded))) == value


def test_json_encoding_has_no_collisions() -> None:
    forms = [json.dumps(conformance_ops.to_json_value(v), sort_keys=True) for v in TRICKY]
    assert len(set(forms)) == len(forms)


def test_big_integers_in_op_fields_are_tagged() -> None:
    assert conformance_ops.json_int({"int": str(2**64 - 1)}) == 2**64 - 1
    for bad in ({"int": "5"}, {"int": "01" + "0" * 20}, 2**53, 1.0, True, "5"):
        with pytest.raises(conformance_ops.OpError) as exc:
            conformance_ops.json_int(bad)
        assert exc.value.code == "bad-request"


def _verify(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "blindmatch", "spec", "verify", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_spec_verify_certifies_the_independent_implementation_for_core() -> None:
    r = _verify("--impl", f"{sys.executable} {INDEPENDENT / 'impl.py'}", "--profile", "core")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    assert "CERTIFIED: profile core" in r.stdout
    assert re.search(r"^  core +certified", r.stdout, re.M)
    assert re.search(r"^  node +not certified \(required but skipped: ", r.stdout, re.M)


def test_spec_verify_fails_an_implementation_that_skips(tmp_path: Path) -> None:
    script = tmp_path / "skipper.py"
    script.write_text(SKIPPER)
    # The run the issue found passing ("0 passed, 247 skipped", exit 0): now exit 1.
    r = _verify("--impl", f"{sys.executable} {script} *")
    assert r.returncode == 1 and "Certified profiles: none" in r.stdout
    assert re.search(r"^0 passed, 0 failed, \d+ skipped", r.stdout, re.M)
    r = _verify("--impl", f"{sys.executable} {script} envelope.open", "--profile", "core")
    assert r.returncode == 1
    assert "required but skipped: envelope.open" in r.stdout


REVERSER = """
import json, queue, subprocess, sys, threading
inner = subprocess.Popen([sys.executable, "-m", "blindmatch", "spec", "serve-impl"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
lines = queue.Queue()
def read():
    for line in sys.stdin:
        lines.put(line)
    lines.put(None)
threading.Thread(target=read, daemon=True).start()
done = False
while not done:
    batch = [lines.get()]           # wait for one request, then take what else has arrived
    while len(batch) < 8:
        try:
            batch.append(lines.get(timeout=0.05))
        except queue.Empty:
            break
    if None in batch:
        batch.remove(None)
        done = True
    for line in reversed(batch):   # answer the batch in reverse order
        inner.stdin.write(line)
        inner.stdin.flush()
    replies = [inner.stdout.readline() for _ in batch]
    sys.stdout.write("".join(replies))
    sys.stdout.flush()
"""


def test_runner_matches_pipelined_replies_by_id(tmp_path: Path) -> None:
    """Requests are pipelined (a batch of 8 is read before any reply) and replies may come out
    of order: the runner pairs them by id (9.2)."""
    script = tmp_path / "reverser.py"
    script.write_text(REVERSER)
    outcomes = _run(f"{sys.executable} {script}")
    assert outcomes and all(o.status == "pass" for o in outcomes)


STALLER = """
import json, sys
for line in sys.stdin:
    req = json.loads(line)
    if req["op"] == "threshold.verify":
        continue   # never answers this one
    print(json.dumps({"id": req["id"], "error": "unsupported-op"}), flush=True)
"""


def test_a_request_without_a_reply_times_out_and_ends_the_run(tmp_path: Path) -> None:
    script = tmp_path / "staller.py"
    script.write_text(STALLER)
    impl = conformance.External(f"{sys.executable} {script}", timeout_s=2.0)
    try:
        outcomes = conformance.run_vectors(impl, VECTORS)
    finally:
        impl.close()
    statuses = [o.detail for o in outcomes if o.status == "fail"]
    assert sum("timeout" in d for d in statuses) == 1
    assert any("implementation-exited" in d for d in statuses)
    assert impl.proc.poll() is not None  # the runner ended it
