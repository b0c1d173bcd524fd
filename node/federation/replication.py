"""The querier's side of the index: replicating every holder's index and feedback feeds.

Pulled pages are stored (``replica_entries``) before they are applied, in feed order and
exactly once; the index entries go into an in-memory :class:`ReplicaIndex` per holder (rebuilt
from the stored entries at start), the feedback records to the cases they concern. An entry a
holder signed but we cannot read is the holder's fault: never applied, stored so the cursor
moves on, and filed as an incident for the operator.
"""

from __future__ import annotations

import logging

from blindmatch.node.cases.decisions import DecisionService
from blindmatch.node.clock import Clock
from blindmatch.node.federation.peer_client import PeerClient, PeerError
from blindmatch.node.federation.publisher import INDEX_FEED
from blindmatch.node.metrics import Metrics
from blindmatch.node.storage import ReplicaStore
from blindmatch.node.storage.feeds import FeedEntry
from blindmatch.node.storage.incidents import PeerIncidents
from blindmatch.protocol import canonical, index, schema
from blindmatch.protocol import feedback as fb
from blindmatch.protocol.roster import Member, Roster

log = logging.getLogger("blindmatch.node")

PAGE_ENTRIES = 500


class Replicator:
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
        self.replica_indexes: dict[str, index.ReplicaIndex] = {}
        self.rejected_feedback: list[tuple[str, str]] = []  # (holder, reason), for operators
        self._cursor: dict[str, int] = {}

    def holders(self) -> list[Member]:
        return [m for m in self.roster.peers_of(self.node_id) if m.voprf_key is not None]

    def replica(self, peer_id: str) -> index.ReplicaIndex | None:
        """The peer's replica under its current VOPRF key (a new key starts an empty one)."""
        member = self.roster.member(peer_id)
        if member is None or member.voprf_key_id is None:
            return None
        ri = self.replica_indexes.get(peer_id)
        if ri is None or ri.key_id != member.voprf_key_id:
            ri = index.ReplicaIndex(self.scheme_name, member.voprf_key_id)
            self.replica_indexes[peer_id] = ri
            self._cursor[peer_id] = 0
        return ri

    def has_pulled(self, peer_id: str) -> bool:
        return self._cursor.get(peer_id, 0) != 0

    async def load(self) -> None:
        """Rebuild every holder's replica from the stored entries."""
        for peer in self.holders():
            self.replica(peer.node_id)
            after = self._cursor.get(peer.node_id, 0)
            while True:
                rows = await self.replicas.entries(peer.node_id, INDEX_FEED, after, 1000)
                if not rows:
                    break
                for r in rows:
                    await self._apply(peer.node_id, r.seq, r.entry_id, r.kind, r.payload)
                    after = r.seq
            self._cursor[peer.node_id] = after

    async def _apply(
        self, peer_id: str, seq: int, entry_id: bytes, kind: str, payload: bytes
    ) -> bool:
        """Apply one stored index-feed entry to the peer's replica; False if it was rejected."""
        ri = self.replica(peer_id)
        if ri is None:
            return True
        try:
            body = schema.check(index.FEED_SCHEMAS[kind], canonical.decode(payload))
            if body["scheme"] != ri.scheme or body["key_id"] != ri.key_id:
                return True  # another scheme or a retired key: not the index we match against
            if kind == "index.add":
                ri.add(body["entries"])
            elif kind == "index.remove":
                ri.remove(body["entries"])
        except (
            KeyError,
            canonical.CanonicalError,
            schema.SchemaError,
            index.IndexFormatError,
        ) as exc:
            reason = "unknown entry kind" if isinstance(exc, KeyError) else str(exc)
            self.metrics.inc("replica_entries_rejected_total", labels={"peer": peer_id})
            log.warning("rejected index feed entry %d from %s: %s", seq, peer_id, reason)
            await self.incidents.record(
                peer_id,
                "bad-index-entry",
                f"index feed entry {seq} not applied: {reason}",
                {"feed": INDEX_FEED, "seq": seq, "entry_id": entry_id.hex(), "kind": kind[:64]},
                self.clock.now(),
            )
            return False
        return True

    async def sync_peer(self, peer: Member, max_pages: int = 1000) -> int:
        """Pull the peer's index and feedback feeds from our cursors; returns new entries."""
        new = await self._pull_feed(peer, INDEX_FEED, max_pages)
        new += await self._pull_feed(peer, fb.FEED, max_pages)
        return new

    async def _pull_feed(self, peer: Member, feed: str, max_pages: int) -> int:
        new = 0
        for _ in range(max_pages):
            cursor = await self.replicas.cursor(peer.node_id, feed)
            reply = await self.client.call(
                peer, "feed.pull", {"feed": feed, "after": cursor, "limit": PAGE_ENTRIES}
            )
            body = reply.body
            if body["feed"] != feed:
                raise PeerError("bad-body", "page of another feed")
            entries = [
                FeedEntry(feed, e["seq"], e["id"], e["kind"], e["payload"], 0)
                for e in body["entries"]
            ]
            seqs = [e.seq for e in entries]
            if seqs != sorted(set(seqs)) or (seqs and seqs[0] <= cursor):
                raise PeerError("bad-body", "feed page is not in order after the cursor")
            if not entries:
                break
            new_cursor = entries[-1].seq
            await self.replicas.store_pulled(
                peer.node_id, feed, entries, new_cursor, self.clock.now()
            )
            new += len(entries)
            if feed == INDEX_FEED:
                # Apply what is now durably stored, in feed order, exactly once.
                after = self._cursor.get(peer.node_id, 0)
                for e in entries:
                    if e.seq > after:
                        await self._apply(peer.node_id, e.seq, e.entry_id, e.kind, e.payload)
                self._cursor[peer.node_id] = max(after, new_cursor)
            else:
                for e in entries:
                    await self._apply_feedback_entry(peer, e)
            if new_cursor >= body["head"]:
                break
        if new:
            self.metrics.inc(
                "replica_entries_pulled_total", new, labels={"peer": peer.node_id, "feed": feed}
            )
        return new

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
            except PeerError as exc:
                out[peer.node_id] = f"error: {exc.code}"
                log.info("sync with %s failed: %s", peer.node_id, exc.code)
        return out
