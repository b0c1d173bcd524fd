"""Vectors for the cryptographic core: OPRF usage, the threshold test, canonical encoding and
envelopes. Every case is in the conformance format: {"id", "op", "input", "expected"} where
expected is {"output": {...}} or {"error": "<code>"}. All randomness comes from fixed seeds.
"""

from __future__ import annotations

import hashlib
from typing import Any

from blindmatch.crypto import oprf, signing, sodium
from blindmatch.crypto import threshold as th
from blindmatch.protocol import canonical
from blindmatch.protocol.conformance_ops import make_case as _case
from blindmatch.protocol.conformance_ops import vector_seed as _seed


def _scalar(label: str) -> bytes:
    return th.vector_scalars(_seed(label))()


def _flip_bits(h: bytes, positions: range) -> bytes:
    out = bytearray(h)
    for i in positions:
        out[i >> 3] ^= 0x80 >> (i & 7)
    return bytes(out)


def oprf_cases() -> list[dict[str, Any]]:
    mode = int(oprf.Mode.VOPRF)
    seed, info = _seed("oprf key"), b"blindmatch-v1 bucket index key"
    key = oprf.derive_key_pair(seed, info, oprf.Mode.VOPRF)
    # Inputs shaped like bucket keys (the LSH chapter defines their exact layout).
    inputs = [b"blindmatch/lsh/example/" + bytes([t]) + bytes(range(t, t + 3)) for t in range(3)]
    blinds = [_scalar(f"blind {i}") for i in range(3)]
    _, blinded = oprf.blind(inputs, oprf.Mode.VOPRF, blinds)
    nonce = _scalar("proof nonce")
    evaluated, proof = oprf.blind_evaluate(key, blinded, oprf.Mode.VOPRF, nonce)
    assert proof is not None
    hx = [x.hex() for x in inputs]
    cases = [
        _case(
            "derive", "oprf.derive_key_pair", {"mode": mode, "seed": seed.hex(), "info": info.hex()}
        ),
        _case(
            "blind", "oprf.blind", {"mode": mode, "inputs": hx, "blinds": [b.hex() for b in blinds]}
        ),
        _case(
            "blind-evaluate-batch3",
            "oprf.blind_evaluate",
            {
                "mode": mode,
                "sk": key.sk.hex(),
                "blinded": [b.hex() for b in blinded],
                "proof_nonce": nonce.hex(),
            },
        ),
    ]
    fin = {
        "mode": mode,
        "inputs": hx,
        "blinds": [b.hex() for b in blinds],
        "evaluated": [e.hex() for e in evaluated],
        "blinded": [b.hex() for b in blinded],
        "proof": proof.hex(),
        "pk": key.pk.hex(),
    }
    cases.append(_case("finalize-batch3", "oprf.finalize", fin))
    other = oprf.derive_key_pair(_seed("other key"), info, oprf.Mode.VOPRF)
    forged = [evaluated[0], sodium.scalarmult(other.sk, blinded[1]), evaluated[2]]
    cases += [
        _case(
            "finalize-rejects-mixed-keys",
            "oprf.finalize",
            {**fin, "evaluated": [e.hex() for e in forged]},
        ),
        _case("finalize-rejects-wrong-pk", "oprf.finalize", {**fin, "pk": other.pk.hex()}),
        _case(
            "evaluate-rejects-identity",
            "oprf.blind_evaluate",
            {
                "mode": mode,
                "sk": key.sk.hex(),
                "blinded": [bytes(32).hex()],
                "proof_nonce": nonce.hex(),
            },
        ),
        _case(
            "evaluate-rejects-noncanonical",
            "oprf.blind_evaluate",
            {
                "mode": mode,
                "sk": key.sk.hex(),
                "blinded": [("ff" * 32)],
                "proof_nonce": nonce.hex(),
            },
        ),
    ]
    return cases


