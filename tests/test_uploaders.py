"""Repeat-uploader signals (specs/uploaders.md): identifiers, the two-stage tag, the keeper's
feed, withdrawals, roster capabilities and the log entries, at the protocol level."""

from __future__ import annotations

import copy
import os

import pytest

from blindmatch.crypto import oprf, signing
from blindmatch.protocol import canonical, envelope
from blindmatch.protocol import roster as roster_mod
from blindmatch.protocol import transparency as tl
from blindmatch.protocol import uploaders as up

DAY = up.DAY_MS
NOW = 1_767_225_600_000


@pytest.fixture(scope="module")
def keys() -> tuple[oprf.ServerKey, oprf.ServerKey]:
    return oprf.generate_key_pair(), oprf.generate_key_pair()


def _lookup(holder_key, keeper_key, holder, picture, digests, answer_picture=None):  # type: ignore[no-untyped-def]
    state, elements = up.start(holder, picture, digests, holder_key.pk)
    evaluated, proof = up.holder_evaluate(
        holder_key, holder, picture if answer_picture is None else answer_picture, elements
    )
    elements2 = up.after_holder(state, evaluated, proof, keeper_key.pk)
    evaluated2, proof2 = up.keeper_evaluate(keeper_key, elements2)
    return up.finish(state, evaluated2, proof2, keeper_key.pk)


@pytest.mark.parametrize(
    ("kind", "a", "b"),
    [
        ("email", "Alice@Example.org", " alice@example.ORG"),
        ("email", "alice+tag@example.org", "alice@example.org"),
        ("email", "a.l.i.c.e@googlemail.com", "alice@gmail.com"),
        ("phone", "+44 (20) 7946-0958", "0044 20 7946 0958"),
    ],
)
def test_equivalent_spellings_give_one_digest(kind: str, a: str, b: str) -> None:
    assert up.identifier_digest(kind, a) == up.identifier_digest(kind, b)


def test_distinct_identifiers_and_kinds_differ() -> None:
    assert up.identifier_digest("email", "a.lice@example.org") != up.identifier_digest(
        "email", "alice@example.org"
    )  # dots matter outside Gmail
    assert up.identifier_digest("phone", "+442079460958") != up.identifier_digest(
        "phone", "+442079460959"
    )


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("email", "no-at-sign"),
        ("email", "a@b@c.org"),
        ("email", "@example.org"),
        ("email", "alice@localhost"),
        ("email", "bob@bücher.example"),
        ("email", "al ice@example.org"),
        ("phone", "020 7946 0958"),
        ("phone", "+0123456789"),
        ("phone", "+12"),
        ("handle", "alice"),
    ],
)
def test_bad_identifiers_are_refused(kind: str, value: str) -> None:
    with pytest.raises(up.UploaderError) as err:
        up.identifier_digest(kind, value)
    assert err.value.code == "bad-identifier"


def test_blinded_flow_gives_the_tag_both_keys_would(keys) -> None:  # type: ignore[no-untyped-def]
    holder_key, keeper_key = keys
    picture = os.urandom(8)
    d = [
        up.identifier_digest("email", "alice@example.org"),
        up.identifier_digest("phone", "+4915112345678"),
    ]
    tags = _lookup(holder_key, keeper_key, "hub-1", picture, d)
    assert tags == [up.tag(holder_key, keeper_key, "hub-1", picture, x) for x in d]
    # Bound to the picture and the holder: the same uploader elsewhere gives unrelated tags.
    assert set(tags).isdisjoint(_lookup(holder_key, keeper_key, "hub-1", os.urandom(16), d))
    assert up.tag(holder_key, keeper_key, "hub-2", picture, d[0]) != tags[0]
    # and neither key alone gives it: a different keeper key yields a different tag
    other = oprf.generate_key_pair()
    assert up.tag(holder_key, other, "hub-1", picture, d[0]) != tags[0]


def test_holder_answer_for_another_picture_is_refused(keys) -> None:  # type: ignore[no-untyped-def]
    holder_key, keeper_key = keys
    d = [up.identifier_digest("email", "alice@example.org")]
    with pytest.raises(up.UploaderError) as err:
        _lookup(holder_key, keeper_key, "hub-1", os.urandom(8), d, answer_picture=os.urandom(8))
    assert err.value.code == "bad-proof"


