"""Vectors that settle the conformance contract itself (specs/protocol.md, chapter 9): every
error code, non-canonical group encodings (RFC 9496 A.2), the timestamp window's edges, an
unknown message type, the range of ``retry_after_ms``, replay, the JSON encoding of protocol
values (tags, big integers) and the typed inputs of 9.4. Expected results are what this
implementation answers; the spec text says why each is right.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from blindmatch.crypto import oprf, signing, sodium
from blindmatch.crypto import threshold as th
from blindmatch.protocol import canonical, envelope, transparency
from blindmatch.protocol.conformance_ops import make_case as _case
from blindmatch.protocol.conformance_ops import vector_seed as _seed

# RFC 9496 Appendix A.2: encodings every ristretto255 decoder MUST refuse.
BAD_ENCODINGS = {
    "non-canonical-field": [
        "00ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "f3ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0100000000000000000000000000000000000000000000000000000000000080",
    ],
    "negative-field": [
        "0100000000000000000000000000000000000000000000000000000000000000",
        "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "ed57ffd8c914fb201471d1c3d245ce3c746fcbe63a3679d51b6a516ebebe0e20",
        "c34c4e1826e5d403b78e246e88aa051c36ccf0aafebffe137d148a2bf9104562",
        "c940e5a4404157cfb1628b108db051a8d439e1a421394ec4ebccb9ec92a8ac78",
        "47cfc5497c53dc8e61c91d17fd626ffb1c49e2bca94eed052281b510b1117a24",
        "f1c6165d33367351b0da8f6e4511010c68174a03b6581212c71c0e1d026c3c72",
        "87260f7a2f12495118360f02c26a470f450dadf34a413d21042b43b9d93e1309",
    ],
    "non-square-x2": [
        "26948d35ca62e643e26a83177332e6b6afeb9d08e4268b650f1f5bbd8d81d371",
        "4eac077a713c57b4f4397629a4145982c661f48044dd3f96427d40b147d9742f",
        "de6a7b00deadc788eb6b6c8d20c0ae96c2f2019078fa604fee5b87d6e989ad7b",
        "bcab477be20861e01e4a0e295284146a510150d9817763caf1a6f4b422d67042",
        "2a292df7e32cababbd9de088d1d1abec9fc0440f637ed2fba145094dc14bea08",
        "f4a9e534fc0d216c44b218fa0c42d99635a0127ee2e53c712f70609649fdff22",
        "8268436f8c4126196cf64b3c7ddbda90746a378625f9813dd9b8457077256731",
        "2810e5cbc2cc4d4eece54f61c6f69758e289aa7ab440b3cbeaa21995c2f4232b",
    ],
    "negative-xy": [
        "3eb858e78f5a7254d8c9731174a94f76755fd3941c0ac93735c07ba14579630e",
        "a45fdc55c76448c049a1ab33f17023edfb2be3581e9c7aade8a6125215e04220",
        "d483fe813c6ba647ebbfd3ec41adca1c6130c2beeee9d9bf065c8d151c5f396e",
        "8a2e1d30050198c65a54483123960ccc38aef6848e1ec8f5f780e8523769ba32",
        "32888462f8b486c68ad7dd9610be5192bbeaf3b443951ac1a8118419d9fa097b",
        "227142501b9d4355ccba290404bde41575b037693cef1f438c47f8fbf35d1165",
        "5c37cc491da847cfeb9281d407efc41e15144c876e0170b499a96a22ed31e01e",
        "445425117cb8c90edcbc7c1cc0e74f747f2c1efa5630a967c64f287792a48a4b",
    ],
    "s-minus-one": ["ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"],
}
# L, the group order: the smallest scalar encoding that is not reduced.
UNREDUCED_SCALAR = (2**252 + 27742317777372353535851937790883648493).to_bytes(32, "little")


def _scalar(label: str) -> bytes:
    return th.vector_scalars(_seed(label))()


def group_encoding_cases() -> list[dict[str, Any]]:
    mode = int(oprf.Mode.VOPRF)
    key = oprf.derive_key_pair(_seed("conformance oprf key"), b"conformance", oprf.Mode.VOPRF)
    nonce = _scalar("conformance proof nonce")
    inputs = [b"conformance input"]
    blinds = [_scalar("conformance blind")]
    _, blinded = oprf.blind(inputs, oprf.Mode.VOPRF, blinds)
    evaluated, proof = oprf.blind_evaluate(key, blinded, oprf.Mode.VOPRF, nonce)
    assert proof is not None
    cases = []
    for kind, encodings in BAD_ENCODINGS.items():
        for n, bad in enumerate(encodings):
            cases.append(
                _case(
                    f"evaluate-rejects-{kind}-{n}",
                    "oprf.blind_evaluate",
                    {
                        "mode": mode,
                        "sk": key.sk.hex(),
                        "blinded": [bad],
                        "proof_nonce": nonce.hex(),
                    },
                )
            )
    bad = BAD_ENCODINGS["negative-field"][0]
    fin = {
        "mode": mode,
        "inputs": [x.hex() for x in inputs],
        "blinds": [b.hex() for b in blinds],
        "evaluated": [e.hex() for e in evaluated],
        "blinded": [b.hex() for b in blinded],
        "proof": proof.hex(),
        "pk": key.pk.hex(),
    }
    cases += [
        _case("finalize", "oprf.finalize", fin),
        _case(
            "finalize-rejects-noncanonical-evaluated", "oprf.finalize", {**fin, "evaluated": [bad]}
        ),
        _case("finalize-rejects-noncanonical-pk", "oprf.finalize", {**fin, "pk": bad}),
        _case(
            "finalize-rejects-unreduced-proof-scalar",
            "oprf.finalize",
            {**fin, "proof": (UNREDUCED_SCALAR + proof[32:]).hex()},
        ),
        _case(
            "evaluate-rejects-unreduced-sk",
            "oprf.blind_evaluate",
            {
                "mode": mode,
                "sk": UNREDUCED_SCALAR.hex(),
                "blinded": [b.hex() for b in blinded],
                "proof_nonce": nonce.hex(),
            },
        ),
        _case("key-id-rejects-noncanonical-pk", "index.key_id", {"pk": bad}),
    ]
    # The threshold test: a non-canonical querier key H, ciphertext point and response point.
    sk = _scalar("conformance querier key")
    qkey = th.QuerierKey(sk=sk, pk=sodium.scalarmult_base(sk))
    query_hash = bytes(range(32))
    query = th.encrypt_query(
        qkey, query_hash, bytes(16), th.vector_scalars(_seed("conformance query"))
    ).to_bytes()
    badb = bytes.fromhex(bad)
    cases += [
        _case("threshold-verify", "threshold.verify", {"query": query.hex()}),
        _case(
            "threshold-verify-rejects-noncanonical-key",
            "threshold.verify",
            {"query": (badb + query[32:]).hex()},
        ),
        _case(
            "threshold-verify-rejects-noncanonical-ciphertext",
            "threshold.verify",
            {"query": (query[:48] + badb + query[80:]).hex()},
        ),
    ]
    resp = _case(
        "threshold-respond",
        "threshold.respond",
        {
            "query": {"$ref": "threshold-verify/input/query"},
            "holder_hash": query_hash.hex(),
            "bands": [2],
            "scalar_seed": _seed("conformance response").hex(),
        },
    )
    # make_case ran the op on the $ref, which it cannot resolve: fill in the real result.
    resp["expected"] = _case(
        "x",
        "threshold.respond",
        {**resp["input"], "query": query.hex()},
    )["expected"]
    response = bytes.fromhex(resp["expected"]["output"]["response"])
    cases += [
        resp,
        _case("threshold-decide", "threshold.decide", {"sk": sk.hex(), "response": response.hex()}),
        _case(
            "threshold-decide-rejects-noncanonical-point",
            "threshold.decide",
            {"sk": sk.hex(), "response": (response[:2] + badb + response[34:]).hex()},
        ),
    ]
    return cases


NOW = 1_767_225_600_000
WINDOW = envelope.DEFAULT_MAX_SKEW_MS


def _raw_envelope(
    key: signing.SigningKey, mtype: str, body: dict[str, Any], ts: int, nonce: bytes
) -> bytes:
    """An envelope signed as 6.2 says, without the checks ``envelope.seal`` makes on our own
    messages (so a vector can carry a body or type a receiver must refuse)."""
    signed = canonical.encode([1, mtype, "peer-b", ts, nonce, body])
    sig = key.sign(envelope.ENVELOPE_DOMAIN, signed)
    return canonical.encode([1, mtype, "peer-b", ts, nonce, body, sig])


def envelope_cases() -> list[dict[str, Any]]:
    key = signing.SigningKey(_seed("conformance envelope signer"))
    roster = {"peer-b": key.public_key.hex()}
    n = 0

    def env(mtype: str, body: dict[str, Any], ts: int = NOW) -> bytes:
        nonlocal n
        n += 1
        return _raw_envelope(key, mtype, body, ts, _seed(f"conformance nonce {n}")[:16])

    def opened(case_id: str, data: bytes, now: int = NOW, **extra: Any) -> dict[str, Any]:
        return _case(
            case_id,
            "envelope.open",
            {"envelope": data.hex(), "now_ms": now, "roster": roster, **extra},
        )

    def error_body(code: str, **more: Any) -> dict[str, Any]:
        return {"code": code, "message": "vector", **more}

    base = env("error", error_body("internal"))
    cases = [
        opened("window-edge-future-accepted", base, NOW - WINDOW),
        opened("window-edge-past-accepted", base, NOW + WINDOW),
        opened("window-past-by-1ms-refused", base, NOW + WINDOW + 1),
        opened("window-future-by-1ms-refused", base, NOW - WINDOW - 1),
        opened("unknown-type-refused", env("oprf.evaluate.v2", {"elements": []})),
        opened(
            "replay-refused",
            base,
            seen=[{"sender": "peer-b", "nonce": _seed("conformance nonce 1")[:16].hex()}],
        ),
        opened(
            "same-nonce-other-sender-accepted",
            base,
            seen=[{"sender": "peer-c", "nonce": _seed("conformance nonce 1")[:16].hex()}],
        ),
        opened("bad-body-missing-field", env("error", {"code": "internal"})),
        opened("bad-body-extra-field", env("error", error_body("internal", extra=1))),
        opened("bad-body-unknown-error-code", env("error", error_body("teapot"))),
    ]
    for code in (
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
    ):
        cases.append(opened(f"error-code-{code}", env("error", error_body(code))))
    # threshold.query carries exactly one of query and query_ref (7.3)
    items = [_seed("conformance candidate")[:24]]
    ref = _seed("conformance query ref")[:32]
    whole = bytes(49_200)  # the schema checks the length; the holder parses it later (5.4)
    token = _seed("conformance token")[:16]
    for label, body in (
        ("query-ref-accepted", {"query_ref": ref, "items": items}),
        (
            "query-ref-with-tokens-accepted",
            {"query_ref": ref, "items": items, "confirmed": [token]},
        ),
        ("query-and-query-ref-refused", {"query": whole, "query_ref": ref, "items": items}),
        ("neither-query-nor-query-ref-refused", {"items": items}),
        ("short-query-ref-refused", {"query_ref": ref[:31], "items": items}),
    ):
        cases.append(opened(f"threshold-query-{label}", env("threshold.query", body)))
    for ms, label in (
        (0, "zero-accepted"),
        (7 * 24 * 3_600_000, "seven-days-accepted"),
        (7 * 24 * 3_600_000 + 1, "over-seven-days-refused"),
        (-1, "negative-refused"),
    ):
        body = error_body("budget-exhausted", retry_after_ms=ms)
        cases.append(opened(f"retry-after-{label}", env("error", body)))
    return cases


def json_encoding_cases() -> list[dict[str, Any]]:
    def decode(case_id: str, value: Any) -> dict[str, Any]:
        return _case(case_id, "canonical.decode", {"bytes": canonical.encode(value).hex()})

    return [
        decode("bytes-are-tagged", b"\x00"),
        decode("map-with-hex-key-is-escaped", {"hex": "00"}),
        decode("map-with-int-key-is-escaped", {"int": 1}),
        decode("map-with-map-key-is-escaped", {"map": {}}),
        decode("map-with-two-keys-is-plain", {"hex": "00", "x": 1}),
        decode("largest-safe-int-is-a-number", 2**53 - 1),
        decode("int-beyond-2^53-is-a-string", 2**53),
        decode("uint64-max", 2**64 - 1),
        decode("int64-min", -(2**63)),
        _case(
            "canonical-rejects-uint64-overflow-form", "canonical.decode", {"bytes": "cf" + "00" * 8}
        ),
        _case(
            "canonical-rejects-duplicate-keys",
            "canonical.decode",
            {"bytes": "82a16101a16101"},
        ),
        _case("canonical-rejects-empty", "canonical.decode", {"bytes": ""}),
    ]


def request_cases() -> list[dict[str, Any]]:
    """Typed inputs (9.4): anything else is ``bad-request``; OPRF-level refusals are
    ``oprf-input``."""
    mode = int(oprf.Mode.VOPRF)
    blind = _scalar("conformance blind").hex()
    ok = {"mode": mode, "inputs": ["00"], "blinds": [blind]}
    return [
        _case("blind", "oprf.blind", ok),
        _case("bad-request-uppercase-hex", "oprf.blind", {**ok, "blinds": [blind.upper()]}),
        _case("bad-request-odd-hex", "oprf.blind", {**ok, "inputs": ["0"]}),
        _case("bad-request-not-a-list", "oprf.blind", {**ok, "inputs": "00"}),
        _case("bad-request-missing-field", "oprf.blind", {"mode": mode, "inputs": ["00"]}),
        _case("bad-request-mode", "oprf.blind", {**ok, "mode": 7}),
        _case("oprf-input-count-mismatch", "oprf.blind", {**ok, "blinds": [blind, blind]}),
        _case("oprf-input-too-long", "oprf.blind", {**ok, "inputs": ["00" * 65536]}),
        _case(
            "oprf-input-empty-batch",
            "oprf.blind_evaluate",
            {"mode": mode, "sk": blind, "blinded": [], "proof_nonce": blind},
        ),
    ]


def other_error_cases() -> list[dict[str, Any]]:
    """One vector each for the codes no other file exercises."""
    return [
        _case("feedback-bad-body", "feedback.open", {"record": "c0", "keys": {}}),
        _case(
            "derivative-bad-size",
            "derivative.tiles",
            {"scheme": "pdq-tiles-1", "width": 7, "height": 64, "role": "query"},
        ),
        _case(
            "derivative-bad-mask",
            "derivative.classify",
            {
                "scheme": "pdq-tiles-1",
                "quality_cells": [],
                "confirmations": [],
                "whole_match": False,
                "source_cells": {"0011223344556677": -1},
            },
        ),
        _case(
            "derivative-whole-match-not-a-boolean",
            "derivative.classify",
            {"scheme": "pdq-tiles-1", "quality_cells": [], "confirmations": [], "whole_match": 1},
        ),
        # A holder indexes at most 4096 distinct frames of one video (signals-and-lsh.md 7).
        _case(
            "vpdq-too-many-frames",
            "vpdq.indexed_frames",
            {
                "signal": json.dumps(
                    [
                        f"{hashlib.sha256(i.to_bytes(4, 'big')).hexdigest()},100,{i}.000"
                        for i in range(4097)
                    ]
                )
            },
        ),
        # Merkle ops hash entries as opaque bytes: "00" and "ff" are no log entries (chapter 12,
        # section 3), and the root over them is still defined.
        _case("merkle-entries-are-opaque", "merkle.root", {"leaves": ["00", "ff"]}),
        _case(
            "verify-inclusion-short-path-hash",
            "merkle.verify_inclusion",
            {
                "entry": "00",
                "index": 0,
                "size": 2,
                "path": [transparency.leaf_hash(b"\xff").hex()[:-2]],
                "root": _merkle_root([b"\x00", b"\xff"]).hex(),
            },
        ),
        _case(
            "verify-inclusion-wrong-root",
            "merkle.verify_inclusion",
            {
                "entry": "00",
                "index": 0,
                "size": 2,
                "path": [transparency.leaf_hash(b"\xff").hex()],
                "root": bytes(32).hex(),
            },
        ),
        _case(
            "verify-inclusion",
            "merkle.verify_inclusion",
            {
                "entry": "00",
                "index": 0,
                "size": 2,
                "path": [transparency.leaf_hash(b"\xff").hex()],
                "root": _merkle_root([b"\x00", b"\xff"]).hex(),
            },
        ),
    ]


def _merkle_root(leaves: list[bytes]) -> bytes:
    return transparency.MerkleTree.from_entries(leaves).root()


def generate() -> dict[str, object]:
    cases = (
        group_encoding_cases()
        + envelope_cases()
        + json_encoding_cases()
        + request_cases()
        + other_error_cases()
    )
    ids = [c["id"] for c in cases]
    assert len(ids) == len(set(ids)), "duplicate case id"
    return {
        "conformance.json": {
            "name": "The conformance contract: error codes, encodings, edges",
            "spec": "specs/protocol.md#9-conformance",
            "version": 1,
            "cases": cases,
        }
    }
