"""Vectors for decoding group elements (spec section 1, "Validating a point").

Every element a peer sends is decoded strictly (RFC 9496 section 4.3.1): 32 bytes, the
little-endian integer ``s`` below the field prime (so bit 255 clear) and even, the square-root
and sign conditions of the decoding formula, and not the identity. ``group.decode`` checks one
encoding; the other cases put a non-canonical encoding where each message carries an element (a
blinded element, an evaluated element, a VOPRF public key, a querier's ElGamal key, a threshold
answer) and expect that message to be refused. The bad encodings are those of RFC 9496
Appendix A.2, plus valid encodings with bit 255 set (which libsodium 1.0.18 accepts).
"""

from __future__ import annotations

import hashlib
from typing import Any

from blindmatch.crypto import oprf, signing, sodium
from blindmatch.crypto import threshold as th
from blindmatch.protocol import roster as roster_mod
from blindmatch.protocol.conformance_ops import make_case as _case
from blindmatch.protocol.conformance_ops import vector_seed as _seed

# RFC 9496 Appendix A.2, in its order and grouping.
RFC9496_BAD_ENCODINGS: dict[str, list[str]] = {
    "non-canonical field encoding": [
        "00ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "f3ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    ],
    "negative field element": [
        "0100000000000000000000000000000000000000000000000000000000000000",
        "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "ed57ffd8c914fb201471d1c3d245ce3c746fcbe63a3679d51b6a516ebebe0e20",
        "c34c4e1826e5d403b78e246e88aa051c36ccf0aafebffe137d148a2bf9104562",
        "c940e5a4404157cfb1628b108db051a8d439e1a421394ec4ebccb9ec92a8ac78",
        "47cfc5497c53dc8e61c91d17fd626ffb1c49e2bca94eed052281b510b1117a24",
        "f1c6165d33367351b0da8f6e4511010c68174a03b6581212c71c0e1d026c3c72",
        "87260f7a2f12495118360f02c26a470f450dadf34a413d21042b43b9d93e1309",
    ],
    "non-square x^2": [
        "26948d35ca62e643e26a83177332e6b6afeb9d08e4268b650f1f5bbd8d81d371",
        "4eac077a713c57b4f4397629a4145982c661f48044dd3f96427d40b147d9742f",
        "de6a7b00deadc788eb6b6c8d20c0ae96c2f2019078fa604fee5b87d6e989ad7b",
        "bcab477be20861e01e4a0e295284146a510150d9817763caf1a6f4b422d67042",
        "2a292df7e32cababbd9de088d1d1abec9fc0440f637ed2fba145094dc14bea08",
        "f4a9e534fc0d216c44b218fa0c42d99635a0127ee2e53c712f70609649fdff22",
        "8268436f8c4126196cf64b3c7ddbda90746a378625f9813dd9b8457077256731",
        "2810e5cbc2cc4d4eece54f61c6f69758e289aa7ab440b3cbeaa21995c2f4232b",
    ],
    "negative xy": [
        "3eb858e78f5a7254d8c9731174a94f76755fd3941c0ac93735c07ba14579630e",
        "a45fdc55c76448c049a1ab33f17023edfb2be3581e9c7aade8a6125215e04220",
        "d483fe813c6ba647ebbfd3ec41adca1c6130c2beeee9d9bf065c8d151c5f396e",
        "8a2e1d30050198c65a54483123960ccc38aef6848e1ec8f5f780e8523769ba32",
        "32888462f8b486c68ad7dd9610be5192bbeaf3b443951ac1a8118419d9fa097b",
        "227142501b9d4355ccba290404bde41575b037693cef1f438c47f8fbf35d1165",
        "5c37cc491da847cfeb9281d407efc41e15144c876e0170b499a96a22ed31e01e",
        "445425117cb8c90edcbc7c1cc0e74f747f2c1efa5630a967c64f287792a48a4b",
    ],
    "s = -1 (y = 0)": [
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    ],
}


def high_bit(p: bytes) -> bytes:
    """A valid encoding with bit 255 set: s >= 2^255 > p, so not canonical."""
    return p[:31] + bytes([p[31] | 0x80])


def decode_cases() -> list[dict[str, Any]]:
    valid = [sodium.scalarmult_base(sodium.scalar_from_int(n)) for n in (1, 2, 5)]
    valid.append(sodium.from_hash(hashlib.sha512(b"blindmatch-v1 vectors group").digest()))
    cases = [_case(f"valid-{i}", "group.decode", {"element": p.hex()}) for i, p in enumerate(valid)]
    cases.append(_case("identity", "group.decode", {"element": sodium.IDENTITY.hex()}))
    cases.append(_case("short", "group.decode", {"element": valid[0][:31].hex()}))
    for i, p in enumerate(valid):
        cases.append(_case(f"bit255-{i}", "group.decode", {"element": high_bit(p).hex()}))
    for why, encodings in RFC9496_BAD_ENCODINGS.items():
        slug = why.replace(" ", "-").replace("^", "").replace("(", "").replace(")", "")
        slug = slug.replace("=", "").replace("--", "-")
        for i, e in enumerate(encodings):
            cases.append(_case(f"rfc9496-{slug}-{i}", "group.decode", {"element": e}))
    return cases


