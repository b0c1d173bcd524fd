"""Message types of protocol version 1 and the schema of each body.

A body is a canonical msgpack map (see :mod:`blindmatch.protocol.canonical`); its exact field
set is fixed per type. Later protocol steps register their types here too, so the envelope
decoder refuses any type it does not know.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from blindmatch.crypto import oprf, release, threshold
from blindmatch.protocol import schema, signal_types
from blindmatch.protocol.matching import MAX_CONFIRMED_TOKENS
from blindmatch.protocol.schema import Field, blob, integer, list_of, point, record, text

PROTOCOL_VERSION = 1
ITEM_REF_BYTES = 16
CANDIDATE_BYTES = 24  # tag || table reference: how a querier names a bucket hit (8.5)
QUERY_REF_BYTES = 32  # SHA-256 of an encrypted query the holder keeps (7.3)
MAX_OPRF_BATCH = 4096
MAX_CANDIDATES_PER_QUERY = 64
ERROR_CODES = (
    "unknown-case",
    "conflict",
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

PROVENANCE_CLASSES = signal_types.PROVENANCE_CLASSES
FEED_NAME = r"[a-z][a-z0-9.-]{0,31}"
MAX_FEED_PAGE = 1000
MAX_FEED_PAYLOAD = 2 * 1024 * 1024
_NONCE = blob(exact=16)

# What a holder's policy may release about a candidate item (every field optional): the base
# fields and those of each registered signal type.
RELEASE_FIELDS = signal_types.release_schema()

_THRESHOLD_RESPONSE_MAX = (
    1 + 1 + threshold.MAX_THRESHOLD + (threshold.MAX_THRESHOLD + 1) * threshold.CIPHERTEXT_BYTES
)

SCHEMAS: dict[str, Mapping[str, Field]] = {
    # A querier asks a holder to evaluate its OPRF on blinded bucket keys.
    "oprf.evaluate": {
        "key_id": Field(blob(exact=8)),
        "elements": Field(list_of(point(), max_items=MAX_OPRF_BATCH, min_items=1)),
    },
    # The holder's evaluations, in request order, with one batch DLEQ proof (VOPRF).
    "oprf.evaluated": {
        "re": Field(_NONCE),
        "key_id": Field(blob(exact=8)),
        "elements": Field(list_of(point(), max_items=MAX_OPRF_BATCH, min_items=1)),
        "proof": Field(blob(exact=oprf.PROOF_BYTES)),
    },
    # A querier asks for the private threshold test of its encrypted hash against candidates,
    # each named by the table reference its bucket hit unmasked (8.5).
    # ``query`` or ``query_ref`` (exactly one, ONE_OF): the encrypted query, or the SHA-256 of
    # one this holder verified for this sender and still keeps (7.3).
    "threshold.query": {
        "query": Field(blob(exact=threshold.ENCRYPTED_QUERY_BYTES), required=False),
        "query_ref": Field(blob(exact=QUERY_REF_BYTES), required=False),
        "items": Field(
            list_of(blob(exact=CANDIDATE_BYTES), max_items=MAX_CANDIDATES_PER_QUERY, min_items=1)
        ),
        # tokens of items this very query confirmed in an earlier round: their other
        # candidates are answered ``same`` (8.5)
        "confirmed": Field(
            list_of(blob(exact=release.TOKEN_BYTES), max_items=MAX_CONFIRMED_TOKENS, min_items=1),
            required=False,
        ),
    },
    # One answer per candidate, in request order, always (a dummy where the holder has nothing
    # to answer with); the item's reference and metadata are sealed to a match (8.5).
    "threshold.answer": {
        "re": Field(_NONCE),
        "query_id": Field(blob(exact=threshold.QUERY_ID_BYTES)),
        "answers": Field(
            list_of(
                record(
                    {
                        "item": Field(blob(exact=CANDIDATE_BYTES)),
                        # a threshold answer and its sealed release, or (for an item whose
                        # token the query showed) ``same``: that token
                        "response": Field(
                            blob(max_len=_THRESHOLD_RESPONSE_MAX, min_len=2), required=False
                        ),
                        "sealed": Field(blob(exact=release.SEALED_BYTES), required=False),
                        "same": Field(blob(exact=release.TOKEN_BYTES), required=False),
                    }
                ),
                max_items=MAX_CANDIDATES_PER_QUERY,
                min_items=0,
            )
        ),
    },
    # Replication: a peer reads a node's change feed from a cursor.
    "feed.pull": {
        "feed": Field(text(32, pattern=FEED_NAME)),
        "after": Field(integer(0, 1 << 62)),
        "limit": Field(integer(1, MAX_FEED_PAGE)),
    },
    "feed.page": {
        "re": Field(_NONCE),
        "feed": Field(text(32, pattern=FEED_NAME)),
        "entries": Field(
            list_of(
                record(
                    {
                        "seq": Field(integer(1, 1 << 62)),
                        "id": Field(blob(exact=16)),
                        "kind": Field(text(32, pattern=r"[a-z][a-z0-9.-]*")),
                        "payload": Field(blob(max_len=MAX_FEED_PAYLOAD)),
                    }
                ),
                max_items=MAX_FEED_PAGE,
            )
        ),
        "head": Field(integer(0, 1 << 62)),
    },
    # A node sends the holder a signed feedback record about one of its items.
    "feedback.submit": {
        "record": Field(blob(max_len=4096, min_len=1)),
    },
    "feedback.accepted": {
        "re": Field(_NONCE),
        "seq": Field(integer(0, 1 << 62)),
    },
    # A signed refusal: the peer says why it did not act, so the sender can tell the reasons apart.
    "error": {
        "code": Field(text(32, choices=ERROR_CODES)),
        "message": Field(text(512)),
        "in_reply_to": Field(blob(exact=16), required=False),
        "retry_after_ms": Field(integer(0, 7 * 24 * 3600 * 1000), required=False),
    },
}


# Bodies that carry exactly one of a set of optional fields (refused ``bad-body`` otherwise).
ONE_OF: dict[str, tuple[str, ...]] = {"threshold.query": ("query", "query_ref")}


def check_body(message_type: str, body: Any) -> dict[str, Any]:
    """A body checked against its type's schema and ``ONE_OF`` rule (raises SchemaError)."""
    checked = schema.check(SCHEMAS[message_type], body)
    one_of = ONE_OF.get(message_type)
    if one_of is not None and sum(name in checked for name in one_of) != 1:
        raise schema.SchemaError("body", f"must carry exactly one of {', '.join(one_of)}")
    return checked


def register(message_type: str, fields: Mapping[str, Field]) -> None:
    """Add a message type (used by later protocol modules at import time)."""
    if message_type in SCHEMAS and SCHEMAS[message_type] != fields:
        raise ValueError(f"message type {message_type} is already registered differently")
    SCHEMAS[message_type] = fields
