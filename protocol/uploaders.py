"""Repeat-uploader signals: "this uploader is known elsewhere for this picture", privately.

specs/uploaders.md is the authority; this module is its reference implementation. In short:

* A platform reduces each contact identifier of an uploader (email, phone) to a 32-byte
  **identifier digest** (:func:`identifier_digest`, after :func:`normalise`). The digest is as
  guessable as the identifier; it never leaves the platform's node in the clear.
* **Stage 1, the picture's holder** (key ``k_H``, roster ``uploader_key``) evaluates the digest
  under RFC 9497 POPRF with the public info ``picture_info(holder, picture)``: the output is
  bound to one protected picture, so the same uploader gives unrelated values for two pictures.
  The holder sees only blinded elements, and answers only members that had the item as a
  candidate recently, within a per-picture budget.
* **Stage 2, the federation's keeper** (key ``k_S``, roster ``keeper_key``, capability
  ``uploader-keeper``) evaluates the stage-1 output under RFC 9497 VOPRF; the first 16 bytes
  of its output are the **tag**. The keeper sees only blinded elements.
* A platform whose reviewer actioned a confirmed match **publishes** the tags of its
  uploader to the keeper, which re-publishes them, without the publisher's name, in its
  ``uploaders`` feed. Another platform that confirms a match on the same picture computes its
  own uploader's tags the same way and looks them up in its replica of that feed.

Neither key holder alone can compute a tag, so no single party can test a guessed email
offline; the chapter's section 7 states what each party learns, with numbers.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from blindmatch.crypto import oprf
from blindmatch.crypto.hashing import length_prefixed
from blindmatch.protocol import canonical, messages, schema
from blindmatch.protocol.schema import Field, blob, integer, list_of, point, text

IDENTIFIER_DOMAIN = b"blindmatch-v1 uploader identifier"
PICTURE_DOMAIN = b"blindmatch-v1 uploader picture"
FEED = "uploaders"
ADD, REMOVE = "uploader.add", "uploader.remove"
IDENTIFIER_KINDS = ("email", "phone")
DIGEST_BYTES = 32
TAG_BYTES = 16
MAX_IDENTIFIERS = 4  # per uploader and request: a couple of emails and a phone
MAX_TAGS_PER_ENTRY = 4096
DAY_MS = 86_400_000
DEFAULT_TTL_MS = 365 * DAY_MS
MAX_TTL_MS = 730 * DAY_MS
CANDIDATE_WINDOW_MS = 7 * DAY_MS  # a holder evaluates only for a recent candidate of the item
CONFIRM_WINDOW_MS = 30 * DAY_MS  # a keeper accepts a publication only after a recent confirm
CAP_READ, CAP_PUBLISH, CAP_KEEPER = "uploader-read", "uploader-publish", "uploader-keeper"
CAPABILITIES = (CAP_READ, CAP_PUBLISH, CAP_KEEPER)
DEFAULT_BUDGET = {
    # per requesting member, at the holder (stage 1) and at the keeper (stage 2)
    "uploader_evaluations_per_day": 2_000,
    # per requesting member and picture, at the holder
    "uploader_evaluations_per_picture_day": 16,
}
_NODE = r"[a-z0-9][a-z0-9.-]{0,62}"
_GMAIL = ("gmail.com", "googlemail.com")
_PHONE = re.compile(r"\+[1-9][0-9]{6,14}")
_DOMAIN_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


class UploaderError(ValueError):
    """A refusal; ``code`` is stable (vectors and peers name it)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


# --- identifiers ------------------------------------------------------------------------------


