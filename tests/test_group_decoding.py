"""Strict decoding of ristretto255 elements (spec section 1, RFC 9496 4.3.1), independent of the
libsodium version: bit 255 set and every other non-canonical encoding is refused wherever a peer
hands us an element (RFC 9496's own bad encodings, the OPRF, the threshold test, keys, schemas)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from blindmatch.crypto import oprf, sodium
from blindmatch.crypto import threshold as th
from blindmatch.protocol import messages, schema

ROOT = Path(__file__).resolve().parent.parent


def _vectorgen():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("vg", ROOT / "specs" / "vectorgen_group.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


VG = _vectorgen()
BAD = [bytes.fromhex(e) for group in VG.RFC9496_BAD_ENCODINGS.values() for e in group]
POINTS = [sodium.scalarmult_base(sodium.scalar_from_int(n)) for n in (1, 7, 2**200 + 3)]


def test_every_bad_encoding_of_rfc9496_is_refused() -> None:
    assert len(BAD) == 29
    for e in BAD:
        assert not sodium.is_valid_point(e), e.hex()
        assert not sodium.is_canonical_encoding(e), e.hex()


@pytest.mark.parametrize("p", POINTS)
def test_bit_255_is_refused_even_where_libsodium_accepts_it(p: bytes) -> None:
    high = VG.high_bit(p)
    assert sodium.is_valid_point(p) and not sodium.is_valid_point(high)
    assert not sodium.is_canonical_encoding(high)
    with pytest.raises(oprf.DeserializeError):
        oprf.deserialize_element(high)
    with pytest.raises(oprf.DeserializeError):
        oprf.public_key_from_bytes(high)


def test_the_threshold_test_refuses_a_bit_255_element_in_a_query_and_an_answer() -> None:
    key = th.QuerierKey.generate()
    h = bytes(range(32))
    query = th.encrypt_query(key, h, bytes(16)).to_bytes()
    for off in (0, 48, 48 + 32, len(query) - 128 - 32):
        with pytest.raises(th.ThresholdError):
            th.EncryptedQuery.from_bytes(
                query[:off] + VG.high_bit(query[off : off + 32]) + query[off + 32 :]
            )
    response = th.respond(th.verify_query(th.EncryptedQuery.from_bytes(query)), h, (31,)).to_bytes()
    with pytest.raises(th.ThresholdError):
        th.ThresholdResponse.from_bytes(response[:2] + VG.high_bit(response[2:34]) + response[34:])
    assert th.decide(key, th.ThresholdResponse.from_bytes(response)).matched


def test_message_schemas_refuse_a_bit_255_element() -> None:
    p = POINTS[1]
    fields = messages.SCHEMAS["oprf.evaluate"]
    body = {"key_id": bytes(8), "elements": [p]}
    assert schema.check(fields, body)["elements"] == [p]
    for bad in (VG.high_bit(p), BAD[0], BAD[-1]):
        with pytest.raises(schema.SchemaError, match="elements"):
            schema.check(fields, {"key_id": bytes(8), "elements": [p, bad]})
