"""The conformance runner behind ``blindmatch spec verify`` (specs/protocol.md, chapter 9).

It replays every case of ``specs/vectors/*.json`` against an implementation, prints a
pass/fail/skip line per case, then certifies the profiles (9.3) the implementation passes. The
implementation is this package (in-process) or an external program (``--impl CMD``) speaking
the JSON-lines interface of 9.2: one long-lived process, one JSON object per line each way,
up to 64 requests in flight, replies matched by id in any order, a timeout per request.
"""

from __future__ import annotations

import contextlib
import json
import queue
import shlex
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from blindmatch.protocol import conformance_ops
from blindmatch.protocol.conformance_profiles import PROFILES, Certification, certify

DEFAULT_TIMEOUT_S = 30.0
PIPELINE_WINDOW = 64
EXIT_GRACE_S = 10.0

Request = tuple[str, str, dict[str, Any]]  # (id, op, input)


def default_vectors_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "specs" / "vectors"


class Implementation(Protocol):
    name: str

    def call_many(self, requests: Sequence[Request]) -> dict[str, dict[str, Any]]: ...
    def close(self) -> str | None: ...


class Builtin:
    """This package, called in-process."""

    name = "blindmatch (this package)"

    def call(self, case_id: str, op: str, data: dict[str, Any]) -> dict[str, Any]:
        try:
            return {"output": conformance_ops.run(op, data)}
        except conformance_ops.OpError as exc:
            return {"error": exc.code}

    def call_many(self, requests: Sequence[Request]) -> dict[str, dict[str, Any]]:
        return {rid: self.call(rid, op, data) for rid, op, data in requests}

    def close(self) -> str | None:
        return None