def normalise_email(value: str) -> str:
    """Spec 3.1: trim, NFC, lower-case; drop a ``+`` sub-address; for Gmail also the dots of
    the local part (one mailbox, many spellings); the domain must be ASCII (A-labels)."""
    v = unicodedata.normalize("NFC", value.strip()).lower()
    if v.count("@") != 1:
        raise UploaderError("bad-identifier", "an email has exactly one @")
    local, domain = v.split("@")
    local = local.split("+", 1)[0]
    if domain in _GMAIL:
        local, domain = local.replace(".", ""), "gmail.com"
    if not local or len(local.encode()) > 64 or any(c.isspace() or ord(c) < 0x21 for c in local):
        raise UploaderError("bad-identifier", "the local part is empty, too long or has spaces")
    labels = domain.split(".")
    if (
        len(domain) > 253
        or len(labels) < 2
        or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels)
    ):
        raise UploaderError(
            "bad-identifier", "the domain must be ASCII labels (write IDNs as xn-- A-labels)"
        )
    return f"{local}@{domain}"


def normalise_phone(value: str) -> str:
    """Spec 3.1: E.164 (``+`` and 7..15 digits); spaces, dots, dashes and brackets dropped,
    a leading international ``00`` read as ``+``. A number without its country code is refused:
    guessing one would link different people."""
    v = re.sub(r"[\s.\-()]", "", value)
    if v.startswith("00"):
        v = "+" + v[2:]
    if not _PHONE.fullmatch(v):
        raise UploaderError("bad-identifier", "a phone number is E.164: + and 7 to 15 digits")
    return v


def normalise(kind: str, value: str) -> str:
    if not isinstance(value, str) or len(value) > 512:
        raise UploaderError("bad-identifier", "an identifier is a string of at most 512 chars")
    if kind == "email":
        return normalise_email(value)
    if kind == "phone":
        return normalise_phone(value)
    raise UploaderError("bad-identifier", f"kind must be one of {', '.join(IDENTIFIER_KINDS)}")


def identifier_digest(kind: str, value: str) -> bytes:
    """SHA-256(LP(domain, kind, normalised)). Fixed-size, not secret: treat it as the
    identifier itself."""
    norm = normalise(kind, value)
    return hashlib.sha256(length_prefixed(IDENTIFIER_DOMAIN, kind.encode(), norm.encode())).digest()


# --- the two stages ----------------------------------------------------------------------------


def picture_info(holder: str, picture: bytes) -> bytes:
    """The POPRF info of stage 1: binds an evaluation to one picture of one holder.

    ``picture`` is the holder's opaque reference of the protected picture: the 8-byte group of
    a protected source (all its tiles and its whole-picture item share it), else the 16-byte
    item reference."""
    if not re.fullmatch(_NODE, holder):
        raise UploaderError("bad-request", "holder must be a node id")
    if len(picture) not in (8, 16):
        raise UploaderError("bad-request", "picture is an 8-byte group or a 16-byte item ref")
    return length_prefixed(PICTURE_DOMAIN, holder.encode(), picture)


def picture_of(item_ref: bytes, release: Mapping[str, Any]) -> bytes:
    """The picture reference a querier uses for a confirmed item (spec 4.1)."""
    group = release.get("group")
    return group if isinstance(group, bytes) and len(group) == 8 else item_ref


def tag_of(keeper_output: bytes) -> bytes:
    return keeper_output[:TAG_BYTES]


def tag(
    holder_key: oprf.ServerKey,
    keeper_key: oprf.ServerKey,
    holder: str,
    picture: bytes,
    digest: bytes,
) -> bytes:
    """The tag, computed with both secret keys (vectors and tests; no real party can)."""
    stage1 = oprf.poprf_evaluate(holder_key, digest, picture_info(holder, picture))
    return tag_of(oprf.evaluate(keeper_key, stage1, oprf.Mode.VOPRF))


@dataclass
class Lookup:
    """A querier's state across the two stages for one uploader and one picture."""

    holder: str
    picture: bytes
    digests: list[bytes]
    info: bytes = b""
    blinds1: list[bytes] = field(default_factory=list)
    blinded1: list[bytes] = field(default_factory=list)
    tweaked: bytes = b""
    stage1: list[bytes] = field(default_factory=list)
    blinds2: list[bytes] = field(default_factory=list)
    blinded2: list[bytes] = field(default_factory=list)


