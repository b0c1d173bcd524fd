"""The JSON encoding every conformance operation speaks (specs/protocol.md 9.4) and its error
(:class:`OpError`, with a stable code, 9.6). The operations themselves are in
:mod:`.conformance_ops` and the chapters' ``*_ops`` modules. Pure: no I/O."""

from __future__ import annotations

import re
from typing import Any


class OpError(Exception):
    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


_HEX = re.compile(r"(?:[0-9a-f]{2})*")


# Integers beyond this magnitude lose precision as JSON numbers (IEEE doubles); they travel as
# {"int": "<decimal>"} (specs/protocol.md 9.4).
JSON_SAFE_INT = 2**53 - 1


def hex_bytes(v: Any) -> bytes:
    """A byte-string field: lower-case hex of even length, or a ``bad-request`` refusal."""
    if not isinstance(v, str) or not _HEX.fullmatch(v):
        raise OpError("bad-request", "expected lower-case hex of even length")
    return bytes.fromhex(v)


def json_int(v: Any) -> int:
    """An integer field: a JSON number within +-(2^53 - 1), or {"int": "<decimal>"} beyond."""
    if isinstance(v, int) and not isinstance(v, bool):
        if abs(v) > JSON_SAFE_INT:
            raise OpError("bad-request", "integers beyond 2^53 - 1 are written {'int': ...}")
        return v
    if isinstance(v, dict) and set(v) == {"int"} and isinstance(v["int"], str):
        if re.fullmatch(r"-?(0|[1-9][0-9]*)", v["int"]):
            n = int(v["int"])
            if abs(n) > JSON_SAFE_INT:
                return n
        raise OpError("bad-request", "{'int': ...} holds the decimal of a big integer")
    raise OpError("bad-request", "expected an integer")


def big_ints_to_json(v: Any) -> Any:
    """Write every integer beyond +-(2^53 - 1) in an op's output as {"int": "<decimal>"}."""
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) > JSON_SAFE_INT:
        return {"int": str(v)}
    if isinstance(v, dict):
        return {k: big_ints_to_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [big_ints_to_json(x) for x in v]
    return v


def hex_bytes_list(v: Any) -> list[bytes]:
    if not isinstance(v, list):
        raise OpError("bad-request", "expected a list of hex strings")
    return [hex_bytes(x) for x in v]


# A protocol value (msgpack: nil, bool, int, str, bin, array, map) in JSON (specs/protocol.md
# 9.4): a JSON object with exactly one key "hex", "int" or "map" is a tag, so a protocol map
# whose only key is one of those three is written inside {"map": ...}; no two values share a
# JSON form.
_TAGS = frozenset({"hex", "int", "map"})


def from_json_value(v: Any) -> Any:
    if isinstance(v, dict):
        if len(v) == 1 and next(iter(v)) in _TAGS:
            ((tag, inner),) = v.items()
            if tag == "hex":
                return hex_bytes(inner)
            if tag == "int":
                return json_int(v)
            if not isinstance(inner, dict):
                raise OpError("bad-request", "{'map': ...} holds a JSON object")
            return {k: from_json_value(x) for k, x in inner.items()}
        return {k: from_json_value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [from_json_value(x) for x in v]
    if isinstance(v, float) or (isinstance(v, int) and not isinstance(v, bool)):
        return json_int(v)
    return v


def to_json_value(v: Any) -> Any:
    if isinstance(v, bytes):
        return {"hex": v.hex()}
    if isinstance(v, int) and not isinstance(v, bool):
        return {"int": str(v)} if abs(v) > JSON_SAFE_INT else v
    if isinstance(v, dict):
        encoded = {k: to_json_value(x) for k, x in v.items()}
        return {"map": encoded} if len(v) == 1 and next(iter(v)) in _TAGS else encoded
    if isinstance(v, list):
        return [to_json_value(x) for x in v]
    return v
