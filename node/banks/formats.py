"""Hash-list file formats a bank imports and exports. Pure parsing; no database here.

Every parser reads the whole input first and reports *all* bad lines (up to
``MAX_REPORTED_PROBLEMS``) by line number in one :class:`ImportFormatError`; the bank imports
nothing unless every line is good. Lines are read as bytes with a length cap
(``MAX_LINE_BYTES``), decoded as strict UTF-8, and blank lines are ignored.

``jsonl`` — blindmatch bank lines (version 1)
---------------------------------------------
One JSON object per line, one item per object::

    {"signal_type": "pdq", "hash": "<64 hex>", "quality": 100, "categories": ["ncii"],
     "expires_at": 1767225600}

=============================  ========================================================  ========
field                          value                                                     required
=============================  ========================================================  ========
``signal_type``                ``"pdq"``, ``"vpdq"`` (one vPDQ frame) or ``"sha256"``    yes
``hash``                       the hash as hex: 64 characters for all three types        yes
``quality``                    integer 0..100 (PDQ quality) or null                      no
``categories``                 list of labels ``[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}``       no
``expires_at``                 integer unix seconds (UTC) or null                        no
``added_at``                   integer unix seconds (UTC); default: time of import       no
``provenance``                 flat object of string/int/bool/null details (< 2 KiB)     no
``item_ref``                   32 hex: keep this stable reference (restoring a backup)   no
``withdrawal_secret_sha256``   64 hex: the stored hash of a survivor's withdrawal        no
                               secret (restoring a backup; never the secret itself)
=============================  ========================================================  ========

Unknown fields, duplicate keys, ``NaN``/``Infinity`` and wrong types are errors. ``export``
writes the same format; by default only the portable fields (``signal_type``, ``hash``,
``quality``, ``categories``, ``expires_at``, ``added_at``); with ``include_private`` also
``provenance``, ``item_ref`` and ``withdrawal_secret_sha256``, so a node can be restored
without breaking the references survivors hold. Withdrawn items are never exported.

ThreatExchange / HMA formats (import only)
------------------------------------------
Checked against facebook/ThreatExchange (python-threatexchange CLI and HMA 2.0 sources):

``te-lines``
    ``threatexchange hash photo FILE`` prints ``<signal_type> <signal_str>`` per line, and
    ``threatexchange dataset -P -S`` prints the same two columns. A line holding only a hash
    (``dataset -P -S -s pdq`` output, or the hash-per-line input of ``match --hashes``) is
    accepted when the caller names the signal type.
``te-csv``
    ``threatexchange dataset -P --csv``: a header ``collab,signal_type,signal_str,category,tags``
    then one row per signal. ``tags`` (space-separated) become category labels; the collab and
    category are kept in the item's provenance. Rows whose category is ``NEGATIVE_CLASS`` or
    ``DISPUTED`` are skipped and reported: a hash someone disputed must not start takedowns.
``hma-json``
    One JSON object per line mapping signal type to signal string, ``{"pdq": "<64 hex>"}``:
    the body HMA's ``POST /c/bank/<name>/signal`` accepts and ``/h/hash`` returns. Signal types
    blindmatch does not hold (``video_md5``, ...) are skipped and reported when the line also
    has a supported one, and are an error otherwise.

In the TE/HMA formats the signal type names are python-threatexchange's: ``pdq`` is supported;
``sha256`` (not a TE type) is accepted too. TE's ``vpdq`` signal strings (a serialised list of
frames) and MD5-based types (``video_md5``, ``md5``...) are not supported and are reported as
such. PDQ hex is TE's canonical form: 64 hex characters (upper case is accepted).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from blindmatch.node.banks.validation import (
    ITEM_REF_BYTES,
    SECRET_HASH_BYTES,
    SIGNAL_HASH_BYTES,
    BankValidationError,
    check_categories,
    check_provenance_details,
    check_quality,
    check_signal_type,
    check_timestamp,
    echo,
    parse_hash_hex,
    parse_hex,
)

MAX_LINE_BYTES = 64 * 1024
MAX_IMPORT_LINES = 2_000_000
MAX_REPORTED_PROBLEMS = 50

JSONL_FIELDS = frozenset(
    {
        "signal_type",
        "hash",
        "quality",
        "categories",
        "expires_at",
        "added_at",
        "provenance",
        "item_ref",
        "withdrawal_secret_sha256",
    }
)
TE_CSV_HEADER = ["collab", "signal_type", "signal_str", "category", "tags"]
TE_CATEGORIES = {"POSITIVE_CLASS", "INVESTIGATION_SEED", "NEGATIVE_CLASS", "DISPUTED"}
TE_SKIPPED_CATEGORIES = {"NEGATIVE_CLASS", "DISPUTED"}
TE_UNSUPPORTED_SIGNALS = {
    "vpdq": "TE vpdq signal strings (a list of frames) are not supported",
    "video_md5": "MD5 signals are not supported",
    "md5": "MD5 signals are not supported",
    "photo_md5": "MD5 signals are not supported",
}


@dataclass(frozen=True)
class LineProblem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


class ImportFormatError(BankValidationError):
    """One or more lines of an import are bad; nothing was imported."""

    def __init__(self, problems: list[LineProblem], total: int | None = None) -> None:
        self.problems = problems
        self.total = total if total is not None else len(problems)
        shown = "\n".join(str(p) for p in problems)
        more = self.total - len(problems)
        suffix = f"\n... and {more} more" if more > 0 else ""
        super().__init__(
            f"import refused, nothing was imported ({self.total} bad line(s)):\n{shown}{suffix}"
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


@dataclass
class ParsedList:
    items: list[ParsedItem] = field(default_factory=list)
    skipped: list[LineProblem] = field(default_factory=list)


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
            raise ImportFormatError(self.problems, self.total)


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


# --- jsonl ---------------------------------------------------------------------------------------


def _jsonl_item(number: int, text: str) -> ParsedItem:
    record = _json_object(text)
    unknown = sorted(set(record) - JSONL_FIELDS)
    if unknown:
        raise BankValidationError(
            f"unknown field {echo(unknown[0])} (known: {', '.join(sorted(JSONL_FIELDS))})"
        )
    for required in ("signal_type", "hash"):
        if required not in record:
            raise BankValidationError(f"missing field {required!r}")
    signal_type = check_signal_type(record["signal_type"])
    item_ref = record.get("item_ref")
    secret_hash = record.get("withdrawal_secret_sha256")
    return ParsedItem(
        line=number,
        signal_type=signal_type,
        hash=parse_hash_hex(signal_type, record["hash"]),
        quality=check_quality(record.get("quality")),
        categories=check_categories(record.get("categories", [])),
        expires_at=check_timestamp(record.get("expires_at"), "expires_at"),
        added_at=check_timestamp(record.get("added_at"), "added_at"),
        provenance=check_provenance_details(record.get("provenance")),
        item_ref=None if item_ref is None else parse_hex(item_ref, ITEM_REF_BYTES, "item_ref"),
        withdrawal_secret_hash=None
        if secret_hash is None
        else parse_hex(secret_hash, SECRET_HASH_BYTES, "withdrawal_secret_sha256"),
    )


def parse_jsonl(source: LineSource, signal_type: str | None = None) -> ParsedList:
    del signal_type  # every jsonl line names its own
    problems = _Collector()
    result = ParsedList()
    for number, text in read_lines(source, problems):
        try:
            result.items.append(_jsonl_item(number, text))
        except BankValidationError as exc:
            problems.add(number, str(exc))
    problems.raise_if_any()
    return result


# --- ThreatExchange / HMA ------------------------------------------------------------------------


def _te_signal_type(name: str) -> str:
    if name in TE_UNSUPPORTED_SIGNALS:
        raise BankValidationError(f"signal type {name!r}: {TE_UNSUPPORTED_SIGNALS[name]}")
    if name not in ("pdq", "sha256"):
        raise BankValidationError(f"unsupported signal type {echo(name)} (supported: pdq, sha256)")
    return name


def parse_te_lines(source: LineSource, signal_type: str | None = None) -> ParsedList:
    problems = _Collector()
    result = ParsedList()
    default_type = None if signal_type is None else _te_signal_type(check_signal_type(signal_type))
    for number, text in read_lines(source, problems):
        fields = text.split()
        try:
            if len(fields) == 1:
                if default_type is None:
                    raise BankValidationError(
                        "a line with only a hash needs the signal type (e.g. --signal-type pdq)"
                    )
                name, value = default_type, fields[0]
            elif len(fields) == 2:
                name, value = _te_signal_type(fields[0]), fields[1]
            else:
                raise BankValidationError(
                    f"expected '<signal_type> <hash>' or '<hash>', got {len(fields)} fields"
                )
            result.items.append(ParsedItem(number, name, parse_hash_hex(name, value)))
        except BankValidationError as exc:
            problems.add(number, str(exc))
    problems.raise_if_any()
    return result


def parse_te_csv(source: LineSource, signal_type: str | None = None) -> ParsedList:
    del signal_type  # every row names its own
    problems = _Collector()
    result = ParsedList()
    seen_header = False
    for number, text in read_lines(source, problems):
        try:
            row = next(csv.reader([text]))
        except csv.Error as exc:
            problems.add(number, f"not valid CSV: {exc}")
            continue
        if not seen_header:
            seen_header = True
            if [c.strip() for c in row] != TE_CSV_HEADER:
                problems.add(number, f"expected the header {','.join(TE_CSV_HEADER)}")
                break
            continue
        try:
            if len(row) != len(TE_CSV_HEADER):
                raise BankValidationError(f"expected 5 columns, got {len(row)}")
            collab, name, value, category, tags = (c.strip() for c in row)
            if category not in TE_CATEGORIES:
                known = ", ".join(sorted(TE_CATEGORIES))
                raise BankValidationError(f"unknown category {echo(category)} (one of {known})")
            name = _te_signal_type(name)
            hash_bytes = parse_hash_hex(name, value)
            if category in TE_SKIPPED_CATEGORIES:
                result.skipped.append(LineProblem(number, f"skipped: category {category}"))
                continue
            result.items.append(
                ParsedItem(
                    number,
                    name,
                    hash_bytes,
                    categories=check_categories(tags.split(), "tags"),
                    provenance=check_provenance_details(
                        {"te_collab": collab[:200], "te_category": category}
                    ),
                )
            )
        except BankValidationError as exc:
            problems.add(number, str(exc))
    if not seen_header and not problems.total:
        problems.add(0, "empty file: expected the header " + ",".join(TE_CSV_HEADER))
    problems.raise_if_any()
    return result


def parse_hma_json(source: LineSource, signal_type: str | None = None) -> ParsedList:
    del signal_type  # every object names its own
    problems = _Collector()
    result = ParsedList()
    for number, text in read_lines(source, problems):
        try:
            record = _json_object(text)
            if not record:
                raise BankValidationError('empty object: expected {"pdq": "<hex>"}')
            supported, unsupported = [], []
            for name, value in record.items():
                try:
                    name = _te_signal_type(name)
                except BankValidationError as exc:
                    unsupported.append(str(exc))
                    continue
                supported.append(ParsedItem(number, name, parse_hash_hex(name, value)))
            if not supported:
                raise BankValidationError("; ".join(unsupported))
            result.items.extend(supported)
            result.skipped.extend(LineProblem(number, f"skipped: {u}") for u in unsupported)
        except BankValidationError as exc:
            problems.add(number, str(exc))
    problems.raise_if_any()
    return result


PARSERS: dict[str, Callable[[LineSource, str | None], ParsedList]] = {
    "jsonl": parse_jsonl,
    "te-lines": parse_te_lines,
    "te-csv": parse_te_csv,
    "hma-json": parse_hma_json,
}


def parse_hash_list(fmt: str, source: LineSource, signal_type: str | None = None) -> ParsedList:
    """Parse a whole hash list in one of :data:`PARSERS`' formats (all lines or none)."""
    parser = PARSERS.get(fmt)
    if parser is None:
        raise BankValidationError(f"unknown format {echo(fmt)} (one of {', '.join(PARSERS)})")
    return parser(source, signal_type)


# --- export --------------------------------------------------------------------------------------


def export_record(
    *,
    signal_type: str,
    hash_bytes: bytes,
    quality: int | None,
    categories: Iterable[str],
    expires_at: int | None,
    added_at: int,
    provenance: Mapping[str, Any] | None = None,
    item_ref: bytes | None = None,
    withdrawal_secret_hash: bytes | None = None,
    include_private: bool = False,
) -> str:
    """One ``jsonl`` line (without the newline)."""
    assert signal_type in SIGNAL_HASH_BYTES
    record: dict[str, Any] = {
        "signal_type": signal_type,
        "hash": hash_bytes.hex(),
        "quality": quality,
        "categories": list(categories),
        "expires_at": expires_at,
        "added_at": added_at,
    }
    if include_private:
        record["provenance"] = dict(provenance or {})
        if item_ref is not None:
            record["item_ref"] = item_ref.hex()
        if withdrawal_secret_hash is not None:
            record["withdrawal_secret_sha256"] = withdrawal_secret_hash.hex()
    return json.dumps(record, separators=(",", ":"), sort_keys=False)
