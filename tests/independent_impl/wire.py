"""Canonical msgpack (6.1), signed envelopes (6.2, 6.3) and the message schemas of chapter 7,
from specs/protocol.md. msgpack is the reference packer; canonical form is checked by
re-encoding, as 6.1 prescribes."""

from __future__ import annotations

import re
from typing import Any

import group as g
import msgpack
import nacl.exceptions
import nacl.signing

MAX_ENVELOPE = 8 * 1024 * 1024
ENVELOPE_D = b"blindmatch-v1 envelope"
WINDOW_MS = 300_000
SENDER = re.compile(r"[a-z0-9][a-z0-9.-]{0,62}")


class NotCanonical(ValueError):
    """canonical"""


class Refused(ValueError):
    def __init__(self, code: str, why: str) -> None:
        super().__init__(f"{code}: {why}")
        self.code = code


def _canonical_form(v: Any) -> Any:
    if v is None or isinstance(v, bool | str | bytes):
        return v
    if isinstance(v, int):
        if not -(2**63) <= v < 2**64:
            raise NotCanonical("integer out of range")
        return v
    if isinstance(v, list):
        return [_canonical_form(x) for x in v]
    if isinstance(v, dict):
        if not all(isinstance(k, str) for k in v):
            raise NotCanonical("map keys are strings")
        return {k: _canonical_form(v[k]) for k in sorted(v, key=lambda k: k.encode())}
    raise NotCanonical(f"{type(v).__name__} is not a protocol value")


def encode(v: Any) -> bytes:
    return msgpack.packb(_canonical_form(v), use_bin_type=True)


def decode(data: bytes, limit: int = MAX_ENVELOPE) -> Any:
    if len(data) > limit:
        raise NotCanonical("too large")
    try:
        v = msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True)
    except Exception as exc:  # msgpack's errors: ExtraData, FormatError, UnicodeDecodeError...
        raise NotCanonical(str(exc)) from exc
    if encode(v) != data:
        raise NotCanonical("not the canonical encoding")
    return v


def sign_envelope(seed: bytes, sender: str, mtype: str, body: Any, ts: int, nonce: bytes) -> bytes:
    fields = [1, mtype, sender, ts, nonce, body]
    signed = bytes([len(ENVELOPE_D)]) + ENVELOPE_D + encode(fields)
    sig = nacl.signing.SigningKey(seed).sign(signed).signature
    return encode([*fields, sig])


def open_envelope(data: bytes, now_ms: int, roster: dict[str, bytes]) -> list[Any]:
    try:
        v = decode(data)
    except NotCanonical as exc:
        raise Refused("bad-envelope", str(exc)) from exc
    if not isinstance(v, list) or len(v) != 7:
        raise Refused("bad-envelope", "shape")
    version, mtype, sender, ts, nonce, body, sig = v
    if version != 1 or isinstance(version, bool):
        raise Refused("bad-envelope", "version")
    if mtype not in SCHEMAS:
        raise Refused("bad-envelope", "type")
    if not isinstance(sender, str) or not SENDER.fullmatch(sender):
        raise Refused("bad-envelope", "sender")
    if not isinstance(ts, int) or isinstance(ts, bool) or ts < 0:
        raise Refused("bad-envelope", "timestamp")
    if not isinstance(nonce, bytes) or len(nonce) != 16:
        raise Refused("bad-envelope", "nonce")
    if not isinstance(body, dict):
        raise Refused("bad-envelope", "body")
    if not isinstance(sig, bytes) or len(sig) != 64:
        raise Refused("bad-envelope", "signature length")
    if sender not in roster:
        raise Refused("unknown-sender", sender)
    if abs(ts - now_ms) > WINDOW_MS:
        raise Refused("stale-timestamp", "outside the window")
    signed = bytes([len(ENVELOPE_D)]) + ENVELOPE_D + encode(v[:6])
    try:
        nacl.signing.VerifyKey(roster[sender]).verify(signed, sig)
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError) as exc:
        raise Refused("bad-signature", "signature") from exc
    try:
        check(SCHEMAS[mtype], body)
        one_of = ONE_OF.get(mtype)
        if one_of is not None and sum(f in body for f in one_of) != 1:
            raise ValueError(f"exactly one of {one_of}")
    except ValueError as exc:
        raise Refused("bad-body", str(exc)) from exc
    return v


# --- Schemas of chapter 7. A schema maps field -> (validator, required). ---------------------