def in_message_cases() -> list[dict[str, Any]]:
    mode = int(oprf.Mode.VOPRF)
    key = oprf.derive_key_pair(_seed("group key"), b"blindmatch-v1 index", oprf.Mode.VOPRF)
    inputs = [b"blindmatch/lsh/example/group"]
    blinds = [th.vector_scalars(_seed("group blind"))()]
    _, blinded = oprf.blind(inputs, oprf.Mode.VOPRF, blinds)
    nonce = th.vector_scalars(_seed("group proof nonce"))()
    evaluated, proof = oprf.blind_evaluate(key, blinded, oprf.Mode.VOPRF, nonce)
    assert proof is not None
    fin = {
        "mode": mode,
        "inputs": [x.hex() for x in inputs],
        "blinds": [b.hex() for b in blinds],
        "evaluated": [e.hex() for e in evaluated],
        "blinded": [b.hex() for b in blinded],
        "proof": proof.hex(),
        "pk": key.pk.hex(),
    }
    sk = th.vector_scalars(_seed("group querier key"))()
    qkey = th.QuerierKey(sk=sk, pk=sodium.scalarmult_base(sk))
    query_hash = hashlib.sha256(b"blindmatch-v1 vectors group query").digest()
    query = th.encrypt_query(
        qkey, query_hash, _seed("group query id")[:16], th.vector_scalars(_seed("group q"))
    ).to_bytes()
    verified = th.verify_query(th.EncryptedQuery.from_bytes(query))
    response = th.respond(
        verified, query_hash, [31], th.vector_scalars(_seed("group r")), shuffle=lambda g: None
    ).to_bytes()
    # response = k || bands || (A'_t || B'_t)...: bit 255 on the first A'.
    bad_response = response[:2] + high_bit(response[2:34]) + response[34:]
    bad_query_h = high_bit(query[:32]) + query[32:]
    bad_query_a = query[:48] + high_bit(query[48:80]) + query[80:]
    governance = signing.SigningKey(_seed("group governance"))
    member = {
        "id": "hub-1",
        "signing_key": signing.SigningKey(_seed("group hub")).public_key.hex(),
        "voprf_key": high_bit(key.pk).hex(),
        "endpoint": "https://hub-1.example/fed",
        "roles": ["hub"],
    }
    roster = roster_mod.sign_roster(
        {
            "federation": "example",
            "serial": 1,
            "issued_ms": 1_767_225_600_000,
            "expires_ms": 1_769_904_000_000,
            "members": [member],
        },
        [governance],
    )
    return [
        _case(
            "evaluate-rejects-bit255",
            "oprf.blind_evaluate",
            {
                "mode": mode,
                "sk": key.sk.hex(),
                "blinded": [high_bit(blinded[0]).hex()],
                "proof_nonce": nonce.hex(),
            },
        ),
        _case("finalize", "oprf.finalize", fin),
        _case(
            "finalize-rejects-bit255-evaluated",
            "oprf.finalize",
            {**fin, "evaluated": [high_bit(evaluated[0]).hex()]},
        ),
        _case("finalize-rejects-bit255-pk", "oprf.finalize", {**fin, "pk": high_bit(key.pk).hex()}),
        _case("key-id-rejects-bit255", "index.key_id", {"pk": high_bit(key.pk).hex()}),
        _case(
            "roster-rejects-bit255-voprf-key",
            "roster.verify",
            {
                "document": roster,
                "governance_keys": [governance.public_key.hex()],
                "threshold": 1,
                "now_ms": 1_768_000_000_000,
            },
        ),
        _case(
            "threshold-verify-rejects-bit255-key", "threshold.verify", {"query": bad_query_h.hex()}
        ),
        _case(
            "threshold-verify-rejects-bit255-ciphertext",
            "threshold.verify",
            {"query": bad_query_a.hex()},
        ),
        _case("threshold-decide", "threshold.decide", {"sk": sk.hex(), "response": response.hex()}),
        _case(
            "threshold-decide-rejects-bit255",
            "threshold.decide",
            {"sk": sk.hex(), "response": bad_response.hex()},
        ),
    ]


def generate() -> dict[str, object]:
    return {
        "group.json": {
            "name": "Decoding group elements (ristretto255, RFC 9496 4.3.1)",
            "spec": "specs/protocol.md#1-notation",
            "version": 1,
            "cases": decode_cases() + in_message_cases(),
        }
    }
