"""The blinded index: what a holder publishes about its hashes, and how a querier reads it.

For a bucket key ``k`` and the holder's VOPRF key, ``F = Evaluate(skS, k)`` (64 bytes). An index
entry for an item in that bucket is

    entry = F[0:8] || (ref_t XOR F[8:24])        (24 bytes: tag || masked table reference)

where ``ref_t`` is a **table reference** (spec 8.5): ``n || (item[0:8] XOR PRF(Kref, key_id ||
tag || n)[0:8])`` with ``n`` 8 random bytes per entry and ``Kref`` a key only the holder has
(derived from its VOPRF secret, so it changes with the key). Only a party that obtained ``F``
(the holder, or a querier through a budgeted, blinded evaluation of that very bucket key) can
read an entry's reference, and the references of one item in two tables are as unrelated as
those of two items: without ``Kref`` a querier cannot link its hits. It names a hit to the
holder as the 24-byte **candidate** ``tag || ref_t``; the holder resolves it with ``Kref``.
Items that share a bucket share its tag, which reveals bucket occupancy counts and nothing else.

Deltas travel in the holder's change feed as ``index.add`` / ``index.remove`` payloads, each a
canonical msgpack map (see :data:`FEED_SCHEMAS`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from blindmatch.crypto import oprf, sodium
from blindmatch.protocol.schema import Field, blob, integer, text

TAG_BYTES = 8
ITEM_REF_BYTES = 16
ENTRY_BYTES = TAG_BYTES + ITEM_REF_BYTES
TABLE_REF_BYTES = 16
CANDIDATE_BYTES = TAG_BYTES + TABLE_REF_BYTES  # what a querier names a hit by
_NONCE_BYTES = 8
_PREFIX_BYTES = 8
MAX_ENTRIES_PER_DELTA = 40_000  # a delta must fit one 1 MiB feed payload


class IndexFormatError(ValueError):
    pass


def reference_key(voprf_secret: bytes) -> bytes:
    """``Kref``: the holder's key for table references, bound to its VOPRF key (a rotation
    makes every reference new)."""
    return hashlib.sha512(b"blindmatch-v1 reference key" + voprf_secret).digest()[:32]


def _reference_pad(ref_key: bytes, key_id: bytes, tag: bytes, nonce: bytes) -> bytes:
    msg = b"blindmatch-v1 table reference" + key_id + tag + nonce
    return hmac.new(ref_key, msg, hashlib.sha256).digest()[:_PREFIX_BYTES]


def table_reference(
    ref_key: bytes, key_id: bytes, oprf_output: bytes, item_ref: bytes, nonce: bytes
) -> bytes:
    """The reference of ``item_ref`` in the bucket whose evaluation is ``oprf_output``: fresh
    per entry (``nonce``: 8 random bytes), readable only with ``ref_key``."""
    if len(item_ref) != ITEM_REF_BYTES or len(nonce) != _NONCE_BYTES or len(key_id) != 8:
        raise IndexFormatError("a table reference needs a 16-byte item, 8-byte nonce and key id")
    pad = _reference_pad(ref_key, key_id, oprf_output[:TAG_BYTES], nonce)
    return nonce + bytes(a ^ b for a, b in zip(item_ref[:_PREFIX_BYTES], pad, strict=True))


def resolve_candidate(ref_key: bytes, key_id: bytes, candidate: bytes) -> tuple[bytes, bytes]:
    """The holder's side: ``(tag, item prefix)`` of a candidate a querier names. The holder
    accepts it only for an active item with that 8-byte prefix whose published entries have
    that tag (a forged or stale candidate resolves to nothing)."""
    if len(candidate) != CANDIDATE_BYTES:
        raise IndexFormatError(f"a candidate is {CANDIDATE_BYTES} bytes")
    tag, ref = candidate[:TAG_BYTES], candidate[TAG_BYTES:]
    nonce, masked = ref[:_NONCE_BYTES], ref[_NONCE_BYTES:]
    pad = _reference_pad(ref_key, key_id, tag, nonce)
    return tag, bytes(a ^ b for a, b in zip(masked, pad, strict=True))


def entry_tags(packed: bytes) -> set[bytes]:
    """The tags of an item's published entries (the holder checks a candidate against them)."""
    return {e[:TAG_BYTES] for e in split_entries(packed)}