def start(
    holder: str,
    picture: bytes,
    digests: Iterable[bytes],
    holder_pk: bytes,
    blinds: list[bytes] | None = None,
) -> tuple[Lookup, list[bytes]]:
    """Stage 1, querier: blind the digests for one picture; returns the state and the
    elements of the ``uploader.evaluate`` body."""
    digests = list(digests)
    if not 1 <= len(digests) <= MAX_IDENTIFIERS or any(len(d) != DIGEST_BYTES for d in digests):
        raise UploaderError("bad-request", f"1..{MAX_IDENTIFIERS} digests of 32 bytes")
    info = picture_info(holder, picture)
    blinds1, blinded, tweaked = oprf.poprf_blind(digests, info, holder_pk, blinds)
    state = Lookup(holder, picture, digests, info, blinds1, blinded, tweaked)
    return state, blinded


def after_holder(
    state: Lookup,
    evaluated: list[bytes],
    proof: bytes,
    keeper_pk: bytes,
    blinds: list[bytes] | None = None,
) -> list[bytes]:
    """Verify the holder's answer against its pinned key and the picture, unblind, and blind
    the results for the keeper; returns the elements of the ``uploader.tag`` body."""
    if len(evaluated) != len(state.blinded1):
        raise UploaderError("bad-proof", "the holder answered a different number of elements")
    try:
        state.stage1 = oprf.poprf_finalize(
            state.digests, state.blinds1, evaluated, state.blinded1, proof, state.info,
            state.tweaked,
        )  # fmt: skip
    except oprf.OprfError as exc:
        raise UploaderError("bad-proof", f"holder's evaluation: {exc}") from exc
    oprf.deserialize_element(keeper_pk, "keeper key")
    state.blinds2, state.blinded2 = oprf.blind(state.stage1, oprf.Mode.VOPRF, blinds)
    return state.blinded2


def finish(state: Lookup, evaluated: list[bytes], proof: bytes, keeper_pk: bytes) -> list[bytes]:
    """Verify the keeper's answer against its pinned key; returns one tag per digest."""
    if len(evaluated) != len(state.blinded2):
        raise UploaderError("bad-proof", "the keeper answered a different number of elements")
    try:
        outputs = oprf.finalize(
            state.stage1, state.blinds2, evaluated, oprf.Mode.VOPRF, state.blinded2, proof,
            keeper_pk,
        )  # fmt: skip
    except oprf.OprfError as exc:
        raise UploaderError("bad-proof", f"keeper's evaluation: {exc}") from exc
    return [tag_of(o) for o in outputs]


def holder_evaluate(
    key: oprf.ServerKey,
    holder: str,
    picture: bytes,
    elements: list[bytes],
    proof_nonce: bytes | None = None,
) -> tuple[list[bytes], bytes]:
    """Stage 1, holder: evaluate blinded elements for one of its pictures."""
    if not 1 <= len(elements) <= MAX_IDENTIFIERS:
        raise UploaderError("bad-body", f"1..{MAX_IDENTIFIERS} elements")
    return oprf.poprf_blind_evaluate(key, elements, picture_info(holder, picture), proof_nonce)


def keeper_evaluate(
    key: oprf.ServerKey, elements: list[bytes], proof_nonce: bytes | None = None
) -> tuple[list[bytes], bytes]:
    """Stage 2, keeper: evaluate blinded stage-1 outputs (it cannot tell which picture)."""
    if not 1 <= len(elements) <= MAX_IDENTIFIERS:
        raise UploaderError("bad-body", f"1..{MAX_IDENTIFIERS} elements")
    evaluated, proof = oprf.blind_evaluate(key, elements, oprf.Mode.VOPRF, proof_nonce)
    assert proof is not None
    return evaluated, proof


