"""Signed envelopes: every message between nodes is one.

Wire form: the canonical msgpack array

    [version, type, sender, timestamp_ms, nonce, body, signature]

where ``signature`` is Ed25519 by the sender over ``ENVELOPE_DOMAIN`` framing the canonical
encoding of the first six elements as an array. Decoding is strict and ordered so that cheap
checks come first and nothing is parsed beyond the size limit: size, canonical form, shape,
version, type, sender, timestamp window, signature, body schema. Replay (a nonce seen before
inside the timestamp window) is the node's to check: it needs state.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from blindmatch.crypto import signing
from blindmatch.protocol import canonical, schema
from blindmatch.protocol.messages import PROTOCOL_VERSION, SCHEMAS, check_body

ENVELOPE_DOMAIN = b"blindmatch-v1 envelope"
NONCE_BYTES = 16
MAX_ENVELOPE_BYTES = canonical.MAX_MESSAGE_BYTES
DEFAULT_MAX_SKEW_MS = 5 * 60 * 1000
SENDER_PATTERN = re.compile(r"[a-z0-9][a-z0-9.-]{0,62}")
_MAX_TIMESTAMP_MS = 1 << 53


class EnvelopeError(ValueError):
    """Refusal of an envelope; ``code`` is one of messages.ERROR_CODES-compatible codes."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.detail = message


@dataclass(frozen=True)
class Envelope:
    version: int
    type: str
    sender: str
    timestamp_ms: int
    nonce: bytes
    body: dict[str, Any]
    signature: bytes

    @property
    def message_id(self) -> bytes:
        """Stable id for idempotency: the nonce is unique per sender."""
        return self.nonce


def _signed_part(
    version: int, mtype: str, sender: str, timestamp_ms: int, nonce: bytes, body: Any
) -> bytes:
    return canonical.encode([version, mtype, sender, timestamp_ms, nonce, body])


def seal(
    key: signing.SigningKey,
    sender: str,
    message_type: str,
    body: Mapping[str, Any],
    timestamp_ms: int,
    nonce: bytes,
) -> bytes:
    """Build and sign an envelope. The body is validated against its schema first."""
    if message_type not in SCHEMAS:
        raise EnvelopeError("bad-envelope", f"unknown message type {message_type!r}")
    if not SENDER_PATTERN.fullmatch(sender):
        raise EnvelopeError("bad-envelope", "sender id must match [a-z0-9][a-z0-9.-]{0,62}")
    if len(nonce) != NONCE_BYTES:
        raise EnvelopeError("bad-envelope", f"nonce must be {NONCE_BYTES} bytes")
    try:
        with schema.own_points():  # our own elements: structure checked, not re-decoded
            check_body(message_type, dict(body))
    except schema.SchemaError as exc:
        raise EnvelopeError("bad-body", str(exc)) from exc
    signed = _signed_part(PROTOCOL_VERSION, message_type, sender, timestamp_ms, nonce, dict(body))
    sig = key.sign(ENVELOPE_DOMAIN, signed)
    return canonical.encode(
        [PROTOCOL_VERSION, message_type, sender, timestamp_ms, nonce, dict(body), sig]
    )


KeyLookup = Callable[[str], bytes | None]


def open_envelope(
    data: bytes,
    *,
    now_ms: int,
    sender_key: KeyLookup,
    max_skew_ms: int = DEFAULT_MAX_SKEW_MS,
    max_bytes: int = MAX_ENVELOPE_BYTES,
    expected_types: tuple[str, ...] | None = None,
) -> Envelope:
    """Decode and verify an envelope, or raise :class:`EnvelopeError` saying why not."""
    try:
        value = canonical.decode(data, max_bytes=max_bytes)
    except canonical.CanonicalError as exc:
        raise EnvelopeError("bad-envelope", str(exc)) from exc
    if not isinstance(value, list) or len(value) != 7:
        raise EnvelopeError("bad-envelope", "an envelope is an array of exactly 7 elements")
    version, mtype, sender, ts, nonce, body, sig = value
    if version != PROTOCOL_VERSION or isinstance(version, bool):
        raise EnvelopeError("bad-envelope", f"unsupported protocol version {version!r}")
    if not isinstance(mtype, str) or mtype not in SCHEMAS:
        shown = mtype[:64] if isinstance(mtype, str) else type(mtype).__name__
        raise EnvelopeError("bad-envelope", f"unknown message type {shown!r}")
    if expected_types is not None and mtype not in expected_types:
        raise EnvelopeError("bad-envelope", f"message type {mtype} is not accepted here")
    if not isinstance(sender, str) or not SENDER_PATTERN.fullmatch(sender):
        raise EnvelopeError("bad-envelope", "malformed sender id")
    if not isinstance(ts, int) or isinstance(ts, bool) or not 0 <= ts < _MAX_TIMESTAMP_MS:
        raise EnvelopeError("bad-envelope", "timestamp must be a non-negative integer (ms)")
    if not isinstance(nonce, bytes) or len(nonce) != NONCE_BYTES:
        raise EnvelopeError("bad-envelope", f"nonce must be {NONCE_BYTES} bytes")
    if not isinstance(body, dict):
        raise EnvelopeError("bad-envelope", "body must be a map")
    if not isinstance(sig, bytes) or len(sig) != signing.SIGNATURE_BYTES:
        raise EnvelopeError("bad-envelope", "signature must be 64 bytes")
    public_key = sender_key(sender)
    if public_key is None:
        raise EnvelopeError("unknown-sender", f"{sender} is not in the roster")
    if abs(ts - now_ms) > max_skew_ms:
        raise EnvelopeError(
            "stale-timestamp", f"timestamp is {abs(ts - now_ms)} ms from now (max {max_skew_ms})"
        )
    try:
        signing.verify(
            public_key, ENVELOPE_DOMAIN, _signed_part(version, mtype, sender, ts, nonce, body), sig
        )
    except signing.SignatureError as exc:
        raise EnvelopeError("bad-signature", f"signature does not verify for {sender}") from exc
    try:
        checked = check_body(mtype, body)
    except schema.SchemaError as exc:
        raise EnvelopeError("bad-body", str(exc)) from exc
    return Envelope(version, mtype, sender, ts, nonce, checked, sig)
