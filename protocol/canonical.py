"""Canonical msgpack: the one byte encoding of a protocol value.

Values are built from: None, bool, int (signed 64-bit range), str (UTF-8), bytes, list, and dict
with str keys. No floats, no extension types. Canonical means what msgpack-python's packer
emits with ``use_bin_type=True`` for the value, with every map's keys sorted by their UTF-8
bytes. A decoder accepts only that: it decodes under size limits, then re-encodes and requires
the same bytes, which rejects non-minimal integer and length encodings, unsorted or duplicate
keys, and trailing data in one comparison.
"""

from __future__ import annotations

from typing import Any

import msgpack

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
_MAX_CONTAINER = 1 << 20
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 64) - 1


class CanonicalError(ValueError):
    """The bytes are not a canonical protocol value; ``code`` is stable for tests and peers."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


_MAX_DEPTH = 16


def _normalise(value: Any, depth: int = 0) -> Any:
    if depth > _MAX_DEPTH:
        raise CanonicalError("too-deep", f"values nest more than {_MAX_DEPTH} levels")
    if value is None or isinstance(value, bool | str | bytes):
        return value
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise CanonicalError("bad-int", "integer out of the 64-bit range")
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, list | tuple):
        return [_normalise(v, depth + 1) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise CanonicalError("bad-key", "map keys must be strings")
        return {k: _normalise(value[k], depth + 1) for k in sorted(value, key=str.encode)}
    raise CanonicalError("bad-type", f"{type(value).__name__} is not a protocol value")


def encode(value: Any) -> bytes:
    """The canonical encoding of ``value``."""
    return msgpack.packb(_normalise(value), use_bin_type=True)


def _refuse_ext(code: int, data: bytes) -> Any:
    raise CanonicalError("ext-type", "msgpack extension types are not allowed")


def decode(data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> Any:
    """Decode canonical bytes, or raise :class:`CanonicalError` saying why not."""
    if not isinstance(data, bytes | bytearray):
        raise CanonicalError("bad-type", "expected bytes")
    if len(data) > max_bytes:
        raise CanonicalError("too-large", f"{len(data)} bytes exceeds the limit of {max_bytes}")
    if not data:
        raise CanonicalError("truncated", "empty input")
    try:
        value = msgpack.unpackb(
            bytes(data),
            raw=False,
            use_list=True,
            strict_map_key=True,
            ext_hook=_refuse_ext,
            max_bin_len=max_bytes,
            max_str_len=max_bytes,
            max_array_len=_MAX_CONTAINER,
            max_map_len=_MAX_CONTAINER,
            max_ext_len=0,
        )
    except CanonicalError:
        raise
    except msgpack.ExtraData as exc:
        raise CanonicalError("trailing-data", "bytes follow the value") from exc
    except (ValueError, msgpack.exceptions.UnpackException) as exc:
        if "incomplete" in str(exc).lower() or "unpack(b)" in str(exc):
            raise CanonicalError("truncated", "input ends inside a value") from exc
        raise CanonicalError("malformed", f"not valid msgpack ({exc.__class__.__name__})") from exc
    except (TypeError, UnicodeDecodeError, RecursionError) as exc:
        raise CanonicalError("malformed", f"not valid msgpack ({exc.__class__.__name__})") from exc
    if _contains_float(value):
        raise CanonicalError("float", "floating-point values are not allowed")
    try:
        again = encode(value)
    except CanonicalError as exc:
        raise CanonicalError("not-canonical", str(exc)) from exc
    if again != bytes(data):
        raise CanonicalError("not-canonical", "encoding is not the canonical form")
    return value


def _contains_float(value: Any) -> bool:
    """Whether a decoded value holds a float anywhere; a value nested deeper than encode()
    allows is refused here, without recursion (a few hundred bytes of nested arrays would
    otherwise exhaust Python's stack: found by bench fuzz, kept in tests/data/fuzz/)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, float):
            return True
        if isinstance(item, list | dict):
            if item and depth >= _MAX_DEPTH:  # its elements would be deeper than encode allows
                raise CanonicalError("too-deep", f"values nest more than {_MAX_DEPTH} levels")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False