# --- the keeper's feed ------------------------------------------------------------------------

FEED_SCHEMAS: dict[str, Mapping[str, Field]] = {
    ADD: {
        "key_id": Field(blob(exact=8)),
        "tags": Field(blob(max_len=MAX_TAGS_PER_ENTRY * TAG_BYTES, min_len=TAG_BYTES)),
        "expires_ms": Field(integer(0, 1 << 53)),
    },
    REMOVE: {
        "key_id": Field(blob(exact=8)),
        "tags": Field(blob(max_len=MAX_TAGS_PER_ENTRY * TAG_BYTES, min_len=TAG_BYTES)),
    },
}


def round_expiry(expires_ms: int) -> int:
    """Expiries are whole UTC days, so one tells readers nothing finer about when it was set."""
    return -(-expires_ms // DAY_MS) * DAY_MS


def _pack(tags: Iterable[bytes]) -> bytes:
    tags = sorted(set(tags))
    if not tags or any(len(t) != TAG_BYTES for t in tags):
        raise UploaderError("bad-entry", f"one or more tags of {TAG_BYTES} bytes")
    if len(tags) > MAX_TAGS_PER_ENTRY:
        raise UploaderError("bad-entry", f"at most {MAX_TAGS_PER_ENTRY} tags per entry")
    return b"".join(tags)  # sorted: an entry does not say which tags came together


def add_entry(key_id: bytes, tags: Iterable[bytes], expires_ms: int) -> tuple[str, bytes]:
    """(kind, payload) of an ``uploader.add`` entry. Its feed entry id is random: the same
    tags may be added, removed and added again."""
    payload = canonical.encode(
        {"key_id": key_id, "tags": _pack(tags), "expires_ms": round_expiry(expires_ms)}
    )
    return ADD, payload


def remove_entry(key_id: bytes, tags: Iterable[bytes]) -> tuple[str, bytes]:
    payload = canonical.encode({"key_id": key_id, "tags": _pack(tags)})
    return REMOVE, payload


def parse_entry(kind: str, payload: bytes) -> dict[str, Any]:
    if kind not in FEED_SCHEMAS:
        raise UploaderError("bad-entry", f"unknown entry kind {kind!r}")
    try:
        body = schema.check(FEED_SCHEMAS[kind], canonical.decode(payload), kind)
    except (canonical.CanonicalError, schema.SchemaError) as exc:
        raise UploaderError("bad-entry", str(exc)) from exc
    packed = body["tags"]
    if len(packed) % TAG_BYTES:
        raise UploaderError("bad-entry", f"tags are a multiple of {TAG_BYTES} bytes")
    tags = [packed[i : i + TAG_BYTES] for i in range(0, len(packed), TAG_BYTES)]
    if tags != sorted(set(tags)):
        raise UploaderError("bad-entry", "tags must be sorted and distinct")
    if kind == ADD and body["expires_ms"] % DAY_MS:
        raise UploaderError("bad-entry", "expiries are whole UTC days")
    return {**body, "tags": tags}


@dataclass
class SignalSet:
    """A reader's replica of one keeper's ``uploaders`` feed: tag -> expiry."""

    key_id: bytes
    tags: dict[bytes, int] = field(default_factory=dict)

    def apply(self, kind: str, payload: bytes) -> int:
        """Apply one entry in feed order; entries under another key id are skipped (a rotation
        republishes). Returns the number of tags it changed."""
        body = parse_entry(kind, payload)
        if body["key_id"] != self.key_id:
            return 0
        changed = 0
        for t in body["tags"]:
            if kind == ADD:
                if self.tags.get(t, -1) < body["expires_ms"]:
                    self.tags[t] = body["expires_ms"]
                    changed += 1
            elif self.tags.pop(t, None) is not None:
                changed += 1
        return changed

    def known(self, tag_: bytes, now_ms: int) -> bool:
        return self.tags.get(tag_, -1) > now_ms


# --- the keeper's book of publications (pure; the node persists it) -------------------------


@dataclass(frozen=True)
class Publication:
    id: bytes
    origin: str
    tags: tuple[bytes, ...]
    expires_ms: int


def live_tags(publications: Iterable[Publication], now_ms: int) -> dict[bytes, int]:
    """tag -> latest expiry over the live publications that hold it."""
    out: dict[bytes, int] = {}
    for p in publications:
        if p.expires_ms > now_ms:
            for t in p.tags:
                out[t] = max(out.get(t, 0), p.expires_ms)
    return out


def tags_to_remove(gone: Publication, remaining: Iterable[Publication], now_ms: int) -> list[bytes]:
    """The tags of a withdrawn or expired publication that no live publication still holds:
    the feed says ``remove`` for exactly these (another platform's signal stands)."""
    still = live_tags(remaining, now_ms)
    return sorted(t for t in gone.tags if t not in still)


def expiry_for(requested_ms: int | None, now_ms: int) -> int:
    """The keeper's expiry for a publication: as asked, capped at MAX_TTL, rounded to a day."""
    asked = now_ms + DEFAULT_TTL_MS if requested_ms is None else requested_ms
    if asked <= now_ms:
        raise UploaderError("bad-body", "expires_ms is in the past")
    return round_expiry(min(asked, now_ms + MAX_TTL_MS))


# --- messages ---------------------------------------------------------------------------------

_ELEMENTS = Field(list_of(point(), max_items=MAX_IDENTIFIERS, min_items=1))
_TAG = blob(exact=TAG_BYTES)
MESSAGE_SCHEMAS: dict[str, Mapping[str, Field]] = {
    # Stage 1: a querier asks the picture's holder, for one of its items.
    "uploader.evaluate": {
        "key_id": Field(blob(exact=8)),
        "item": Field(blob(exact=16)),
        "picture": Field(blob(min_len=8, max_len=16)),
        "elements": _ELEMENTS,
    },
    # Stage 2: a querier asks the keeper (no picture, no item: the keeper cannot tell).
    "uploader.tag": {
        "key_id": Field(blob(exact=8)),
        "elements": _ELEMENTS,
    },
    # The answer to either stage: one element per request element and one batch proof.
    "uploader.evaluated": {
        "re": Field(blob(exact=16)),
        "key_id": Field(blob(exact=8)),
        "elements": _ELEMENTS,
        "proof": Field(blob(exact=oprf.PROOF_BYTES)),
    },
    # A publisher gives the keeper the tags of an uploader its reviewer actioned.
    "uploader.publish": {
        "publication": Field(blob(exact=16)),
        "key_id": Field(blob(exact=8)),
        "holder": Field(text(63, pattern=_NODE)),
        "item": Field(blob(exact=16)),
        "confirm": Field(blob(exact=16)),  # the publisher's feedback record confirming the item
        "tags": Field(list_of(_TAG, max_items=MAX_IDENTIFIERS, min_items=1)),
        "expires_ms": Field(integer(0, 1 << 53), required=False),
    },
    # The publisher takes a publication back (an upheld appeal, a reversed decision).
    "uploader.withdraw": {
        "publication": Field(blob(exact=16)),
    },
    "uploader.accepted": {
        "re": Field(blob(exact=16)),
        "publication": Field(blob(exact=16)),
        "seq": Field(integer(0, 1 << 62)),
    },
}
for _name, _fields in MESSAGE_SCHEMAS.items():
    messages.register(_name, _fields)

# Each request and the reply type that answers it (the signed error aside).
REPLY_TYPES = {
    "uploader.evaluate": "uploader.evaluated",
    "uploader.tag": "uploader.evaluated",
    "uploader.publish": "uploader.accepted",
    "uploader.withdraw": "uploader.accepted",
}
