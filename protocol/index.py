"""The blinded index: what a holder publishes about its hashes, and how a querier reads it.

For a bucket key ``k`` and the holder's VOPRF key, ``F = Evaluate(skS, k)`` (64 bytes). An index
entry for item ``ref`` (16 random bytes) in that bucket is

    entry = F[0:8] || (ref XOR F[8:24])          (24 bytes: tag || masked reference)

Only a party that obtained ``F`` (the holder, or a querier through a budgeted, blinded
evaluation of that very bucket key) can read which item an entry points to; the index alone
shows pseudorandom tags. Items that share a bucket share its tag (they are in one bucket),
which reveals bucket occupancy counts and nothing else.

Deltas travel in the holder's change feed as ``index.add`` / ``index.remove`` payloads, each a
canonical msgpack map (see :data:`FEED_SCHEMAS`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from blindmatch.protocol.schema import Field, blob, integer, text

TAG_BYTES = 8
ITEM_REF_BYTES = 16
ENTRY_BYTES = TAG_BYTES + ITEM_REF_BYTES
MAX_ENTRIES_PER_DELTA = 40_000  # a delta must fit one 1 MiB feed payload


class IndexFormatError(ValueError):
    pass


def make_entry(oprf_output: bytes, item_ref: bytes) -> bytes:
    if len(oprf_output) != 64 or len(item_ref) != ITEM_REF_BYTES:
        raise IndexFormatError("an index entry needs a 64-byte OPRF output and a 16-byte item ref")
    mask = oprf_output[TAG_BYTES : TAG_BYTES + ITEM_REF_BYTES]
    return oprf_output[:TAG_BYTES] + bytes(a ^ b for a, b in zip(item_ref, mask, strict=True))


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
        """The item refs in the bucket whose evaluation is ``oprf_output`` (often none)."""
        self._merge()
        tag = np.uint64(int.from_bytes(oprf_output[:TAG_BYTES], "big"))
        lo = int(self._tags.searchsorted(tag, side="left"))
        hi = int(self._tags.searchsorted(tag, side="right"))
        if lo == hi:
            return []
        mask = oprf_output[TAG_BYTES : TAG_BYTES + ITEM_REF_BYTES]
        return sorted(
            bytes(a ^ b for a, b in zip(bytes(row)[TAG_BYTES:], mask, strict=True))
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
        for i, ref in zip(owner.tolist(), refs, strict=True):
            out[i].append(ref.tobytes())
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
