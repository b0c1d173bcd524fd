"""The querier's side of the index: replicating every holder's index and feedback feeds.

Pulled pages are stored (``replica_entries``) before they are applied, in feed order and
exactly once; the index entries go into each holder's :class:`PeerReplica` (rebuilt from the
stored entries at start, safe under concurrent pulls and lookups), the feedback records to the
cases they concern. An entry a holder signed but we cannot read is the holder's fault: never
applied, stored so the cursor moves on, and filed as an incident for the operator.

Each holder is held to caps set from the index size it declared in the roster
(:class:`~blindmatch.protocol.replication.PeerCaps`): a page that would take its stored feeds
past their byte cap is not stored, an addition that would take its replica past its entry cap
is not applied. Either way the holder is cut off: its replica keeps its last good state and is
still matched against, nothing more of it is pulled until a roster changes its declared size,
an ``over-cap`` incident is filed and ``peer_caps_exceeded_total`` counts it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from blindmatch.node.cases.decisions import DecisionService
from blindmatch.node.clock import Clock
from blindmatch.node.federation.peer_client import PeerClient, PeerError
from blindmatch.node.federation.peer_replicas import PeerReplica, Rejected, StoredEntry
from blindmatch.node.federation.publisher import INDEX_FEED
from blindmatch.node.metrics import Metrics
from blindmatch.node.storage import ReplicaStore
from blindmatch.node.storage.feeds import FeedEntry
from blindmatch.node.storage.incidents import PeerIncidents
from blindmatch.protocol import feedback as fb
from blindmatch.protocol import index, replication
from blindmatch.protocol.roster import DEFAULT_BUDGET, Member, Roster

log = logging.getLogger("blindmatch.node")

PAGE_ENTRIES = 500


class Replicator:
    REPLICATED_FEEDS = (INDEX_FEED, fb.FEED)

    def __init__(
        self,
        roster: Roster,
        node_id: str,
        scheme_name: str,
        replicas: ReplicaStore,
        incidents: PeerIncidents,
        client: PeerClient,
        decisions: DecisionService,
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        self.roster = roster
        self.node_id = node_id
        self.scheme_name = scheme_name
        self.replicas = replicas
        self.incidents = incidents
        self.client = client
        self.decisions = decisions
        self.metrics = metrics
        self.clock = clock
        self.peer_replicas: dict[str, PeerReplica] = {}
        # (peer, feed) -> (the peer's head at our last complete pull, when): feed lag metrics
        self.feed_heads: dict[tuple[str, str], tuple[int, int]] = {}
        self.rejected_feedback: list[tuple[str, str]] = []  # (holder, reason), for operators
        self._catch_up_locks: dict[str, asyncio.Lock] = {}
        self._pull_locks: dict[str, asyncio.Lock] = {}
        # Payload bytes of each peer's stored feeds (read from the store once, then counted).
        self._stored_bytes: dict[str, int] = {}
        # Peers cut off for passing a cap, with the caps they passed: a roster that changes
        # their declared size (so their caps) lets them be pulled again.
        self.cut_off: dict[str, tuple[replication.PeerCaps, replication.CapExceeded]] = {}

    def caps(self, peer_id: str) -> replication.PeerCaps:
        """The caps of a holder, from the index size the roster says it declared."""
        member = self.roster.member(peer_id)
        declared = (member.budget if member else DEFAULT_BUDGET)["index_entries"]
        return replication.PeerCaps.from_declared(declared)

    def holders(self) -> list[Member]:
        return [m for m in self.roster.peers_of(self.node_id) if m.voprf_key is not None]

    @property
    def replica_indexes(self) -> dict[str, index.ReplicaIndex]:
        """Each peer's replicated index (read it only while no sync or match runs: a live
        node reads it through :class:`PeerReplica`, under its lock)."""
        return {peer_id: r.index for peer_id, r in self.peer_replicas.items()}

    def replica(self, peer_id: str) -> PeerReplica | None:
        member = self.roster.member(peer_id)
        if member is None or member.voprf_key_id is None:
            return None
        replica = self.peer_replicas.get(peer_id)
        max_entries = self.caps(peer_id).entries
        if (
            replica is None
            or replica.key_id != member.voprf_key_id
            or replica.max_entries != max_entries
        ):
            # A new key (or a new declared size) starts an empty replica at position 0;
            # catching up replays the stored feed, whose entries under the new key (within the
            # new cap) are then applied.
            replica = PeerReplica(peer_id, self.scheme_name, member.voprf_key_id, max_entries)
            self.peer_replicas[peer_id] = replica
        return replica

    async def stored_cursor(self, peer_id: str) -> int:
        """How far the peer's index feed is stored here."""
        return await self.replicas.cursor(peer_id, INDEX_FEED)

    async def _apply_page(
        self, replica: PeerReplica, after: int, entries: Sequence[StoredEntry]
    ) -> bool:
        """Apply stored entries that follow position ``after``; False if the replica is not
        there (the caller catches up from the store). Off the event loop: a page may be
        megabytes to decode and a removal merges."""
        rejected = await asyncio.to_thread(replica.apply_page, after, entries)
        if rejected is None:
            return False
        for r in rejected:
            await self._report_rejected(replica.peer_id, r)
        if replica.over_cap is not None:
            await self._cut_off(replica.peer_id, replica.over_cap, INDEX_FEED)
        return True

    def is_cut_off(self, peer_id: str) -> bool:
        cut = self.cut_off.get(peer_id)
        if cut is not None and cut[0] != self.caps(peer_id):
            del self.cut_off[peer_id]  # a new declared size: pull it again, within new caps
            return False
        return cut is not None

    async def _cut_off(self, peer_id: str, exceeded: replication.CapExceeded, feed: str) -> None:
        """The holder passed a cap: stop pulling it, keep its replica's last good state, file
        an incident (once per place it passed it) and count it."""
        if self.cut_off.get(peer_id, (None, None))[1] == exceeded:
            return  # already reported (a replica rebuilt from the store meets it again)
        self.cut_off[peer_id] = (self.caps(peer_id), exceeded)
        self.metrics.inc("peer_caps_exceeded_total", labels={"peer": peer_id, "cap": exceeded.cap})
        log.warning("%s is cut off: %s", peer_id, exceeded.describe())
        await self.incidents.record(
            peer_id,
            "over-cap",
            f"{feed} feed: {exceeded.describe()}; nothing more pulled from this peer",
            {
                "feed": feed,
                "cap": exceeded.cap,
                "limit": exceeded.limit,
                "would_be": exceeded.would_be,
                "seq": exceeded.seq,
            },
            self.clock.now(),
        )

    async def _report_rejected(self, peer_id: str, r: Rejected) -> None:
        """An index-feed entry we cannot read came in a page the peer signed, so it is the
        peer's fault: it is never applied, it stays stored so the cursor moves on, and it is
        filed as an incident for the operator (and counted) instead of only logged."""
        self.metrics.inc("replica_entries_rejected_total", labels={"peer": peer_id})
        log.warning("rejected index feed entry %d from %s: %s", r.seq, peer_id, r.reason)
        await self.incidents.record(
            peer_id,
            "bad-index-entry",
            f"index feed entry {r.seq} not applied: {r.reason}",
            {"feed": INDEX_FEED, "seq": r.seq, "entry_id": r.entry_id.hex(), "kind": r.kind[:64]},
            self.clock.now(),
        )

    async def catch_up(self, peer_id: str) -> PeerReplica | None:
        """Bring the peer's replica up to everything stored of its index feed."""
        replica = self.replica(peer_id)
        if replica is None:
            return None
        async with self._catch_up_locks.setdefault(peer_id, asyncio.Lock()):
            while True:
                after = replica.cursor
                rows = await self.replicas.entries(peer_id, INDEX_FEED, after, 1000)
                if not rows:
                    break
                stored = [StoredEntry(r.seq, r.entry_id, r.kind, r.payload) for r in rows]
                await self._apply_page(replica, after, stored)  # a racing page: read again
        return replica

    async def load(self) -> None:
        """Rebuild every holder's replica from the stored entries (and, on a node's processes
        other than its leader, follow them: each round), with the peers' feed heads as the
        last pull, by any process of the node, recorded them."""
        for peer in self.holders():
            await self.catch_up(peer.node_id)
        for key, (head, at) in (await self.replicas.heads()).items():
            if at >= self.feed_heads.get(key, (0, 0))[1]:
                self.feed_heads[key] = (head, at)

    async def sync_peer(self, peer: Member, max_pages: int = 1000) -> int:
        """Pull the peer's index and feedback feeds from our cursors; returns new entries
        (0 for a peer cut off for passing a cap: matching uses its replica as it was)."""
        async with self._pull_locks.setdefault(peer.node_id, asyncio.Lock()):
            if peer.voprf_key is not None:
                await self.catch_up(peer.node_id)  # a rebuilt replica may meet its cap
            new = 0
            for feed in (INDEX_FEED, fb.FEED):
                if self.is_cut_off(peer.node_id):
                    break
                new += await self._pull_feed(peer, feed, max_pages)
            return new

    async def stored_bytes(self, peer_id: str) -> int:
        if peer_id not in self._stored_bytes:
            self._stored_bytes[peer_id] = await self.replicas.stored_bytes(peer_id)
        return self._stored_bytes[peer_id]

    async def _pull_feed(self, peer: Member, feed: str, max_pages: int) -> int:
        """One pass over the peer's feed, driven by the sans-I/O :class:`FeedPull` (it checks
        every page and owns the cursor; this method only sends, stores and applies)."""
        start = await self.replicas.cursor(peer.node_id, feed)
        pull = replication.FeedPull(
            feed,
            start,
            page_limit=PAGE_ENTRIES,
            max_pages=max_pages,
            stored_bytes=await self.stored_bytes(peer.node_id),
            max_bytes=self.caps(peer.node_id).feed_bytes,
        )
        while (request := pull.request()) is not None:
            reply = await self.client.call(peer, "feed.pull", request)
            try:
                page = pull.receive(reply.body)
            except replication.ReplicationError as exc:
                if pull.over_cap is not None:
                    await self._cut_off(peer.node_id, pull.over_cap, feed)
                    break
                raise PeerError(exc.message, code=exc.code) from exc
            if not page.entries:
                break
            entries = [
                FeedEntry(feed, e.seq, e.entry_id, e.kind, e.payload, 0) for e in page.entries
            ]
            await self.replicas.store_pulled(
                peer.node_id, feed, entries, page.cursor, self.clock.now()
            )
            after = pull.cursor
            pull.stored()
            self._stored_bytes[peer.node_id] = pull.stored_bytes
            if feed == INDEX_FEED:
                # Apply what is now durably stored, in feed order, exactly once: directly if
                # the replica is at the position this page follows, else from the store.
                replica = self.replica(peer.node_id)
                stored = [StoredEntry(e.seq, e.entry_id, e.kind, e.payload) for e in entries]
                if replica is not None and not await self._apply_page(replica, after, stored):
                    await self.catch_up(peer.node_id)
                if self.is_cut_off(peer.node_id):
                    break
            else:
                for e in entries:
                    await self._apply_feedback_entry(peer, e)
        if pull.head is not None:
            self.feed_heads[(peer.node_id, feed)] = (pull.head, self.clock.now())
            await self.replicas.record_head(peer.node_id, feed, pull.head, self.clock.now())
        if pull.pulled:
            self.metrics.inc(
                "replica_entries_pulled_total",
                pull.pulled,
                labels={"peer": peer.node_id, "feed": feed},
            )
        return pull.pulled

    async def _apply_feedback_entry(self, peer: Member, entry: FeedEntry) -> None:
        """Verify a replicated feedback record against its origin's key, then apply it."""
        try:
            record = fb.open_record(entry.payload, self.roster.signing_key)
            if record.holder != peer.node_id:
                raise fb.FeedbackError("not-allowed", "a feed carries only its holder's items")
        except fb.FeedbackError as exc:
            # Reported, never applied; the entry stays stored so the cursor can move on.
            self.rejected_feedback.append((peer.node_id, str(exc)))
            self.metrics.inc("feedback_rejected_total", labels={"peer": peer.node_id})
            log.warning("rejected a feedback record from %s's feed: %s", peer.node_id, exc.code)
            return
        await self.decisions.apply_feedback(record)

    async def sync_all(self) -> dict[str, int | str]:
        out: dict[str, int | str] = {}
        for peer in self.holders():
            try:
                out[peer.node_id] = await self.sync_peer(peer)
                if self.is_cut_off(peer.node_id):
                    out[peer.node_id] = "error: over-cap"
            except PeerError as exc:
                out[peer.node_id] = f"error: {exc.code}"
                log.info("sync with %s failed: %s", peer.node_id, exc.code)
        return out
