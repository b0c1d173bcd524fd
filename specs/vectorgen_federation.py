"""Vectors for the federation layer (spec chapter 10): key ids, index entries, rosters."""

from __future__ import annotations

import copy
import hashlib

from blindmatch.crypto import oprf, signing
from blindmatch.protocol import feedback as fb
from blindmatch.protocol import roster as roster_mod
from blindmatch.protocol.conformance_ops import make_case as _case
from blindmatch.protocol.conformance_ops import vector_seed as _seed


def generate() -> dict[str, object]:
    key = oprf.derive_key_pair(_seed("holder key"), b"blindmatch-v1 index", oprf.Mode.VOPRF)
    held = hashlib.sha256(b"blindmatch-v1 vectors held hash").digest()
    item_ref = _seed("item ref")[:16]
    cases = [_case("key-id", "index.key_id", {"pk": key.pk.hex()})]
    # Bucket keys are opaque OPRF inputs here; chapter 11 defines how they are derived.
    sample_keys = [b"example bucket key " + bytes([t]) + held[4 * t : 4 * t + 4] for t in range(4)]
    for t, bucket_key in enumerate(sample_keys):
        cases.append(
            _case(
                f"entry-table{t}",
                "index.entry",
                {"sk": key.sk.hex(), "bucket_key": bucket_key.hex(), "item_ref": item_ref.hex()},
            )
        )
    governance = [signing.SigningKey(_seed(f"governance {i}")) for i in range(3)]
    pinned = [g.public_key.hex() for g in governance]
    body = {
        "federation": "example",
        "serial": 7,
        "issued_ms": 1_767_225_600_000,
        "expires_ms": 1_769_904_000_000,
        "members": [
            {
                "id": "hub-1",
                "signing_key": signing.SigningKey(_seed("hub identity")).public_key.hex(),
                "voprf_key": key.pk.hex(),
                "endpoint": "https://hub-1.example/fed",
                "roles": ["hub"],
                "budget": {"index_entries": 2_400_000},
            },
            {
                "id": "platform-a",
                "signing_key": signing.SigningKey(_seed("platform identity")).public_key.hex(),
                "voprf_key": None,
                "endpoint": "https://platform-a.example",
                "roles": ["platform"],
                "budget": {"evaluations_per_hour": 5000},
            },
        ],
    }
    doc = roster_mod.sign_roster(body, governance[:2])
    now = 1_768_000_000_000
    tampered = copy.deepcopy(doc)
    tampered["roster"]["members"][1]["roles"] = ["hub"]
    verify = {"governance_keys": pinned, "threshold": 2, "now_ms": now}
    cases += [
        _case("roster-2-of-3", "roster.verify", {"document": doc, **verify}),
        _case("roster-needs-3", "roster.verify", {"document": doc, **{**verify, "threshold": 3}}),
        _case("roster-tampered", "roster.verify", {"document": tampered, **verify}),
        _case(
            "roster-expired",
            "roster.verify",
            {"document": doc, **{**verify, "now_ms": 1_770_000_000_000}},
        ),
    ]
    # Feedback records (10.7).
    signers = {n: signing.SigningKey(_seed(f"{n} identity")) for n in ("hub", "platform", "other")}
    keys = {n: k.public_key.hex() for n, k in signers.items()}
    item = _seed("feedback item")[:16]

    def rec(label: str, origin: str, opinion: str, at: int, retracts: bytes | None = None):  # type: ignore[no-untyped-def]
        return fb.make_record(
            signers[origin],
            record_id=_seed(label)[:16],
            origin=origin,
            holder="hub",
            item=item,
            opinion=opinion,
            at_ms=at,
            retracts=retracts,
        )

    confirm = rec("fb confirm", "platform", "confirm", 1_767_225_600_000)
    dispute = rec("fb dispute", "other", "dispute", 1_767_225_700_000)
    again = rec("fb dispute again", "other", "dispute", 1_767_225_800_000)
    retract = rec("fb retract", "other", "retract", 1_767_225_900_000, retracts=dispute.id)
    withdraw = rec("fb withdraw", "hub", "withdraw", 1_767_226_000_000)
    forged = fb.make_record(
        signers["other"],
        record_id=_seed("fb forged")[:16],
        origin="platform",
        holder="hub",
        item=item,
        opinion="dispute",
        at_ms=1_767_225_600_000,
    )
    hx = [r.signed.hex() for r in (confirm, dispute, again, retract, withdraw)]
    cases += [
        _case("feedback-open", "feedback.open", {"record": hx[0], "keys": keys}),
        _case("feedback-forged", "feedback.open", {"record": forged.signed.hex(), "keys": keys}),
        _case("feedback-unknown-origin", "feedback.open", {"record": hx[0], "keys": {}}),
        _case(
            "aggregate-one-vote-per-origin", "feedback.aggregate", {"records": hx[:3], "keys": keys}
        ),
        _case(
            "aggregate-retracted",
            "feedback.aggregate",
            {"records": [hx[0], hx[1], hx[3]], "keys": keys},
        ),
        _case(
            "aggregate-retracted-then-again",
            "feedback.aggregate",
            {"records": hx[:4], "keys": keys},
        ),
        _case("aggregate-withdrawn", "feedback.aggregate", {"records": hx, "keys": keys}),
    ]
    return {
        "federation.json": {
            "name": "Federation: key ids, index entries, rosters",
            "spec": "specs/protocol.md#10-federation",
            "version": 1,
            "cases": cases,
        }
    }