def test_keeper_answer_under_another_key_is_refused(keys) -> None:  # type: ignore[no-untyped-def]
    holder_key, keeper_key = keys
    picture = os.urandom(8)
    state, elements = up.start("hub-1", picture, [os.urandom(32)], holder_key.pk)
    ev, proof = up.holder_evaluate(holder_key, "hub-1", picture, elements)
    elements2 = up.after_holder(state, ev, proof, keeper_key.pk)
    ev2, proof2 = up.keeper_evaluate(oprf.generate_key_pair(), elements2)
    with pytest.raises(up.UploaderError):
        up.finish(state, ev2, proof2, keeper_key.pk)


def test_request_sizes_are_bounded(keys) -> None:  # type: ignore[no-untyped-def]
    holder_key, _ = keys
    with pytest.raises(up.UploaderError):
        up.start("hub-1", os.urandom(8), [os.urandom(32)] * 5, holder_key.pk)
    with pytest.raises(up.UploaderError):
        up.start("hub-1", os.urandom(12), [os.urandom(32)], holder_key.pk)
    with pytest.raises(oprf.DeserializeError):
        up.holder_evaluate(holder_key, "hub-1", os.urandom(8), [bytes(32)])  # the identity


def test_uploader_messages_travel_in_envelopes_and_bad_points_are_refused() -> None:
    key = signing.SigningKey.generate()
    _, blinded = oprf.blind([b"x"], oprf.Mode.VOPRF)
    body = {"key_id": b"k" * 8, "item": b"i" * 16, "picture": b"p" * 8, "elements": blinded}
    data = envelope.seal(key, "platform-b", "uploader.evaluate", body, NOW, os.urandom(16))
    env = envelope.open_envelope(data, now_ms=NOW, sender_key=lambda s: key.public_key)
    assert env.body["picture"] == b"p" * 8
    bad = canonical.decode(data)
    bad[5]["elements"] = [b"\xff" * 32]
    with pytest.raises(envelope.EnvelopeError):
        envelope.open_envelope(
            canonical.encode(bad), now_ms=NOW, sender_key=lambda s: key.public_key
        )
    publish = {
        "publication": os.urandom(16), "key_id": os.urandom(8), "holder": "hub-1",
        "item": os.urandom(16), "confirm": os.urandom(16), "tags": [os.urandom(16)] * 5,
    }  # fmt: skip
    with pytest.raises(envelope.EnvelopeError) as err:
        envelope.seal(key, "platform-b", "uploader.publish", publish, NOW, os.urandom(16))
    assert err.value.code == "bad-body"


def test_reader_applies_adds_removes_and_expiry() -> None:
    key_id = os.urandom(8)
    a, b, c = sorted(os.urandom(16) for _ in range(3))
    signals = up.SignalSet(key_id)
    for kind, payload in (
        up.add_entry(key_id, [b, a], NOW + 10 * DAY),
        up.add_entry(key_id, [c], NOW + 2 * DAY),
        up.add_entry(os.urandom(8), [c], NOW + 900 * DAY),  # another key: ignored
        up.remove_entry(key_id, [a]),
    ):
        signals.apply(kind, payload)
    assert not signals.known(a, NOW) and signals.known(b, NOW) and signals.known(c, NOW)
    assert not signals.known(c, NOW + 3 * DAY)  # expired, whatever the keeper does
    assert signals.known(b, NOW + 9 * DAY)
    # An add with a later expiry extends; an earlier one does not shorten.
    signals.apply(*up.add_entry(key_id, [b], NOW + 40 * DAY))
    signals.apply(*up.add_entry(key_id, [b], NOW + 5 * DAY))
    assert signals.known(b, NOW + 39 * DAY)


def test_entries_are_sorted_day_rounded_and_canonical() -> None:
    key_id = os.urandom(8)
    tags = [os.urandom(16) for _ in range(5)]
    kind, payload = up.add_entry(key_id, tags, NOW + 123)
    body = up.parse_entry(kind, payload)
    assert body["tags"] == sorted(tags) and body["expires_ms"] % DAY == 0
    assert up.add_entry(key_id, reversed(tags), NOW + 456)[1] == payload
    for bad in (
        canonical.encode({"key_id": key_id, "tags": b"".join(sorted(tags, reverse=True))}),
        canonical.encode({"key_id": key_id, "tags": b"x" * 17}),
        canonical.encode({"key_id": key_id, "tags": tags[0] + tags[0]}),
    ):
        with pytest.raises(up.UploaderError):
            up.parse_entry(up.REMOVE, bad)
    with pytest.raises(up.UploaderError):
        up.parse_entry(
            up.ADD, canonical.encode({"key_id": key_id, "tags": tags[0], "expires_ms": 5})
        )


