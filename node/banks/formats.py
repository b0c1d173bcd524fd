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
``signal_type``                a bank signal type of the registry: ``"pdq"``,            yes
                               ``"sha256"`` or one an adapter adds
``hash``                       the hash as hex (64 characters); for a type held as a     yes
                               frame list (a video), its ThreatExchange signal string
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
A type held as a frame list (a video) takes its TE signal string as one bank item. TE types
blindmatch does not hold -- MD5, URL, text, TLSH -- refuse the file, naming
the line, unless ``skip_unsupported`` is given: then they are counted, per TE type, in
``ParsedList.unsupported`` (a mixed ``dataset`` dump imports what we can hold). PDQ hex is
TE's canonical form: 64 hex characters (upper case is accepted).

Exports in ``te-lines`` and ``hma-json`` (:func:`te_export_line`) write TE's names (our
``sha256`` as ``video_sha256``); items of a type TE has no name for are counted, not written.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from blindmatch.node.banks.hash_lines import (
    MAX_IMPORT_LINES,
    MAX_LINE_BYTES,
    MAX_REPORTED_PROBLEMS,
    ImportFormatError,
    LineProblem,
    LineSource,
    ParsedItem,
    ParsedList,
    _Collector,
    _json_object,
    read_lines,
)
from blindmatch.node.banks.te_formats import (
    TE_CATEGORIES,
    TE_CSV_COLUMNS,
    TE_CSV_HEADER,
    TE_CSV_REQUIRED,
    TE_EXPORT_NAMES,
    TE_ROTATIONS,
    TE_SKIPPED_CATEGORIES,
    TE_UNSUPPORTED_SIGNALS,
    UnsupportedSignal,
    parse_hma_json,
    parse_te_csv,
    parse_te_lines,
    read_hma_json,
    read_te_csv,
    read_te_lines,
    te_export_line,
)
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
    parse_hex,
    parse_signal_value,
)

__all__ = [
    "EXPORT_FORMATS",
    "FORMATS",
    "JSONL_FIELDS",
    "MAX_IMPORT_LINES",
    "MAX_LINE_BYTES",
    "MAX_REPORTED_PROBLEMS",
    "PARSERS",
    "TE_CATEGORIES",
    "TE_CSV_COLUMNS",
    "TE_CSV_HEADER",
    "TE_CSV_REQUIRED",
    "TE_EXPORT_NAMES",
    "TE_ROTATIONS",
    "TE_SKIPPED_CATEGORIES",
    "TE_UNSUPPORTED_SIGNALS",
    "ImportFormatError",
    "LineProblem",
    "LineSource",
    "ParsedItem",
    "ParsedList",
    "UnsupportedSignal",
    "detect_format",
    "export_record",
    "parse_hash_list",
    "parse_hma_json",
    "parse_jsonl",
    "parse_te_csv",
    "parse_te_lines",
    "read_lines",
    "te_export_line",
]


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
            raise ImportFormatError.of([LineProblem(0, "empty file: nothing to import")])
        fmt = detect_format(first[1])
        lines = itertools.chain([first], lines)
    if fmt == "jsonl":
        result = _jsonl_lines(lines, problems, skip_unsupported)
    elif fmt == "te-lines":
        result = read_te_lines(lines, problems, signal_type, skip_unsupported)
    elif fmt == "te-csv":
        result = read_te_csv(lines, problems, skip_unsupported)
    else:
        result = read_hma_json(lines, problems, skip_unsupported)
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
    ``hash_bytes`` for an item held as a frame list (its type's TE signal string)."""
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
