"""The querier's in-memory replicas of its peers' indexes, safe under concurrency.

A replica is rebuilt from the store at start-up, extended by every pulled page, and probed by
match tasks from worker threads, all at once. :class:`PeerReplica` keeps one peer's
:class:`~blindmatch.protocol.index.ReplicaIndex` together with the feed position it reflects
(``cursor``: every stored entry with ``seq <= cursor`` is applied, none after it) behind one
lock, so

* a lookup sees either all of a page or none of it, never a half-merged array (the lazy merge
  of buffered additions replaces several arrays one after another);
* a page is applied only directly after the position it was pulled from, each entry exactly
  once, so two pulls or a pull and a rebuild racing each other neither skip nor double it;
* a lookup reports the cursor it ran at, so a match task can record which state of the peer's
  index its answer covers.

The lock is a thread lock because lookups and merges run in worker threads; the event loop
never takes it directly (every call that takes it runs via ``asyncio.to_thread``), so a long
merge never stalls the loop.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from blindmatch.protocol import index, replication


@dataclass(frozen=True)
class StoredEntry:
    """One index-feed entry as stored: what applying it needs."""

    seq: int
    entry_id: bytes
    kind: str
    payload: bytes


@dataclass(frozen=True)
class Rejected:
    """An entry that could not be applied (the peer signed it, so the peer's fault)."""

    seq: int
    entry_id: bytes
    kind: str
    reason: str


class PeerReplica:
    def __init__(
        self, peer_id: str, scheme: str, key_id: bytes, max_entries: int | None = None
    ) -> None:
        self.peer_id = peer_id
        # The sans-I/O replica (protocol/replication.py) decides each entry's outcome (and
        # enforces the entry cap); this class adds the lock and the page discipline.
        self._replica = replication.IndexReplica(scheme, key_id, max_entries)
        self._lock = threading.Lock()

    @property
    def index(self) -> index.ReplicaIndex:
        return self._replica.index

    @property
    def key_id(self) -> bytes:
        return self.index.key_id

    @property
    def max_entries(self) -> int | None:
        return self._replica.max_entries

    @property
    def over_cap(self) -> replication.CapExceeded | None:
        """Set once an addition would have passed the entry cap: from then on the replica
        stays as it was and applies nothing more of this peer."""
        return self._replica.over_cap

    @property
    def cursor(self) -> int:
        """The feed position the replica reflects (an int read: no lock needed)."""
        return self._replica.position

    def outcome_counts(self) -> dict[str, int]:
        """How many entries had each outcome (added, other-scheme, other-key, rejected...):
        nothing the peer published is dropped without being counted."""
        with self._lock:
            return {o.value: n for o, n in self._replica.counts.items()}

    def apply_page(self, after: int, entries: Sequence[StoredEntry]) -> list[Rejected] | None:
        """Apply the stored entries that follow feed position ``after``, in order.

        Returns the entries that were refused, or None when the replica is not at ``after``
        (another page or a rebuild got there first, or one is missing in between): the caller
        then catches up from the store instead. Blocking: call it from a worker thread.
        """
        with self._lock:
            if after != self._replica.position:
                return None
            rejected: list[Rejected] = []
            for e in entries:
                applied = self._replica.apply(e.seq, e.kind, e.payload)
                if applied.outcome is replication.EntryOutcome.REJECTED:
                    rejected.append(Rejected(e.seq, e.entry_id, e.kind, applied.reason))
            return rejected

    def reader(self) -> ReplicaReader:
        """A lookup handle for one exchange; it remembers the cursor its lookups ran at."""
        return ReplicaReader(self)

    def lookup_many_at(self, oprf_outputs: Sequence[bytes]) -> tuple[int, list[list[bytes]]]:
        """Blocking: call from a worker thread."""
        with self._lock:
            return self._replica.position, self.index.lookup_many(oprf_outputs)

    def size(self) -> tuple[int, int]:
        """(distinct entries, bytes held). Blocking (it may merge): call from a worker thread."""
        with self._lock:
            return self.index.entries, self.index.nbytes

    @property
    def entries(self) -> int:
        """Distinct entries (blocking, see :meth:`size`)."""
        return self.size()[0]


class ReplicaReader:
    """What one exchange probes: the replica, and the one cursor all its lookups ran at."""

    def __init__(self, replica: PeerReplica) -> None:
        self._replica = replica
        self.cursor: int | None = None

    def lookup_many(self, oprf_outputs: Sequence[bytes]) -> list[list[bytes]]:
        cursor, found = self._replica.lookup_many_at(oprf_outputs)
        # An exchange probes once; were it to probe again, its answer covers the older state.
        self.cursor = cursor if self.cursor is None else min(self.cursor, cursor)
        return found