def test_a_withdrawal_removes_only_tags_no_other_publication_holds() -> None:
    t1, t2 = os.urandom(16), os.urandom(16)
    mine = up.Publication(os.urandom(16), "platform-a", (t1, t2), NOW + DAY)
    theirs = up.Publication(os.urandom(16), "platform-c", (t2,), NOW + DAY)
    assert up.tags_to_remove(mine, [theirs], NOW) == [t1]
    assert up.tags_to_remove(mine, [theirs], NOW + 2 * DAY) == sorted([t1, t2])
    assert up.expiry_for(None, NOW) == NOW + 365 * DAY  # NOW is a UTC midnight
    assert up.expiry_for(NOW + 5000 * DAY, NOW) == NOW + up.MAX_TTL_MS
    with pytest.raises(up.UploaderError):
        up.expiry_for(NOW - 1, NOW)


def _roster_doc(members: list[dict]) -> tuple[dict, list[bytes]]:
    gov = [signing.SigningKey.generate()]
    body = {"federation": "f", "serial": 1, "issued_ms": 0, "expires_ms": 1 << 50,
            "members": members}  # fmt: skip
    return roster_mod.sign_roster(body, gov), [g.public_key for g in gov]


def _member(node_id: str, **extra) -> dict:  # type: ignore[no-untyped-def]
    key = signing.SigningKey.generate().public_key.hex()
    return {"id": node_id, "signing_key": key, "voprf_key": None,
            "endpoint": "http://127.0.0.1:1", "roles": ["platform"], **extra}  # fmt: skip


def test_roster_capabilities_and_the_one_keeper() -> None:
    keeper_pk = oprf.generate_key_pair().pk.hex()
    doc, gov = _roster_doc([
        _member("hub-1", uploader_key=oprf.generate_key_pair().pk.hex(), roles=["hub"],
                capabilities=["uploader-keeper"], keeper_key=keeper_pk),
        _member("platform-a", capabilities=["uploader-read", "uploader-publish"]),
        _member("platform-b"),
    ])  # fmt: skip
    r = roster_mod.verify_roster(doc, gov, 1, NOW)
    assert r.can("platform-a", "uploader-publish") and not r.can("platform-b", "uploader-read")
    assert r.keeper() is not None and r.keeper().keeper_key.hex() == keeper_pk
    assert r.member("hub-1").uploader_key is not None
    assert r.member("platform-a").budget["uploader_evaluations_per_picture_day"] == 16
    for members, why in (
        ([_member("a", capabilities=["uploader-keeper"])], "keeper_key"),
        ([_member("a", keeper_key=keeper_pk)], "only the uploader-keeper"),
        ([_member("a", capabilities=["uploader-keeper"], keeper_key=keeper_pk),
          _member("b", capabilities=["uploader-keeper"], keeper_key=keeper_pk)], "at most one"),
        ([_member("a", capabilities=["uploader-everything"])], "capabilities"),
        ([_member("a", uploader_key="00" * 32)], "uploader_key"),
    ):  # fmt: skip
        bad, gov = _roster_doc(members)
        with pytest.raises(roster_mod.RosterError, match=why):
            roster_mod.verify_roster(bad, gov, 1, NOW)


def test_log_entries_hold_ids_and_counts_never_tags() -> None:
    entry = {"kind": "uploader-signal", "time_ms": NOW, "publication": os.urandom(16),
             "peer": "hub-1", "direction": "sent", "action": "publish"}  # fmt: skip
    assert tl.validate_entry(copy.deepcopy(entry)) == entry
    with pytest.raises(tl.EntryError):
        tl.validate_entry({**entry, "tag": os.urandom(16)})
    counts = {"kind": "uploader-evaluation-counts", "time_ms": NOW, "peer": "platform-b",
              "direction": "received", "stage": "holder", "window_start_ms": NOW,
              "window_ms": 3_600_000, "requests": 3, "evaluations": 6}  # fmt: skip
    assert tl.validate_entry(copy.deepcopy(counts)) == counts
