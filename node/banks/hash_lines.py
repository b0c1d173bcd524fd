"""Reading a hash list: capped lines decoded as strict UTF-8, every bad line reported by
number, and the items parsed from it (the formats themselves are in :mod:`.formats`)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from blindmatch.node.banks.validation import (
    BankValidationError,
    echo,
)

MAX_LINE_BYTES = 64 * 1024


MAX_IMPORT_LINES = 2_000_000


MAX_REPORTED_PROBLEMS = 50


@dataclass(frozen=True)
class LineProblem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


class ImportFormatError(BankValidationError):
    """One or more lines of an import are bad; nothing was imported."""

    def __init__(self, message: str, *, problems: list[LineProblem], total: int) -> None:
        super().__init__(message)
        self.problems = problems
        self.total = total

    @classmethod
    def of(cls, problems: list[LineProblem], total: int | None = None) -> ImportFormatError:
        """The refusal for these problems (the first ``MAX_REPORTED_PROBLEMS`` of ``total``)."""
        total = total if total is not None else len(problems)
        shown = "\n".join(str(p) for p in problems)
        more = total - len(problems)
        suffix = f"\n... and {more} more" if more > 0 else ""
        return cls(
            f"import refused, nothing was imported ({total} bad line(s)):\n{shown}{suffix}",
            problems=problems,
            total=total,
        )


@dataclass(frozen=True)
class ParsedItem:
    line: int
    signal_type: str
    hash: bytes = field(repr=False)
    quality: int | None = None
    categories: tuple[str, ...] = ()
    expires_at: int | None = None
    added_at: int | None = None
    provenance: Mapping[str, Any] = field(default_factory=dict)
    item_ref: bytes | None = None
    withdrawal_secret_hash: bytes | None = field(default=None, repr=False)
    # the parts of an item held as a list (a video's frames), stored by its type's adapter
    frames: tuple[Any, ...] | None = field(default=None, repr=False)


@dataclass
class ParsedList:
    items: list[ParsedItem] = field(default_factory=list)
    skipped: list[LineProblem] = field(default_factory=list)
    # lines of signal types we do not hold, skipped on request: TE type name -> count
    unsupported: Counter[str] = field(default_factory=Counter)
    format: str = ""

    def unsupported_summary(self) -> str:
        """'skipped 3 unsupported signal(s): video_md5 2, url 1', or '' if none."""
        if not self.unsupported:
            return ""
        parts = ", ".join(f"{name} {n}" for name, n in self.unsupported.most_common())
        return f"skipped {sum(self.unsupported.values())} unsupported signal(s): {parts}"


class _Collector:
    """Gathers problems; keeps the first ``MAX_REPORTED_PROBLEMS`` and counts the rest."""

    def __init__(self) -> None:
        self.problems: list[LineProblem] = []
        self.total = 0

    def add(self, line: int, message: str) -> None:
        self.total += 1
        if len(self.problems) < MAX_REPORTED_PROBLEMS:
            self.problems.append(LineProblem(line, message))

    def raise_if_any(self) -> None:
        if self.total:
            raise ImportFormatError.of(self.problems, self.total)


LineSource = IO[bytes] | Iterable[bytes] | Iterable[str]


def read_lines(
    source: LineSource, problems: _Collector, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` of non-blank lines; record oversized and non-UTF-8 lines.

    A binary file is read with ``readline(limit)``, so one enormous line costs bounded memory.
    """
    readline: Callable[[int], bytes | str] | None = getattr(source, "readline", None)
    number = 0
    if readline is not None:
        while True:
            chunk = _as_bytes(readline(max_line_bytes + 1))
            if not chunk:
                return
            number += 1
            if len(chunk) > max_line_bytes and not chunk.endswith(b"\n"):
                # Skip the rest of the oversized line without holding it.
                while chunk and not chunk.endswith(b"\n"):
                    chunk = _as_bytes(readline(max_line_bytes))
                problems.add(number, f"line is longer than {max_line_bytes} bytes")
                continue
            yield from _decoded(number, chunk, problems, max_line_bytes)
            if number > MAX_IMPORT_LINES:
                problems.add(number, f"more than {MAX_IMPORT_LINES} lines")
                return
    else:
        for raw in source:
            number += 1
            data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
            if not isinstance(data, bytes):
                problems.add(number, f"expected text, got {type(raw).__name__}")
                continue
            yield from _decoded(number, data, problems, max_line_bytes)
            if number > MAX_IMPORT_LINES:
                problems.add(number, f"more than {MAX_IMPORT_LINES} lines")
                return


def _as_bytes(chunk: bytes | str) -> bytes:
    # Text streams (sys.stdin, StringIO) are re-encoded so both kinds follow one path.
    return chunk.encode("utf-8", "surrogatepass") if isinstance(chunk, str) else chunk


def _decoded(
    number: int, data: bytes, problems: _Collector, max_line_bytes: int
) -> Iterator[tuple[int, str]]:
    if len(data.rstrip(b"\r\n")) > max_line_bytes:
        problems.add(number, f"line is longer than {max_line_bytes} bytes")
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.add(number, f"not valid UTF-8 (byte {exc.start + 1})")
        return
    text = text.removeprefix("\ufeff") if number == 1 else text
    text = text.strip()
    if text:
        yield number, text


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {echo(key)}")
        result[key] = value
    return result


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        message = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise BankValidationError(f"not valid JSON: {message}") from None
    if not isinstance(value, dict):
        raise BankValidationError(f"expected a JSON object, got {type(value).__name__}")
    return value
