"""The holder's side of the index: publishing its shared banks' items as a blinded index.

Each delta of the ``index`` feed adds or removes the packed index entries of a batch of items,
in one transaction with its log record and its rows in ``index_publications``, so a crash
leaves either both or neither. The OPRF evaluations are :mod:`.index_build`'s.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable, Sequence

from blindmatch.node import signals
from blindmatch.node.clock import Clock
from blindmatch.node.federation import index_build
from blindmatch.node.keys import NodeKeys
from blindmatch.node.metrics import Metrics
from blindmatch.node.storage import Database, FeedLog
from blindmatch.node.storage.published_index import PublishedIndexStore
from blindmatch.node.translog import hooks as translog_hooks
from blindmatch.node.translog.log import TransparencyLog
from blindmatch.protocol import canonical, index
from blindmatch.protocol.lsh import BitSamplingScheme

log = logging.getLogger("blindmatch.node")

INDEX_FEED = "index"
PUBLISH_LOCK = "blindmatch:publish-index"


def _entry_id(kind: str, refs: Sequence[bytes]) -> bytes:
    h = hashlib.sha256(kind.encode() + b"\x00" + b"".join(sorted(refs)))
    return h.digest()[:16]


class IndexPublisher:
    def __init__(
        self,
        db: Database,
        store: PublishedIndexStore,
        feeds: FeedLog,
        translog: TransparencyLog,
        keys: NodeKeys,
        scheme: BitSamplingScheme,
        metrics: Metrics,
        clock: Clock,
        *,
        roles: frozenset[str] | tuple[str, ...],
    ) -> None:
        self.db = db
        self.store = store
        self.feeds = feeds
        self.translog = translog
        self.keys = keys
        self.scheme = scheme
        self.metrics = metrics
        self.clock = clock
        self.roles = roles  # a signal type banked by one role is published by that role only
        self._lock = asyncio.Lock()

    def publishing_adapters(self) -> list[signals.SignalAdapter]:
        return [
            a
            for a in signals.ADAPTERS
            if a.published_by_role is None or a.published_by_role in self.roles
        ]

    async def reconcile(self) -> dict[str, int]:
        """Bring the published index in line with the published items (one at a time, among
        all of the node's processes: the sync loop and a bank change may ask at once, and both
        would publish the same items).

        Adds items not yet published (whole-picture hashes and the tiles of protected sources)
        and removes items no longer published (withdrawn, expired, bank disabled or unshared;
        a source's tiles with it), each delta in one transaction with its feed entry.
        """
        # In-process first (one waiting connection per process), then across the node's
        # processes: two processes publishing at once would both evaluate the same backlog
        # and one would lose on the unique publication rows.
        async with self._lock, self.db.exclusive(PUBLISH_LOCK):
            return await self._reconcile(self.clock.now())

    async def _reconcile(self, now: int) -> dict[str, int]:
        active: dict[bytes, list[bytes]] = {}
        for adapter in self.publishing_adapters():
            for p in await adapter.unpublished(self.db, now):
                active[p.item_ref] = p.keys
        live_checks = [
            (check, a.live_ref_params(now))
            for a in signals.ADAPTERS
            if (check := a.live_ref_sql()) is not None
        ]
        published = await self.store.no_longer_live(live_checks)
        to_add, to_remove = list(active), list(published)
        key_id = self.keys.voprf_key_id
        # One delta must fit a feed payload: at most MAX_ENTRIES_PER_DELTA entries.
        batch = max(1, index.MAX_ENTRIES_PER_DELTA // self.scheme.tables)
        added = removed = 0
        for start in range(0, len(to_remove), batch):
            refs = to_remove[start : start + batch]
            entries = (e for r in refs for e in index.split_entries(published[r]))
            async with self.db.transaction():
                await self._append_delta("index.remove", refs, entries, key_id, now)
                await self.store.forget(refs)
            removed += len(refs)
        # The OPRF evaluations of the whole backlog start at once (worker processes when it
        # is large) and each delta is written as soon as its items are evaluated, so the
        # writes overlap the evaluation of the items after them.
        evaluations = index_build.start_entries(self.keys.voprf, [(r, active[r]) for r in to_add])
        packed_all: list[bytes] = []
        try:
            for start in range(0, len(to_add), batch):
                refs = to_add[start : start + batch]
                while len(packed_all) < start + len(refs):
                    packed_all += await evaluations[0]
                    evaluations.pop(0)
                per_item = dict(zip(refs, packed_all[start : start + len(refs)], strict=True))
                entries = (e for packed in per_item.values() for e in index.split_entries(packed))
                async with self.db.transaction():
                    await self._append_delta("index.add", refs, entries, key_id, now)
                    await self.store.record(per_item, self.scheme.name, key_id, now)
                added += len(refs)
        finally:
            for pending in evaluations:
                pending.cancel()
        if added or removed:
            self.metrics.inc("index_items_published_total", added)
            self.metrics.inc("index_items_removed_total", removed)
            log.info("index reconciled: %d items added, %d removed", added, removed)
        return {"added": added, "removed": removed}

    async def _append_delta(
        self, kind: str, refs: list[bytes], entries: Iterable[bytes], key_id: bytes, now: int
    ) -> None:
        """One delta's feed entry and its log record (in the caller's transaction)."""
        payload = canonical.encode(
            {"scheme": self.scheme.name, "key_id": key_id, "entries": index.pack_entries(entries)}
        )
        entry = await self.feeds.append(INDEX_FEED, _entry_id(kind, refs), kind, payload, now)
        await translog_hooks.log_index_publication(self.translog, entry)