def make_entry(oprf_output: bytes, item_ref: bytes) -> bytes:
    """``F[0:8] || (ref XOR F[8:24])`` for a 16-byte reference: a table reference (8.5)."""
    if len(oprf_output) != 64 or len(item_ref) != ITEM_REF_BYTES:
        raise IndexFormatError("an index entry needs a 64-byte OPRF output and a 16-byte item ref")
    mask = oprf_output[TAG_BYTES : TAG_BYTES + ITEM_REF_BYTES]
    return oprf_output[:TAG_BYTES] + bytes(a ^ b for a, b in zip(item_ref, mask, strict=True))


def item_entries(
    key: oprf.ServerKey,
    key_id: bytes,
    item_ref: bytes,
    bucket_keys: Iterable[bytes],
    random_bytes: Callable[[int], bytes] = sodium.random_bytes,
) -> list[bytes]:
    """The holder's index entries of one item, one per bucket key, each with a fresh table
    reference (``random_bytes`` is replaced only by vectors)."""
    ref_key = reference_key(key.sk)
    out = []
    for k in bucket_keys:
        f = oprf.evaluate(key, k, oprf.Mode.VOPRF)
        out.append(make_entry(f, table_reference(ref_key, key_id, f, item_ref, random_bytes(8))))
    return out


@dataclass
class HolderReferences:
    """A holder's published items in memory, for resolving the candidates queriers name (the
    node keeps the same in its database; simulations and benchmarks use this)."""

    key: oprf.ServerKey
    key_id: bytes
    _by_prefix: dict[bytes, list[tuple[bytes, set[bytes]]]] = field(default_factory=dict)

    def publish(self, item_ref: bytes, bucket_keys: Iterable[bytes]) -> list[bytes]:
        entries = item_entries(self.key, self.key_id, item_ref, bucket_keys)
        self._by_prefix.setdefault(item_ref[:_PREFIX_BYTES], []).append(
            (item_ref, {e[:TAG_BYTES] for e in entries})
        )
        return entries

    def resolve(self, candidate: bytes) -> bytes | None:
        """The item a candidate names, or None (forged, stale, or another epoch's)."""
        tag, prefix = resolve_candidate(reference_key(self.key.sk), self.key_id, candidate)
        for item_ref, tags in self._by_prefix.get(prefix, ()):
            if tag in tags:
                return item_ref
        return None


def split_entries(packed: bytes) -> list[bytes]:
    if len(packed) % ENTRY_BYTES:
        raise IndexFormatError(f"packed entries must be a multiple of {ENTRY_BYTES} bytes")
    return [packed[i : i + ENTRY_BYTES] for i in range(0, len(packed), ENTRY_BYTES)]


def feed_entry_id(kind: str, key_id: bytes, refs: Iterable[bytes]) -> bytes:
    """An index-feed entry's id (10.3): the first 16 bytes of ``SHA-256(kind || 0x00 ||
    key_id || sorted item refs)``. The key id is in it because during a rotation (8.4) the same
    items are added under two keys, two distinct entries."""
    h = hashlib.sha256(kind.encode() + b"\x00" + key_id + b"".join(sorted(refs)))
    return h.digest()[:16]


def pack_entries(entries: Iterable[bytes]) -> bytes:
    # Sorted, so a delta with several items does not reveal which entries belong together.
    return b"".join(sorted(entries))


FEED_SCHEMAS = {
    "index.add": {
        "scheme": Field(text(64, pattern=r"[a-z0-9.-]+")),
        "key_id": Field(blob(exact=8)),
        "entries": Field(blob(max_len=MAX_ENTRIES_PER_DELTA * ENTRY_BYTES, min_len=ENTRY_BYTES)),
    },
    "index.remove": {
        "scheme": Field(text(64, pattern=r"[a-z0-9.-]+")),
        "key_id": Field(blob(exact=8)),
        "entries": Field(blob(max_len=MAX_ENTRIES_PER_DELTA * ENTRY_BYTES, min_len=ENTRY_BYTES)),
    },
    # A holder's declaration that the index it publishes is complete up to a feed position;
    # carried so a replica can tell "caught up" from "nothing happened".
    "index.checkpoint": {
        "scheme": Field(text(64, pattern=r"[a-z0-9.-]+")),
        "key_id": Field(blob(exact=8)),
        "entries_total": Field(integer(0, 1 << 40)),
    },
}


class Lookup(Protocol):
    """What an exchange probes: a replica, or a handle on one (the node's is thread-safe)."""

    def lookup_many(self, oprf_outputs: Sequence[bytes]) -> list[list[bytes]]: ...


