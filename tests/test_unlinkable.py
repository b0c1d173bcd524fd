"""Issue 13, spec 8.5: what a querier receives for bucket hits does not link them, and a bucket
hit carries no item metadata; the release is readable only after the threshold test says
HD <= T."""

from __future__ import annotations

import os

import numpy as np

from blindmatch.crypto import oprf, sodium
from blindmatch.crypto import release as sealed_release
from blindmatch.crypto import threshold as th
from blindmatch.protocol import index, matching
from blindmatch.protocol.lsh import PDQ_LSH_1
from blindmatch.protocol.roster import voprf_key_id

SCHEME = PDQ_LSH_1
SECRET_LABEL = "secret-category-label"
BANDS = (8, 16, 31)


class Holder:
    def __init__(self, hashes: list[bytes]) -> None:
        self.key = oprf.generate_key_pair()
        self.key_id = voprf_key_id(self.key.pk)
        self.items = {os.urandom(16): h for h in hashes}
        self.refs = index.HolderReferences(self.key, self.key_id)
        self.entries = {
            ref: self.refs.publish(ref, SCHEME.index_keys(h)) for ref, h in self.items.items()
        }
        # the release scalars' key (8.5): every answer about one item to one query shares M
        self.scalar_key = sealed_release.scalar_key(index.reference_key(self.key.sk))

    def answer(self, request: dict) -> dict:
        items: dict[bytes, matching.HolderItem | None] = {}
        for c in request["items"]:
            ref = self.refs.resolve(c)
            items[c] = (
                None
                if ref is None
                else matching.HolderItem(
                    ref, self.items[ref], BANDS, {"categories": [SECRET_LABEL]}
                )
            )
        verified = matching.verify_threshold_query(request)
        return matching.answer_threshold(verified, items, request, BANDS, self.scalar_key)


def candidates_of(holder: Holder, ref: bytes, tables: list[int]) -> list[bytes]:
    """What a querier unmasks from the index after evaluating those tables' buckets of an item
    (the holder's own evaluation stands in for the querier's blinded one: same output)."""
    keys = SCHEME.index_keys(holder.items[ref])
    replica = index.ReplicaIndex(SCHEME.name, holder.key_id)
    replica.add(index.pack_entries(e for es in holder.entries.values() for e in es))
    out = []
    for t in tables:
        (found,) = replica.lookup(oprf.evaluate(holder.key, keys[t], oprf.Mode.VOPRF))
        out.append(found)
    return out


def _bits(b: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(b, dtype=np.uint8))


def test_two_hits_on_one_item_look_like_hits_on_two_items() -> None:
    holder = Holder([os.urandom(32) for _ in range(120)])
    refs = list(holder.items)
    same, different = [], []
    for i in range(0, 120, 2):
        a1, a2 = candidates_of(holder, refs[i], [0, 9])  # one item, two tables
        (b2,) = candidates_of(holder, refs[i + 1], [9])  # another item, table 9
        # the references (past the public tag) of one item in two tables, and of two items
        same.append(int((_bits(a1[8:]) ^ _bits(a2[8:])).sum()))
        different.append(int((_bits(a1[8:]) ^ _bits(b2[8:])).sum()))
        assert a1[8:] != a2[8:]
        assert a1[8:16] != a2[8:16] and a1[16:] != a2[16:]
    # Both relations are those of independent uniform 128-bit strings: mean 64, sd 5.7; a
    # reference that carried the item (as before issue 13) would give 0 for `same`.
    for dist in (same, different):
        assert abs(np.mean(dist) - 64) < 3.5 and 3.5 < np.std(dist) < 8.5
    # the answers: a query that matches neither item, asked about the pair from one item and
    # the pair from two items; every answer is well-formed, none opens, none repeats a point
    key = th.QuerierKey.generate()
    far = os.urandom(32)
    enc = th.encrypt_query(key, far, os.urandom(16))
    a1, a2 = candidates_of(holder, refs[0], [0, 9])
    (b2,) = candidates_of(holder, refs[1], [9])
    for pair in ([a1, a2], [a1, b2]):
        req = {"query": enc.to_bytes(), "items": pair}
        answers = holder.answer(req)["answers"]
        assert [a["item"] for a in answers] == pair
        assert {len(a["response"]) for a in answers} == {1 + 3 + 32 * 64}
        assert {len(a["sealed"]) for a in answers} == {sealed_release.SEALED_BYTES}
        points = [a["response"][4 + 32 * k : 4 + 32 * (k + 1)] for a in answers for k in range(64)]
        assert len(set(points)) == len(points)
        for a in answers:
            resp = th.ThresholdResponse.from_bytes(a["response"])
            assert (
                sealed_release.open_sealed(key, enc.query_id, a["item"], resp, a["sealed"]) is None
            )


def test_a_bucket_hit_carries_no_item_metadata() -> None:
    h = os.urandom(32)
    holder = Holder([h])
    (ref,) = holder.items
    cands = candidates_of(holder, ref, [0, 5, 13])
    # what the index and a candidate show: a tag and a reference, not the item or its label
    for c in cands:
        assert ref[:8] not in c and ref not in c
    # a query that does not match: the answer is {item, response, sealed}, nothing readable
    ex = matching.PeerExchange("hub", holder.key.pk, SCHEME, [matching.QueryHash(os.urandom(32))])
    cache = matching.EncryptionCache(os.urandom)
    ex.candidates = {0: cands}
    (req,) = ex.threshold_requests(cache)
    answer = holder.answer(req)
    for a in answer["answers"]:
        assert set(a) == {"item", "response", "sealed"}
        assert SECRET_LABEL.encode() not in a["sealed"] + a["response"]
    assert ex.on_answer(req, answer, cache) == []
    # the same candidates for a near copy: every candidate's release opens, one confirmation per
    # item, and only now the querier learns item and label
    near = bytearray(h)
    near[0] ^= 0x81
    ex = matching.PeerExchange("hub", holder.key.pk, SCHEME, [matching.QueryHash(bytes(near))])
    ex.candidates = {0: cands}
    (req,) = ex.threshold_requests(cache)
    (conf,) = ex.on_answer(req, holder.answer(req), cache)
    assert conf.item_ref == ref and conf.band == 8
    assert conf.release == {"categories": [SECRET_LABEL]}


