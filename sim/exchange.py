"""The matching exchange, in the two crypto modes.

*Modelled*: each primitive is replaced by its ideal functionality. The VOPRF plus the blinded
index answer "is this bucket key in holder h's index, and which items are there?" for exactly the
buckets the querier asked for, which is what a join of probe keys against the holder's bucket
keys computes (the index's 8-byte tags are a keyed PRF of the bucket key, injective up to 2^-64
collisions, so the join on keys gives the same candidates as a join on tags). The threshold test
releases the band of the plaintext Hamming distance (or nothing beyond d > T). Every step is
charged the CPU time measured by the crypto benchmark (``bench/results/crypto.json``).

*Exact*: the real sans-I/O code of ``protocol/matching.py`` (``PeerExchange``,
``answer_evaluate``, ``verify_threshold_query``, ``answer_threshold``) with the real primitives,
holders publishing real blinded indexes (``protocol/index.py``), asking the threshold test the
way the node does (``next_threshold_requests``: rounds with tokens, later rounds naming the
query by digest, the holder keeping the queries it verified; protocol.md 7.3, 8.5, 10.5) or,
for comparison, every candidate at once with the whole query.

Both modes use the scheme's own probe derivation (``BitSamplingScheme.probes``), so they ask for
the same buckets and make the same matches; ``tests/test_sim.py`` checks it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from blindmatch.crypto import oprf, release
from blindmatch.crypto import threshold as th
from blindmatch.protocol import matching
from blindmatch.protocol.index import (
    HolderReferences,
    ReplicaIndex,
    pack_entries,
    reference_key,
)
from blindmatch.protocol.lsh import P_FLOOR, P_MAX, P_SCALE, X_SCALE, BitSamplingScheme, bit_costs

CRYPTO_RESULTS = Path(__file__).resolve().parent.parent / "bench" / "results" / "crypto.json"

# Per-step CPU seconds, used when bench/results/crypto.json is absent (an installed package).
# Values: the medians measured on the development machine (2 cores, libsodium).
DEFAULT_COSTS = {
    "blind": 8.26e-05,  # querier, per probe
    "evaluate": 1.447e-04,  # holder, per probe, batched, one DLEQ proof
    "finalize": 2.453e-04,  # querier, per probe, proof verified
    "index_evaluate": 7.0e-05,  # holder, per index entry (map + var scalarmult + hash)
    "encrypt": 4.20e-02,  # querier, per query hash with candidates
    "verify": 1.244e-01,  # holder, per query hash: the 256 bit proofs
    "sums": 3.46e-02,  # holder, per query hash: per-query subset sums (built at first answer)
    "answer": 1.039e-02,  # holder, per candidate
    "decide": 2.08e-03,  # querier, per candidate
    "same": 1.88e-05,  # holder, per candidate answered ``same`` (its item's release point)
}

_STEP_NAMES = {
    "VOPRF client Blind": "blind",
    "VOPRF BlindEvaluate, batched, one DLEQ proof": "evaluate",
    "VOPRF client Finalize (verifies the batch proof)": "finalize",
    "Threshold: querier encrypts + proves 256 bits (once per query hash)": "encrypt",
    "Threshold: holder answers one candidate (T = 31)": "answer",
    "Threshold: querier decides one candidate (T = 31)": "decide",
}


def calibrated_costs(path: Path = CRYPTO_RESULTS) -> dict[str, float]:
    """CPU seconds per step from the crypto benchmark's results file (medians per step; the
    index evaluation is priced from the per-operation floors: one map and one scalarmult)."""
    costs = dict(DEFAULT_COSTS)
    if not path.exists():
        return costs
    data = json.loads(path.read_text())
    steps = {s["step"]: s["median_s"] for s in data.get("steps", [])}
    for step, name in _STEP_NAMES.items():
        if step in steps:
            costs[name] = float(steps[step])

    def first(prefix: str) -> float | None:
        found = [v for k, v in steps.items() if k.startswith(prefix)]
        return float(found[0]) if found else None

    verify = first("Threshold: holder verifies")
    if verify is not None:
        costs["verify"] = verify
    # The holder's answer: newer results price a query's first candidate and each further one
    # (the per-query work is done at the first); older ones price per-query sums + a candidate.
    first_candidate = first("Threshold: holder answers a query's first candidate")
    further = first("Threshold: holder answers a further candidate")
    sums = first("Threshold: holder builds")
    if first_candidate is not None and further is not None:
        costs["sums"] = max(first_candidate - further, 0.0)
        costs["answer"] = further
    elif sums is not None:
        costs["sums"] = sums
    floor = data.get("floor_s", {})
    if "map" in floor and "var" in floor:
        costs["index_evaluate"] = float(floor["map"] + floor["var"] + floor.get("valid", 0.0))
    # A candidate answered ``same`` (8.5) costs the holder its item's release point M = mu*G
    # (one fixed-base multiplication) to recognise the token; the HMAC behind mu is not priced.
    if "base" in floor:
        costs["same"] = float(floor["base"])
    return costs


# Wire sizes (bytes), protocol.md sections 6-7: an envelope carries a signature, sender, type,
# timestamp, nonce and id around the body.
ENVELOPE_OVERHEAD = 180
ELEMENT = 32
QUERY_BYTES = 49_200
CANDIDATE = 24  # a named candidate: tag || table reference (7.3, 8.5)
SEALED = 272  # the sealed release of every answer (7.4, 8.5)
QUERY_REF = 32  # a later round names the encrypted query by its SHA-256 (query_ref, 7.3)
TOKEN = 16  # a confirmation token shown in ``confirmed`` (8.5)
SAME_ANSWER = CANDIDATE + TOKEN + 12  # ``{item, same}`` in a msgpack map


def response_bytes(bands: int, threshold: int) -> int:
    return 1 + bands + 64 * (threshold + 1)


def answer_bytes(bands: int, threshold: int) -> int:
    """One entry of ``threshold.answer`` (7.4): the candidate, the response and the sealed
    release in a msgpack map (30 bytes of keys and headers)."""
    return CANDIDATE + response_bytes(bands, threshold) + SEALED + 30


# --- probes ----------------------------------------------------------------------------------


def probe_arrays(
    scheme: BitSamplingScheme, hashes: np.ndarray, floats: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(owner row, table, sampled-bits key) for every probe of every hash, in probe order."""
    owner, table, key = [], [], []
    shift = 32 - scheme.bits_per_table
    for row in range(len(hashes)):
        probes = scheme.probes(hashes[row].tobytes(), floats[row])
        owner.append(np.full(len(probes), row, dtype=np.int64))
        table.append(np.fromiter((p.table for p in probes), np.int64, len(probes)))
        key.append(
            np.fromiter(
                (int.from_bytes(p.key[-4:], "big") >> shift for p in probes), np.int64, len(probes)
            )
        )
    if not owner:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    return np.concatenate(owner), np.concatenate(table), np.concatenate(key)