_U8 = np.dtype("<u8")  # 8 entry bytes read as one machine word (any fixed order would do)
# Runs are merged while the one before the newest is at most this many times its size: about
# log(n) runs, and every entry copied O(log n) times over a replica's life.
_MERGE_RATIO = 4
# A merge drops removed entries when they are more than this share of the merged run.
_DEAD_SHARE = 0.1


@dataclass
class _Run:
    """Sorted by tag: the tags, the two halves of the masked references, and how many times
    each entry is present (0 = removed, kept until the next merge drops it)."""

    tags: np.ndarray
    hi: np.ndarray
    lo: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, packed: bytes) -> _Run:
        words = np.frombuffer(packed, dtype=_U8).reshape(-1, 3)
        # One row per distinct entry, duplicates counted (a delta applied twice stays exact).
        rows, counts = np.unique(words, axis=0, return_counts=True)
        order = np.argsort(rows[:, 0], kind="stable")
        rows = rows[order]
        return cls(
            np.ascontiguousarray(rows[:, 0]),
            np.ascontiguousarray(rows[:, 1]),
            np.ascontiguousarray(rows[:, 2]),
            np.minimum(counts[order], 255).astype(np.uint8),
        )

    def __len__(self) -> int:
        return len(self.tags)

    def find(self, words: np.ndarray) -> np.ndarray:
        """Row of each entry ``words[i]`` (tag, hi, lo) in this run, or -1."""
        out = np.full(len(words), -1, dtype=np.int64)
        if not len(self.tags) or not len(words):
            return out
        lo = self.tags.searchsorted(words[:, 0], side="left")
        hi = self.tags.searchsorted(words[:, 0], side="right")
        for i in np.flatnonzero(hi > lo).tolist():  # a shared tag is rare: its bucket's items
            span = slice(int(lo[i]), int(hi[i]))
            same = (self.hi[span] == words[i, 1]) & (self.lo[span] == words[i, 2])
            if same.any():
                out[i] = int(lo[i]) + int(np.argmax(same))
        return out


def _merged(old: _Run, new: _Run) -> _Run:
    """One run of both, built one array at a time so that the old array is freed before the
    next is copied: the peak is the replica plus one 8-byte column, not twice the replica."""
    dead = int((old.counts == 0).sum() + (new.counts == 0).sum())
    if dead > _DEAD_SHARE * (len(old) + len(new)):
        old, new = _alive(old), _alive(new)
    # Row j of the newer run lands at where[j] + j; the older run's rows fill the rest in order.
    placed = old.tags.searchsorted(new.tags, side="left") + np.arange(len(new))
    from_old = np.ones(len(old) + len(new), dtype=bool)
    from_old[placed] = False
    columns = {}
    for name in ("tags", "hi", "lo", "counts"):
        column = np.empty(len(from_old), dtype=getattr(old, name).dtype)
        column[placed] = getattr(new, name)
        np.place(column, from_old, getattr(old, name))
        columns[name] = column
        setattr(old, name, column[:0])  # release both source columns now
        setattr(new, name, column[:0])
    return _Run(**columns)


def _alive(run: _Run) -> _Run:
    keep = run.counts > 0
    out = {}
    for name in ("tags", "hi", "lo", "counts"):
        out[name] = getattr(run, name)[keep]
        setattr(run, name, out[name][:0])
    return _Run(**out)