def _bin(n: int | None = None, lo: int = 0, hi: int | None = None):
    def ok(v: Any) -> bool:
        return isinstance(v, bytes) and (
            len(v) == n if n is not None else lo <= len(v) <= (hi if hi is not None else len(v))
        )

    return ok


def _int(lo: int, hi: int):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _str(pattern: str | None = None, max_bytes: int | None = None, choices=None):
    def ok(v: Any) -> bool:
        if not isinstance(v, str):
            return False
        if max_bytes is not None and len(v.encode()) > max_bytes:
            return False
        if choices is not None and v not in choices:
            return False
        return pattern is None or re.fullmatch(pattern, v) is not None

    return ok


def _list(item, lo: int, hi: int):
    return lambda v: isinstance(v, list) and lo <= len(v) <= hi and all(item(x) for x in v)


def _point(v: Any) -> bool:
    return isinstance(v, bytes) and g.is_valid_point(v)


def _map(schema: dict[str, tuple[Any, bool]]):
    def ok(v: Any) -> bool:
        try:
            check(schema, v)
        except ValueError:
            return False
        return True

    return ok


def check(schema: dict[str, tuple[Any, bool]], body: Any) -> None:
    if not isinstance(body, dict):
        raise ValueError("not a map")
    extra = set(body) - set(schema)
    if extra:
        raise ValueError(f"unknown field {sorted(extra)[0]}")
    for name, (ok, required) in schema.items():
        if name not in body:
            if required:
                raise ValueError(f"missing {name}")
            continue
        if not ok(body[name]):
            raise ValueError(f"bad {name}")


ERROR_CODES = (  # 7.5
    "bad-envelope",
    "bad-signature",
    "unknown-sender",
    "stale-timestamp",
    "replayed",
    "bad-body",
    "bad-proof",
    "budget-exhausted",
    "unknown-item",
    "unknown-query",
    "not-allowed",
    "internal",
)
LABEL = r"[a-z0-9][a-z0-9-]*"
PROVENANCE = (
    "survivor-submitted",
    "moderator-confirmed",
    "peer-sourced",
    "protected-source",
    "generator",
)
RELEASE = {
    "categories": (_list(_str(LABEL), 0, 8), False),
    "provenance": (_str(choices=PROVENANCE), False),
    "signal": (_str(), False),
    "group": (_bin(8), False),
    "source_cells": (_int(0, 2**41 - 1), False),
}
FEED = r"[a-z][a-z0-9.-]{0,31}"
U64 = 2**64 - 1
ONE_OF = {"threshold.query": ("query", "query_ref")}
SCHEMAS: dict[str, dict[str, tuple[Any, bool]]] = {
    "oprf.evaluate": {"key_id": (_bin(8), True), "elements": (_list(_point, 1, 4096), True)},
    "oprf.evaluated": {
        "re": (_bin(16), True),
        "key_id": (_bin(8), True),
        "elements": (_list(_point, 1, 4096), True),
        "proof": (_bin(64), True),
    },
    "threshold.query": {  # 7.3: exactly one of query, query_ref (ONE_OF)
        "query": (_bin(49200), False),
        "query_ref": (_bin(32), False),
        "items": (_list(_bin(24), 1, 64), True),
        "confirmed": (_list(_bin(16), 1, 16), False),
    },
    "threshold.answer": {
        "re": (_bin(16), True),
        "query_id": (_bin(16), True),
        "answers": (
            _list(
                _map(
                    {
                        "item": (_bin(16), True),
                        "response": (_bin(), True),
                        "release": (_map(RELEASE), True),
                    }
                ),
                0,
                64,
            ),
            True,
        ),
    },
    "feed.pull": {
        "feed": (_str(FEED), True),
        "after": (_int(0, U64), True),
        "limit": (_int(1, 1000), True),
    },
    "feed.page": {
        "re": (_bin(16), True),
        "feed": (_str(FEED), True),
        "entries": (
            _list(
                _map(
                    {
                        "seq": (_int(1, U64), True),
                        "id": (_bin(16), True),
                        "kind": (_str(), True),
                        "payload": (_bin(), True),
                    }
                ),
                0,
                1000,
            ),
            True,
        ),
        "head": (_int(0, U64), True),
    },
    "error": {
        "code": (_str(choices=ERROR_CODES), True),
        "message": (_str(max_bytes=512), True),
        "in_reply_to": (_bin(16), False),
        "retry_after_ms": (_int(0, 604_800_000), False),
    },
    "feedback.submit": {"record": (_bin(lo=0, hi=4096), True)},
    "feedback.accepted": {"re": (_bin(16), True), "seq": (_int(0, U64), True)},
}
