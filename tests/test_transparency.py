"""The verifiable log: RFC 9162 hashing and proofs against a naive reference and the published
RFC 6962 test data, proof verification refusing every corruption, entry schemas refusing
anything hash-shaped, signed tree heads, fork and rollback detection, and tamper audits."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blindmatch.crypto import signing
from blindmatch.protocol import canonical
from blindmatch.protocol import transparency as tl

# --- a naive reference, written from RFC 9162 section 2.1 as directly as possible ----------


def ref_leaf(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def ref_split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return ref_leaf(d[0])
    k = ref_split(n)
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = ref_split(n)
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = ref_split(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_proof(m: int, d: list[bytes]) -> list[bytes]:
    return ref_subproof(m, d, True)


ENTRIES_70 = [hashlib.sha256(b"leaf %d" % i).digest()[: i % 9] for i in range(70)]
TREE_70 = tl.MerkleTree.from_entries(ENTRIES_70)

# RFC 6962 reference data (as published with Certificate Transparency's implementations).
CT_LEAVES = [
    bytes.fromhex(x)
    for x in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION = {
    (0, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (5, 8): [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
}
CT_CONSISTENCY = {
    (2, 8): [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (6, 8): [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 5): [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
}


def test_published_rfc6962_roots_and_proofs() -> None:
    tree = tl.MerkleTree.from_entries(CT_LEAVES)
    assert [tree.root(n).hex() for n in range(9)] == CT_ROOTS
    assert tl.EMPTY_ROOT.hex() == CT_ROOTS[0]
    for (m, n), path in CT_INCLUSION.items():
        assert [p.hex() for p in tree.inclusion_proof(m, n)] == path
        tl.verify_inclusion(ref_leaf(CT_LEAVES[m]), m, n, tree.inclusion_proof(m, n), tree.root(n))
    for (m, n), path in CT_CONSISTENCY.items():
        assert [p.hex() for p in tree.consistency_proof(m, n)] == path
        tl.verify_consistency(m, n, tree.root(m), tree.root(n), tree.consistency_proof(m, n))


def test_roots_and_proofs_equal_the_reference_for_every_size_to_70() -> None:
    for n in range(0, 71):
        d = ENTRIES_70[:n]
        assert TREE_70.root(n) == ref_mth(d), n
        assert tl.merkle_root([ref_leaf(e) for e in d]) == ref_mth(d)
        for m in range(n):
            assert TREE_70.inclusion_proof(m, n) == ref_path(m, d), (m, n)
        for m in range(1, n):
            assert TREE_70.consistency_proof(m, n) == ref_proof(m, d), (m, n)
        assert TREE_70.consistency_proof(0, n) == []
        assert TREE_70.consistency_proof(n, n) == []


def _flipped(h: bytes) -> bytes:
    return bytes([h[0] ^ 1]) + h[1:]


def test_inclusion_verifies_for_every_pair_to_40_and_every_corruption_is_refused() -> None:
    for n in range(1, 41):
        root = TREE_70.root(n)
        for m in range(n):
            leaf = TREE_70.leaf_hash_at(m)
            path = TREE_70.inclusion_proof(m, n)
            tl.verify_inclusion(leaf, m, n, path, root)
            bad: list[tuple[bytes, int, int, list[bytes], bytes]] = [
                (_flipped(leaf), m, n, path, root),
                (leaf, m, n, path, _flipped(root)),
                (leaf, m, n, [*path, root], root),
                (leaf, n, n, path, root),
                # The RFC algorithm binds the size only through the path's shape, so a wrong size
                # is caught by the root: the signed head binds size and root together.
                (leaf, m, n + 1, path, TREE_70.root(n + 1)),
            ]
            if path:
                bad.append((leaf, m, n, path[:-1], root))
            bad += [
                (leaf, m, n, [*path[:i], _flipped(p), *path[i + 1 :]], root)
                for i, p in enumerate(path)
            ]
            if n > 1:
                bad.append((leaf, (m + 1) % n, n, path, root))
            if m > 0:
                bad.append((leaf, m - 1, n, path, root))
            for args in bad:
                with pytest.raises(tl.InclusionError):
                    tl.verify_inclusion(*args)


def test_consistency_verifies_for_every_pair_to_40_and_every_corruption_is_refused() -> None:
    for n in range(0, 41):
        root_n = TREE_70.root(n)
        for m in range(0, n + 1):
            root_m = TREE_70.root(m)
            proof = TREE_70.consistency_proof(m, n)
            tl.verify_consistency(m, n, root_m, root_n, proof)
            bad: list[tuple[int, int, bytes, bytes, list[bytes]]] = [
                (m, n, root_m, root_n, [*proof, root_n]),
            ]
            if m > 0:  # the empty tree precedes every tree, whatever its root
                bad.append((m, n, _flipped(root_m), root_n, proof))
                bad.append((m, n, root_m, _flipped(root_n), proof))
            if proof:
                bad.append((m, n, root_m, root_n, proof[:-1]))
                bad.append((m, n, root_m, root_n, proof[1:]))
            bad += [
                (m, n, root_m, root_n, [*proof[:i], _flipped(p), *proof[i + 1 :]])
                for i, p in enumerate(proof)
            ]
            if 0 < m < n:
                bad.append((n, m, root_n, root_m, proof))  # sizes swapped
                if m + 1 < n:
                    bad.append((m + 1, n, TREE_70.root(m + 1), root_n, proof))
                bad.append((m, n + 1, root_m, TREE_70.root(n + 1), proof))
            for args in bad:
                with pytest.raises(tl.ConsistencyError):
                    tl.verify_consistency(*args)


def test_verifiers_refuse_malformed_arguments_without_other_exceptions() -> None:
    root, leaf = TREE_70.root(5), TREE_70.leaf_hash_at(0)
    path = TREE_70.inclusion_proof(0, 5)
    for args in [
        (leaf[:31], 0, 5, path, root),
        (leaf, -1, 5, path, root),
        (leaf, 0, True, path, root),
        (leaf, 0, 5, [p[:31] for p in path], root),
        (leaf, 0, 5, "not a list", root),
        (leaf, 0, 5, [leaf] * 65, root),
        (leaf, 0, 0, [], tl.EMPTY_ROOT),
    ]:
        with pytest.raises(tl.InclusionError):
            tl.verify_inclusion(*args)
    with pytest.raises(tl.ConsistencyError, match="empty tree"):
        tl.verify_consistency(0, 5, _flipped(tl.EMPTY_ROOT), root, [])
    with pytest.raises(tl.ConsistencyError, match="empty proof"):
        tl.verify_consistency(0, 5, tl.EMPTY_ROOT, root, [root])
    with pytest.raises(tl.ConsistencyError, match="two different roots"):
        tl.verify_consistency(5, 5, root, _flipped(root), [])


def test_tree_refuses_sizes_and_indexes_it_does_not_have() -> None:
    tree = tl.MerkleTree.from_entries(ENTRIES_70[:5])
    with pytest.raises(tl.RangeError):
        tree.root(6)
    with pytest.raises(tl.RangeError):
        tree.inclusion_proof(5)
    with pytest.raises(tl.RangeError):
        tree.inclusion_proof(0, 0)
    with pytest.raises(tl.RangeError):
        tree.consistency_proof(6)
    with pytest.raises(tl.RangeError):
        tree.leaf_hash_at(-1)
    with pytest.raises(ValueError):
        tree.append_leaf_hash(b"short")
    assert tree.append(b"x") == 5 and len(tree) == 6


def test_roots_and_proofs_cost_logarithmic_hashing_in_a_large_tree(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    n = (1 << 17) + 12345
    tree = tl.MerkleTree(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n))
    calls = 0
    real = tl.node_hash

    def counting(left: bytes, right: bytes) -> bytes:
        nonlocal calls
        calls += 1
        return real(left, right)

    monkeypatch.setattr(tl, "node_hash", counting)
    for size in (n, n - 1, 99_999, 65_537):
        for op, args in (
            (tree.root, (size,)),
            (tree.inclusion_proof, (size // 3, size)),
            (tree.consistency_proof, (size // 2 + 7, size)),
        ):
            calls = 0
            op(*args)
            assert calls <= 2 * 18, (op, size, calls)
    calls = 0
    tree.append(b"one more")
    assert calls <= 18


@settings(max_examples=60, deadline=None)
@given(
    entries=st.lists(st.binary(max_size=12), min_size=1, max_size=90),
    data=st.data(),
)
def test_property_incremental_tree_matches_reference_and_proofs_verify(
    entries: list[bytes], data: st.DataObject
) -> None:
    tree = tl.MerkleTree()
    for e in entries:
        tree.append(e)
    n = len(entries)
    assert tree.root() == ref_mth(entries)
    m = data.draw(st.integers(0, n - 1))
    size = data.draw(st.integers(m + 1, n))
    path = tree.inclusion_proof(m, size)
    assert path == ref_path(m, entries[:size])
    tl.verify_inclusion(ref_leaf(entries[m]), m, size, path, ref_mth(entries[:size]))
    first = data.draw(st.integers(0, n))
    proof = tree.consistency_proof(first, n)
    tl.verify_consistency(first, n, tree.root(first), tree.root(), proof)
    # Any single changed byte anywhere in the proof is refused.
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1))
        j = data.draw(st.integers(0, 31))
        bad = bytearray(proof[i])
        bad[j] ^= data.draw(st.integers(1, 255))
        with pytest.raises(tl.ConsistencyError):
            tl.verify_consistency(
                first, n, tree.root(first), tree.root(), [*proof[:i], bytes(bad), *proof[i + 1 :]]
            )


@settings(max_examples=200, deadline=None)
@given(
    leaf=st.binary(min_size=32, max_size=32),
    index=st.integers(0, 70),
    size=st.integers(0, 70),
    path=st.lists(st.binary(min_size=32, max_size=32), max_size=8),
)
def test_property_random_inclusion_proofs_are_refused_cleanly(
    leaf: bytes, index: int, size: int, path: list[bytes]
) -> None:
    with pytest.raises(tl.InclusionError):
        tl.verify_inclusion(leaf, index, size, path, TREE_70.root(min(size, 70)))


@settings(max_examples=200, deadline=None)
@given(
    first=st.integers(0, 70),
    second=st.integers(0, 70),
    proof=st.lists(st.binary(min_size=32, max_size=32), max_size=8),
)
def test_property_random_consistency_proofs_are_refused_cleanly(
    first: int, second: int, proof: list[bytes]
) -> None:
    if first == second or first == 0:
        proof = proof or [b"\x00" * 32]  # the trivial cases accept only the empty proof
    with pytest.raises(tl.ConsistencyError):
        tl.verify_consistency(first, second, TREE_70.root(first), TREE_70.root(second), proof)


# --- entries --------------------------------------------------------------------------------

T0 = 1_767_225_600_000


def valid_entries() -> list[dict[str, Any]]:
    ident = bytes(range(16))
    return [
        {
            "kind": "index-publication",
            "time_ms": T0,
            "feed": "index.pdq",
            "key_id": bytes(8),
            "seq_from": 1,
            "seq_to": 40,
            "digest": hashlib.sha256(b"published page").digest(),
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
            "evaluations": 12 * 96,
        },
        {
            "kind": "match",
            "time_ms": T0 + 3,
            "match_id": ident,
            "peer": "hub.example",
            "role": "querier",
            "item_ref": bytes(16),
            "signal_type": "pdq",
            "band": 31,
        },
        {
            "kind": "decision",
            "time_ms": T0 + 4,
            "decision_id": ident[::-1],
            "match_id": ident,
            "outcome": "actioned",
            "decided_by": "reviewer",
        },
        {
            "kind": "feedback",
            "time_ms": T0 + 5,
            "feedback_id": b"\x07" * 16,
            "peer": "hub.example",
            "direction": "sent",
            "item_ref": bytes(16),
            "opinion": "confirm",
        },
        {
            "kind": "appeal",
            "time_ms": T0 + 6,
            "appeal_id": b"\x08" * 16,
            "decision_id": ident[::-1],
            "status": "decision-overturned",
        },
        {
            "kind": "roster",
            "time_ms": T0 + 7,
            "roster_version": 3,
            "roster_digest": hashlib.sha256(b"roster v3").digest(),
            "members": 5,
        },
        {
            "kind": "key-rotation",
            "time_ms": T0 + 8,
            "key_type": "voprf",
            "old_key_id": b"\x01" * 8,
            "new_key_id": b"\x02" * 8,
            "overlap_ms": 7 * 24 * 3600 * 1000,
        },
        {
            "kind": "uploader-signal",
            "time_ms": T0 + 9,
            "publication": ident,
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


def test_every_kind_has_a_valid_example_that_round_trips() -> None:
    entries = valid_entries()
    assert sorted(e["kind"] for e in entries) == sorted(tl.ENTRY_KINDS)
    for e in entries:
        data = tl.encode_entry(e)
        assert data == canonical.encode(e) and tl.decode_entry(data) == e
        assert len(data) <= tl.MAX_ENTRY_BYTES


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pdq": "f" * 64}, "unexpected field"),
        ({"hash": b"\xab" * 32}, "unexpected field"),
        ({"image": b"\x89PNG"}, "unexpected field"),
        (
            {"signal_type": "pdq-f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"},
            "longer than",
        ),
        ({"signal_type": "md5"}, "must be one of"),
        ({"item_ref": b"\xab" * 32}, "exactly 16 bytes"),
        ({"match_id": "00" * 16}, "must be bytes"),
        ({"band": 129}, "must lie in"),
        ({"peer": "Platform B"}, "does not match"),
        ({"time_ms": -1}, "must lie in"),
        ({"kind": "hash"}, "must be one of"),
    ],
)
def test_match_entries_refuse_anything_hash_shaped(change: dict[str, Any], message: str) -> None:
    entry = {**valid_entries()[3], **change}
    with pytest.raises(tl.EntryError, match=message):
        tl.encode_entry(entry)
    with pytest.raises(tl.EntryError):
        tl.decode_entry(canonical.encode(entry))


def test_entry_field_sets_are_exact_and_cross_checked() -> None:
    for e in valid_entries():
        for name in e:
            if name == "kind" or not tl.ENTRY_SCHEMAS[e["kind"]][name].required:
                continue
            with pytest.raises(tl.EntryError, match="missing"):
                tl.encode_entry({k: v for k, v in e.items() if k != name})
    pub = valid_entries()[0]
    with pytest.raises(tl.EntryError, match="digest"):
        tl.encode_entry({**pub, "digest": pub["digest"][:31]})
    with pytest.raises(tl.EntryError, match="seq_from"):
        tl.encode_entry({**pub, "seq_from": 41})
    with pytest.raises(tl.EntryError, match="feed"):
        tl.encode_entry({**pub, "feed": "a" * 33})
    rot = valid_entries()[8]
    with pytest.raises(tl.EntryError, match="new_key_id"):
        tl.encode_entry({**rot, "new_key_id": rot["old_key_id"]})
    del rot["old_key_id"]
    tl.encode_entry(rot)  # a first key has no predecessor
    decision = valid_entries()[4]
    tl.encode_entry({**decision, "policy": "auto-exact"})
    with pytest.raises(tl.EntryError):
        tl.encode_entry("not a map")


def test_stored_entries_must_be_canonical() -> None:
    data = tl.encode_entry(valid_entries()[1])
    for bad in (data + b"\x00", data[:-1], b"", b"\xc1", b"\x00" * 2000):
        with pytest.raises(tl.EntryError):
            tl.decode_entry(bad)


# --- signed tree heads, forks, rollbacks ----------------------------------------------------

KEY = signing.SigningKey(hashlib.sha256(b"log key").digest())
OTHER_KEY = signing.SigningKey(hashlib.sha256(b"another key").digest())
LOG = "platform-a"


def head(size: int, t: int = 0, key: signing.SigningKey = KEY, root: bytes | None = None) -> bytes:
    r = TREE_70.root(size) if root is None else root
    return tl.sign_tree_head(key, LOG, size, r, T0 + t).to_bytes()


def test_tree_head_signs_and_verifies_and_refuses_tampering() -> None:
    data = head(9, 5)
    sth = tl.verify_tree_head(data, KEY.public_key)
    assert (sth.log_id, sth.tree_size, sth.root_hash, sth.timestamp_ms) == (
        LOG,
        9,
        TREE_70.root(9),
        T0 + 5,
    )
    assert tl.parse_tree_head(data) == sth and sth.to_bytes() == data
    assert canonical.decode(sth.signed_message()) == {
        "log_id": LOG,
        "tree_size": 9,
        "root_hash": TREE_70.root(9),
        "timestamp_ms": T0 + 5,
    }
    with pytest.raises(tl.TreeHeadSignatureError):
        tl.verify_tree_head(data, OTHER_KEY.public_key)
    # The signature is domain separated: an envelope-domain signature over the same bytes fails.
    forged = tl.SignedTreeHead(
        LOG, 9, TREE_70.root(9), T0 + 5, KEY.sign(b"blindmatch-v1 envelope", sth.signed_message())
    )
    with pytest.raises(tl.TreeHeadSignatureError):
        tl.verify_tree_head(forged.to_bytes(), KEY.public_key)
    # Any changed field is caught by the signature; any changed shape by the decoder.
    value = canonical.decode(data)
    for name, new in (("tree_size", 10), ("root_hash", TREE_70.root(10)), ("timestamp_ms", 1)):
        with pytest.raises(tl.TreeHeadSignatureError):
            tl.verify_tree_head(canonical.encode({**value, name: new}), KEY.public_key)
    for bad in (
        canonical.encode({**value, "extra": 1}),
        canonical.encode({k: v for k, v in value.items() if k != "signature"}),
        canonical.encode({**value, "log_id": "UPPER"}),
        canonical.encode({**value, "root_hash": b"\x00" * 31}),
        data + b"\x00",
        b"\x00" * 300,
    ):
        with pytest.raises(tl.TreeHeadError) as info:
            tl.verify_tree_head(bad, KEY.public_key)
        assert type(info.value) is tl.TreeHeadError
    with pytest.raises(tl.TreeHeadError, match="empty tree"):
        tl.sign_tree_head(KEY, LOG, 0, TREE_70.root(1), T0)
    tl.verify_tree_head(head(0), KEY.public_key)


def test_monitor_accepts_an_append_only_log() -> None:
    monitor = tl.TreeHeadMonitor(LOG, KEY.public_key)
    monitor.observe(head(3, 0))
    for old, new in ((3, 10), (10, 10), (10, 33), (33, 64)):
        monitor.observe(head(new, new), TREE_70.consistency_proof(old, new))
    assert monitor.latest is not None and monitor.latest.tree_size == 64
    # A historical head gossiped by someone else is checked against the latest, not adopted.
    monitor.observe(head(20, 20), TREE_70.consistency_proof(20, 64), allow_older=True)
    assert monitor.latest.tree_size == 64 and 20 in monitor.heads
    rebuilt = tl.TreeHeadMonitor(LOG, KEY.public_key, monitor.heads.values())
    assert rebuilt.latest == monitor.latest


def test_monitor_accepts_a_gossiped_copy_of_a_known_size_without_a_proof() -> None:
    monitor = tl.TreeHeadMonitor(LOG, KEY.public_key)
    monitor.observe(head(20, 20))
    monitor.observe(head(40, 40), TREE_70.consistency_proof(20, 40))
    monitor.observe(head(20, 25), allow_older=True)  # re-signed, same tree: nothing to prove
    with pytest.raises(tl.ForkError):
        monitor.observe(head(20, 26, root=TREE_70.root(21)), allow_older=True)


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 70), min_size=2, max_size=6),
    fork_at=st.integers(0, 69),
    data=st.data(),
)
def test_property_monitor_accepts_growth_and_catches_any_rewrite(
    sizes: list[int], fork_at: int, data: st.DataObject
) -> None:
    sizes = sorted(set(sizes))
    monitor = tl.TreeHeadMonitor(LOG, KEY.public_key)
    previous = 0
    for t, size in enumerate(sizes):
        proof = TREE_70.consistency_proof(previous, size) if previous else []
        monitor.observe(head(size, t), proof)
        previous = size
    # A rewrite of any entry the latest head covers cannot be shown consistent with it.
    if fork_at >= previous:
        return
    rewritten = list(ENTRIES_70)
    rewritten[fork_at] = rewritten[fork_at] + b"!"
    other = tl.MerkleTree.from_entries(rewritten)
    bigger = data.draw(st.integers(previous, 70))
    with pytest.raises(tl.ForkError):
        monitor.observe(
            head(bigger, 100, root=other.root(bigger)), other.consistency_proof(previous, bigger)
        )
    assert monitor.latest is not None and monitor.latest.tree_size == previous


@settings(max_examples=100, deadline=None)
@given(
    which=st.integers(0, 8),
    name=st.text(min_size=1, max_size=12),
    value=st.one_of(st.binary(max_size=40), st.text(max_size=70), st.integers(0, 2**40)),
)
def test_property_no_extra_field_is_ever_accepted(which: int, name: str, value: Any) -> None:
    entry = valid_entries()[which]
    if name in entry:
        return
    with pytest.raises(tl.EntryError, match="unexpected field"):
        tl.encode_entry({**entry, name: value})


def test_forked_tree_heads_are_detected_with_both_heads_as_evidence() -> None:
    forked_entries = [*ENTRIES_70[:7], b"rewritten history", *ENTRIES_70[8:]]
    forked = tl.MerkleTree.from_entries(forked_entries)
    monitor = tl.TreeHeadMonitor(LOG, KEY.public_key)
    monitor.observe(head(10, 0))
    # Same size, another root: a fork, whatever the proof.
    with pytest.raises(tl.ForkError, match="two different roots for tree size 10") as info:
        monitor.observe(head(10, 1, root=forked.root(10)))
    evidence = info.value.evidence()
    first = tl.verify_tree_head(bytes.fromhex(evidence["first"]), KEY.public_key)
    second = tl.verify_tree_head(bytes.fromhex(evidence["second"]), KEY.public_key)
    assert first.tree_size == second.tree_size and first.root_hash != second.root_hash
    # A larger head on the forked branch: its own consistency proof cannot connect them.
    with pytest.raises(tl.ForkError, match="not shown to extend") as info2:
        monitor.observe(head(20, 2, root=forked.root(20)), forked.consistency_proof(10, 20))
    assert info2.value.first.tree_size == 10 and info2.value.second.tree_size == 20
    assert monitor.latest is not None and monitor.latest.tree_size == 10  # nothing changed
    # The pair check alone, for gossip between peers.
    a = tl.verify_tree_head(head(10, 0), KEY.public_key)
    b = tl.verify_tree_head(head(10, 1, root=forked.root(10)), KEY.public_key)
    with pytest.raises(tl.ForkError):
        tl.check_heads_consistent(a, b)
    # An older head on the forked branch, offered as gossip, is a fork too.
    monitor.observe(head(30, 3), TREE_70.consistency_proof(10, 30))
    with pytest.raises(tl.ForkError):
        monitor.observe(
            head(20, 4, root=forked.root(20)), forked.consistency_proof(20, 30), allow_older=True
        )


def test_rollbacks_and_foreign_heads_are_refused() -> None:
    monitor = tl.TreeHeadMonitor(LOG, KEY.public_key)
    monitor.observe(head(30, 100))
    with pytest.raises(tl.RollbackError, match="size 12") as info:
        monitor.observe(head(12, 200), [])
    assert info.value.previous.tree_size == 30 and info.value.presented.tree_size == 12
    with pytest.raises(tl.RollbackError):
        monitor.observe(head(30, 50))  # the same tree, re-signed with an earlier time
    with pytest.raises(tl.RollbackError):
        monitor.observe(head(40, 99), TREE_70.consistency_proof(30, 40))
    with pytest.raises(tl.TreeHeadSignatureError):
        monitor.observe(head(40, 101, key=OTHER_KEY), TREE_70.consistency_proof(30, 40))
    other_log = tl.sign_tree_head(KEY, "platform-z", 40, TREE_70.root(40), T0 + 101)
    with pytest.raises(tl.TreeHeadError, match="platform-z"):
        monitor.observe(other_log.to_bytes(), TREE_70.consistency_proof(30, 40))
    assert monitor.latest is not None and monitor.latest.tree_size == 30
    monitor.observe(head(40, 101), TREE_70.consistency_proof(30, 40))


# --- audits ---------------------------------------------------------------------------------


def audit_fixture(n: int = 27) -> tuple[list[bytes], tl.MerkleTree]:
    # the first nine kinds, so entry positions (an index publication at 9, ...) stay put
    base = [e for e in valid_entries() if not e["kind"].startswith("uploader-")]
    entries = []
    for i in range(n):
        e = dict(base[i % len(base)])
        e["time_ms"] = T0 + i
        entries.append(tl.encode_entry(e))
    return entries, tl.MerkleTree.from_entries(entries)


def sth_for(tree: tl.MerkleTree, size: int | None = None, t: int = 1000) -> bytes:
    size = len(tree) if size is None else size
    return tl.sign_tree_head(KEY, LOG, size, tree.root(size), T0 + t).to_bytes()


def test_audit_accepts_an_untouched_log() -> None:
    entries, tree = audit_fixture()
    report = tl.audit_log(
        [*entries, b"unsigned tail"],
        sth_for(tree),
        KEY.public_key,
        earlier_heads=[sth_for(tree, 5, 1), sth_for(tree, 18, 2)],
        leaf_hashes=[tree.leaf_hash_at(i) for i in range(len(tree))],
    )
    assert report.tree_size == 27 and report.entries_after_head == 1
    assert report.kinds["index-publication"] == 3 and sum(report.kinds.values()) == 27
    assert tl.audit_log([], sth_for(tl.MerkleTree()), KEY.public_key).tree_size == 0


def test_audit_names_the_index_of_an_entry_that_no_longer_parses() -> None:
    entries, tree = audit_fixture()
    tampered = list(entries)
    tampered[13] = bytes([tampered[13][0] ^ 0x01]) + tampered[13][1:]  # the map's length
    with pytest.raises(tl.TamperedEntryError, match="entry 13") as info:
        tl.audit_log(tampered, sth_for(tree), KEY.public_key)
    assert info.value.index == 13 and info.value.code == "tampered-entry"


def test_audit_locates_a_well_formed_forgery_as_precisely_as_the_evidence_allows() -> None:
    entries, tree = audit_fixture()
    forged = dict(tl.decode_entry(entries[18]))
    forged["digest"] = hashlib.sha256(b"another page").digest()  # entry 18 is a publication
    tampered = list(entries)
    tampered[18] = tl.encode_entry(forged)
    # With nothing but the signed head: the root differs, somewhere in 0..26.
    with pytest.raises(tl.RootMismatchError, match=r"0\.\.26") as info:
        tl.audit_log(tampered, sth_for(tree), KEY.public_key)
    assert (info.value.lo, info.value.hi) == (0, 27)
    # Earlier signed heads narrow it down.
    earlier = [sth_for(tree, s, s) for s in (4, 16, 20, 25)]
    with pytest.raises(tl.RootMismatchError, match=r"16\.\.19"):
        tl.audit_log(tampered, sth_for(tree), KEY.public_key, earlier_heads=earlier)
    # The node's stored leaf hashes name it.
    stored = [tree.leaf_hash_at(i) for i in range(len(tree))]
    with pytest.raises(tl.TamperedEntryError, match="entry 18") as info2:
        tl.audit_log(tampered, sth_for(tree), KEY.public_key, leaf_hashes=stored)
    assert info2.value.index == 18


def test_audit_reports_truncation_forks_and_signed_forbidden_entries() -> None:
    entries, tree = audit_fixture()
    with pytest.raises(tl.TruncatedLogError):
        tl.audit_log(entries[:-1], sth_for(tree), KEY.public_key)
    with pytest.raises(tl.RootMismatchError):
        tl.audit_log(entries[:10] + entries[11:] + entries[10:11], sth_for(tree), KEY.public_key)
    other = tl.MerkleTree.from_entries([b"x"] * 8)
    fork = tl.sign_tree_head(KEY, LOG, 8, other.root(), T0).to_bytes()
    with pytest.raises(tl.ForkError):
        tl.audit_log(entries, sth_for(tree), KEY.public_key, earlier_heads=[fork])
    # A log that signs a hash-bearing entry is caught even though nothing was tampered with.
    smuggled = canonical.encode({**valid_entries()[3], "pdq": b"\xab" * 32})
    bad_log = [*entries, smuggled]
    bad_tree = tl.MerkleTree.from_entries(bad_log)
    with pytest.raises(tl.EntryError, match="entry 27: the log signed"):
        tl.audit_log(bad_log, sth_for(bad_tree), KEY.public_key)
    with pytest.raises(tl.TreeHeadSignatureError):
        tl.audit_log(entries, sth_for(tree), OTHER_KEY.public_key)


# --- blindmatch audit verify ----------------------------------------------------------------


def test_audit_verify_command_gives_a_clear_verdict(tmp_path: Path) -> None:
    from blindmatch.node.cli import audit as cmd_audit

    entries, tree = audit_fixture()
    log, sth, early = tmp_path / "log.jsonl", tmp_path / "sth.hex", tmp_path / "early.hex"
    log.write_text("".join(json.dumps(e.hex()) + "\n" for e in entries))
    sth.write_text(sth_for(tree).hex() + "\n")
    early.write_text(sth_for(tree, 16, 1).hex())
    out = io.StringIO()
    assert cmd_audit.verify(log, sth, KEY.public_key.hex(), [early], out) == 0
    assert out.getvalue().startswith("OK log platform-a: 27 entries match")

    tampered = list(entries)
    tampered[21] = bytes([tampered[21][0] ^ 1]) + tampered[21][1:]
    rows = [
        {"entry": e.hex(), "leaf_hash": tree.leaf_hash_at(i).hex()} for i, e in enumerate(tampered)
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = io.StringIO()
    assert cmd_audit.verify(log, sth, KEY.public_key.hex(), [], out) == 1
    assert out.getvalue().startswith("FAIL [tampered-entry] entry 21:")

    log.write_text("".join(json.dumps(e.hex()) + "\n" for e in entries))
    forked = tl.MerkleTree.from_entries([b"x"] * 16)
    early.write_text(tl.sign_tree_head(KEY, LOG, 16, forked.root(), T0).to_bytes().hex())
    out = io.StringIO()
    assert cmd_audit.verify(log, sth, KEY.public_key.hex(), [early], out) == 1
    assert "FAIL [fork]" in out.getvalue() and "evidence:" in out.getvalue()

    log.write_text("not json\n")
    out = io.StringIO()
    assert cmd_audit.verify(log, sth, KEY.public_key.hex(), [], out) == 2

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "blindmatch",
            "audit",
            "verify",
            "--log",
            str(log),
            "--sth",
            str(sth),
            "--key",
            KEY.public_key.hex(),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "cannot read" in result.stdout
