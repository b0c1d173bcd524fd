"""Field validators for message bodies: exact field sets, types, sizes, group elements.

A schema is a dict of field name -> :class:`Field`. :func:`check` returns the validated value
(bytes for points are checked canonical and non-identity) or raises :class:`SchemaError` naming
the offending path. Optional fields are absent, never null.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from blindmatch.crypto import sodium


class SchemaError(ValueError):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


Check = Callable[[Any, str], Any]


@dataclass(frozen=True)
class Field:
    check: Check
    required: bool = True


def integer(lo: int, hi: int) -> Check:
    def run(v: Any, path: str) -> int:
        if not isinstance(v, int) or isinstance(v, bool):
            raise SchemaError(path, "must be an integer")
        if not lo <= v <= hi:
            raise SchemaError(path, f"must lie in {lo}..{hi}")
        return v

    return run


def boolean() -> Check:
    def run(v: Any, path: str) -> bool:
        if not isinstance(v, bool):
            raise SchemaError(path, "must be a boolean")
        return v

    return run


def text(max_len: int, pattern: str | None = None, choices: tuple[str, ...] | None = None) -> Check:
    rx = re.compile(pattern) if pattern else None

    def run(v: Any, path: str) -> str:
        if not isinstance(v, str):
            raise SchemaError(path, "must be a string")
        if len(v.encode()) > max_len:
            raise SchemaError(path, f"longer than {max_len} bytes")
        if rx and not rx.fullmatch(v):
            raise SchemaError(path, f"does not match {pattern}")
        if choices is not None and v not in choices:
            raise SchemaError(path, f"must be one of {', '.join(choices)}")
        return v

    return run


def blob(exact: int | None = None, max_len: int | None = None, min_len: int = 0) -> Check:
    def run(v: Any, path: str) -> bytes:
        if not isinstance(v, bytes):
            raise SchemaError(path, "must be bytes")
        if exact is not None and len(v) != exact:
            raise SchemaError(path, f"must be exactly {exact} bytes, got {len(v)}")
        if max_len is not None and len(v) > max_len:
            raise SchemaError(path, f"longer than {max_len} bytes")
        if len(v) < min_len:
            raise SchemaError(path, f"shorter than {min_len} bytes")
        return v

    return run


# Set while checking a body this party built itself from libsodium's outputs (seal): its group
# elements are canonical by construction, and validating each costs a decode (~4 us) on the
# critical path of every reply. Everything received is always checked in full.
_OWN_POINTS: contextvars.ContextVar[bool] = contextvars.ContextVar("own_points", default=False)


@contextlib.contextmanager
def own_points() -> Iterator[None]:
    token = _OWN_POINTS.set(True)
    try:
        yield
    finally:
        _OWN_POINTS.reset(token)


def point() -> Check:
    """A canonical ristretto255 encoding other than the identity."""

    def run(v: Any, path: str) -> bytes:
        if not isinstance(v, bytes) or len(v) != sodium.POINT_BYTES:
            raise SchemaError(path, "must be a 32-byte group element")
        if v == sodium.IDENTITY:
            raise SchemaError(path, "the identity element is not allowed")
        if not _OWN_POINTS.get() and not sodium.is_valid_point(v):
            raise SchemaError(path, "not a canonical ristretto255 encoding")
        return v

    return run


def list_of(item: Check, max_items: int, min_items: int = 0) -> Check:
    def run(v: Any, path: str) -> list[Any]:
        if not isinstance(v, list):
            raise SchemaError(path, "must be a list")
        if not min_items <= len(v) <= max_items:
            raise SchemaError(path, f"must have {min_items}..{max_items} items, got {len(v)}")
        return [item(x, f"{path}[{i}]") for i, x in enumerate(v)]

    return run


def record(fields: Mapping[str, Field]) -> Check:
    def run(v: Any, path: str) -> dict[str, Any]:
        return check(fields, v, path)

    return run


def check(fields: Mapping[str, Field], value: Any, path: str = "body") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SchemaError(path, "must be a map")
    extra = sorted(set(value) - set(fields))
    if extra:
        raise SchemaError(path, f"unexpected field(s): {', '.join(extra)}")
    out: dict[str, Any] = {}
    for name, spec in fields.items():
        if name not in value:
            if spec.required:
                raise SchemaError(f"{path}.{name}", "missing")
            continue
        out[name] = spec.check(value[name], f"{path}.{name}")
    return out
