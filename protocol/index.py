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


_ENTRY = np.dtype("V24")  # one entry as 24 opaque bytes: numpy sorts and searches them bytewise


@dataclass
class ReplicaIndex:
    """A querier's copy of one peer's index for one scheme and key id: a multiset of entries.

    Stored as one sorted array of 24-byte entries with a count each (about 28 bytes per entry;
    a 1M-hash peer with 24 tables is ~0.7 GB, against ~8 GB as Python dicts). Additions are
    buffered and merged in one vectorised pass before the next lookup or removal, so a sync of
    many deltas costs one sort. Counts keep state exact even if a delta were applied twice;
    removing an entry that is not there changes nothing.
    """

    scheme: str
    key_id: bytes
    _rows: np.ndarray = field(default_factory=lambda: np.zeros(0, _ENTRY), repr=False)
    _counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    _tags: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64), repr=False)
    _pending: list[np.ndarray] = field(default_factory=list, repr=False)

    def add(self, packed: bytes) -> None:
        self._pending.append(np.frombuffer(_checked(packed), dtype=_ENTRY))

    def remove(self, packed: bytes) -> None:
        gone = np.frombuffer(_checked(packed), dtype=_ENTRY)
        self._merge()
        if not len(self._rows) or not len(gone):
            return
        where = np.searchsorted(self._rows, gone)
        inside = where < len(self._rows)
        hit = np.zeros(len(gone), dtype=bool)
        hit[inside] = self._rows[where[inside]] == gone[inside]
        np.subtract.at(self._counts, where[hit], 1)
        np.maximum(self._counts, 0, out=self._counts)
        if (self._counts == 0).any():
            keep = self._counts > 0
            self._rows, self._counts = self._rows[keep], self._counts[keep]
            self._reindex()

    def _merge(self) -> None:
        if not self._pending:
            return
        added = np.concatenate(self._pending)
        self._pending = []
        keys = np.concatenate([self._rows, added])
        weights = np.concatenate([self._counts, np.ones(len(added), dtype=np.int64)])
        self._rows, inverse = np.unique(keys, return_inverse=True)
        self._counts = np.bincount(inverse.ravel(), weights=weights).astype(np.int64)
        self._reindex()

    def _reindex(self) -> None:
        # The tags as native integers (big-endian read, so they sort as the bytes do): a lookup
        # is then two scalar binary searches.
        raw = np.frombuffer(self._rows.tobytes(), dtype=">u8").reshape(-1, 3)
        self._tags = raw[:, 0].astype(np.uint64)

    @property
    def entries(self) -> int:
        """Distinct entries present."""
        self._merge()
        return len(self._rows)

    @property
    def nbytes(self) -> int:
        self._merge()
        return int(self._rows.nbytes + self._counts.nbytes + self._tags.nbytes)

    def lookup(self, oprf_output: bytes) -> list[bytes]:
        """The candidates (``tag || table reference``) in the bucket whose evaluation is
        ``oprf_output`` (often none)."""
        self._merge()
        tag = np.uint64(int.from_bytes(oprf_output[:TAG_BYTES], "big"))
        lo = int(self._tags.searchsorted(tag, side="left"))
        hi = int(self._tags.searchsorted(tag, side="right"))
        if lo == hi:
            return []
        mask = oprf_output[TAG_BYTES : TAG_BYTES + ITEM_REF_BYTES]
        tag = oprf_output[:TAG_BYTES]
        return sorted(
            tag + bytes(a ^ b for a, b in zip(bytes(row)[TAG_BYTES:], mask, strict=True))
            for row in self._rows[lo:hi]
        )

    def lookup_many(self, oprf_outputs: Sequence[bytes]) -> list[list[bytes]]:
        """``[lookup(o) for o in oprf_outputs]`` with the searches done as one vectorised pass
        (an exchange's 64+ outputs cost two ``searchsorted`` calls instead of 128)."""
        self._merge()
        n = len(oprf_outputs)
        out: list[list[bytes]] = [[] for _ in range(n)]
        if not n or not len(self._rows):
            return out
        heads = b"".join(o[: TAG_BYTES + ITEM_REF_BYTES] for o in oprf_outputs)
        if len(heads) != n * ENTRY_BYTES:
            raise IndexFormatError("an OPRF output is shorter than an index entry")
        outputs = np.frombuffer(heads, dtype=np.uint8).reshape(n, ENTRY_BYTES)
        tags = np.frombuffer(heads, dtype=">u8").reshape(n, 3)[:, 0].astype(np.uint64)
        lo = self._tags.searchsorted(tags, side="left")
        hi = self._tags.searchsorted(tags, side="right")
        hit = np.flatnonzero(hi > lo)
        if not len(hit):
            return out
        width = hi[hit] - lo[hit]
        owner = np.repeat(hit, width)
        # Row positions lo[i] .. hi[i]-1 of every hit output, concatenated.
        first = np.repeat(lo[hit] - (np.cumsum(width) - width), width)
        rows = first + np.arange(len(owner))
        table = np.ascontiguousarray(self._rows).view(np.uint8).reshape(-1, ENTRY_BYTES)
        refs = table[rows, TAG_BYTES:] ^ outputs[owner, TAG_BYTES:]
        for i, tag, ref in zip(owner.tolist(), table[rows, :TAG_BYTES], refs, strict=True):
            out[i].append(tag.tobytes() + ref.tobytes())
        for i in hit.tolist():
            out[i].sort()
        return out

    def candidates(self, oprf_outputs: Sequence[bytes]) -> list[bytes]:
        seen: dict[bytes, None] = {}
        for out in oprf_outputs:
            for ref in self.lookup(out):
                seen.setdefault(ref, None)
        return list(seen)


def _checked(packed: bytes) -> bytes:
    if len(packed) % ENTRY_BYTES:
        raise IndexFormatError(f"packed entries must be a multiple of {ENTRY_BYTES} bytes")
    return bytes(packed)
