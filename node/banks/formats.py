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
``signal_type``                ``"pdq"``, ``"vpdq"`` (a video) or ``"sha256"``            yes
``hash``                       the hash as hex (64 characters); for ``vpdq`` the video    yes
                               as ThreatExchange's signal string (a JSON list of
                               ``"hex,quality,timestamp"`` frames)
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

ThreatExchange / HMA formats
----------------------------
Checked against python-threatexchange 1.2 (its CLI's output is imported, and our exports are
read back, by tests/test_te_interop.py) and the HMA 2.0 sources:

``te-lines``
    ``threatexchange hash photo FILE`` and ``threatexchange dataset -P -S`` print
    ``<signal_type> <signal_str>`` per line; ``threatexchange hash --photo-preprocess rotations
    photo FILE`` prints ``<ROTATION> <signal_type> <signal_str>`` (the rotation is kept in the
    item's provenance as ``te_rotation``). A line holding only a hash (``dataset -P -S -s pdq``
    output) is accepted when the caller names the signal type. The file that TE's
    ``local_file`` exchange reads has this format too.
``te-csv``
    ``threatexchange dataset -P --csv``: a header naming the columns, read by name in any order
    (TE writes ``signal_type,signal_str,collab,category,tags``; only ``signal_type`` and
    ``signal_str`` are required), then one row per signal. ``tags`` (space-separated) become
    category labels; the collab and category are kept in the item's provenance. Rows whose
    category is ``NEGATIVE_CLASS`` or ``DISPUTED`` are skipped and reported: a hash someone
    disputed must not start takedowns.
``hma-json``
    One JSON object per line mapping signal type to signal string, ``{"pdq": "<64 hex>"}``:
    the body HMA's ``POST /c/bank/<name>/signal`` accepts and ``/h/hash`` returns.
``auto``
    The format is chosen from the first non-blank line (:func:`detect_format`).

Signal type names in these formats are python-threatexchange's: ``pdq``; ``video_sha256``
(the SHA-256 of a file's bytes) is our ``sha256``, which is accepted under its own name too.
``vpdq`` is a video: its signal string is the video's frame list, one bank item. TE types
blindmatch does not hold -- MD5, URL, text, TLSH -- refuse the file, naming
the line, unless ``skip_unsupported`` is given: then they are counted, per TE type, in
``ParsedList.unsupported`` (a mixed ``dataset`` dump imports what we can hold). PDQ hex is
TE's canonical form: 64 hex characters (upper case is accepted).

Exports in ``te-lines`` and ``hma-json`` (:func:`te_export_line`) write TE's names (our
``sha256`` as ``video_sha256``); items of a type TE has no name for are counted, not written.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
from collections import Counter
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
    holds_frame_list,
    parse_hex,
    parse_signal_value,
)
from blindmatch.protocol.signals import VpdqFrame

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
# python-threatexchange's signal type names (SignalType.get_name()) and ours. TE has no SHA-256
# of a picture's bytes; its ``video_sha256`` is the SHA-256 of the file's bytes, as ours is.
TE_SIGNAL_NAMES: dict[str, str] = {
    "pdq": "pdq",
    "vpdq": "vpdq",
    "video_sha256": "sha256",
    "sha256": "sha256",
}
# What an export writes for each of our types; a type missing here has no TE equivalent.
TE_EXPORT_NAMES: dict[str, str] = {"pdq": "pdq", "vpdq": "vpdq", "sha256": "video_sha256"}
TE_CSV_HEADER = ["signal_type", "signal_str", "collab", "category", "tags"]  # as TE writes it
TE_CSV_COLUMNS = tuple(TE_CSV_HEADER)
TE_CSV_REQUIRED = ("signal_type", "signal_str")
TE_CATEGORIES = {"POSITIVE_CLASS", "INVESTIGATION_SEED", "NEGATIVE_CLASS", "DISPUTED"}
TE_SKIPPED_CATEGORIES = {"NEGATIVE_CLASS", "DISPUTED"}
# content_base.RotationType names, as 'threatexchange hash --photo-preprocess rotations' prints
TE_ROTATIONS = (
    "ORIGINAL", "ROTATE90", "ROTATE180", "ROTATE270", "FLIPX", "FLIPY", "FLIPPLUS1", "FLIPMINUS1",
)  # fmt: skip
TE_UNSUPPORTED_SIGNALS = {
    "video_md5": "MD5 signals are not supported",
    "md5": "MD5 signals are not supported",
    "photo_md5": "MD5 signals are not supported",
    "url_md5": "URL signals are not supported",
    "url": "URL signals are not supported",
    "raw_text": "text signals are not supported",
    "trend_query": "text signals are not supported",
    "tlsh": "TLSH signals are not supported",
    "pdq_ocr": "PDQ+OCR signals are not supported",
}
_TE_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


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
    frames: tuple[VpdqFrame, ...] | None = field(default=None, repr=False)  # a video's


