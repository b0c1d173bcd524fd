"""Checks on values handed to the stores, so a bad argument fails loudly before any write.

The stores sit below the validated protocol and API layers, but they are the last line: a
wrong type or an oversized blob raises :class:`StorageValueError` and touches nothing.
"""

from __future__ import annotations

from typing import Any

from blindmatch.node.errors import BlindmatchError

MAX_NAME_CHARS = 128  # feed names, kinds, peer ids
MAX_ID_BYTES = 64  # entry ids, message ids, nonces
MAX_PAYLOAD_BYTES = 1 << 20  # one feed entry or outbox message


class StorageValueError(BlindmatchError, ValueError):
    """An argument of the wrong type, size or range; nothing was written."""

    code = "bad-request"


def check_text(name: str, value: Any, max_chars: int = MAX_NAME_CHARS) -> str:
    if not isinstance(value, str):
        raise StorageValueError(f"{name} must be a string, got {type(value).__name__}")
    if not value or len(value) > max_chars:
        raise StorageValueError(f"{name} must be 1..{max_chars} characters, got {len(value)}")
    if not value.isprintable():
        raise StorageValueError(f"{name} must not contain control characters")
    return value


def check_bytes(name: str, value: Any, max_len: int, min_len: int = 1) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise StorageValueError(f"{name} must be bytes, got {type(value).__name__}")
    value = bytes(value)
    if not min_len <= len(value) <= max_len:
        raise StorageValueError(f"{name} must be {min_len}..{max_len} bytes, got {len(value)}")
    return value


def check_int(name: str, value: Any, minimum: int = 0, maximum: int = 2**63 - 1) -> int:
    # bool is an int subclass; True as a count or timestamp is always a bug.
    if not isinstance(value, int) or isinstance(value, bool):
        raise StorageValueError(f"{name} must be an integer, got {type(value).__name__}")
    if not minimum <= value <= maximum:
        raise StorageValueError(f"{name} must be in {minimum}..{maximum}, got {value}")
    return value
