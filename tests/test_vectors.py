"""specs/vectors: reproducible from the one script, and passed by this implementation, both
in-process and through the external JSON-lines interface of the conformance runner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from blindmatch.node.devtools import conformance

ROOT = Path(__file__).resolve().parent.parent


def test_vectors_are_reproduced_by_the_generator() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "specs" / "generate_vectors.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_builtin_implementation_passes_every_vector() -> None:
    outcomes = conformance.run_vectors(conformance.Builtin(), ROOT / "specs" / "vectors")
    failed = [o for o in outcomes if o.status != "pass"]
    assert outcomes and not failed, failed
    files = {o.file for o in outcomes}
    assert {"rfc9497", "oprf", "threshold", "envelope", "federation"} <= files


def test_external_interface_round_trip_and_failure_reporting(tmp_path: Path) -> None:
    impl = f"{sys.executable} -m blindmatch spec serve-impl"
    outcomes = conformance.run_vectors(conformance.External(impl), ROOT / "specs" / "vectors")
    assert outcomes and all(o.status == "pass" for o in outcomes)
    # A broken implementation (one that answers every request with an error) fails loudly.
    broken = tmp_path / "broken.py"
    broken.write_text(
        "import json, sys\n"
        "for line in sys.stdin:\n"
        "    req = json.loads(line)\n"
        "    print(json.dumps({'id': req['id'], 'error': 'nope'}), flush=True)\n"
    )
    impl = conformance.External(f"{sys.executable} {broken}")
    try:
        outcomes = conformance.run_vectors(impl, ROOT / "specs" / "vectors")
    finally:
        impl.close()
    assert outcomes and all(o.status == "fail" for o in outcomes if o.file == "rfc9497")
