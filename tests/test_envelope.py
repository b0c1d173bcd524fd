"""Envelopes and crypto messages: strict decoding, and a clear refusal for each malformed input."""

from __future__ import annotations

import os

import msgpack
import pytest

from blindmatch.crypto import oprf, signing
from blindmatch.crypto import threshold as th
from blindmatch.protocol import canonical
from blindmatch.protocol.envelope import EnvelopeError, open_envelope, seal

KEY = signing.SigningKey(bytes(range(32)))
OTHER = signing.SigningKey(bytes(range(1, 33)))
NOW = 1_700_000_000_000
NONCE = bytes(16)
ROSTER = {"hub-1": KEY.public_key}


def _lookup(sender: str) -> bytes | None:
    return ROSTER.get(sender)


def _open(data: bytes, **kw):
    return open_envelope(data, now_ms=kw.pop("now_ms", NOW), sender_key=_lookup, **kw)


def _elements(n: int = 2) -> list[bytes]:
    return oprf.blind([os.urandom(8) for _ in range(n)], oprf.Mode.VOPRF)[1]


def _good(body=None, mtype="oprf.evaluate", key=KEY, ts=NOW) -> bytes:
    body = body if body is not None else {"key_id": b"k" * 8, "elements": _elements()}
    return seal(key, "hub-1", mtype, body, ts, NONCE)


def _raw(fields: list) -> bytes:
    return msgpack.packb(fields, use_bin_type=True)


def test_round_trip() -> None:
    body = {"key_id": b"k" * 8, "elements": _elements(3)}
    env = _open(_good(body))
    assert (env.type, env.sender, env.timestamp_ms, env.body) == (
        "oprf.evaluate",
        "hub-1",
        NOW,
        body,
    )


def test_encoding_is_deterministic_and_keys_sorted() -> None:
    assert canonical.encode({"b": 1, "a": 2}) == canonical.encode({"a": 2, "b": 1})
    e = _elements(1)
    assert _good({"key_id": b"k" * 8, "elements": e}) == _good({"elements": e, "key_id": b"k" * 8})


def _fields(data: bytes) -> list:
    return msgpack.unpackb(data, raw=False)


def _resign(fields: list, key=KEY) -> bytes:
    signed = canonical.encode(fields[:6])
    from blindmatch.protocol.envelope import ENVELOPE_DOMAIN

    fields = [*fields[:6], key.sign(ENVELOPE_DOMAIN, signed)]
    return canonical.encode(fields)


GOOD = _good()
F = _fields(GOOD)

MALFORMED: list[tuple[str, bytes, str]] = [
    ("empty", b"", "bad-envelope"),
    ("truncated", GOOD[:-10], "bad-envelope"),
    ("one byte short", GOOD[:-1], "bad-envelope"),
    ("trailing byte", GOOD + b"\x00", "bad-envelope"),
    ("reserved byte 0xc1", b"\xc1", "bad-envelope"),
    ("not an array", canonical.encode({"a": 1}), "bad-envelope"),
    ("six elements", canonical.encode(F[:6]), "bad-envelope"),
    ("eight elements", canonical.encode([*F, 1]), "bad-envelope"),
    ("version 2", _resign([2, *F[1:]]), "bad-envelope"),
    ("version as bool", _resign([True, *F[1:]]), "bad-envelope"),
    ("unknown type", _resign([F[0], "nope", *F[2:]]), "bad-envelope"),
    ("type as bytes", canonical.encode([F[0], b"oprf.evaluate", *F[2:]]), "bad-envelope"),
    ("sender uppercase", _resign([*F[:2], "HUB", *F[3:]]), "bad-envelope"),
    ("sender not in roster", _resign([*F[:2], "stranger", *F[3:]]), "unknown-sender"),
    ("timestamp negative", _resign([*F[:3], -1, *F[4:]]), "bad-envelope"),
    ("timestamp as string", _resign([*F[:3], "now", *F[4:]]), "bad-envelope"),
    ("timestamp too old", _resign([*F[:3], NOW - 10 * 60_000, *F[4:]]), "stale-timestamp"),
    ("timestamp in the future", _resign([*F[:3], NOW + 10 * 60_000, *F[4:]]), "stale-timestamp"),
    ("nonce too short", _resign([*F[:4], b"n" * 15, *F[5:]]), "bad-envelope"),
    ("body not a map", _resign([*F[:5], [1, 2]]), "bad-envelope"),
    ("signature short", canonical.encode([*F[:6], F[6][:63]]), "bad-envelope"),
    ("signature by another key", _resign(F, key=OTHER), "bad-signature"),
    (
        "body altered after signing",
        canonical.encode([*F[:5], {**F[5], "key_id": b"z" * 8}, F[6]]),
        "bad-signature",
    ),
    ("extra body field", _resign([*F[:5], {**F[5], "extra": 1}]), "bad-body"),
    ("missing body field", _resign([*F[:5], {"key_id": b"k" * 8}]), "bad-body"),
    ("identity element", _resign([*F[:5], {**F[5], "elements": [bytes(32)]}]), "bad-body"),
    ("invalid point", _resign([*F[:5], {**F[5], "elements": [b"\xff" * 32]}]), "bad-body"),
    ("point 31 bytes", _resign([*F[:5], {**F[5], "elements": [b"\x02" * 31]}]), "bad-body"),
    ("empty batch", _resign([*F[:5], {**F[5], "elements": []}]), "bad-body"),
    (
        "oversized batch",
        _resign([*F[:5], {**F[5], "elements": [F[5]["elements"][0]] * 4097}]),
        "bad-body",
    ),
    ("element as string", _resign([*F[:5], {**F[5], "elements": ["ab" * 16]}]), "bad-body"),
    ("non-canonical int", GOOD.replace(b"\x01", b"\xcc\x01", 1), "bad-envelope"),
    (
        "unsorted body keys",
        _raw([*F[:5], dict(reversed(list(F[5].items()))), F[6]]),
        "bad-envelope",
    ),
    ("float timestamp", _raw([*F[:3], float(NOW), *F[4:]]), "bad-envelope"),
    ("extension type", _raw([*F[:5], {"key_id": msgpack.ExtType(1, b"x")}, F[6]]), "bad-envelope"),
    ("invalid utf-8 string", GOOD.replace(b"hub-1", b"hub\xff1", 1), "bad-envelope"),
]


