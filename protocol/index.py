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

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

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


@dataclass
class ReplicaIndex:
    """A querier's in-memory copy of one peer's index for one scheme and key id.

    Entries are counted, not just set, so an ``index.add`` seen twice and removed once is
    still present once: replays of the feed are idempotent at the storage layer, and this keeps
    in-memory state consistent even if they were not.
    """

    scheme: str
    key_id: bytes
    _by_tag: dict[bytes, dict[bytes, int]] = field(default_factory=lambda: defaultdict(dict))
    entries: int = 0

    def add(self, packed: bytes) -> None:
        for e in split_entries(packed):
            tag, masked = e[:TAG_BYTES], e[TAG_BYTES:]
            bucket = self._by_tag[tag]
            if masked not in bucket:
                self.entries += 1
            bucket[masked] = bucket.get(masked, 0) + 1

    def remove(self, packed: bytes) -> None:
        for e in split_entries(packed):
            tag, masked = e[:TAG_BYTES], e[TAG_BYTES:]
            bucket = self._by_tag.get(tag)
            if not bucket or masked not in bucket:
                continue
            bucket[masked] -= 1
            if bucket[masked] <= 0:
                del bucket[masked]
                self.entries -= 1
                if not bucket:
                    del self._by_tag[tag]

    def lookup(self, oprf_output: bytes) -> list[bytes]:
        """The item refs in the bucket whose evaluation is ``oprf_output`` (often none)."""
        bucket = self._by_tag.get(oprf_output[:TAG_BYTES])
        if not bucket:
            return []
        mask = oprf_output[TAG_BYTES : TAG_BYTES + ITEM_REF_BYTES]
        return sorted(bytes(a ^ b for a, b in zip(m, mask, strict=True)) for m in bucket)

    def candidates(self, oprf_outputs: Sequence[bytes]) -> list[bytes]:
        seen: dict[bytes, None] = {}
        for out in oprf_outputs:
            for ref in self.lookup(out):
                seen.setdefault(ref, None)
        return list(seen)
