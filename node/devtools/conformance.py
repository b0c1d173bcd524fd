"""The conformance runner behind ``blindmatch spec verify``.

It replays every case of ``specs/vectors/*.json`` against an implementation and prints a
pass/fail table. The implementation is either this package (in-process) or an external program
(``--impl CMD``) speaking JSON lines on stdin/stdout:

    request:  {"id": "<file>:<case>", "op": "<op>", "input": {...}}
    response: {"id": "<same>", "output": {...}}   or   {"id": "<same>", "error": "<code>"}

Inputs and outputs carry byte strings as lower-case hex. Cases whose op the implementation
answers with error "unsupported-op" are reported as skipped, not passed.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from blindmatch.protocol import conformance_ops


def default_vectors_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "specs" / "vectors"


class Implementation(Protocol):
    def call(self, case_id: str, op: str, data: dict[str, Any]) -> dict[str, Any]: ...
    def close(self) -> None: ...


class Builtin:
    """This package, called in-process."""

    name = "blindmatch (this package)"

    def call(self, case_id: str, op: str, data: dict[str, Any]) -> dict[str, Any]:
        try:
            return {"output": conformance_ops.run(op, data)}
        except conformance_ops.OpError as exc:
            return {"error": exc.code}

    def close(self) -> None:
        pass


class External:
    """Another implementation, run as a subprocess speaking JSON lines."""

    def __init__(self, command: str) -> None:
        self.name = command
        self.proc = subprocess.Popen(
            shlex.split(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def call(self, case_id: str, op: str, data: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"id": case_id, "op": op, "input": data}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            return {"error": "implementation-exited"}
        try:
            reply = json.loads(line)
        except json.JSONDecodeError:
            return {"error": "implementation-sent-invalid-json"}
        if not isinstance(reply, dict) or reply.get("id") != case_id:
            return {"error": "implementation-reply-id-mismatch"}
        return {k: v for k, v in reply.items() if k in ("output", "error")}

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def serve_jsonl(stdin=sys.stdin, stdout=sys.stdout) -> int:
    """Answer conformance requests on stdin: this package as an "external" implementation."""
    for line in stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            reply = Builtin().call(req["id"], req["op"], req["input"])
            reply["id"] = req["id"]
        except (json.JSONDecodeError, KeyError, TypeError):
            reply = {"id": None, "error": "bad-request"}
        stdout.write(json.dumps(reply) + "\n")
        stdout.flush()
    return 0


def _resolve(value: Any, cases: dict[str, dict[str, Any]]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$ref"}:
            target: Any = cases
            case_id, *path = value["$ref"].split("/")
            target = cases[case_id]
            for part in path:
                target = target[part]
            return target
        return {k: _resolve(v, cases) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, cases) for v in value]
    return value


@dataclass
class Outcome:
    file: str
    case: str
    op: str
    status: str  # pass | fail | skip
    detail: str = ""


def run_vectors(impl: Implementation, vectors_dir: Path) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for path in sorted(vectors_dir.glob("*.json")):
        doc = json.loads(path.read_text())
        if not isinstance(doc, dict) or "cases" not in doc:
            continue  # not a conformance vector file (e.g. raw data)
        by_id = {c["id"]: c for c in doc["cases"]}
        for case in doc["cases"]:
            data = _resolve(case["input"], by_id)
            got = impl.call(f"{path.stem}:{case['id']}", case["op"], data)
            want = case["expected"]
            if got.get("error") == "unsupported-op":
                outcomes.append(
                    Outcome(path.stem, case["id"], case["op"], "skip", "op unsupported")
                )
            elif got == want:
                outcomes.append(Outcome(path.stem, case["id"], case["op"], "pass"))
            else:
                detail = f"expected {json.dumps(want)[:120]}, got {json.dumps(got)[:120]}"
                outcomes.append(Outcome(path.stem, case["id"], case["op"], "fail", detail))
    return outcomes


def print_table(outcomes: list[Outcome], impl_name: str, out=sys.stdout) -> None:
    print(f"Conformance of: {impl_name}", file=out)
    width = max((len(f"{o.file}:{o.case}") for o in outcomes), default=10)
    print(f"{'case':<{width}}  {'op':<22}  result", file=out)
    print(f"{'-' * width}  {'-' * 22}  ------", file=out)
    for o in outcomes:
        mark = {"pass": "PASS", "fail": "FAIL", "skip": "skip"}[o.status]
        line = f"{o.file + ':' + o.case:<{width}}  {o.op:<22}  {mark}"
        print(line + (f"  {o.detail}" if o.detail else ""), file=out)
    counts = Counter(o.status for o in outcomes)
    print(
        f"\n{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped "
        f"({len(outcomes)} cases)",
        file=out,
    )


def main(impl: str | None = None, vectors_dir: str | None = None) -> int:
    directory = Path(vectors_dir) if vectors_dir else default_vectors_dir()
    if not directory.is_dir():
        print(f"no vector directory at {directory}", file=sys.stderr)
        return 2
    implementation: Implementation = External(impl) if impl else Builtin()
    try:
        outcomes = run_vectors(implementation, directory)
    finally:
        implementation.close()
    print_table(outcomes, implementation.name)  # type: ignore[attr-defined]
    return 1 if any(o.status == "fail" for o in outcomes) or not outcomes else 0
