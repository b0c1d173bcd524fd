"""Vectors for spec 8.5: per-table references (entries, what a querier unmasks, what the holder
resolves) and sealed releases (a holder's answer whose release opens only on a match)."""

from __future__ import annotations

import hashlib
from typing import Any

from blindmatch.crypto import oprf, sodium
from blindmatch.crypto import threshold as th
from blindmatch.protocol import canonical
from blindmatch.protocol.conformance_ops import make_case as _case
from blindmatch.protocol.conformance_ops import vector_seed as _seed


def _flip(h: bytes, n: int) -> bytes:
    out = bytearray(h)
    for i in range(3, 3 + n):
        out[i >> 3] ^= 0x80 >> (i & 7)
    return bytes(out)


def reference_cases() -> list[dict[str, Any]]:
    key = oprf.derive_key_pair(_seed("references key"), b"blindmatch-v1 index", oprf.Mode.VOPRF)
    item = _seed("references item")[:16]
    other = _seed("references other item")[:16]
    cases = []
    # one item in two tables, and another item in the second table's bucket
    for label, ref, bucket, nonce in (
        ("item-table0", item, b"example bucket key table 0", "nonce a"),
        ("item-table9", item, b"example bucket key table 9", "nonce b"),
        ("other-table9", other, b"example bucket key table 9", "nonce c"),
    ):
        c = _case(
            label,
            "index.table_entry",
            {
                "sk": key.sk.hex(),
                "bucket_key": bucket.hex(),
                "item_ref": ref.hex(),
                "nonce": _seed(nonce)[:8].hex(),
            },
        )
        cases.append(c)
        cases.append(
            _case(
                f"resolve-{label}",
                "index.resolve",
                {"sk": key.sk.hex(), "candidate": c["expected"]["output"]["candidate"]},
            )
        )
    cases.append(
        _case(
            "resolve-rejects-short",
            "index.resolve",
            {"sk": key.sk.hex(), "candidate": "00" * 16},
        )
    )
    return cases


def sealed_cases() -> list[dict[str, Any]]:
    sk = th.vector_scalars(_seed("sealed querier key"))()
    key = th.QuerierKey(sk=sk, pk=sodium.scalarmult_base(sk))
    query_hash = hashlib.sha256(b"blindmatch-v1 vectors sealed query").digest()
    query_id = _seed("sealed query id")[:16]
    query = th.encrypt_query(
        key, query_hash, query_id, th.vector_scalars(_seed("sealed query scalars"))
    ).to_bytes()
    candidate = _seed("sealed candidate")[:24]
    release = canonical.encode(
        {"item": _seed("sealed item")[:16], "provenance": "survivor-submitted", "signal": "pdq"}
    )
    cases: list[dict[str, Any]] = []
    for d, bands in ((0, [8, 16, 31]), (20, [8, 16, 31]), (31, [31]), (32, [8, 16, 31])):
        seal = _case(
            f"seal-d{d}",
            "threshold.seal",
            {
                "query": query.hex(),
                "holder_hash": _flip(query_hash, d).hex(),
                "bands": bands,
                "candidate": candidate.hex(),
                "release": release.hex(),
                "scalar_seed": _seed(f"sealed response {d}").hex(),
            },
        )
        if cases:  # the ~49 KB query once; later cases point at it (the runner resolves $ref)
            seal["input"]["query"] = {"$ref": "seal-d0/input/query"}
        cases.append(seal)
        out = seal["expected"]["output"]
        cases.append(
            _case(
                f"open-d{d}",
                "threshold.open",
                {
                    "sk": sk.hex(),
                    "query_id": query_id.hex(),
                    "candidate": candidate.hex(),
                    "response": out["response"],
                    "sealed": out["sealed"],
                },
            )
        )
    # the same answer named by another candidate does not open (the key binds the candidate)
    out = cases[0]["expected"]["output"]
    cases.append(
        _case(
            "open-rejects-other-candidate",
            "threshold.open",
            {
                "sk": sk.hex(),
                "query_id": query_id.hex(),
                "candidate": _seed("another candidate")[:24].hex(),
                "response": out["response"],
                "sealed": out["sealed"],
            },
        )
    )
    # the release scalar (8.5): one item, one query -> one M; another item or another query
    # (here: the same hash encrypted again) -> another; the token a matching querier shows
    again = th.encrypt_query(
        key, query_hash, query_id, th.vector_scalars(_seed("sealed query scalars again"))
    ).to_bytes()
    secret = _seed("release scalar secret")[:32]
    for label, q, item in (
        ("release-scalar", query, "sealed item"),
        ("release-scalar-other-item", query, "sealed other item"),
        ("release-scalar-other-query", again, "sealed item"),
    ):
        c = _case(
            label,
            "threshold.release_scalar",
            {"secret": secret.hex(), "query": q.hex(), "item_ref": _seed(item)[:16].hex()},
        )
        if q == query:  # the ~49 KB query once (the runner resolves $ref)
            c["input"]["query"] = {"$ref": "seal-d0/input/query"}
        cases.append(c)
    cases.append(
        _case(
            "release-scalar-rejects-short-query",
            "threshold.release_scalar",
            {"secret": secret.hex(), "query": "00" * 48, "item_ref": "00" * 16},
        )
    )
    return cases


def generate() -> dict[str, object]:
    return {
        "references.json": {
            "name": "Per-table references and sealed releases",
            "spec": "specs/protocol.md#85-candidates-that-do-not-link-and-nothing-released-"
            "before-confirmation",
            "version": 1,
            "cases": reference_cases() + sealed_cases(),
        }
    }