def test_a_forged_or_foreign_candidate_resolves_to_nothing() -> None:
    holder = Holder([os.urandom(32)])
    (ref,) = holder.items
    (c,) = candidates_of(holder, ref, [3])
    assert holder.refs.resolve(c) == ref
    assert holder.refs.resolve(c[:8] + os.urandom(16)) is None  # guessed reference
    assert holder.refs.resolve(os.urandom(8) + c[8:]) is None  # another bucket's tag
    other = Holder([holder.items[ref]])  # another key epoch: its references, not these
    assert other.refs.resolve(c) is None


def _decrypted(key: th.QuerierKey, answer: dict) -> list[bytes]:
    """What a querier computes from an answer: P_t = B'_t - sk*A'_t for every t."""
    resp = th.ThresholdResponse.from_bytes(answer["response"])
    return [
        sodium.point_sub(b, sodium.scalarmult(key.sk, a)) for group in resp.groups for a, b in group
    ]


def _run_rounds(holder: Holder, ex: matching.PeerExchange, cache: matching.EncryptionCache):
    """Every round of the exchange against the holder; the answers, round by round."""
    rounds = []
    while batch := ex.next_threshold_requests(cache):
        got = []
        for req in batch:
            answer = holder.answer(req)
            ex.on_answer(req, answer, cache)
            got.append((req, answer))
        rounds.append(got)
    return rounds


def test_a_confirmed_items_other_candidates_are_answered_same_only_after_its_match() -> None:
    h, other = os.urandom(32), os.urandom(32)
    holder = Holder([h, other])
    ref, ref_other = holder.items
    mine = candidates_of(holder, ref, [0, 5, 13, 20])
    (theirs,) = candidates_of(holder, ref_other, [7])
    cands = [mine[0], theirs, *mine[1:]]
    near = bytearray(h)
    near[0] ^= 0x81
    # a near copy: the best candidate first; it matches, and the round after shows its token,
    # so the item's three other candidates come back `same` and only the other item's
    # candidate costs a threshold answer: 2 answers instead of 5, one confirmation
    ex = matching.PeerExchange("hub", holder.key.pk, SCHEME, [matching.QueryHash(bytes(near))])
    cache = matching.EncryptionCache(os.urandom)
    ex.candidates = {0: list(cands)}
    first, second = _run_rounds(holder, ex, cache)
    ((req1, _),) = first
    ((req2, ans2),) = second
    assert req1["items"] == [mine[0]] and "confirmed" not in req1
    assert req2["items"] == cands[1:] and len(req2["confirmed"]) == 1
    assert [set(a) for a in ans2["answers"]] == [{"item", "response", "sealed"}] + [
        {"item", "same"}
    ] * 3
    (conf,) = ex.confirmed
    assert conf.item_ref == ref and conf.band == 8
    # a query that matches nothing: the same two rounds, every answer a full one, none opens
    far = matching.PeerExchange("hub", holder.key.pk, SCHEME, [matching.QueryHash(os.urandom(32))])
    far.candidates = {0: list(cands)}
    exchanged = [pair for got in _run_rounds(holder, far, cache) for pair in got]
    answers = [a for _, ans in exchanged for a in ans["answers"]]
    assert [set(a) for a in answers] == [{"item", "response", "sealed"}] * 5
    assert far.confirmed == [] and not any("confirmed" in req for req, _ in exchanged)
    # ...and the item's four answers share the holder's M (its release scalar), yet what the
    # querier decrypts is no more alike than across items: all 5 x 32 points distinct
    key, _, _ = cache.get(far.queries[0].hash)
    points = [p for a in answers for p in _decrypted(key, a)]
    assert len(set(points)) == len(points)


def test_a_token_links_nothing_outside_its_own_query() -> None:
    h = os.urandom(32)
    holder = Holder([h])
    (ref,) = holder.items
    cands = candidates_of(holder, ref, [0, 9])
    near = bytearray(h)
    near[1] ^= 0x10
    qkey = th.QuerierKey.generate()
    qid = os.urandom(16)
    matched = th.encrypt_query(qkey, bytes(near), qid).to_bytes()
    (a,) = holder.answer({"query": matched, "items": cands[:1]})["answers"]
    opened = sealed_release.open_sealed(
        qkey, qid, cands[0], th.ThresholdResponse.from_bytes(a["response"]), a["sealed"]
    )
    assert opened is not None
    token = opened.token
    # the token works for its own query (the item's other candidate: `same`)...
    (b,) = holder.answer({"query": matched, "items": cands[1:], "confirmed": [token]})["answers"]
    assert b == {"item": cands[1], "same": token}
    # ...but not for another encrypted query, not even of the same key and query id, nor does a
    # guessed token: a full answer, as for any candidate
    for other_hash in (os.urandom(32), bytes(near)):
        other = th.encrypt_query(qkey, other_hash, qid).to_bytes()
        for shown in ([token], [os.urandom(16)]):
            (c,) = holder.answer({"query": other, "items": cands[1:], "confirmed": shown})[
                "answers"
            ]
            assert set(c) == {"item", "response", "sealed"}
