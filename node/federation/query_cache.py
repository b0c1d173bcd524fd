"""The holder's verified encrypted queries, kept per peer so later rounds can name them.

A querier asks a query hash in rounds (spec 10.5); after the first, a ``threshold.query``
names the encrypted query by its SHA-256 (``query_ref``, 7.3) instead of sending its 49,200
bytes again, and the holder answers from the query it verified then (no second check of 256
bit proofs). What is kept is bounded in code: per peer (entries and bytes), in all (bytes),
and in time (a TTL from the verification). A reference names only the sender's own queries:
another peer's digest, an expired or evicted one, or one never sent, is a miss, and the
responder refuses it with ``unknown-query`` (the querier then sends the query whole).

Runs on the node's event loop only (no locks).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from blindmatch.crypto import threshold as th

# What one kept query is charged: the parsed query (~114 KB measured with tracemalloc) and its
# answer tables at their largest (~74 KB more after 64 answers), rounded up.
VERIFIED_QUERY_BYTES = 192 * 1024
DEFAULT_TTL_S = 600  # a job's rounds take seconds; a retry after backoff sends the query whole
DEFAULT_PEER_BYTES = 16 * 1024 * 1024  # ~85 queries: a picture's variants and tiles, twice
DEFAULT_TOTAL_BYTES = 64 * 1024 * 1024


@dataclass
class _Kept:
    verified: th.VerifiedQuery
    expires: int
    size: int


class VerifiedQueryCache:
    def __init__(
        self,
        ttl_s: int = DEFAULT_TTL_S,
        peer_bytes: int = DEFAULT_PEER_BYTES,
        total_bytes: int = DEFAULT_TOTAL_BYTES,
        entry_bytes: int = VERIFIED_QUERY_BYTES,
    ) -> None:
        if min(ttl_s, peer_bytes, total_bytes, entry_bytes) <= 0:
            raise ValueError("cache limits must be positive")
        self.ttl_s = ttl_s
        self.peer_bytes = peer_bytes
        self.total_bytes = total_bytes
        self.entry_bytes = entry_bytes
        self._kept: OrderedDict[tuple[str, bytes], _Kept] = OrderedDict()  # least recent first
        self._by_peer: dict[str, int] = {}  # bytes kept per peer
        self._bytes = 0

    def get(self, peer: str, digest: bytes, now: int) -> th.VerifiedQuery | None:
        """The query ``peer`` sent with this SHA-256, if still kept for it (None otherwise)."""
        key = (peer, digest)
        kept = self._kept.get(key)
        if kept is None:
            return None
        if now >= kept.expires:
            self._drop(key)
            return None
        self._kept.move_to_end(key)
        return kept.verified

    def put(self, peer: str, digest: bytes, verified: th.VerifiedQuery, now: int) -> None:
        """Keep a query ``peer`` sent and we verified (again: its TTL starts over)."""
        key = (peer, digest)
        if key in self._kept:
            self._drop(key)
        self._expire(now)
        size = self.entry_bytes
        if size > min(self.peer_bytes, self.total_bytes):
            return  # could never fit
        self._kept[key] = _Kept(verified, now + self.ttl_s, size)
        self._by_peer[peer] = self._by_peer.get(peer, 0) + size
        self._bytes += size
        # the peer's own least recent queries make room first, then anyone's
        while self._by_peer[peer] > self.peer_bytes:
            self._drop(next(k for k in self._kept if k[0] == peer))
        while self._bytes > self.total_bytes:
            self._drop(next(iter(self._kept)))

    def _expire(self, now: int) -> None:
        for key in [k for k, kept in self._kept.items() if now >= kept.expires]:
            self._drop(key)

    def _drop(self, key: tuple[str, bytes]) -> None:
        kept = self._kept.pop(key)
        self._bytes -= kept.size
        left = self._by_peer[key[0]] - kept.size
        if left:
            self._by_peer[key[0]] = left
        else:
            del self._by_peer[key[0]]

    def bytes_kept(self, peer: str | None = None) -> int:
        return self._bytes if peer is None else self._by_peer.get(peer, 0)

    def __len__(self) -> int:
        return len(self._kept)