@dataclass
class ReplicaIndex:
    """A querier's copy of one peer's index for one scheme and key id: a multiset of entries.

    Held as a few sorted runs of columns (8-byte tag, the 16-byte masked reference as two
    words, a 1-byte count): 25 bytes per entry, 0.6 GB for a 1M-hash peer with 24 tables.
    An addition becomes a new run (its delta sorted), and runs of similar size are merged
    column by column, so a merge never holds a second copy of the replica (its peak is about
    1.3x the steady size) and a lookup never waits for one: lookups search every run (about
    log n of them). An entry added again is counted, not stored twice, and a removal takes
    one count, so the state is exact even if a delta is applied twice; removing an entry that
    is not there changes nothing.
    """

    scheme: str
    key_id: bytes
    _runs: list[_Run] = field(default_factory=list, repr=False)
    _present: int = 0

    def add(self, packed: bytes) -> None:
        run = _Run.of(_checked(packed))
        if not len(run):
            return
        words = np.stack([run.tags, run.hi, run.lo], axis=1)
        fresh = np.ones(len(run), dtype=bool)
        for old in self._runs:  # entries already present are counted where they are
            rows = old.find(words[fresh])
            idx = np.flatnonzero(fresh)
            known = rows >= 0
            if known.any():
                at, by = rows[known], run.counts[idx[known]]
                self._present += int((old.counts[at] == 0).sum())
                old.counts[at] = np.minimum(old.counts[at].astype(np.int64) + by, 255)
                fresh[idx[known]] = False
        if not fresh.all():
            run = _Run(run.tags[fresh], run.hi[fresh], run.lo[fresh], run.counts[fresh])
        if not len(run):
            return
        self._present += len(run)
        self._runs.append(run)
        while len(self._runs) > 1 and len(self._runs[-2]) <= _MERGE_RATIO * len(self._runs[-1]):
            newest = self._runs.pop()
            self._runs[-1] = _merged(self._runs[-1], newest)

    def remove(self, packed: bytes) -> None:
        gone = np.frombuffer(_checked(packed), dtype=_U8).reshape(-1, 3)
        for run in self._runs:
            if not len(gone):
                return
            rows = run.find(gone)
            hit = rows >= 0
            if not hit.any():
                continue
            # An entry listed twice in one removal takes two counts (never below zero).
            at, times = np.unique(rows[hit], return_counts=True)
            before = run.counts[at]
            after = np.maximum(before.astype(np.int64) - times, 0).astype(np.uint8)
            self._present -= int(((before > 0) & (after == 0)).sum())
            run.counts[at] = after
            gone = gone[~hit]

    @property
    def entries(self) -> int:
        """Distinct entries present."""
        return self._present

    @property
    def runs(self) -> int:
        return len(self._runs)

    @property
    def nbytes(self) -> int:
        return sum(r.tags.nbytes + r.hi.nbytes + r.lo.nbytes + r.counts.nbytes for r in self._runs)

    def lookup(self, oprf_output: bytes) -> list[bytes]:
        """The candidates (``tag || table reference``) in the bucket whose evaluation is
        ``oprf_output`` (often none)."""
        return self.lookup_many([oprf_output])[0]

    def lookup_many(self, oprf_outputs: Sequence[bytes]) -> list[list[bytes]]:
        """The candidates of each output's bucket (its tag and each entry's unmasked table
        reference), every run searched with one vectorised pass per run (an exchange's
        thousands of outputs cost two ``searchsorted`` calls per run)."""
        n = len(oprf_outputs)
        out: list[list[bytes]] = [[] for _ in range(n)]
        if not n or not self._runs:
            return out
        heads = b"".join(o[: TAG_BYTES + ITEM_REF_BYTES] for o in oprf_outputs)
        if len(heads) != n * ENTRY_BYTES:
            raise IndexFormatError("an OPRF output is shorter than an index entry")
        words = np.frombuffer(heads, dtype=_U8).reshape(n, 3)
        # Searched in tag order: each search then starts where the previous one ended (numpy
        # narrows the range for increasing keys), which halves the cache misses of a cold
        # lookup in a large replica (bench/results/replica.md).
        order = np.argsort(words[:, 0], kind="stable")
        tags = words[order, 0]
        lo, hi = np.empty(n, dtype=np.intp), np.empty(n, dtype=np.intp)
        for run in self._runs:
            lo[order] = run.tags.searchsorted(tags, side="left")
            hi[order] = run.tags.searchsorted(tags, side="right")
            for i in np.flatnonzero(hi > lo).tolist():
                span = slice(int(lo[i]), int(hi[i]))
                live = run.counts[span] > 0
                if not live.any():
                    continue
                refs = np.stack(
                    [run.hi[span][live] ^ words[i, 1], run.lo[span][live] ^ words[i, 2]], axis=1
                )
                tag = heads[i * ENTRY_BYTES : i * ENTRY_BYTES + TAG_BYTES]
                out[i] += [tag + r.tobytes() for r in refs]
        for found in out:
            if len(found) > 1:
                found.sort()
        return out

    def candidates(self, oprf_outputs: Sequence[bytes]) -> list[bytes]:
        seen: dict[bytes, None] = {}
        for refs in self.lookup_many(oprf_outputs):
            for ref in refs:
                seen.setdefault(ref, None)
        return list(seen)


def _checked(packed: bytes) -> bytes:
    if len(packed) % ENTRY_BYTES:
        raise IndexFormatError(f"packed entries must be a multiple of {ENTRY_BYTES} bytes")
    return bytes(packed)


# --- batched, padded publication (spec 8.6, 10.3) -------------------------------------------------

DECOY_DOMAIN = b"blindmatch-v1 decoy bucket"


