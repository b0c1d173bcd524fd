"""Feedback that travels: signed records about a holder's item.

A record says what one node (its ``origin``) concluded about one item of one holder:

- ``confirm``        a reviewer at the origin confirmed a match with the item
- ``dispute``        a reviewer found a match with it to be a false positive
- ``appeal-upheld``  an uploader's appeal against an action based on it was upheld
- ``withdraw``       the holder withdraws the item (only the holder may say this)
- ``retract``        the origin takes back one of its own earlier records (``retracts``)

The origin signs the canonical encoding; the holder re-publishes records about its items in
its ``feedback`` feed, so every node replicates them like index deltas and can check each
record's signature against the origin's roster key. Records are idempotent by ``id``; a
retraction is itself a record (a tombstone), so the history is never rewritten.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from blindmatch.crypto import signing
from blindmatch.protocol import canonical, schema
from blindmatch.protocol.schema import Field, blob, integer, text

FEEDBACK_DOMAIN = b"blindmatch-v1 feedback"
OPINIONS = ("confirm", "dispute", "appeal-upheld", "withdraw", "retract")
FEED = "feedback"
_NODE = r"[a-z0-9][a-z0-9.-]{0,62}"

RECORD_FIELDS = {
    "v": Field(integer(1, 1)),
    "id": Field(blob(exact=16)),
    "origin": Field(text(63, pattern=_NODE)),
    "holder": Field(text(63, pattern=_NODE)),
    "item": Field(blob(exact=16)),
    "opinion": Field(text(16, choices=OPINIONS)),
    "at_ms": Field(integer(0, 1 << 53)),
    "retracts": Field(blob(exact=16), required=False),
}
SIGNED_FIELDS = {
    "record": Field(schema.record(RECORD_FIELDS)),
    "signature": Field(blob(exact=signing.SIGNATURE_BYTES)),
}


class FeedbackError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


@dataclass(frozen=True)
class FeedbackRecord:
    id: bytes
    origin: str
    holder: str
    item: bytes
    opinion: str
    at_ms: int
    retracts: bytes | None
    signed: bytes  # the canonical signed form, as published

    def as_map(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "v": 1,
            "id": self.id,
            "origin": self.origin,
            "holder": self.holder,
            "item": self.item,
            "opinion": self.opinion,
            "at_ms": self.at_ms,
        }
        if self.retracts is not None:
            out["retracts"] = self.retracts
        return out


def make_record(
    key: signing.SigningKey,
    *,
    record_id: bytes,
    origin: str,
    holder: str,
    item: bytes,
    opinion: str,
    at_ms: int,
    retracts: bytes | None = None,
) -> FeedbackRecord:
    body: dict[str, Any] = {
        "v": 1, "id": record_id, "origin": origin, "holder": holder, "item": item,
        "opinion": opinion, "at_ms": at_ms,
    }  # fmt: skip
    if retracts is not None:
        body["retracts"] = retracts
    _check_semantics(schema.check(RECORD_FIELDS, body, "record"))
    signature = key.sign(FEEDBACK_DOMAIN, canonical.encode(body))
    signed = canonical.encode({"record": body, "signature": signature})
    return FeedbackRecord(record_id, origin, holder, item, opinion, at_ms, retracts, signed)


def _check_semantics(body: dict[str, Any]) -> None:
    if body["opinion"] == "withdraw" and body["origin"] != body["holder"]:
        raise FeedbackError("bad-body", "only the holder can withdraw its item")
    if (body["opinion"] == "retract") != ("retracts" in body):
        raise FeedbackError("bad-body", "a retract record, and only one, names what it retracts")


def open_record(data: bytes, origin_key: Callable[[str], bytes | None]) -> FeedbackRecord:
    """Parse and verify a signed record; raises :class:`FeedbackError` saying what is wrong."""
    try:
        value = canonical.decode(data, max_bytes=4096)
        checked = schema.check(SIGNED_FIELDS, value, "feedback")
    except (canonical.CanonicalError, schema.SchemaError) as exc:
        raise FeedbackError("bad-body", str(exc)) from exc
    body = checked["record"]
    _check_semantics(body)
    key = origin_key(body["origin"])
    if key is None:
        raise FeedbackError("unknown-sender", f"{body['origin']} is not in the roster")
    try:
        signing.verify(key, FEEDBACK_DOMAIN, canonical.encode(body), checked["signature"])
    except signing.SignatureError as exc:
        raise FeedbackError(
            "bad-signature", f"feedback record {body['id'].hex()} is not signed by {body['origin']}"
        ) from exc
    return FeedbackRecord(
        body["id"], body["origin"], body["holder"], body["item"], body["opinion"],
        body["at_ms"], body.get("retracts"), bytes(data),
    )  # fmt: skip


@dataclass
class Opinion:
    """The aggregate of the records about one item, retractions applied."""

    confirmations: int = 0
    disputes: int = 0
    appeals_upheld: int = 0
    withdrawn: bool = False
    origins: dict[str, set[str]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        if self.withdrawn:
            return "withdrawn"
        if self.disputes or self.appeals_upheld:
            return "disputed"
        if self.confirmations:
            return "confirmed"
        return "none"


def aggregate(records: Iterable[FeedbackRecord]) -> Opinion:
    records = list(records)
    retracted = {(r.origin, r.retracts) for r in records if r.opinion == "retract" and r.retracts}
    op = Opinion()
    counted: set[tuple[str, str]] = set()
    for r in sorted(records, key=lambda r: (r.at_ms, r.id)):
        if r.opinion == "retract" or (r.origin, r.id) in retracted:
            continue
        if r.opinion == "withdraw":
            op.withdrawn = True
            continue
        # One vote per origin and opinion: a node repeating itself does not count twice.
        if (r.origin, r.opinion) in counted:
            continue
        counted.add((r.origin, r.opinion))
        op.origins.setdefault(r.opinion, set()).add(r.origin)
        if r.opinion == "confirm":
            op.confirmations += 1
        elif r.opinion == "dispute":
            op.disputes += 1
        elif r.opinion == "appeal-upheld":
            op.appeals_upheld += 1
    return op