@dataclass
class ParsedList:
    items: list[ParsedItem] = field(default_factory=list)
    skipped: list[LineProblem] = field(default_factory=list)
    # lines of signal types we do not hold, skipped on request: TE type name -> count
    unsupported: Counter[str] = field(default_factory=Counter)
    format: str = ""

    def unsupported_summary(self) -> str:
        """'skipped 3 unsupported signal(s): video_md5 2, vpdq 1', or '' if none."""
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
    value, frames = parse_signal_value(signal_type, record["hash"])
    return ParsedItem(
        line=number,
        signal_type=signal_type,
        hash=value,
        frames=frames,
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


def parse_jsonl(
    source: LineSource, signal_type: str | None = None, skip_unsupported: bool = False
) -> ParsedList:
    del signal_type  # every jsonl line names its own
    problems = _Collector()
    return _jsonl_lines(read_lines(source, problems), problems, skip_unsupported)


# --- ThreatExchange / HMA ------------------------------------------------------------------------


class UnsupportedSignal(BankValidationError):
    """A signal type blindmatch does not hold; skippable with ``skip_unsupported``."""

    def __init__(self, te_name: str, message: str) -> None:
        super().__init__(message)
        self.te_name = te_name


def _te_signal_type(name: str) -> str:
    """Our signal type for a python-threatexchange signal type name."""
    ours = TE_SIGNAL_NAMES.get(name)
    if ours is not None:
        return ours
    if name in TE_UNSUPPORTED_SIGNALS:
        raise UnsupportedSignal(name, f"signal type {name!r}: {TE_UNSUPPORTED_SIGNALS[name]}")
    supported = ", ".join(TE_SIGNAL_NAMES)
    raise UnsupportedSignal(
        name if _TE_NAME.fullmatch(name) else "other",
        f"unsupported signal type {echo(name)} (supported: {supported})",
    )


def _skip_or_raise(exc: UnsupportedSignal, result: ParsedList, skip_unsupported: bool) -> None:
    if not skip_unsupported:
        raise BankValidationError(f"{exc} (add --skip-unsupported to skip such lines)")
    result.unsupported[exc.te_name] += 1


def parse_te_lines(
    source: LineSource, signal_type: str | None = None, skip_unsupported: bool = False
) -> ParsedList:
    problems = _Collector()
    return _te_lines(read_lines(source, problems), problems, signal_type, skip_unsupported)


def _te_lines(
    lines: Iterable[tuple[int, str]],
    problems: _Collector,
    signal_type: str | None,
    skip_unsupported: bool,
) -> ParsedList:
    result = ParsedList()
    default_type = None
    if signal_type is not None:
        try:
            default_type = _te_signal_type(signal_type)
        except UnsupportedSignal as exc:
            raise BankValidationError(str(exc)) from None
    for number, text in lines:
        fields = text.split()
        rotation = None
        if len(fields) > 2 and holds_frame_list(TE_SIGNAL_NAMES.get(fields[0], "")):
            fields = text.split(None, 1)  # a video's signal string is JSON, spaces and all
        try:
            if len(fields) == 1:
                if default_type is None:
                    raise BankValidationError(
                        "a line with only a hash needs the signal type (e.g. --signal-type pdq)"
                    )
                name, value = default_type, fields[0]
            elif len(fields) == 2:
                name, value = _te_signal_type(fields[0]), fields[1]
            elif len(fields) == 3:
                # 'threatexchange hash --photo-preprocess rotations': '<ROTATION> <type> <hash>'
                if fields[0] not in TE_ROTATIONS:
                    known = ", ".join(TE_ROTATIONS)
                    raise BankValidationError(
                        f"3 fields: the first must be a rotation ({known}), got {echo(fields[0])}"
                    )
                rotation = fields[0].lower()
                name, value = _te_signal_type(fields[1]), fields[2]
            else:
                raise BankValidationError(
                    f"expected '<signal_type> <hash>', '<ROTATION> <signal_type> <hash>' or"
                    f" '<hash>', got {len(fields)} fields"
                )
            hash_value, frames = parse_signal_value(name, value)
            result.items.append(
                ParsedItem(
                    number,
                    name,
                    hash_value,
                    provenance={} if rotation is None else {"te_rotation": rotation},
                    frames=frames,
                )
            )
        except UnsupportedSignal as exc:
            try:
                _skip_or_raise(exc, result, skip_unsupported)
            except BankValidationError as refused:
                problems.add(number, str(refused))
        except BankValidationError as exc:
            problems.add(number, str(exc))
    problems.raise_if_any()
    return result


def parse_te_csv(
    source: LineSource, signal_type: str | None = None, skip_unsupported: bool = False
) -> ParsedList:
    del signal_type  # every row names its own
    problems = _Collector()
    return _te_csv(read_lines(source, problems), problems, skip_unsupported)


def _te_csv_header(row: list[str]) -> dict[str, int]:
    columns = [c.strip().lower() for c in row]
    unknown = [c for c in columns if c not in TE_CSV_COLUMNS]
    if unknown:
        raise BankValidationError(
            f"unknown column {echo(unknown[0])} (known: {', '.join(TE_CSV_COLUMNS)})"
        )
    if len(set(columns)) != len(columns):
        raise BankValidationError("a column is named twice in the header")
    missing = [c for c in TE_CSV_REQUIRED if c not in columns]
    if missing:
        raise BankValidationError(
            f"the header needs {' and '.join(TE_CSV_REQUIRED)} (as 'threatexchange dataset -P"
            f" --csv' writes: {','.join(TE_CSV_HEADER)}); missing {missing[0]}"
        )
    return {name: i for i, name in enumerate(columns)}


def _te_csv(
    lines: Iterable[tuple[int, str]], problems: _Collector, skip_unsupported: bool
) -> ParsedList:
    result = ParsedList()
    header: dict[str, int] | None = None
    for number, text in lines:
        try:
            row = next(csv.reader([text]))
        except csv.Error as exc:
            problems.add(number, f"not valid CSV: {exc}")
            continue
        if header is None:
            try:
                header = _te_csv_header(row)
            except BankValidationError as exc:
                problems.add(number, str(exc))
                break
            continue
        try:
            if len(row) != len(header):
                raise BankValidationError(f"expected {len(header)} columns, got {len(row)}")
            cell = {name: row[i].strip() for name, i in header.items()}
            category = cell.get("category", "")
            if category and category not in TE_CATEGORIES:
                known = ", ".join(sorted(TE_CATEGORIES))
                raise BankValidationError(f"unknown category {echo(category)} (one of {known})")
            name = _te_signal_type(cell["signal_type"])
            hash_bytes, frames = parse_signal_value(name, cell["signal_str"])
            if category in TE_SKIPPED_CATEGORIES:
                result.skipped.append(LineProblem(number, f"skipped: category {category}"))
                continue
            details = {"te_collab": cell.get("collab", "")[:200], "te_category": category}
            result.items.append(
                ParsedItem(
                    number,
                    name,
                    hash_bytes,
                    categories=check_categories(cell.get("tags", "").split(), "tags"),
                    provenance=check_provenance_details({k: v for k, v in details.items() if v}),
                    frames=frames,
                )
            )
        except UnsupportedSignal as exc:
            try:
                _skip_or_raise(exc, result, skip_unsupported)
            except BankValidationError as refused:
                problems.add(number, str(refused))
        except BankValidationError as exc:
            problems.add(number, str(exc))
    if header is None and not problems.total:
        problems.add(0, "empty file: expected a header such as " + ",".join(TE_CSV_HEADER))
    problems.raise_if_any()
    return result


def parse_hma_json(
    source: LineSource, signal_type: str | None = None, skip_unsupported: bool = False
) -> ParsedList:
    del signal_type  # every object names its own
    problems = _Collector()
    return _hma_json(read_lines(source, problems), problems, skip_unsupported)


def _hma_json(
    lines: Iterable[tuple[int, str]], problems: _Collector, skip_unsupported: bool
) -> ParsedList:
    result = ParsedList()
    for number, text in lines:
        try:
            record = _json_object(text)
            if not record:
                raise BankValidationError('empty object: expected {"pdq": "<hex>"}')
            supported: list[ParsedItem] = []
            unsupported: list[UnsupportedSignal] = []
            for name, value in record.items():
                try:
                    ours = _te_signal_type(name)
                except UnsupportedSignal as exc:
                    unsupported.append(exc)
                    continue
                hash_value, frames = parse_signal_value(ours, value)
                supported.append(ParsedItem(number, ours, hash_value, frames=frames))
            if unsupported and not supported and not skip_unsupported:
                raise BankValidationError(
                    "; ".join(str(u) for u in unsupported)
                    + " (add --skip-unsupported to skip such lines)"
                )
            result.items.extend(supported)
            for exc in unsupported:
                result.unsupported[exc.te_name] += 1
        except BankValidationError as exc:
            problems.add(number, str(exc))
    problems.raise_if_any()
    return result


def _jsonl_lines(
    lines: Iterable[tuple[int, str]], problems: _Collector, skip_unsupported: bool
) -> ParsedList:
    del skip_unsupported  # every signal type of this format is ours
    result = ParsedList()
    for number, text in lines:
        try:
            result.items.append(_jsonl_item(number, text))
        except BankValidationError as exc:
            problems.add(number, str(exc))
    problems.raise_if_any()
    return result


def detect_format(first_line: str) -> str:
    """The format of a hash list, from its first non-blank line.

    ``{...}`` with a ``hash`` or ``signal_type`` key is ``jsonl``, any other object
    ``hma-json``; a CSV header naming ``signal_type`` and ``signal_str`` is ``te-csv``;
    anything else is read as ``te-lines``.
    """
    text = first_line.strip().removeprefix("\ufeff")
    if text.startswith("{"):
        try:
            keys = set(_json_object(text))
        except BankValidationError:
            return "jsonl"  # its parser says what is wrong with the line
        return "jsonl" if keys & {"hash", "signal_type"} else "hma-json"
    if "," in text:
        columns = {c.strip().lower() for c in text.split(",")}
        if set(TE_CSV_REQUIRED) <= columns:
            return "te-csv"
    return "te-lines"


PARSERS: dict[str, Callable[..., ParsedList]] = {
    "jsonl": parse_jsonl,
    "te-lines": parse_te_lines,
    "te-csv": parse_te_csv,
    "hma-json": parse_hma_json,
}
FORMATS = ("auto", *PARSERS)


def parse_hash_list(
    fmt: str,
    source: LineSource,
    signal_type: str | None = None,
    *,
    skip_unsupported: bool = False,
) -> ParsedList:
    """Parse a whole hash list in one of :data:`FORMATS` (all lines or none).

    ``auto`` picks the format from the first non-blank line (:func:`detect_format`); the
    result names the format it read in ``ParsedList.format``. With ``skip_unsupported``, lines
    of signal types blindmatch does not hold are counted in ``ParsedList.unsupported`` instead
    of refusing the file.
    """
    if fmt not in FORMATS:
        raise BankValidationError(f"unknown format {echo(fmt)} (one of {', '.join(FORMATS)})")
    problems = _Collector()
    lines = read_lines(source, problems)
    if fmt == "auto":
        first = next(lines, None)
        if first is None:
            problems.raise_if_any()
            raise ImportFormatError([LineProblem(0, "empty file: nothing to import")])
        fmt = detect_format(first[1])
        lines = itertools.chain([first], lines)
    if fmt == "jsonl":
        result = _jsonl_lines(lines, problems, skip_unsupported)
    elif fmt == "te-lines":
        result = _te_lines(lines, problems, signal_type, skip_unsupported)
    elif fmt == "te-csv":
        result = _te_csv(lines, problems, skip_unsupported)
    else:
        result = _hma_json(lines, problems, skip_unsupported)
    result.format = fmt
    return result


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
    signal_str: str | None = None,
) -> str:
    """One ``jsonl`` line (without the newline). ``signal_str`` replaces the hex of
    ``hash_bytes`` for an item held as a frame list (a video's vpdq signal string)."""
    assert signal_type in SIGNAL_HASH_BYTES
    record: dict[str, Any] = {
        "signal_type": signal_type,
        "hash": signal_str if signal_str is not None else hash_bytes.hex(),
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


EXPORT_FORMATS = ("jsonl", "te-lines", "hma-json")


def te_export_line(
    fmt: str, signal_type: str, hash_bytes: bytes, signal_str: str | None = None
) -> str | None:
    """One item as a ``te-lines`` or ``hma-json`` line, under TE's signal type name; None for
    a type TE has no name for, which the caller counts. ``signal_str`` replaces the hex of
    ``hash_bytes`` for a video (its vpdq signal string, written without spaces).

    ``te-lines`` (``<type> <hex>``) is what python-threatexchange's ``local_file`` exchange
    reads; ``hma-json`` (``{"pdq": "<hex>"}``) is the body of HMA's
    ``POST /c/bank/<name>/signal``, one banked content per line.
    """
    te_name = TE_EXPORT_NAMES.get(signal_type)
    if te_name is None:
        return None
    value = signal_str if signal_str is not None else hash_bytes.hex()
    if fmt == "te-lines":
        return f"{te_name} {value}"
    if fmt == "hma-json":
        return json.dumps({te_name: value}, separators=(",", ":"))
    raise BankValidationError(f"unknown export format {echo(fmt)} (one of te-lines, hma-json)")