def threshold_cases() -> list[dict[str, Any]]:
    sk = _scalar("querier key")
    key = th.QuerierKey(sk=sk, pk=sodium.scalarmult_base(sk))
    query_hash = hashlib.sha256(b"blindmatch-v1 vectors query hash").digest()
    query_id = _seed("query id")[:16]
    qseed = _seed("query scalars")
    query = th.encrypt_query(key, query_hash, query_id, th.vector_scalars(qseed)).to_bytes()
    cases = [
        _case(
            "encrypt",
            "threshold.encrypt",
            {
                "sk": sk.hex(),
                "hash": query_hash.hex(),
                "query_id": query_id.hex(),
                "scalar_seed": qseed.hex(),
            },
        ),
        _case("verify", "threshold.verify", {"query": query.hex()}),
    ]
    # A ciphertext of 2 at bit 7 (with bit 7's original proof) must be refused.
    r = _scalar("forged bit")
    forged_ct = sodium.scalarmult_base(r) + sodium.scalarmult_base(
        sodium.scalar_add(sodium.scalar_mul(r, sk), sodium.scalar_from_int(2))
    )
    off = 48 + 7 * (th.CIPHERTEXT_BYTES + th.BIT_PROOF_BYTES)
    forged = query[:off] + forged_ct + query[off + 64 :]
    cases += [
        _case("verify-rejects-non-bit", "threshold.verify", {"query": forged.hex()}),
        _case("verify-rejects-short", "threshold.verify", {"query": query[:-1].hex()}),
        _case(
            "verify-rejects-identity",
            "threshold.verify",
            {"query": (query[:48] + bytes(32) + query[80:]).hex()},
        ),
    ]
    for d, bands in (
        (0, [31]),
        (9, [8, 16, 31]),
        (31, [8, 16, 31]),
        (32, [31]),
        (200, [8, 16, 31]),
    ):
        holder_hash = _flip_bits(query_hash, range(3, 3 + d))
        rseed = _seed(f"response {d}")
        resp = _case(
            f"respond-d{d}",
            "threshold.respond",
            {
                "query": query.hex(),
                "holder_hash": holder_hash.hex(),
                "bands": bands,
                "scalar_seed": rseed.hex(),
            },
        )
        cases.append(resp)
        cases.append(
            _case(
                f"decide-d{d}",
                "threshold.decide",
                {"sk": sk.hex(), "response": resp["expected"]["output"]["response"]},
            )
        )
    # The encrypted query is ~49 KB; later cases point at the copy in "verify" instead of
    # repeating it (the runner resolves {"$ref": "case-id/input/field"} before sending).
    for c in cases[2:]:
        if c["op"] in ("threshold.respond",) and c["input"].get("query") == query.hex():
            c["input"]["query"] = {"$ref": "verify/input/query"}
    return cases


def envelope_cases() -> list[dict[str, Any]]:
    seed = _seed("envelope signer")
    key = signing.SigningKey(seed)
    body = {
        "code": "budget-exhausted",
        "message": "hourly evaluation budget used",
        "retry_after_ms": 60000,
    }
    base = {
        "signing_seed": seed.hex(),
        "sender": "platform-a",
        "type": "error",
        "body": body,
        "timestamp_ms": 1_767_225_600_000,
        "nonce": _seed("nonce")[:16].hex(),
    }
    sealed = _case("seal", "envelope.seal", base)
    env_hex = sealed["expected"]["output"]["envelope"]
    env = bytes.fromhex(env_hex)
    roster = {"platform-a": key.public_key.hex()}
    now = base["timestamp_ms"] + 1000

    def opened(case_id: str, data: bytes, **over: Any) -> dict[str, Any]:
        return _case(
            case_id,
            "envelope.open",
            {
                "envelope": data.hex(),
                "now_ms": over.get("now_ms", now),
                "roster": over.get("roster", roster),
            },
        )

    value = canonical.decode(env)
    flipped_sig = canonical.encode([*value[:6], bytes([value[6][0] ^ 1]) + value[6][1:]])
    return [
        sealed,
        opened("open", env),
        opened("open-rejects-unknown-sender", env, roster={}),
        opened("open-rejects-stale", env, now_ms=now + 3_600_000),
        opened("open-rejects-bad-signature", flipped_sig),
        opened("open-rejects-truncated", env[:-1]),
        opened("open-rejects-trailing", env + b"\x00"),
        opened("open-rejects-noncanonical-int", env.replace(b"\x01", b"\xcc\x01", 1)),
        _case(
            "canonical-sorted-map",
            "canonical.decode",
            {"bytes": canonical.encode({"a": 1, "b": b"\x00"}).hex()},
        ),
        _case("canonical-rejects-unsorted", "canonical.decode", {"bytes": "82a16201a16102"}),
        _case("canonical-rejects-float", "canonical.decode", {"bytes": "cb3ff0000000000000"}),
        _case("canonical-rejects-ext", "canonical.decode", {"bytes": "d40100"}),
    ]


def generate() -> dict[str, object]:
    def doc(name: str, section: str, cases: list[dict[str, Any]]) -> dict[str, Any]:
        return {"name": name, "spec": f"specs/protocol.md#{section}", "version": 1, "cases": cases}

    return {
        "oprf.json": doc("OPRF usage (VOPRF, ristretto255-SHA512)", "4-oprf-usage", oprf_cases()),
        "threshold.json": doc(
            "Private Hamming-threshold test", "5-private-threshold-test", threshold_cases()
        ),
        "envelope.json": doc(
            "Canonical encoding and signed envelopes", "6-envelopes", envelope_cases()
        ),
    }