@pytest.mark.parametrize(("name", "data", "code"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_envelopes_are_refused_clearly(name: str, data: bytes, code: str) -> None:
    with pytest.raises(EnvelopeError) as info:
        _open(data)
    assert info.value.code == code
    assert info.value.detail  # a sentence, not just a code


def test_oversized_envelope_is_refused_before_parsing() -> None:
    with pytest.raises(EnvelopeError, match="too-large"):
        _open(b"\x00" * 1025, max_bytes=1024)


def test_expected_types_are_enforced() -> None:
    with pytest.raises(EnvelopeError, match="not accepted here"):
        _open(GOOD, expected_types=("threshold.query",))


def test_seal_refuses_a_bad_body() -> None:
    with pytest.raises(EnvelopeError, match="bad-body"):
        seal(
            KEY, "hub-1", "oprf.evaluate", {"key_id": b"short", "elements": _elements()}, NOW, NONCE
        )


CRYPTO_MALFORMED: list[tuple[str, object]] = [
    ("query empty", b""),
    ("query truncated", b"\x00" * (th.ENCRYPTED_QUERY_BYTES - 1)),
    ("query oversized", b"\x00" * (th.ENCRYPTED_QUERY_BYTES + 1)),
    ("query all zero", b"\x00" * th.ENCRYPTED_QUERY_BYTES),
    ("query all 0xff", b"\xff" * th.ENCRYPTED_QUERY_BYTES),
    ("query as str", "00" * th.ENCRYPTED_QUERY_BYTES),
    ("response empty", b""),
    ("response bands only", b"\x01\x1f"),
    ("response zero bands", b"\x00\x00"),
]


@pytest.mark.parametrize(("name", "data"), CRYPTO_MALFORMED, ids=[m[0] for m in CRYPTO_MALFORMED])
def test_malformed_crypto_messages_are_refused_clearly(name: str, data: object) -> None:
    parse = (
        th.ThresholdResponse.from_bytes
        if name.startswith("response")
        else (th.EncryptedQuery.from_bytes)
    )
    with pytest.raises(th.ThresholdError):
        parse(data)  # type: ignore[arg-type]


def test_voprf_finalize_refuses_malformed_evaluations() -> None:
    key = oprf.generate_key_pair()
    blinds, blinded = oprf.blind([b"a", b"b"], oprf.Mode.VOPRF)
    evaluated, proof = oprf.blind_evaluate(key, blinded, oprf.Mode.VOPRF)
    assert proof is not None
    cases = [
        (evaluated[:1], proof),  # wrong count
        ([bytes(32), evaluated[1]], proof),  # identity
        (evaluated, proof[:-1]),  # short proof
        (evaluated, b"\xff" * 64),  # unreduced scalars
    ]
    for ev, pr in cases:
        with pytest.raises(oprf.OprfError):
            oprf.finalize([b"a", b"b"], blinds, ev, oprf.Mode.VOPRF, blinded, pr, key.pk)


def test_own_points_skip_only_the_decode_and_only_while_sealing() -> None:
    from blindmatch.crypto import sodium
    from blindmatch.protocol import schema

    check = schema.point()
    non_canonical = b"\xff" * 32  # not a ristretto255 encoding
    with pytest.raises(schema.SchemaError, match="not a canonical"):
        check(non_canonical, "p")
    with schema.own_points():
        assert check(non_canonical, "p") == non_canonical  # our own: not re-decoded
        with pytest.raises(schema.SchemaError, match="identity"):
            check(sodium.IDENTITY, "p")  # ... but still never the identity
        with pytest.raises(schema.SchemaError, match="32-byte"):
            check(b"\x01" * 31, "p")
    with pytest.raises(schema.SchemaError, match="not a canonical"):
        check(non_canonical, "p")  # received bodies are checked in full again