class External:
    """Another implementation: one subprocess for the whole run, spoken to as 9.2 says."""

    def __init__(
        self, command: str, timeout_s: float = DEFAULT_TIMEOUT_S, window: int = PIPELINE_WINDOW
    ) -> None:
        self.name = command
        self.timeout_s = timeout_s
        self.window = window
        self.proc = subprocess.Popen(
            shlex.split(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._outbox: queue.Queue[str | None] = queue.Queue()
        self._dead = False
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._write, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout
        try:
            for line in self.proc.stdout:
                self._lines.put(line)
        except (OSError, ValueError):
            pass
        self._lines.put(None)

    def _write(self) -> None:
        # Writes happen on their own thread: an implementation that reads one request at a time
        # must not stall the reading of its replies (or the timeouts) behind a full pipe.
        assert self.proc.stdin
        while (line := self._outbox.get()) is not None:
            try:
                self.proc.stdin.write(line)
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                return
        with contextlib.suppress(BrokenPipeError, OSError):
            self.proc.stdin.close()

    def call(self, case_id: str, op: str, data: dict[str, Any]) -> dict[str, Any]:
        return self.call_many([(case_id, op, data)])[case_id]

    def call_many(self, requests: Sequence[Request]) -> dict[str, dict[str, Any]]:
        results: dict[str, dict[str, Any]] = {}
        pending: dict[str, float] = {}  # id -> deadline, in the order sent
        todo = list(requests)
        sent = 0

        def give_up(reason: str) -> None:
            for rid in list(pending) + [r[0] for r in todo[sent:]]:
                results.setdefault(rid, {"error": reason})
            pending.clear()

        while (sent < len(todo) or pending) and not self._dead:
            while sent < len(todo) and len(pending) < self.window:
                rid, op, data = todo[sent]
                self._outbox.put(json.dumps({"id": rid, "op": op, "input": data}) + "\n")
                pending[rid] = time.monotonic() + self.timeout_s
                sent += 1
            oldest = next(iter(pending))
            try:
                line = self._lines.get(timeout=max(pending[oldest] - time.monotonic(), 0.0))
            except queue.Empty:
                results[oldest] = {"error": "timeout"}
                del pending[oldest]
                self._kill()
                give_up("implementation-exited")
                break
            if line is None:
                self._dead = True
                give_up("implementation-exited")
                break
            try:
                reply = json.loads(line)
            except json.JSONDecodeError:
                reply = None
            if not isinstance(reply, dict):
                results[oldest] = {"error": "implementation-sent-invalid-json"}
                del pending[oldest]
                continue
            reply_id = reply.get("id")
            if not isinstance(reply_id, str) or reply_id not in pending:
                results[oldest] = {"error": "implementation-reply-id-mismatch"}
                del pending[oldest]
                continue
            del pending[reply_id]
            answer = {k: v for k, v in reply.items() if k in ("output", "error")}
            if len(answer) != 1 or set(reply) - {"id", "output", "error"}:
                answer = {"error": "implementation-sent-invalid-reply"}
            results[reply_id] = answer
        if self._dead:
            give_up("implementation-exited")
        return results

    def _kill(self) -> None:
        self._dead = True
        self.proc.kill()
        self.proc.wait()

    def close(self) -> str | None:
        """End the run (9.2): close stdin, wait for exit; a problem comes back as a sentence."""
        self._outbox.put(None)
        try:
            code = self.proc.wait(timeout=EXIT_GRACE_S)
        except subprocess.TimeoutExpired:
            self._kill()
            return f"the implementation did not exit within {EXIT_GRACE_S:g} s of stdin closing"
        if code != 0 and not self._dead:
            return f"the implementation exited with status {code}"
        return None


def serve_jsonl(stdin=sys.stdin, stdout=sys.stdout) -> int:
    """Answer conformance requests on stdin: this package as an "external" implementation."""
    builtin = Builtin()
    for line in stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            reply = builtin.call(req["id"], req["op"], req["input"])
            reply["id"] = req["id"]
        except (json.JSONDecodeError, KeyError, TypeError):
            print("serve-impl: unreadable request line", file=sys.stderr)
            continue
        stdout.write(json.dumps(reply) + "\n")
        stdout.flush()
    return 0


def _resolve(value: Any, cases: dict[str, dict[str, Any]]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$ref"}:
            case_id, *path = value["$ref"].split("/")
            target: Any = cases[case_id]
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


def load_cases(vectors_dir: Path) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Every case as (file stem, case, resolved input)."""
    out = []
    for path in sorted(vectors_dir.glob("*.json")):
        doc = json.loads(path.read_text())
        if not isinstance(doc, dict) or "cases" not in doc:
            continue  # not a conformance vector file (e.g. raw data)
        by_id = {c["id"]: c for c in doc["cases"]}
        out += [(path.stem, c, _resolve(c["input"], by_id)) for c in doc["cases"]]
    return out


def run_vectors(impl: Implementation, vectors_dir: Path) -> list[Outcome]:
    cases = load_cases(vectors_dir)
    requests = [(f"{stem}:{c['id']}", c["op"], data) for stem, c, data in cases]
    replies = impl.call_many(requests)
    outcomes: list[Outcome] = []
    for (stem, case, _), (rid, op, _) in zip(cases, requests, strict=True):
        got = replies.get(rid, {"error": "implementation-exited"})
        want = case["expected"]
        if got.get("error") == "unsupported-op":
            outcomes.append(Outcome(stem, case["id"], op, "skip", "op unsupported"))
        elif got == want:
            outcomes.append(Outcome(stem, case["id"], op, "pass"))
        else:
            detail = f"expected {json.dumps(want)[:120]}, got {json.dumps(got)[:120]}"
            outcomes.append(Outcome(stem, case["id"], op, "fail", detail))
    return outcomes


def certifications(outcomes: list[Outcome]) -> list[Certification]:
    pairs = [(o.op, o.status) for o in outcomes]
    return [certify(name, pairs) for name in PROFILES]


def print_table(outcomes: list[Outcome], impl_name: str, out=sys.stdout) -> None:
    print(f"Conformance of: {impl_name}", file=out)
    width = max((len(f"{o.file}:{o.case}") for o in outcomes), default=10)
    print(f"{'case':<{width}}  {'op':<26}  result", file=out)
    print(f"{'-' * width}  {'-' * 26}  ------", file=out)
    for o in outcomes:
        mark = {"pass": "PASS", "fail": "FAIL", "skip": "skip"}[o.status]
        line = f"{o.file + ':' + o.case:<{width}}  {o.op:<26}  {mark}"
        print(line + (f"  {o.detail}" if o.detail else ""), file=out)
    counts = Counter(o.status for o in outcomes)
    print(
        f"\n{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped "
        f"({len(outcomes)} cases)",
        file=out,
    )


def print_profiles(verdicts: list[Certification], out=sys.stdout) -> None:
    print("\nProfiles (specs/protocol.md 9.3):", file=out)
    for c in verdicts:
        if c.certified:
            extra = (
                f" (optional ops not supported: {', '.join(c.optional_skipped)})"
                if c.optional_skipped
                else ""
            )
            print(f"  {c.profile:<10} certified{extra}", file=out)
            continue
        why = []
        if c.failed_ops:
            why.append(f"failed: {', '.join(c.failed_ops)}")
        if c.skipped_required:
            why.append(f"required but skipped: {', '.join(c.skipped_required)}")
        if c.missing_vectors:
            why.append(f"required, no vectors found: {', '.join(c.missing_vectors)}")
        print(f"  {c.profile:<10} not certified ({'; '.join(why)})", file=out)


def main(
    impl: str | None = None,
    vectors_dir: str | None = None,
    profile: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> int:
    """Exit status (9.3): with ``profile``, 0 iff it is certified; without, 0 iff no case
    failed and at least one profile is certified. 2 for a usage error."""
    directory = Path(vectors_dir) if vectors_dir else default_vectors_dir()
    if not directory.is_dir():
        print(f"no vector directory at {directory}", file=sys.stderr)
        return 2
    if profile is not None and profile not in PROFILES:
        print(f"unknown profile {profile!r} (profiles: {', '.join(PROFILES)})", file=sys.stderr)
        return 2
    try:
        implementation: Implementation = External(impl, timeout_s) if impl else Builtin()
    except OSError as exc:
        print(f"cannot start the implementation: {exc}", file=sys.stderr)
        return 2
    try:
        outcomes = run_vectors(implementation, directory)
    finally:
        problem = implementation.close()
    print_table(outcomes, implementation.name)
    verdicts = certifications(outcomes)
    print_profiles(verdicts)
    if problem:
        print(f"\nFAIL: {problem}")
    certified = [c.profile for c in verdicts if c.certified]
    if profile is not None:
        ok = profile in certified and not problem
        print(f"\n{'CERTIFIED' if ok else 'NOT CERTIFIED'}: profile {profile}")
        return 0 if ok else 1
    ok = bool(certified) and not problem and not any(o.status == "fail" for o in outcomes)
    print(f"\nCertified profiles: {', '.join(certified) or 'none'}")
    return 0 if ok else 1
