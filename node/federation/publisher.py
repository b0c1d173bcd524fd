"""The holder's side of the index: publishing its shared banks' items as a blinded index.

Each delta of the ``index`` feed adds or removes the packed index entries of a batch of items,
in one transaction with its log record and its rows in ``index_publications``, so a crash
leaves either both or neither. The OPRF evaluations are :mod:`.index_build`'s.

The index is published under every key the ring publishes (:mod:`.key_ring`: the current key
and, during a rotation, its successor), each item once per key; the entries of a key the ring
no longer answers for (a retired key after its overlap) are withdrawn, then its secret erased.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence

from blindmatch.crypto import oprf
from blindmatch.node import signals
from blindmatch.node.clock import Clock
from blindmatch.node.federation import index_build
from blindmatch.node.federation.key_ring import VoprfKeyRing
from blindmatch.node.metrics import Metrics
from blindmatch.node.storage import Database, FeedLog
from blindmatch.node.storage.published_index import PublishedIndexStore
from blindmatch.node.translog import hooks as translog_hooks
from blindmatch.node.translog.log import TransparencyLog
from blindmatch.protocol import canonical, index
from blindmatch.protocol.lsh import BitSamplingScheme
from blindmatch.protocol.roster import voprf_key_id

log = logging.getLogger("blindmatch.node")

INDEX_FEED = "index"
PUBLISH_LOCK = "blindmatch:publish-index"


def _entry_id(kind: str, refs: Sequence[bytes], key_id: bytes) -> bytes:
    """Idempotent per change: the same items added (or removed) under the same key (10.3)."""
    return index.feed_entry_id(kind, key_id, refs)


class IndexPublisher:
    def __init__(
        self,
        db: Database,
        store: PublishedIndexStore,
        feeds: FeedLog,
        translog: TransparencyLog,
        ring: VoprfKeyRing,
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
        self.ring = ring
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
            await self.ring.refresh()  # another process of this node may have rotated
            await self.ring.settle()  # a promotion not yet durable (a roster reload)
            return await self._reconcile(self.clock.now())

    async def _reconcile(self, now: int) -> dict[str, int]:
        removed = await self._withdraw_stale_keys(now)
        result = {"added": 0, "removed": removed}
        for key in self.ring.publishing():
            done = await self._reconcile_key(key, now)
            result = {k: result[k] + done[k] for k in result}
        if result["added"] or result["removed"]:
            self.metrics.inc("index_items_published_total", result["added"])
            self.metrics.inc("index_items_removed_total", result["removed"])
            log.info("index reconciled: %d items added, %d removed", *result.values())
        return result

    async def _withdraw_stale_keys(self, now: int) -> int:
        """Withdraw the entries published under a key no longer answered (a retired key whose
        overlap ended, or one erased early by a second rotation), then erase its secret."""
        expired = self.ring.expired_retired(now)
        live = {k for k in self.ring.keys.voprf_keys() if k != expired}
        removed = 0
        for key_id in await self.store.key_ids():
            if key_id in live:
                continue
            published = await self.store.published(key_id)
            removed += await self._remove(list(published), published, key_id, now)
        if expired is not None:
            self.ring.erase_retired()
        return removed

    async def _remove(
        self, to_remove: list[bytes], published: dict[bytes, bytes], key_id: bytes, now: int
    ) -> int:
        # One delta must fit a feed payload: at most MAX_ENTRIES_PER_DELTA entries.
        batch = max(1, index.MAX_ENTRIES_PER_DELTA // self.scheme.tables)
        for start in range(0, len(to_remove), batch):
            refs = to_remove[start : start + batch]
            entries = (e for r in refs for e in index.split_entries(published[r]))
            async with self.db.transaction():
                await self._append_delta("index.remove", refs, entries, key_id, now)
                await self.store.forget(refs, key_id)
        return len(to_remove)

    async def _reconcile_key(self, key: oprf.ServerKey, now: int) -> dict[str, int]:
        key_id = voprf_key_id(key.pk)
        active: dict[bytes, list[bytes]] = {}
        for adapter in self.publishing_adapters():
            for p in await adapter.unpublished(self.db, now, key_id):
                active[p.item_ref] = p.keys
        live_checks = [
            (check, a.live_ref_params(now))
            for a in signals.ADAPTERS
            if (check := a.live_ref_sql()) is not None
        ]
        published = await self.store.no_longer_live(live_checks, key_id)
        to_add = list(active)
        removed = await self._remove(list(published), published, key_id, now)
        batch = max(1, index.MAX_ENTRIES_PER_DELTA // self.scheme.tables)
        added = 0
        # The OPRF evaluations of the whole backlog start at once (worker processes when it
        # is large) and each delta is written as soon as its items are evaluated, so the
        # writes overlap the evaluation of the items after them.
        evaluations = index_build.start_entries(key, [(r, active[r]) for r in to_add])
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
        return {"added": added, "removed": removed}

    async def _append_delta(
        self, kind: str, refs: list[bytes], entries: Iterable[bytes], key_id: bytes, now: int
    ) -> None:
        """One delta's feed entry and its log record (in the caller's transaction)."""
        payload = canonical.encode(
            {"scheme": self.scheme.name, "key_id": key_id, "entries": index.pack_entries(entries)}
        )
        entry_id = _entry_id(kind, refs, key_id)
        entry = await self.feeds.append(INDEX_FEED, entry_id, kind, payload, now)
        await translog_hooks.log_index_publication(self.translog, entry)
