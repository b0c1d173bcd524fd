"""The matching exchange as plain function calls: blinded index, VOPRF round, candidates,
private confirmation; and the querier's refusals of a misbehaving holder."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest

from blindmatch.crypto import oprf
from blindmatch.protocol import index, matching
from blindmatch.protocol.lsh import PDQ_LSH_1
from blindmatch.protocol.roster import voprf_key_id

SCHEME = PDQ_LSH_1


def flip(h: bytes, positions) -> bytes:
    out = bytearray(h)
    for i in positions:
        out[i >> 3] ^= 0x80 >> (i & 7)
    return bytes(out)


class Holder:
    def __init__(self, hashes: list[bytes]) -> None:
        self.key = oprf.generate_key_pair()
        self.key_id = voprf_key_id(self.key.pk)
        self.items = {os.urandom(16): h for h in hashes}
        self.refs = index.HolderReferences(self.key, self.key_id)
        entries = [
            e for ref, h in self.items.items() for e in self.refs.publish(ref, SCHEME.index_keys(h))
        ]
        self.published = index.pack_entries(entries)
        self.withdrawn: set[bytes] = set()

    def holder_items(self, request: dict) -> dict[bytes, matching.HolderItem | None]:
        out: dict[bytes, matching.HolderItem | None] = {}
        for candidate in request["items"]:
            ref = self.refs.resolve(candidate)
            out[candidate] = (
                None
                if ref is None or ref in self.withdrawn
                else matching.HolderItem(
                    ref, self.items[ref], (8, 16, 31), {"provenance": "survivor-submitted"}
                )
            )
        return out

    def answer(self, request: dict) -> dict:
        verified = matching.verify_threshold_query(request)
        return matching.answer_threshold(verified, self.holder_items(request), request, (8, 16, 31))


def run_exchange(holder: Holder, queries: list[matching.QueryHash]):
    replica = index.ReplicaIndex(SCHEME.name, holder.key_id)
    replica.add(holder.published)
    ex = matching.PeerExchange("hub", holder.key.pk, SCHEME, queries)
    request = ex.evaluate_request()
    reply = matching.answer_evaluate(holder.key, holder.key_id, request)
    ex.on_evaluated(reply, replica)
    cache = matching.EncryptionCache(os.urandom)
    for req in ex.threshold_requests(cache):
        ex.on_answer(req, holder.answer(req), cache)
    return ex, cache


def test_near_copies_match_and_unrelated_do_not() -> None:
    rng = random.Random(3)
    originals = [os.urandom(32) for _ in range(20)]
    holder = Holder(originals)
    edited = flip(originals[0], rng.sample(range(256), 6))
    far = flip(originals[1], rng.sample(range(256), 60))
    unrelated = os.urandom(32)
    queries = [matching.QueryHash(h) for h in (edited, far, unrelated)]
    ex, cache = run_exchange(holder, queries)
    assert [(c.query_index, c.band) for c in ex.confirmed] == [(0, 8)]
    ref = ex.confirmed[0].item_ref
    assert holder.items[ref] == originals[0]
    assert ex.confirmed[0].release == {"provenance": "survivor-submitted"}
    # Only query hashes with a candidate were ever encrypted.
    assert len(cache) <= 2


def test_two_query_hashes_of_the_same_bytes_each_get_their_own_answers() -> None:
    """Two variants (or two cells' tiles) can be the same 32 bytes, so their requests carry
    the same encrypted query: each answer is routed by the request it answers, so both query
    hashes are confirmed, and each later round shows its own tokens (answered ``same``)."""
    original = os.urandom(32)
    holder = Holder([original])
    edited = flip(original, random.Random(8).sample(range(256), 5))
    queries = [matching.QueryHash(edited, variant=v) for v in ("original", "flip_h")]
    replica = index.ReplicaIndex(SCHEME.name, holder.key_id)
    replica.add(holder.published)
    ex = matching.PeerExchange("hub", holder.key.pk, SCHEME, queries)
    ex.on_evaluated(
        matching.answer_evaluate(holder.key, holder.key_id, ex.evaluate_request()), replica
    )
    assert len(ex.candidates[0]) > 1 and ex.candidates[0] == ex.candidates[1]
    cache = matching.EncryptionCache(os.urandom)
    rounds, first_tokens = [], {}
    while batch := ex.next_threshold_requests(cache):
        rounds.append(batch)
        for req in batch:
            ex.on_answer(req, holder.answer(req), cache)
        first_tokens = first_tokens or {qi: sorted(t) for qi, t in ex.tokens.items()}
    assert sorted((c.query_index, c.variant) for c in ex.confirmed) == [
        (0, "original"),
        (1, "flip_h"),
    ]
    # the second round asks both query hashes' other candidates, each showing its own token
    assert len(rounds) == 2 and len(rounds[1]) == 2
    assert [r["confirmed"] for r in rounds[1]] == [first_tokens[0], first_tokens[1]]
    assert first_tokens[0] != first_tokens[1]


def test_multiprobe_finds_a_copy_that_no_base_bucket_holds() -> None:
    rng = np.random.default_rng(5)
    floats = rng.normal(size=256)
    bits = (floats > np.median(floats)).astype(np.uint8)
    original = np.packbits(bits).tobytes()
    holder = Holder([original])
    # Flip, in every table, one of the least-certain bits: every base bucket misses.
    uncertain = np.argsort(np.abs(floats - np.median(floats)))
    to_flip = set()
    for positions in SCHEME.table_positions:
        to_flip.add(min(positions, key=lambda p: list(uncertain).index(p)))
    edited = flip(original, sorted(to_flip))
    assert not set(SCHEME.index_keys(edited)) & set(SCHEME.index_keys(original))
    base_only, _ = run_exchange(holder, [matching.QueryHash(edited)])
    probed, _ = run_exchange(holder, [matching.QueryHash(edited, floats)])
    assert base_only.confirmed == []
    assert len(probed.confirmed) == 1 and probed.confirmed[0].band <= 31


def test_querier_refuses_a_proof_under_another_key() -> None:
    holder = Holder([os.urandom(32)])
    replica = index.ReplicaIndex(SCHEME.name, holder.key_id)
    ex = matching.PeerExchange("hub", holder.key.pk, SCHEME, [matching.QueryHash(os.urandom(32))])
    request = ex.evaluate_request()
    impostor = oprf.generate_key_pair()
    reply = matching.answer_evaluate(impostor, holder.key_id, request)
    with pytest.raises(matching.ExchangeError, match="bad-proof"):
        ex.on_evaluated(reply, replica)
    short = {**matching.answer_evaluate(holder.key, holder.key_id, request)}
    short["elements"] = short["elements"][:-1]
    with pytest.raises(matching.ExchangeError, match="different number"):
        ex.on_evaluated(short, replica)


def test_holder_refuses_unknown_key_id_and_leaves_out_withdrawn_items() -> None:
    h = os.urandom(32)
    holder = Holder([h])
    ex = matching.PeerExchange("hub", holder.key.pk, SCHEME, [matching.QueryHash(h)])
    request = ex.evaluate_request()
    with pytest.raises(matching.ExchangeError, match="not-allowed"):
        matching.answer_evaluate(holder.key, b"\x00" * 8, request)
    replica = index.ReplicaIndex(SCHEME.name, holder.key_id)
    replica.add(holder.published)
    ex.on_evaluated(matching.answer_evaluate(holder.key, holder.key_id, request), replica)
    cache = matching.EncryptionCache(os.urandom)
    (req,) = ex.threshold_requests(cache)
    holder.withdrawn = set(holder.items)
    answer = holder.answer(req)
    # a withdrawn item is answered like any item that does not match: a decoy per candidate
    assert [a["item"] for a in answer["answers"]] == req["items"]
    assert ex.on_answer(req, answer, cache) == []


def test_replica_index_adds_and_removes_idempotently() -> None:
    holder = Holder([os.urandom(32), os.urandom(32)])
    replica = index.ReplicaIndex(SCHEME.name, holder.key_id)
    replica.add(holder.published)
    total = replica.entries
    assert total == 2 * SCHEME.tables
    replica.remove(holder.published)
    assert replica.entries == 0
    replica.remove(holder.published)  # removing again changes nothing
    assert replica.entries == 0
    with pytest.raises(index.IndexFormatError):
        replica.add(holder.published[:-1])


def test_replica_index_is_compact_and_exact_at_scale() -> None:
    rng = np.random.default_rng(9)
    replica = index.ReplicaIndex(SCHEME.name, b"k" * 8)
    deltas = [rng.bytes(24 * 20_000) for _ in range(5)]
    for d in deltas:
        replica.add(d)
    assert replica.entries == 100_000
    assert replica.nbytes <= 48 * replica.entries  # vs ~358 B/entry as Python dicts
    replica.remove(deltas[2])
    assert replica.entries == 80_000
    # A removed entry is gone; a kept one is found, unmasked with its OPRF output's mask.
    kept = deltas[0][:24]
    output = kept[:8] + bytes(16) + bytes(40)  # a zero mask: the ref reads back as stored
    assert kept in replica.lookup(output)  # the candidate: tag || reference
    assert deltas[2][:24] not in replica.lookup(deltas[2][:8] + bytes(56))


def test_batch_lookup_equals_the_scalar_lookup() -> None:
    """``lookup_many`` answers exactly as ``lookup`` one output at a time: shared tags (items in
    one bucket), entries added twice, removed entries, misses, an empty replica."""
    rng = np.random.default_rng(17)
    replica = index.ReplicaIndex(SCHEME.name, b"k" * 8)
    outputs = [rng.bytes(64) for _ in range(300)]
    assert replica.lookup_many(outputs[:5]) == [[], [], [], [], []]
    packed = []
    for i, out in enumerate(outputs[:200]):
        for _ in range(1 + i % 3):  # up to three items in one bucket
            packed.append(index.make_entry(out, rng.bytes(16)))
    replica.add(b"".join(packed))
    replica.add(b"".join(packed[::7]))  # some entries twice: a multiset
    replica.add(rng.bytes(24 * 5000))  # unrelated entries
    replica.remove(b"".join(packed[::5]))  # removed once: gone unless added twice
    replica.remove(b"".join(e for i, e in enumerate(packed) if i % 35 == 0))  # and again
    queries = outputs + outputs[:50]  # hits, misses, repeats; tags sharing bucket neighbours
    queries.append(outputs[3][:8] + rng.bytes(56))  # a known tag under another mask
    batch = replica.lookup_many(queries)
    assert batch == [replica.lookup(q) for q in queries]
    assert sum(map(len, batch)) > 200 and any(len(b) >= 2 for b in batch)
    assert replica.lookup_many([]) == []


def test_replica_index_merges_without_doubling_its_memory() -> None:
    """A sync of many deltas: the replica's peak memory stays under 1.5x its steady size (no
    merge holds a second copy), and a lookup right after the last delta merges nothing."""
    import tracemalloc

    rng = np.random.default_rng(23)
    replica = index.ReplicaIndex(SCHEME.name, b"k" * 8)
    deltas = [rng.bytes(24 * 40_000) for _ in range(40)]  # 1.6M entries, a 67k-hash peer
    tracemalloc.start()
    for d in deltas[:-1]:
        replica.add(d)
    tracemalloc.reset_peak()
    steady_before = replica.nbytes
    replica.add(deltas[-1])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert replica.entries == 40 * 40_000
    assert replica.nbytes <= 26 * replica.entries
    assert replica.runs <= 8
    # The peak while one more delta is merged in (here every run merges into one), against
    # the replica it ends as; the delta's own decoding costs a few times its size on top.
    assert peak <= 1.5 * replica.nbytes + 4 * len(deltas[-1]), (peak, steady_before)
    # A removal listing an entry twice takes two counts, never more than there are.
    once = deltas[5][:24]
    replica.remove(once + once)
    assert replica.entries == 40 * 40_000 - 1
    replica.add(once)
    assert replica.entries == 40 * 40_000
    assert replica.lookup(once[:8] + bytes(56)) == [once]  # the candidate: tag || reference
