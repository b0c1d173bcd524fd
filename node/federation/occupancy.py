"""The index's occupancy, for the threshold budget that follows it (specs/protocol.md 8.3).

Decoys are never removed (8.7), so the entries a holder publishes grow faster than its items,
and an honest querier's spurious candidates grow with them. The roster states each peer's
threshold budget at the holder's real occupancy; the holder scales it by ``entries /
real_entries`` under its current key (:func:`blindmatch.protocol.admission.occupancy_limits`).

The publisher records the counts after each batch (one aggregate read of its own rows), in
node state, where every process of the node finds them; admission reads them at most once a
``ttl_s``: a batch changes them once a week at the defaults, and a minute's lag only delays a
larger budget.
"""

from __future__ import annotations

from collections.abc import Callable

from blindmatch.node.clock import Clock
from blindmatch.node.storage import Database
from blindmatch.node.storage.node_state import NodeState
from blindmatch.node.storage.published_index import PublishedIndexStore
from blindmatch.protocol import admission as admission_rules

STATE_KEY = "index.occupancy"


class IndexOccupancy:
    def __init__(
        self,
        db: Database,
        store: PublishedIndexStore,
        current_key_id: Callable[[], bytes],
        clock: Clock,
        ttl_s: int = 60,
    ) -> None:
        self.db = db
        self.store = store
        self.current_key_id = current_key_id
        self.clock = clock
        self.ttl_s = ttl_s
        self._cached: tuple[int, int, int] | None = None  # (read at, entries, real entries)

    async def record(self, key_id: bytes) -> tuple[int, int]:
        """Count what is published under ``key_id`` and keep it, when that is the current key
        (a successor's index is the current one's, 8.4)."""
        counts = await self.store.entry_counts(key_id)
        if key_id == self.current_key_id():
            now = self.clock.now()
            value = f"{key_id.hex()} {counts[0]} {counts[1]}".encode()
            await NodeState(self.db).set(STATE_KEY, value, now)
            self._cached = (now, *counts)
        return counts

    async def counts(self) -> tuple[int, int]:
        """(entries, real entries) under the current key, as last recorded."""
        now = self.clock.now()
        if self._cached is not None and now - self._cached[0] < self.ttl_s:
            return self._cached[1], self._cached[2]
        current = self.current_key_id()
        kept = await NodeState(self.db).get(STATE_KEY)
        fields = kept.decode().split() if kept is not None else []
        if len(fields) == 3 and fields[0] == current.hex():
            counts = int(fields[1]), int(fields[2])
            self._cached = (now, *counts)
            return counts
        # nothing recorded under this key yet (a node from before the record, or a promotion
        # this process has not published under): count once and keep it
        return await self.record(current)

    async def limits(self, limits: admission_rules.Limits) -> admission_rules.Limits:
        """A threshold budget the roster sets at real occupancy, scaled to this index."""
        entries, real = await self.counts()
        return admission_rules.occupancy_limits(limits, entries, real)
