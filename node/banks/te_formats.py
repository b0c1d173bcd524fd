"""The ThreatExchange and HMA hash-list formats: ``te-lines``, ``te-csv``, ``hma-json``
(described in :mod:`.formats`)."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable

from blindmatch.node.banks.hash_lines import (
    LineProblem,
    LineSource,
    ParsedItem,
    ParsedList,
    _Collector,
    _json_object,
    read_lines,
)
from blindmatch.node.banks.validation import (
    BankValidationError,
    check_categories,
    check_provenance_details,
    echo,
    holds_frame_list,
    parse_signal_value,
)
from blindmatch.protocol import signal_types

# python-threatexchange's signal type names (SignalType.get_name()) and ours. TE has no SHA-256
# of a picture's bytes; its ``video_sha256`` is the SHA-256 of the file's bytes, as ours is.
TE_SIGNAL_NAMES: dict[str, str] = {
    **{e.threatexchange_name: e.name for e in signal_types.entries() if e.threatexchange_name},
    "video_sha256": signal_types.SHA256.name,
    "sha256": signal_types.SHA256.name,
}


# What an export writes for each of our types; a type missing here has no TE equivalent.
TE_EXPORT_NAMES: dict[str, str] = {
    **{e.name: e.threatexchange_name for e in signal_types.entries() if e.threatexchange_name},
    signal_types.SHA256.name: "video_sha256",
}


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


class UnsupportedSignal(BankValidationError):
    """A signal type blindmatch does not hold; skippable with ``skip_unsupported``."""

    def __init__(self, message: str, *, te_name: str) -> None:
        super().__init__(message)
        self.te_name = te_name


def _te_signal_type(name: str) -> str:
    """Our signal type for a python-threatexchange signal type name."""
    ours = TE_SIGNAL_NAMES.get(name)
    if ours is not None:
        return ours
    if name in TE_UNSUPPORTED_SIGNALS:
        raise UnsupportedSignal(
            f"signal type {name!r}: {TE_UNSUPPORTED_SIGNALS[name]}", te_name=name
        )
    supported = ", ".join(TE_SIGNAL_NAMES)
    raise UnsupportedSignal(
        f"unsupported signal type {echo(name)} (supported: {supported})",
        te_name=name if _TE_NAME.fullmatch(name) else "other",
    )


def _skip_or_refuse(
    exc: UnsupportedSignal,
    result: ParsedList,
    skip_unsupported: bool,
    problems: _Collector,
    number: int,
) -> None:
    """A line of a signal type we do not hold: counted when told to skip, else refused."""
    if not skip_unsupported:
        problems.add(number, f"{exc} (add --skip-unsupported to skip such lines)")
        return
    result.unsupported[exc.te_name] += 1


def parse_te_lines(
    source: LineSource, signal_type: str | None = None, skip_unsupported: bool = False
) -> ParsedList:
    problems = _Collector()
    return read_te_lines(read_lines(source, problems), problems, signal_type, skip_unsupported)


def read_te_lines(
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
            _skip_or_refuse(exc, result, skip_unsupported, problems, number)
        except BankValidationError as exc:
            problems.add(number, str(exc))
    problems.raise_if_any()
    return result


def parse_te_csv(
    source: LineSource, signal_type: str | None = None, skip_unsupported: bool = False
) -> ParsedList:
    del signal_type  # every row names its own
    problems = _Collector()
    return read_te_csv(read_lines(source, problems), problems, skip_unsupported)


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


def read_te_csv(
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
            _skip_or_refuse(exc, result, skip_unsupported, problems, number)
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
    return read_hma_json(read_lines(source, problems), problems, skip_unsupported)


def read_hma_json(
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
            for skipped in unsupported:
                result.unsupported[skipped.te_name] += 1
        except BankValidationError as exc:
            problems.add(number, str(exc))
    problems.raise_if_any()
    return result


def te_export_line(
    fmt: str, signal_type: str, hash_bytes: bytes, signal_str: str | None = None
) -> str | None:
    """One item as a ``te-lines`` or ``hma-json`` line, under TE's signal type name; None for
    a type TE has no name for, which the caller counts. ``signal_str`` replaces the hex of
    ``hash_bytes`` for an item held as a frame list (its type's TE signal string, written
    without spaces).

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
