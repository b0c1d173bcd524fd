"""Checks on every field of a bank or a bank item that arrives from a user, a file or a peer.

Each check returns the normalised value or raises :class:`BankValidationError` naming the field
and what was wrong, without echoing hash values (messages end up in logs and terminals).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from blindmatch.node import signals
from blindmatch.node.errors import BlindmatchError
from blindmatch.protocol import signal_types
from blindmatch.protocol.messages import PROVENANCE_CLASSES

# Signal types a bank can hold (the registry's bank types) and the length of the 32-byte value
# a bank item is known by: the hash itself, or for a type held as parts the digest of its list.
SIGNAL_HASH_BYTES: dict[str, int] = {
    e.name: e.hash_bytes for e in signal_types.entries() if e.bank_item
}
PERCEPTUAL_SIGNAL_TYPES = signal_types.perceptual_bank_signal_names()
PDQ_QUALITY_THRESHOLD = 50  # Meta's recommended minimum; flatter pictures hash unreliably

ITEM_REF_BYTES = 16
SECRET_HASH_BYTES = 32
MIN_SECRET_BYTES = 16
MAX_SECRET_BYTES = 256
MAX_BANK_NAME_CHARS = 64
MAX_DESCRIPTION_CHARS = 2000
MAX_CATEGORIES = 32
MAX_PROVENANCE_JSON_BYTES = 2048
MAX_SOURCE_CHARS = 200
MAX_REASON_CHARS = 500
MAX_TIMESTAMP = 2**40  # far beyond any real date; keeps values sane on every engine

_BANK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_CATEGORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


_ECHOABLE = re.compile(r"^[A-Za-z0-9_.:-]{1,24}$")
_HEXISH = re.compile(r"^[0-9a-fA-F]{12,}$")
_HASHLIKE = re.compile(r"^[0-9a-fA-F]{32,}$")


def echo(value: Any) -> str:
    """How an unexpected value appears in an error message: short names are quoted, anything
    that could be (part of) a hash or a secret is only described by its size."""
    if isinstance(value, str) and _ECHOABLE.match(value) and not _HEXISH.match(value):
        return repr(value)
    if isinstance(value, bool | int | float) or value is None:
        return repr(value)[:24]
    size = len(value) if isinstance(value, str | bytes | list | tuple | dict) else 0
    return f"<{_type_name(value)}{f' of length {size}' if size else ''}>"


class BankValidationError(BlindmatchError, ValueError):
    """A value that cannot be accepted; nothing was changed."""

    code = "invalid"
    status_hint = 400


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def check_bank_name(value: Any) -> str:
    if not isinstance(value, str):
        raise BankValidationError(f"bank name must be a string, got {_type_name(value)}")
    if not 1 <= len(value) <= MAX_BANK_NAME_CHARS or not _BANK_NAME.fullmatch(value):
        raise BankValidationError(
            f"bank name must be 1..{MAX_BANK_NAME_CHARS} characters of letters, digits, '_', "
            "'.', '-', starting with a letter or digit"
        )
    return value


def check_provenance_class(value: Any) -> str:
    if value not in PROVENANCE_CLASSES:
        raise BankValidationError(
            f"provenance must be one of {', '.join(PROVENANCE_CLASSES)}; got {echo(value)}"
        )
    return str(value)


def check_description(value: Any) -> str:
    if not isinstance(value, str):
        raise BankValidationError(f"description must be a string, got {_type_name(value)}")
    if len(value) > MAX_DESCRIPTION_CHARS:
        raise BankValidationError(f"description is longer than {MAX_DESCRIPTION_CHARS} characters")
    return value


def check_categories(value: Any, field: str = "categories") -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise BankValidationError(f"{field} must be a list of strings, got {_type_name(value)}")
    if len(value) > MAX_CATEGORIES:
        raise BankValidationError(f"{field} has {len(value)} labels; at most {MAX_CATEGORIES}")
    labels: list[str] = []
    for label in value:
        if not isinstance(label, str) or not _CATEGORY.fullmatch(label):
            raise BankValidationError(
                f"{field}: each label must be 1..64 characters of letters, digits, '_', '.', "
                f"':', '-', starting with a letter or digit; got {echo(label)}"
            )
        if _HASHLIKE.match(label):
            # Labels travel to peers in the feed; a hash pasted into one must not.
            raise BankValidationError(f"{field}: a label must not look like a hash")
        if label not in labels:
            labels.append(label)
    return tuple(labels)


def check_distance_threshold(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 63:
        raise BankValidationError(f"distance threshold must be an integer 0..63, got {echo(value)}")
    return value


def check_flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise BankValidationError(f"{field} must be true or false, got {_type_name(value)}")
    return value


def check_signal_type(value: Any) -> str:
    if not isinstance(value, str):
        raise BankValidationError(f"signal_type must be a string, got {_type_name(value)}")
    if value not in SIGNAL_HASH_BYTES:
        raise BankValidationError(
            f"unknown signal type {echo(value)} (supported: {', '.join(SIGNAL_HASH_BYTES)})"
        )
    return value


def check_hash_bytes(signal_type: str, value: Any) -> bytes:
    expected = SIGNAL_HASH_BYTES[check_signal_type(signal_type)]
    if not isinstance(value, bytes | bytearray | memoryview):
        raise BankValidationError(f"{signal_type} hash must be bytes, got {_type_name(value)}")
    value = bytes(value)
    if len(value) != expected:
        raise BankValidationError(f"{signal_type} hash must be {expected} bytes, got {len(value)}")
    return value


def parse_hex(value: Any, length_bytes: int, field: str) -> bytes:
    """Exactly ``2 * length_bytes`` hex digits (either case) -> bytes."""
    if not isinstance(value, str):
        raise BankValidationError(f"{field} must be a hex string, got {_type_name(value)}")
    if len(value) != 2 * length_bytes:
        raise BankValidationError(
            f"{field} must be exactly {2 * length_bytes} hex characters, got {len(value)}"
        )
    for position, char in enumerate(value):
        if char not in _HEX_DIGITS:
            raise BankValidationError(f"{field} has a non-hex character at position {position + 1}")
    return bytes.fromhex(value)


def parse_hash_hex(signal_type: str, value: Any) -> bytes:
    expected = SIGNAL_HASH_BYTES[check_signal_type(signal_type)]
    return parse_hex(value, expected, f"{signal_type} hash")


def holds_frame_list(signal_type: str) -> bool:
    """Whether items of this type are a signal string of parts (a video's frame list) rather
    than one hash."""
    if signal_type not in signal_types.names():
        return False
    return signals.adapter(signal_type).holds_parts


def parse_signal_value(signal_type: str, value: Any) -> tuple[bytes, tuple[Any, ...] | None]:
    """A signal as a file or request gives it: hex for a hash; for a type held as parts, its
    signal string (the type's adapter reads it). Returns the 32 bytes the item is known by
    and, for a type held as parts, its parts."""
    signal_type = check_signal_type(signal_type)
    if not holds_frame_list(signal_type):
        return parse_hash_hex(signal_type, value), None
    try:
        return signals.adapter(signal_type).parse_bank_value(value)
    except signals.SignalValueError as exc:
        raise BankValidationError(str(exc)) from None


def check_quality(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100:
        raise BankValidationError(f"quality must be an integer 0..100 or null, got {echo(value)}")
    return value


def check_timestamp(value: Any, field: str, *, optional: bool = True) -> int | None:
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_TIMESTAMP:
        raise BankValidationError(
            f"{field} must be integer unix seconds{' or null' if optional else ''}, got "
            f"{echo(value)}"
        )
    return value


def check_provenance_details(value: Any) -> dict[str, Any]:
    """A small flat map (who submitted, reviewer, peer id, ...), stored as JSON."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BankValidationError(f"provenance must be an object, got {_type_name(value)}")
    details: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 64:
            raise BankValidationError("provenance keys must be strings of 1..64 characters")
        if item is not None and not isinstance(item, str | int | bool):
            raise BankValidationError(
                f"provenance value for {echo(key)} must be a string, integer, boolean or null"
            )
        details[key] = item
    if len(json.dumps(details).encode()) > MAX_PROVENANCE_JSON_BYTES:
        raise BankValidationError(f"provenance is larger than {MAX_PROVENANCE_JSON_BYTES} bytes")
    return details


def check_source(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_SOURCE_CHARS:
        raise BankValidationError(f"source must be a string of 1..{MAX_SOURCE_CHARS} characters")
    if not value.isprintable():
        raise BankValidationError("source must not contain control characters")
    return value


def check_reason(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_REASON_CHARS:
        raise BankValidationError(f"reason must be a string of at most {MAX_REASON_CHARS} chars")
    return value


def check_secret(value: Any) -> bytes:
    if not isinstance(value, bytes | bytearray):
        raise BankValidationError(f"withdrawal secret must be bytes, got {_type_name(value)}")
    if not MIN_SECRET_BYTES <= len(value) <= MAX_SECRET_BYTES:
        raise BankValidationError(
            f"withdrawal secret must be {MIN_SECRET_BYTES}..{MAX_SECRET_BYTES} bytes"
        )
    return bytes(value)


def check_item_ref(value: Any) -> bytes:
    if isinstance(value, str):
        return parse_hex(value, ITEM_REF_BYTES, "item_ref")
    if not isinstance(value, bytes | bytearray) or len(value) != ITEM_REF_BYTES:
        raise BankValidationError(f"item_ref must be {ITEM_REF_BYTES} bytes (or 32 hex chars)")
    return bytes(value)


@dataclass(frozen=True)
class SourceTile:
    """One tile hash of a protected source photo (``pdq-tiles-1``, specs/derivatives.md 2-5)."""

    cell: str  # the cell label, e.g. "g4c1r3"
    frame: int  # index into the scheme's index_frames (0: the photo as it is)
    hash: bytes = field(repr=False)
    quality: int


def check_source_tiles(tiles: Any, scheme_name: str = "pdq-tiles-1") -> tuple[SourceTile, ...]:
    """The tiles of one protected source: cells of the scheme, frames in range, 32-byte hashes,
    qualities at or above the scheme's gate, each (cell, frame) once, at most one per index
    tile. An empty list is allowed (a source too plain for tiles is still a whole-photo item).
    """
    from blindmatch.protocol.derivative import DERIVATIVE_SCHEMES, Cell, DerivativeError

    scheme = DERIVATIVE_SCHEMES.get(scheme_name)
    if scheme is None:
        raise BankValidationError(f"unknown tile scheme {echo(scheme_name)}")
    if not isinstance(tiles, list | tuple):
        raise BankValidationError(f"tiles must be a list, got {_type_name(tiles)}")
    cells = set(scheme.cells)
    limit = len(cells) * len(scheme.index_frames)
    if len(tiles) > limit:
        raise BankValidationError(f"at most {limit} tiles per source, got {len(tiles)}")
    seen: set[tuple[str, int]] = set()
    out = []
    for n, tile in enumerate(tiles):
        if not isinstance(tile, SourceTile):
            raise BankValidationError(f"tiles[{n}] must be a SourceTile")
        try:
            cell = Cell.parse(tile.cell)
        except DerivativeError:
            raise BankValidationError(f"tiles[{n}].cell is not a cell label") from None
        if cell not in cells:
            raise BankValidationError(
                f"tiles[{n}].cell {cell.label} is not a cell of {scheme.name}"
            )
        frame = tile.frame
        if not isinstance(frame, int) or isinstance(frame, bool):
            raise BankValidationError(f"tiles[{n}].frame must be an integer")
        if not 0 <= frame < len(scheme.index_frames):
            raise BankValidationError(
                f"tiles[{n}].frame must be 0..{len(scheme.index_frames) - 1}, got {frame}"
            )
        value = check_hash_bytes("pdq", tile.hash)
        quality = check_quality(tile.quality)
        if quality is None or not scheme.gate(quality):
            raise BankValidationError(
                f"tiles[{n}] is below the tile quality gate ({scheme.min_quality})"
            )
        if (cell.label, frame) in seen:
            raise BankValidationError(f"tiles[{n}] repeats cell {cell.label} of frame {frame}")
        seen.add((cell.label, frame))
        out.append(SourceTile(cell.label, frame, value, quality))
    return tuple(out)


# A banked crop's name (specs/signals-and-lsh.md 3.5): the corner it keeps (or c, centred) and
# the percentage cut off each dimension, e.g. "crop/tl/6".
BANKED_CROP_NAME = re.compile(r"crop/(tl|tr|bl|br|c)/[1-9][0-9]?")
MAX_BANKED_CROPS = 64


@dataclass(frozen=True)
class BankedCrop:
    """One off-centre crop of a banked picture, indexed as a variant of the picture's item."""

    crop: str  # e.g. "crop/tl/6"
    hash: bytes = field(repr=False)
    quality: int


def check_banked_crops(
    crops: Any, signal_type: str = signal_types.PDQ.name
) -> tuple[BankedCrop, ...]:
    """The crops of one picture: named as :data:`BANKED_CROP_NAME`, 32-byte hashes of indexable
    quality (>= 50, as the picture's own hash), each name once, at most MAX_BANKED_CROPS, and
    only with an item of the picture type."""
    if not isinstance(crops, list | tuple):
        raise BankValidationError(f"crops must be a list, got {_type_name(crops)}")
    if len(crops) > MAX_BANKED_CROPS:
        raise BankValidationError(f"at most {MAX_BANKED_CROPS} crops per item, got {len(crops)}")
    seen: set[str] = set()
    out = []
    for n, crop in enumerate(crops):
        if not isinstance(crop, BankedCrop):
            raise BankValidationError(f"crops[{n}] must be a BankedCrop")
        if not isinstance(crop.crop, str) or not BANKED_CROP_NAME.fullmatch(crop.crop):
            raise BankValidationError(f"crops[{n}] is not a crop name (crop/<corner>/<percent>)")
        value = check_hash_bytes("pdq", crop.hash)
        quality = check_quality(crop.quality)
        if quality is None or quality < PDQ_QUALITY_THRESHOLD:
            raise BankValidationError(
                f"crops[{n}] is below the quality gate ({PDQ_QUALITY_THRESHOLD})"
            )
        if crop.crop in seen:
            raise BankValidationError(f"crops[{n}] repeats {crop.crop}")
        seen.add(crop.crop)
        out.append(BankedCrop(crop.crop, value, quality))
    if out and signal_type != signal_types.PDQ.name:
        raise BankValidationError("only a pdq item (a picture) has banked crops")
    return tuple(out)
