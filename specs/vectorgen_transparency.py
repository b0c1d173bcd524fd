"""Vectors for the verifiable log (specs/transparency.md): RFC 9162 tree hashes, inclusion and
consistency proofs and their verification, signed tree heads, fork and rollback detection,
entry schemas and tamper audits. Every case is in the conformance format:
{"id", "op", "input", "expected"} where expected is {"output": {...}} or {"error": "<code>"}.
All keys and data come from fixed seeds; Ed25519 signatures are deterministic.
"""

from __future__ import annotations

import hashlib
from typing import Any

from blindmatch.crypto import signing
from blindmatch.protocol import canonical
from blindmatch.protocol import transparency as tl
from blindmatch.protocol.conformance_ops import OpError, run, vector_seed

# The RFC 6962 reference leaves, as published with Certificate Transparency's implementations;
# an implementation whose roots for them differ does not hash trees the RFC's way.
CT_LEAVES = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]
T0 = 1_767_225_600_000
LOG_ID = "platform-a"


_seed = vector_seed


# Inputs of the cases made so far, so that {"$ref": "case-id/input/field"} can be resolved here
# exactly as the conformance runner resolves it.
_INPUTS: dict[str, dict[str, Any]] = {}


def _resolved(data: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in data.items():
        if isinstance(value, dict) and set(value) == {"$ref"}:
            case_id, section, field = value["$ref"].split("/")
            assert section == "input"
            value = _INPUTS[case_id][field]
        out[name] = value
    return out


def _case(case_id: str, op: str, data: dict[str, Any]) -> dict[str, Any]:
    assert case_id not in _INPUTS, case_id
    _INPUTS[case_id] = _resolved(data)
    try:
        expected: dict[str, Any] = {"output": run(op, _INPUTS[case_id])}
    except OpError as exc:
        expected = {"error": exc.code}
    return {"id": case_id, "op": op, "input": data, "expected": expected}


def _hex_json(v: Any) -> Any:
    if isinstance(v, bytes):
        return {"hex": v.hex()}
    if isinstance(v, dict):
        return {k: _hex_json(x) for k, x in v.items()}
    return v


def _flip(h: str) -> str:
    b = bytearray(bytes.fromhex(h))
    b[0] ^= 1
    return b.hex()


# Synthetic leaves: 70 entries of 0..8 bytes, so every tree shape up to 70 is reachable.
SYNTH = [hashlib.sha256(b"leaf %d" % i).digest()[: i % 9].hex() for i in range(70)]
SYNTH_TREE = tl.MerkleTree.from_entries(bytes.fromhex(x) for x in SYNTH)
SYNTH_REF = {"$ref": "synthetic-root-70/input/leaves"}


def _root(n: int) -> str:
    return SYNTH_TREE.root(n).hex()


def merkle_cases() -> list[dict[str, Any]]:
    cases = [_case(f"ct-root-{n}", "merkle.root", {"leaves": CT_LEAVES[:n]}) for n in range(9)]
    cases.append(_case("synthetic-root-70", "merkle.root", {"leaves": SYNTH}))
    for n in (1, 2, 3, 5, 31, 32, 33, 63, 64, 65, 69):
        cases.append(_case(f"synthetic-root-{n}", "merkle.root", {"leaves": SYNTH_REF, "size": n}))
    ct = {"leaves": CT_LEAVES}
    for m, n in ((0, 8), (5, 8), (2, 3), (0, 1)):
        cases.append(
            _case(f"ct-inclusion-{m}-{n}", "merkle.inclusion", {**ct, "index": m, "size": n})
        )
    for m, n in ((0, 70), (69, 70), (64, 70), (32, 33), (13, 21), (31, 32)):
        cases.append(
            _case(
                f"synthetic-inclusion-{m}-{n}",
                "merkle.inclusion",
                {"leaves": SYNTH_REF, "index": m, "size": n},
            )
        )
    cases.append(
        _case("inclusion-index-out-of-range", "merkle.inclusion", {**ct, "index": 8, "size": 8})
    )
    for m, n in ((2, 8), (6, 8), (2, 5), (4, 8), (1, 8), (7, 8)):
        cases.append(
            _case(f"ct-consistency-{m}-{n}", "merkle.consistency", {**ct, "first": m, "second": n})
        )
    for m, n in ((1, 70), (32, 70), (33, 70), (64, 70), (69, 70), (7, 21), (0, 70), (70, 70)):
        cases.append(
            _case(
                f"synthetic-consistency-{m}-{n}",
                "merkle.consistency",
                {"leaves": SYNTH_REF, "first": m, "second": n},
            )
        )

    # Verification: every accepted proof above, then each kind of corruption.
    def incl(case_id: str, m: int, n: int, **over: Any) -> dict[str, Any]:
        data = {
            "entry": SYNTH[m],
            "index": m,
            "size": n,
            "path": [p.hex() for p in SYNTH_TREE.inclusion_proof(m, n)],
            "root": _root(n),
        }
        return _case(case_id, "merkle.verify_inclusion", {**data, **over})

    path_13_21 = [p.hex() for p in SYNTH_TREE.inclusion_proof(13, 21)]
    cases += [
        incl("verify-inclusion-13-21", 13, 21),
        incl("verify-inclusion-0-1", 0, 1),
        incl("verify-inclusion-69-70", 69, 70),
        incl("verify-inclusion-64-70", 64, 70),
        incl("verify-inclusion-rejects-other-entry", 13, 21, entry=SYNTH[14]),
        incl("verify-inclusion-rejects-other-index", 13, 21, index=12),
        incl("verify-inclusion-rejects-index-equal-size", 13, 21, index=21),
        incl("verify-inclusion-rejects-wrong-root", 13, 21, root=_root(20)),
        incl("verify-inclusion-rejects-other-size", 13, 21, size=22, root=_root(22)),
        incl(
            "verify-inclusion-rejects-flipped-path",
            13,
            21,
            path=[_flip(path_13_21[0]), *path_13_21[1:]],
        ),
        incl("verify-inclusion-rejects-short-path", 13, 21, path=path_13_21[:-1]),
        incl("verify-inclusion-rejects-long-path", 13, 21, path=[*path_13_21, _root(21)]),
        incl(
            "verify-inclusion-rejects-31-byte-hash",
            13,
            21,
            path=[path_13_21[0][:62], *path_13_21[1:]],
        ),
        incl("verify-inclusion-rejects-leaf-as-root", 0, 1, root=SYNTH[0]),
    ]

    def cons(case_id: str, m: int, n: int, **over: Any) -> dict[str, Any]:
        data = {
            "first": m,
            "second": n,
            "first_root": _root(m),
            "second_root": _root(n),
            "path": [p.hex() for p in SYNTH_TREE.consistency_proof(m, n)] if m <= n else [],
        }
        return _case(case_id, "merkle.verify_consistency", {**data, **over})

    path_7_21 = [p.hex() for p in SYNTH_TREE.consistency_proof(7, 21)]
    path_32_70 = [p.hex() for p in SYNTH_TREE.consistency_proof(32, 70)]
    cases += [
        cons("verify-consistency-7-21", 7, 21),
        cons("verify-consistency-32-70", 32, 70),
        cons("verify-consistency-1-70", 1, 70),
        cons("verify-consistency-69-70", 69, 70),
        cons("verify-consistency-equal", 21, 21),
        cons("verify-consistency-from-empty", 0, 21),
        cons("verify-consistency-rejects-wrong-first-root", 7, 21, first_root=_root(6)),
        cons("verify-consistency-rejects-wrong-second-root", 7, 21, second_root=_root(22)),
        cons("verify-consistency-rejects-power-of-two-wrong-root", 32, 70, first_root=_root(31)),
        cons(
            "verify-consistency-rejects-flipped-path",
            7,
            21,
            path=[*path_7_21[:-1], _flip(path_7_21[-1])],
        ),
        cons("verify-consistency-rejects-short-path", 7, 21, path=path_7_21[:-1]),
        cons("verify-consistency-rejects-long-path", 32, 70, path=[*path_32_70, _root(70)]),
        cons("verify-consistency-rejects-empty-path", 7, 21, path=[]),
        cons(
            "verify-consistency-rejects-first-larger",
            21,
            7,
            first_root=_root(21),
            second_root=_root(7),
            path=path_7_21,
        ),
        cons("verify-consistency-rejects-equal-size-other-root", 21, 21, second_root=_root(20)),
        cons("verify-consistency-rejects-equal-size-with-path", 21, 21, path=[_root(21)]),
        cons("verify-consistency-rejects-empty-tree-wrong-root", 0, 21, first_root=_root(1)),
        cons("verify-consistency-rejects-empty-tree-with-path", 0, 21, path=[_root(21)]),
    ]
    return cases


def _key() -> signing.SigningKey:
    return signing.SigningKey(_seed("log signer"))


def _sth(size: int, t: int, root: bytes | None = None) -> str:
    r = SYNTH_TREE.root(size) if root is None else root
    return tl.sign_tree_head(_key(), LOG_ID, size, r, T0 + t).to_bytes().hex()


def tree_head_cases() -> list[dict[str, Any]]:
    key = _key()
    pk = key.public_key.hex()
    other_pk = signing.SigningKey(_seed("another signer")).public_key.hex()
    base = {
        "signing_seed": _seed("log signer").hex(),
        "log_id": LOG_ID,
        "tree_size": 21,
        "root_hash": _root(21),
        "timestamp_ms": T0,
    }
    signed = _case("sth-sign", "sth.sign", base)
    sth = bytes.fromhex(signed["expected"]["output"]["sth"])
    value = canonical.decode(sth)

    def reencoded(**over: Any) -> str:
        return canonical.encode({**value, **over}).hex()

    cases = [
        signed,
        _case(
            "sth-sign-empty-tree",
            "sth.sign",
            {**base, "tree_size": 0, "root_hash": tl.EMPTY_ROOT.hex()},
        ),
        _case("sth-sign-rejects-empty-tree-other-root", "sth.sign", {**base, "tree_size": 0}),
        _case("sth-sign-rejects-bad-log-id", "sth.sign", {**base, "log_id": "Platform A"}),
        _case("sth-verify", "sth.verify", {"sth": sth.hex(), "public_key": pk}),
        _case(
            "sth-verify-rejects-other-key", "sth.verify", {"sth": sth.hex(), "public_key": other_pk}
        ),
        _case(
            "sth-verify-rejects-changed-size",
            "sth.verify",
            {"sth": reencoded(tree_size=22), "public_key": pk},
        ),
        _case(
            "sth-verify-rejects-changed-root",
            "sth.verify",
            {"sth": reencoded(root_hash=SYNTH_TREE.root(20)), "public_key": pk},
        ),
        _case(
            "sth-verify-rejects-changed-time",
            "sth.verify",
            {"sth": reencoded(timestamp_ms=T0 + 1), "public_key": pk},
        ),
        _case(
            "sth-verify-rejects-extra-field",
            "sth.verify",
            {"sth": reencoded(extra=1), "public_key": pk},
        ),
        _case(
            "sth-verify-rejects-trailing-byte",
            "sth.verify",
            {"sth": sth.hex() + "00", "public_key": pk},
        ),
        _case(
            "sth-verify-rejects-short-root",
            "sth.verify",
            {"sth": reencoded(root_hash=bytes(31)), "public_key": pk},
        ),
    ]

    def monitor(case_id: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
        return _case(case_id, "sth.monitor", {"log_id": LOG_ID, "public_key": pk, "steps": steps})

    def proof(m: int, n: int, tree: tl.MerkleTree = SYNTH_TREE) -> list[str]:
        return [p.hex() for p in tree.consistency_proof(m, n)]

    forked = tl.MerkleTree.from_entries(
        [bytes.fromhex(x) for x in SYNTH[:7]]
        + [b"rewritten history"]
        + [bytes.fromhex(x) for x in SYNTH[8:]]
    )
    cases += [
        monitor(
            "monitor-append-only",
            [
                {"sth": _sth(3, 0)},
                {"sth": _sth(21, 1), "proof": proof(3, 21)},
                {"sth": _sth(21, 2)},
                {"sth": _sth(70, 3), "proof": proof(21, 70)},
                {"sth": _sth(32, 4), "proof": proof(32, 70), "allow_older": True},
            ],
        ),
        monitor(
            "monitor-fork-same-size",
            [
                {"sth": _sth(21, 0)},
                {"sth": _sth(21, 1, forked.root(21))},
            ],
        ),
        monitor(
            "monitor-fork-no-consistency",
            [
                {"sth": _sth(10, 0)},
                {"sth": _sth(21, 1, forked.root(21)), "proof": proof(10, 21, forked)},
            ],
        ),
        monitor(
            "monitor-fork-gossiped-older-head",
            [
                {"sth": _sth(30, 0)},
                {
                    "sth": _sth(20, 1, forked.root(20)),
                    "proof": proof(20, 30, forked),
                    "allow_older": True,
                },
            ],
        ),
        monitor(
            "monitor-rollback-smaller",
            [
                {"sth": _sth(30, 0)},
                {"sth": _sth(21, 1)},
            ],
        ),
        monitor(
            "monitor-rollback-earlier-time",
            [
                {"sth": _sth(21, 5)},
                {"sth": _sth(30, 4), "proof": proof(21, 30)},
            ],
        ),
        monitor(
            "monitor-rejects-other-signer",
            [
                {"sth": _sth(21, 0)},
                {
                    "sth": tl.sign_tree_head(
                        signing.SigningKey(_seed("another signer")),
                        LOG_ID,
                        30,
                        SYNTH_TREE.root(30),
                        T0 + 1,
                    )
                    .to_bytes()
                    .hex(),
                    "proof": proof(21, 30),
                },
            ],
        ),
    ]
    return cases


def valid_entries() -> list[dict[str, Any]]:
    ident = _seed("match id")[:16]
    return [
        {
            "kind": "index-publication",
            "time_ms": T0,
            "feed": "index.pdq",
            "key_id": _seed("key id")[:8],
            "seq_from": 1,
            "seq_to": 40,
            "digest": _seed("published page"),
            "entries_added": 38,
            "entries_removed": 2,
        },
        {
            "kind": "query-counts",
            "time_ms": T0 + 1,
            "peer": "platform-b",
            "direction": "received",
            "window_start_ms": T0 - 3_600_000,
            "window_ms": 3_600_000,
            "queries": 12,
            "candidates": 30,
        },
        {
            "kind": "evaluation-counts",
            "time_ms": T0 + 2,
            "peer": "platform-b",
            "direction": "received",
            "window_start_ms": T0 - 3_600_000,
            "window_ms": 3_600_000,
            "requests": 12,
            "evaluations": 1152,
        },
        {
            "kind": "match",
            "time_ms": T0 + 3,
            "match_id": ident,
            "peer": "hub.example",
            "role": "querier",
            "item_ref": _seed("item ref")[:16],
            "signal_type": "pdq",
            "band": 31,
        },
        {
            "kind": "decision",
            "time_ms": T0 + 4,
            "decision_id": _seed("decision id")[:16],
            "match_id": ident,
            "outcome": "actioned",
            "decided_by": "policy",
            "policy": "auto-exact",
        },
        {
            "kind": "feedback",
            "time_ms": T0 + 5,
            "feedback_id": _seed("feedback id")[:16],
            "peer": "hub.example",
            "direction": "sent",
            "item_ref": _seed("item ref")[:16],
            "opinion": "dispute",
        },
        {
            "kind": "appeal",
            "time_ms": T0 + 6,
            "appeal_id": _seed("appeal id")[:16],
            "decision_id": _seed("decision id")[:16],
            "status": "decision-overturned",
        },
        {
            "kind": "roster",
            "time_ms": T0 + 7,
            "roster_version": 3,
            "roster_digest": _seed("roster v3"),
            "members": 5,
        },
        {
            "kind": "key-rotation",
            "time_ms": T0 + 8,
            "key_type": "voprf",
            "old_key_id": _seed("key id")[:8],
            "new_key_id": _seed("new key id")[:8],
            "overlap_ms": 604_800_000,
        },
        {
            "kind": "uploader-signal",
            "time_ms": T0 + 9,
            "publication": _seed("uploader publication")[:16],
            "peer": "platform-b",
            "direction": "received",
            "action": "publish",
        },
        {
            "kind": "uploader-evaluation-counts",
            "time_ms": T0 + 10,
            "peer": "platform-b",
            "direction": "received",
            "stage": "holder",
            "window_start_ms": T0,
            "window_ms": 3_600_000,
            "requests": 2,
            "evaluations": 3,
        },
    ]


def entry_cases() -> list[dict[str, Any]]:
    entries = valid_entries()
    cases = [
        _case(f"entry-{e['kind']}", "log.encode_entry", {"entry": _hex_json(e)}) for e in entries
    ]
    match = entries[3]

    def refused(case_id: str, entry: dict[str, Any]) -> dict[str, Any]:
        return _case(f"entry-rejects-{case_id}", "log.encode_entry", {"entry": _hex_json(entry)})

    cases += [
        refused(
            "pdq-field",
            {**match, "pdq": "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"},
        ),
        refused("hash-field", {**match, "hash": _seed("a perceptual hash")}),
        refused("image-field", {**match, "image": b"\x89PNG\r\n\x1a\n"}),
        refused("long-item-ref", {**match, "item_ref": _seed("a perceptual hash")}),
        refused("unknown-signal-type", {**match, "signal_type": "photodna"}),
        refused("band-over-128", {**match, "band": 129}),
        refused("unknown-kind", {**match, "kind": "hash-upload"}),
        refused("missing-field", {k: v for k, v in match.items() if k != "peer"}),
        refused("short-digest", {**entries[0], "digest": _seed("published page")[:31]}),
        refused("seq-order", {**entries[0], "seq_from": 41}),
        refused("same-key-rotated", {**entries[8], "new_key_id": entries[8]["old_key_id"]}),
    ]
    data = tl.encode_entry(match)
    cases += [
        _case("decode-entry", "log.decode_entry", {"entry": data.hex()}),
        _case(
            "decode-entry-rejects-trailing-byte", "log.decode_entry", {"entry": data.hex() + "00"}
        ),
        _case(
            "decode-entry-rejects-extra-field",
            "log.decode_entry",
            {"entry": canonical.encode({**match, "pdq": _seed("a perceptual hash")}).hex()},
        ),
    ]
    return cases


def audit_cases() -> list[dict[str, Any]]:
    # The audited log is made of the first nine kinds (the uploader kinds came later; leaving
    # them out keeps this log, and its vectors, as they were).
    base = [e for e in valid_entries() if not e["kind"].startswith("uploader-")]
    entries: list[bytes] = []
    for i in range(12):
        e = dict(base[i % len(base)])
        e["time_ms"] = T0 + i
        entries.append(tl.encode_entry(e))
    tree = tl.MerkleTree.from_entries(entries)
    pk = _key().public_key.hex()

    def sth(size: int, t: int, tree_: tl.MerkleTree = tree) -> str:
        return tl.sign_tree_head(_key(), LOG_ID, size, tree_.root(size), T0 + t).to_bytes().hex()

    hexes = [e.hex() for e in entries]
    ok = {"entries": hexes, "sth": sth(12, 100), "public_key": pk}
    ref = {"$ref": "audit-ok/input/entries"}
    unparsable = list(hexes)
    unparsable[5] = bytes([entries[5][0] ^ 1]).hex() + hexes[5][2:]
    forged_entry = dict(tl.decode_entry(entries[9]))  # an index publication
    forged_entry["digest"] = _seed("another page")
    forged = list(hexes)
    forged[9] = tl.encode_entry(forged_entry).hex()
    leaf_hashes = [tree.leaf_hash_at(i).hex() for i in range(12)]
    smuggled = [*entries, canonical.encode({**base[3], "pdq": _seed("a perceptual hash")})]
    smuggled_tree = tl.MerkleTree.from_entries(smuggled)
    fork_tree = tl.MerkleTree.from_entries([b"x"] * 8)
    return [
        _case("audit-ok", "log.audit", {**ok, "earlier_heads": [sth(4, 10), sth(9, 20)]}),
        _case("audit-ok-with-unsigned-tail", "log.audit", {**ok, "entries": [*hexes, "00"]}),
        _case("audit-rejects-unparsable-entry", "log.audit", {**ok, "entries": unparsable}),
        _case("audit-rejects-forged-entry", "log.audit", {**ok, "entries": forged}),
        _case(
            "audit-rejects-forged-entry-stored-hashes",
            "log.audit",
            {**ok, "entries": forged, "leaf_hashes": leaf_hashes},
        ),
        _case(
            "audit-rejects-reordered",
            "log.audit",
            {**ok, "entries": [*hexes[:3], hexes[4], hexes[3], *hexes[5:]]},
        ),
        _case("audit-rejects-truncated", "log.audit", {**ok, "entries": hexes[:11]}),
        _case(
            "audit-rejects-other-key",
            "log.audit",
            {
                **ok,
                "entries": ref,
                "public_key": signing.SigningKey(_seed("another signer")).public_key.hex(),
            },
        ),
        _case(
            "audit-rejects-forked-earlier-head",
            "log.audit",
            {**ok, "entries": ref, "earlier_heads": [sth(8, 10, fork_tree)]},
        ),
        _case(
            "audit-rejects-signed-forbidden-entry",
            "log.audit",
            {
                "entries": [e.hex() for e in smuggled],
                "sth": sth(13, 100, smuggled_tree),
                "public_key": pk,
            },
        ),
    ]


def generate() -> dict[str, object]:
    _INPUTS.clear()
    return {
        "transparency.json": {
            "name": "Verifiable log (RFC 9162 Merkle tree, signed tree heads, entries, audits)",
            "spec": "specs/transparency.md",
            "version": 1,
            "cases": merkle_cases() + tree_head_cases() + entry_cases() + audit_cases(),
        }
    }