def bucket_keys(scheme: BitSamplingScheme, hashes: np.ndarray) -> np.ndarray:
    """(n, L) uint32: each table's sampled bits as one integer (the plaintext of the bucket
    key), computed as one exact float64 matrix product per chunk (values < 2^32)."""
    weights = np.zeros((256, scheme.tables))
    for t, pos in enumerate(scheme.table_positions):
        weights[list(pos), t] = 2.0 ** np.arange(len(pos) - 1, -1, -1)
    out = np.empty((len(hashes), scheme.tables), dtype=np.uint32)
    for start in range(0, len(hashes), 100_000):
        bits = np.unpackbits(hashes[start : start + 100_000], axis=1).astype(np.float64)
        out[start : start + 100_000] = bits @ weights
    return out


@dataclass
class GlobalIndex:
    """Every item's bucket key per table, sorted per table: the ideal OPRF+index lookup."""

    keys: list[np.ndarray]  # per table: sorted uint32 keys
    items: list[np.ndarray]  # per table: item ids in the same order

    @classmethod
    def build(cls, scheme: BitSamplingScheme, item_hash: np.ndarray) -> GlobalIndex:
        if scheme.tables > 63 or scheme.bits_per_table > 32:
            raise ValueError("the simulator needs <= 63 tables of <= 32 bits")
        keys_all = bucket_keys(scheme, item_hash)
        keys, items = [], []
        for t in range(scheme.tables):
            order = np.argsort(keys_all[:, t], kind="stable")
            keys.append(keys_all[order, t])
            items.append(order.astype(np.int32 if len(order) < 2**31 else np.int64))
        return cls(keys, items)

    def join(
        self, owner: np.ndarray, table: np.ndarray, key: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(owner, item, tables hit as a bit mask) for every (owner, item) pair sharing a bucket."""
        o, i, mask, _ = self.join_ranked(owner, table, key)
        return o, i, mask

    def join_ranked(
        self, owner: np.ndarray, table: np.ndarray, key: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`join` and, per pair, the position of the first probe that hit it (probes in
        order: the pair whose first hit comes first is its owner's best candidate)."""
        pair_owner, pair_item, pair_table, pair_probe = [], [], [], []
        for t in range(len(self.keys)):
            sel = table == t
            if not sel.any():
                continue
            k = key[sel].astype(np.uint32)
            lo = np.searchsorted(self.keys[t], k, "left")
            hi = np.searchsorted(self.keys[t], k, "right")
            n = hi - lo
            if not n.any():
                continue
            rep_owner = np.repeat(owner[sel], n)
            starts = np.repeat(lo - np.concatenate([[0], np.cumsum(n)[:-1]]), n)
            pos = starts + np.arange(int(n.sum()))
            pair_owner.append(rep_owner)
            pair_item.append(self.items[t][pos].astype(np.int64))
            pair_table.append(np.full(len(pos), t))
            pair_probe.append(np.repeat(np.flatnonzero(sel), n))
        if not pair_owner:
            z = np.zeros(0, np.int64)
            return z, z, z, z
        o = np.concatenate(pair_owner)
        i = np.concatenate(pair_item)
        tables = np.concatenate(pair_table)
        pairs, inverse = np.unique(np.stack([o, i], axis=1), axis=0, return_inverse=True)
        inverse = inverse.ravel()
        mask = np.zeros(len(pairs), dtype=np.int64)
        np.bitwise_or.at(mask, inverse, np.left_shift(1, tables).astype(np.int64))
        first = np.full(len(pairs), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, inverse, np.concatenate(pair_probe))
        return pairs[:, 0], pairs[:, 1], mask, first


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.bitwise_count(np.bitwise_xor(a, b)).sum(axis=-1, dtype=np.int64)


def band_of(d: np.ndarray, bands: list[int]) -> np.ndarray:
    """The band bound that holds each distance, or -1 for d > T (what the querier learns)."""
    b = np.asarray(bands)
    idx = np.searchsorted(b, d, "left")
    return np.where(idx < len(b), b[np.minimum(idx, len(b) - 1)], -1)


# --- exact mode --------------------------------------------------------------------------------


def item_ref(item: int) -> bytes:
    return int(item).to_bytes(16, "big")


@dataclass
class ExactHolder:
    """A holder with a real VOPRF key and a real blinded index of every item it ever banks."""

    key: oprf.ServerKey
    key_id: bytes
    replica_entries: bytes  # packed index entries (what its index feed carries)
    refs: HolderReferences  # resolves the candidates queriers name (spec 8.5)
    scalar_key: bytes  # its release scalars' key: a confirmed item's other candidates (8.5)
    cpu: dict[str, float] = field(default_factory=dict)

    @classmethod
    def build(cls, scheme: BitSamplingScheme, items: np.ndarray, hashes: np.ndarray) -> ExactHolder:
        key = oprf.generate_key_pair()
        key_id = matching.PeerExchange("", key.pk, scheme, []).key_id
        started = time.process_time()
        refs = HolderReferences(key, key_id)
        entries = []
        for item, h in zip(items, hashes, strict=True):
            entries += refs.publish(item_ref(int(item)), scheme.index_keys(h.tobytes()))
        scalar_key = release.scalar_key(reference_key(key.sk))
        holder = cls(key, key_id, pack_entries(entries), refs, scalar_key)
        holder.cpu["index_evaluate"] = time.process_time() - started
        return holder

    def replica(self, scheme: BitSamplingScheme) -> ReplicaIndex:
        r = ReplicaIndex(scheme.name, self.key_id)
        r.add(self.replica_entries)
        return r


@dataclass
class ExactResult:
    candidates: list[tuple[int, int]]  # (upload, item)
    matches: list[tuple[int, int, int]]  # (upload, item, band)
    answers: int = 0  # full threshold answers the holder gave
    same: int = 0  # candidates it answered ``same`` (a token shown, 8.5)
    rounds: int = 0  # rounds of threshold queries


def exact_exchange(
    scheme: BitSamplingScheme,
    holder: ExactHolder,
    replica: ReplicaIndex,
    uploads: np.ndarray,
    hashes: np.ndarray,
    floats: np.ndarray,
    replicated: Callable[[int], bool],
    active: Callable[[int, int], bool],
    item_hash: Callable[[int], bytes],
    bands: tuple[int, ...],
    encryptions: matching.EncryptionCache,
    cpu: dict[str, float],
    rounds: bool = True,
) -> ExactResult:
    """One querier-holder exchange for a batch of uploads with the real protocol code.

    ``replicated(item)``: the item's index entries had reached the querier's replica when it
    looked up; ``active(item, round)``: the holder still holds the item when it answers that
    round (0, 1; a withdrawn one is answered as a decoy, as ``answer_threshold`` does). A
    candidate is a bucket hit (one per table that hit, 8.5); the result lists each (upload,
    item) pair once. ``rounds``: ask as the node does (``next_threshold_requests`` with its
    first round of one candidate per query hash, tokens, ``query_ref``; the holder keeps the
    queries it verified and answers with its release scalars' key); else every candidate at
    once, each request carrying the whole query, answered without the key (an older holder).
    """

    def timed(step: str, fn: Callable, *args):
        t0 = time.process_time()
        out = fn(*args)
        cpu[step] = cpu.get(step, 0.0) + time.process_time() - t0
        return out

    queries = [
        matching.QueryHash(hashes[i].tobytes(), floats[i], variant="original")
        for i in range(len(uploads))
    ]
    ex = matching.PeerExchange("holder", holder.key.pk, scheme, queries)
    ex.first_round = 1 if rounds else None
    ex.refer_by_digest = rounds
    request = timed("blind", ex.evaluate_request)
    reply = timed("evaluate", matching.answer_evaluate, holder.key, holder.key_id, request)
    per_query = timed("finalize", ex.on_evaluated, reply, replica)
    # the holder's resolution of each candidate (the simulation reads it to know which item a
    # hit names; the querier itself cannot)
    named: dict[bytes, int] = {}
    for refs in per_query.values():
        for c in refs:
            resolved = holder.refs.resolve(c)
            assert resolved is not None
            named[c] = int.from_bytes(resolved, "big")
    ex.candidates = {
        qi: [c for c in refs if replicated(named[c])] for qi, refs in per_query.items()
    }
    ex.candidates = {qi: refs for qi, refs in ex.candidates.items() if refs}
    candidates = list(
        dict.fromkeys(
            (int(uploads[qi]), named[c]) for qi, refs in sorted(ex.candidates.items()) for c in refs
        )
    )
    for q in ex.candidates:  # made once per query hash (cached), reused for every holder
        timed("encrypt", encryptions.get, queries[q].hash)
    result = ExactResult(candidates, [])
    kept: dict[bytes, th.VerifiedQuery] = {}  # the holder's verified queries, by digest (7.3)
    scalar_key = holder.scalar_key if rounds else None
    while batch := ex.next_threshold_requests(encryptions):
        items: dict[bytes, matching.HolderItem | None] = {
            c: matching.HolderItem(item_ref(item), item_hash(item), bands, {})
            if active(item, result.rounds)
            else None
            for c, item in named.items()
        }
        for request in batch:
            digest = request.get("query_ref") or matching.query_ref(request["query"])
            verified = kept.get(digest)
            if verified is None:
                verified = timed("verify", matching.verify_threshold_query, request)
                kept[digest] = verified
            answer = timed(
                "answer", matching.answer_threshold, verified, items, request, bands, scalar_key
            )
            same = sum("same" in a for a in answer["answers"])
            result.same += same
            result.answers += len(answer["answers"]) - same
            for c in timed("decide", ex.on_answer, request, answer, encryptions):
                result.matches.append(
                    (int(uploads[c.query_index]), int.from_bytes(c.item_ref, "big"), c.band)
                )
        result.rounds += 1
    return result


__all__ = [
    "GlobalIndex",
    "band_of",
    "calibrated_costs",
    "distances",
    "exact_exchange",
    "probe_arrays",
    "th",
]


# --- vectorised probe derivation ----------------------------------------------------------------


def _subsets(m: int, max_flips: int) -> np.ndarray:
    """All subsets of candidate ranks 0..m-1 with at most ``max_flips`` members, as rows of
    ascending ranks padded with ``m`` (a column of zero cost)."""
    from itertools import combinations

    rows: list[tuple[int, ...]] = [()]
    for r in range(1, max_flips + 1):
        rows += list(combinations(range(m), r))
    out = np.full((len(rows), max(max_flips, 1)), m, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def bit_costs_rows(v: np.ndarray, model: str) -> tuple[np.ndarray, np.ndarray]:
    """``protocol.lsh.bit_costs`` for each row of ``v`` (the same elementwise operations)."""
    if model != "logodds":
        flip = np.empty_like(v)
        keep = np.empty_like(v)
        for i in range(len(v)):
            flip[i], keep[i] = bit_costs(v[i], model)
        return flip, keep
    distance = np.abs(v - np.median(v, axis=1, keepdims=True))
    typical = np.median(distance, axis=1, keepdims=True)
    safe = np.where(typical > 0, typical, 1.0)
    x = np.where(typical > 0, distance / safe, 0.0)
    p = np.minimum(P_MAX, P_SCALE * np.exp(-x / X_SCALE) + P_FLOOR)
    return np.log((1 - p) / p), -np.log1p(-p)


def fast_probes(
    scheme: BitSamplingScheme, hashes: np.ndarray, floats: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``probe_arrays`` for many hashes at once: the same probes as ``scheme.probes`` (same
    costs, summed in the same order, same tie-break), computed as arrays.

    The scheme enumerates, per table, subsets of its ``candidate_bits`` cheapest bits with at
    most ``max_flips`` flips, best first across tables, and keeps the ``probe_budget`` cheapest
    by (cost, table, flipped positions). Here every such subset is costed at once and the
    cheapest are selected per hash; tests/test_sim.py checks equality with the scheme's code.
    """
    n = len(hashes)
    if n == 0:
        z = np.zeros(0, np.int64)
        return z, z, z
    L, k, m = scheme.tables, scheme.bits_per_table, scheme.candidate_bits
    budget = scheme.probe_budget
    pos = np.array(scheme.table_positions)  # (L, k), ascending
    flip, keep = bit_costs_rows(np.asarray(floats, dtype=np.float64), scheme.cost_model)
    base_cost = np.cumsum(keep[:, pos], axis=2)[:, :, -1]  # sequential sum, as the scheme does
    table_flip = flip[:, pos]  # (n, L, k)
    rank = np.argsort(table_flip, axis=2, kind="stable")[:, :, :m]  # ties: lower position first
    cand_cost = np.take_along_axis(table_flip, rank, axis=2)  # (n, L, m)
    cand_cost = np.concatenate([cand_cost, np.zeros((n, L, 1))], axis=2)
    cand_slot = np.concatenate([rank, np.full((n, L, 1), -1)], axis=2)  # index into the table
    subsets = _subsets(m, scheme.max_flips)  # (S, f)
    cost = base_cost[:, :, None].copy()
    for j in range(subsets.shape[1]):
        cost = cost + cand_cost[:, :, subsets[:, j]]
    flat = cost.reshape(n, -1)  # (n, L*S): table-major
    kth = np.partition(flat, budget - 1, axis=1)[:, budget - 1 : budget]
    q, e = np.nonzero(flat <= kth)
    t, sidx = np.divmod(e, len(subsets))
    # tie-break code: the flipped hash positions as an ascending tuple
    slots = cand_slot[q[:, None], t[:, None], subsets[sidx]]  # (P, f): -1 = none
    flipped_pos = np.where(slots >= 0, pos[t[:, None], np.maximum(slots, 0)], -1)
    flipped_pos = np.sort(np.where(flipped_pos < 0, 1 << 20, flipped_pos), axis=1)
    flipped_pos = np.where(flipped_pos == 1 << 20, -1, flipped_pos)
    code = np.zeros(len(q), dtype=np.int64)
    for j in range(flipped_pos.shape[1]):
        code = code * 258 + (flipped_pos[:, j] + 1)
    order = np.lexsort((code, t, flat[q, e], q))
    q, t, slots, order_rank = q[order], t[order], slots[order], None
    del order_rank
    first = np.searchsorted(q, np.arange(n))
    within = np.arange(len(q)) - first[q]
    keep_rows = within < budget
    q, t, slots = q[keep_rows], t[keep_rows], slots[keep_rows]
    # the bucket key: the table's sampled bits with the flipped ones xored
    base_keys = bucket_keys(scheme, hashes)  # (n, L)
    key = base_keys[q, t].astype(np.int64)
    for j in range(slots.shape[1]):
        s = slots[:, j]
        key ^= np.where(s >= 0, np.left_shift(1, (k - 1 - np.maximum(s, 0))), 0)
    return q.astype(np.int64), t.astype(np.int64), key