def key_prefix(bucket_key: bytes) -> bytes:
    """The part of a bucket key before its table number: ``u8(len(tag)) || tag ||
    u8(len(signal)) || signal`` (signals-and-lsh.md)."""
    if len(bucket_key) < 2:
        raise IndexFormatError("bucket key too short")
    n = 1 + bucket_key[0]
    if len(bucket_key) < n + 1:
        raise IndexFormatError("bucket key too short")
    end = n + 1 + bucket_key[n]
    if len(bucket_key) < end + 2:
        raise IndexFormatError("bucket key too short")
    return bucket_key[:end]


def decoy_keys(decoy_ref: bytes, prefix: bytes, tables: Sequence[int], bits: int) -> list[bytes]:
    """The bucket keys of one decoy: for each table, a bucket drawn from ``decoy_ref`` (16
    secret random bytes) independently of every other table, in the layout of real keys
    (``prefix || u16be(table) || the bucket's bits, packed, trailing bits zero``)::

        bits_t = SHA-512(DECOY_DOMAIN || decoy_ref || prefix || u16be(t))[0:bits], MSB first

    A decoy is published like an item (one entry per table, fresh table references, 10.2) and
    resolves to no item, so the holder answers a candidate on it as on any unknown one (8.5).
    Derived, not drawn, so the holder re-publishes the very same buckets under a successor key
    (8.4) from the reference alone."""
    if len(decoy_ref) != ITEM_REF_BYTES:
        raise IndexFormatError(f"a decoy reference is {ITEM_REF_BYTES} bytes")
    if not 1 <= bits <= 512:
        raise IndexFormatError("bits must be in 1..512")
    nbytes = (bits + 7) // 8
    out = []
    for t in tables:
        d = bytearray(
            hashlib.sha512(DECOY_DOMAIN + decoy_ref + prefix + t.to_bytes(2, "big")).digest()
        )[:nbytes]
        if bits % 8:
            d[-1] &= (0xFF << (8 - bits % 8)) & 0xFF
        out.append(prefix + t.to_bytes(2, "big") + bytes(d))
    return out


def decoys_needed(real_entries: int, padding: int) -> int:
    """Decoys (one entry per table each) that a batch adds to a key prefix and threshold it
    publishes (8.7): ``padding``, whatever ``real_entries`` (the distinct buckets the batch's
    real entries fill in the prefix's sparsest table; a tiled source counts per cell, a video by
    its frames' buckets), and none for a prefix the batch does not touch. Topping up to
    ``max(r, padding)`` instead would leave a batch of ``r >= padding`` real entries with no
    decoy at all, and a depth-first join finds its first real item after about ``1/(r+1)`` of
    the work: the batch's cost to an attacker must grow with ``r``, so it holds ``r + padding``
    entries per table."""
    if real_entries < 0 or padding < 0:
        raise ValueError("counts are not negative")
    return padding if real_entries else 0


def batch_chunks(entries: Iterable[bytes]) -> list[bytes]:
    """One batch's entries (items and decoys together), sorted bytewise and cut into deltas of
    at most :data:`MAX_ENTRIES_PER_DELTA`: tags are pseudorandom, so where a cut falls says
    nothing about which entries belong together."""
    return batch_chunks_packed(b"".join(entries))


def batch_chunks_packed(packed: bytes) -> list[bytes]:
    """:func:`batch_chunks` of entries given packed (concatenated): one numpy sort of fixed
    24-byte records, so a million-item publication needs no Python object per entry."""
    if len(packed) % ENTRY_BYTES:
        raise IndexFormatError(f"packed entries must be a multiple of {ENTRY_BYTES} bytes")
    rows = np.frombuffer(packed, dtype=np.uint8).reshape(-1, ENTRY_BYTES)
    # bytewise order: big-endian words compare as the bytes do
    words = rows.view(">u8").reshape(-1, 3).astype(np.uint64)  # native order sorts fast
    order = np.lexsort((words[:, 2], words[:, 1], words[:, 0]))
    ordered = rows[order]
    step = MAX_ENTRIES_PER_DELTA
    return [ordered[s : s + step].tobytes() for s in range(0, len(ordered), step)]


def delta_id(kind: str, key_id: bytes, entries: Iterable[bytes]) -> bytes:
    """A delta's feed entry id (10.3): :func:`feed_entry_id` over the first 16 bytes of
    ``SHA-256`` of its entries sorted and concatenated, so the same delta is idempotent and its
    id names no item."""
    digest = hashlib.sha256(b"".join(sorted(entries))).digest()[:16]
    return feed_entry_id(kind, key_id, [digest])
