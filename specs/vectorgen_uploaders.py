"""Vectors for repeat-uploader signals (specs/uploaders.md): identifier normalisation and
digests, the two-stage tag (unblinded and message by message), the keeper's feed entries, a
reader's replica, and which tags a withdrawal removes. Keys and blinds come from fixed seeds."""

from __future__ import annotations

from typing import Any

from blindmatch.crypto import oprf
from blindmatch.protocol import uploaders as up
from blindmatch.protocol.conformance_ops import make_case as _case
from blindmatch.protocol.conformance_ops import vector_seed as _seed
from blindmatch.protocol.roster import voprf_key_id

DAY = up.DAY_MS
T0 = 1_767_225_600_000  # 2026-01-01


def _scalar(label: str) -> str:
    key = oprf.derive_key_pair(_seed(label), b"blindmatch-v1 vectors", oprf.Mode.OPRF)
    return key.sk.hex()


def generate() -> dict[str, object]:
    holder = oprf.derive_key_pair(
        _seed("uploader holder"), b"blindmatch-v1 uploader", oprf.Mode.POPRF
    )
    keeper = oprf.derive_key_pair(
        _seed("uploader keeper"), b"blindmatch-v1 keeper", oprf.Mode.VOPRF
    )
    cases: list[dict[str, Any]] = []
    idents = [
        ("email-plain", "email", "alice@example.org"),
        ("email-case-space", "email", "  Alice@Example.ORG "),
        ("email-subaddress", "email", "alice+ncii@example.org"),
        ("email-gmail-dots", "email", "A.Li.Ce+x@googlemail.com"),
        ("email-unicode-local", "email", "J\u00f6rg@example.de"),
        ("email-idn-as-alabel", "email", "bob@xn--bcher-kva.example"),
        ("email-idn-unicode", "email", "bob@b\u00fccher.example"),
        ("email-two-at", "email", "a@b@example.org"),
        ("email-no-domain-dot", "email", "alice@localhost"),
        ("phone-e164", "phone", "+44 20 7946 0958"),
        ("phone-00-prefix", "phone", "0044 (20) 7946-0958"),
        ("phone-national", "phone", "020 7946 0958"),
        ("unknown-kind", "username", "alice"),
    ]
    for cid, kind, value in idents:
        cases.append(
            _case(f"identifier-{cid}", "uploader.identifier", {"kind": kind, "value": value})
        )
    alice = up.identifier_digest("email", "alice@example.org")
    alice_phone = up.identifier_digest("phone", "+442079460958")
    mallory = up.identifier_digest("email", "mallory@example.net")
    picture = _seed("uploader picture")[:8]  # a protected source's group
    other = _seed("uploader other picture")[:16]  # a plain item
    keys = {"holder_sk": holder.sk.hex(), "keeper_sk": keeper.sk.hex(), "holder": "hub-1"}
    for cid, pic, digest in (
        ("alice-picture", picture, alice),
        ("alice-other-picture", other, alice),
        ("mallory-picture", picture, mallory),
    ):
        cases.append(
            _case(
                f"tag-{cid}", "uploader.tag", {**keys, "picture": pic.hex(), "digest": digest.hex()}
            )
        )
    cases.append(
        _case("tag-other-holder", "uploader.tag",
              {**keys, "holder": "hub-2", "picture": picture.hex(), "digest": alice.hex()})
    )  # fmt: skip
    cases.append(
        _case("tag-bad-picture-size", "uploader.tag",
              {**keys, "picture": "00" * 12, "digest": alice.hex()})
    )  # fmt: skip
    blinds1 = [_scalar("uploader blind 1a"), _scalar("uploader blind 1b")]
    blinds2 = [_scalar("uploader blind 2a"), _scalar("uploader blind 2b")]
    flow = {
        **keys,
        "picture": picture.hex(),
        "digests": [alice.hex(), alice_phone.hex()],
        "blinds1": blinds1,
        "blinds2": blinds2,
        "nonce1": _scalar("uploader nonce 1"),
        "nonce2": _scalar("uploader nonce 2"),
    }
    lookup = _case("lookup-two-identifiers", "uploader.lookup", flow)
    cases.append(lookup)
    out = lookup["expected"]["output"]
    answer = {
        "holder": "hub-1",
        "holder_pk": holder.pk.hex(),
        "keeper_pk": keeper.pk.hex(),
        "digests": flow["digests"],
        "blinds1": blinds1,
        "blinds2": blinds2,
        "evaluated": out["holder_answer"],
        "proof": out["holder_proof"],
    }
    cases += [
        _case("holder-answer-verifies", "uploader.verify_holder_answer",
              {**answer, "picture": picture.hex()}),
        # The same answer presented as one for another picture: the tweaked key differs.
        _case("holder-answer-other-picture", "uploader.verify_holder_answer",
              {**answer, "picture": other.hex()}),
        _case("holder-answer-other-key", "uploader.verify_holder_answer",
              {**answer, "picture": picture.hex(), "holder_pk": keeper.pk.hex()}),
    ]  # fmt: skip
    key_id = voprf_key_id(keeper.pk).hex()
    tags = sorted(bytes.fromhex(t) for t in out["tags"])
    by_id = {c["id"]: c for c in cases}
    t_other = bytes.fromhex(by_id["tag-alice-other-picture"]["expected"]["output"]["tag"])
    add1 = _case("entry-add", "uploader.entry",
                 {"kind": up.ADD, "key_id": key_id, "tags": [t.hex() for t in tags],
                  "expires_ms": T0 + 365 * DAY + 12345})  # fmt: skip
    add2 = _case("entry-add-other", "uploader.entry",
                 {"kind": up.ADD, "key_id": key_id, "tags": [t_other.hex()],
                  "expires_ms": T0 + 30 * DAY})  # fmt: skip
    rem = _case("entry-remove", "uploader.entry",
                {"kind": up.REMOVE, "key_id": key_id, "tags": [tags[0].hex()]})  # fmt: skip
    cases += [add1, add2, rem]
    unknown = {"kind": "uploader.rename", "key_id": key_id, "tags": [tags[0].hex()]}
    cases.append(_case("entry-unknown-kind", "uploader.entry", unknown))
    entries = [
        {"kind": c["expected"]["output"]["kind"], "payload": c["expected"]["output"]["payload"]}
        for c in (add1, add2, rem)
    ]
    probe = [tags[0].hex(), tags[1].hex(), t_other.hex(), (b"\x00" * 16).hex()]
    cases += [
        _case("apply-live", "uploader.apply",
              {"key_id": key_id, "entries": entries, "now_ms": T0 + DAY, "probe": probe}),
        _case("apply-after-expiry", "uploader.apply",
              {"key_id": key_id, "entries": entries, "now_ms": T0 + 31 * DAY, "probe": probe}),
        _case("apply-other-key", "uploader.apply",
              {"key_id": "00" * 8, "entries": entries, "now_ms": T0 + DAY, "probe": probe}),
        _case("apply-unsorted-tags", "uploader.apply",
              {"key_id": key_id, "now_ms": T0,
               "entries": [{"kind": up.REMOVE, "payload": _unsorted(key_id, tags)}]}),
    ]  # fmt: skip
    pub = {"id": "11" * 16, "origin": "platform-a", "tags": [t.hex() for t in tags],
           "expires_ms": T0 + 365 * DAY}  # fmt: skip
    still = {"id": "22" * 16, "origin": "platform-c", "tags": [tags[1].hex()],
             "expires_ms": T0 + 365 * DAY}  # fmt: skip
    expired = {**still, "expires_ms": T0}
    cases += [
        _case("withdraw-alone", "uploader.remove_after",
              {"gone": pub, "remaining": [], "now_ms": T0 + DAY}),
        _case("withdraw-other-platform-stands", "uploader.remove_after",
              {"gone": pub, "remaining": [still], "now_ms": T0 + DAY}),
        _case("withdraw-other-expired", "uploader.remove_after",
              {"gone": pub, "remaining": [expired], "now_ms": T0 + DAY}),
    ]  # fmt: skip
    return {
        "uploaders.json": {
            "name": "Repeat-uploader signals: identifiers, tags, the keeper's feed",
            "spec": "specs/uploaders.md",
            "version": 1,
            "cases": cases,
        }
    }


def _unsorted(key_id: str, tags: list[bytes]) -> str:
    from blindmatch.protocol import canonical

    return canonical.encode(
        {"key_id": bytes.fromhex(key_id), "tags": b"".join(sorted(tags, reverse=True))}
    ).hex()
