"""What this node pulled from peers' feeds, and how far it got.

``store_pulled`` writes a page of a peer's feed and advances the cursor in one transaction, so
a node killed mid-pull resumes from the last page it stored; entries already held are skipped
(by seq and by entry_id), so a re-pull never duplicates. The cursor only moves forward.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from blindmatch.node.storage.database import Database, Row
from blindmatch.node.storage.feeds import MAX_READ_LIMIT, FeedEntry
from blindmatch.node.storage.validation import (
    MAX_ID_BYTES,
    MAX_PAYLOAD_BYTES,
    StorageValueError,
    check_bytes,
    check_int,
    check_text,
)


@dataclass(frozen=True)
class ReplicaEntry:
    peer_id: str
    feed: str
    seq: int
    entry_id: bytes
    kind: str
    payload: bytes
    received_at: int


_HEAD_KEY = "peer_feed_head:"


def _replica(row: Row) -> ReplicaEntry:
    return ReplicaEntry(
        peer_id=row["peer_id"],
        feed=row["feed"],
        seq=int(row["seq"]),
        entry_id=bytes(row["entry_id"]),
        kind=row["kind"],
        payload=bytes(row["payload"]),
        received_at=int(row["received_at"]),
    )


class ReplicaStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def cursor(self, peer_id: str, feed: str) -> int:
        """The seq up to which this peer's feed has been stored (0: nothing yet)."""
        check_text("peer_id", peer_id)
        check_text("feed", feed)
        value = await self._db.fetch_value(
            "SELECT cursor FROM peer_cursors WHERE peer_id = ? AND feed = ?", peer_id, feed
        )
        return int(value or 0)

    async def store_pulled(
        self,
        peer_id: str,
        feed: str,
        entries: Sequence[FeedEntry],
        new_cursor: int,
        now: int,
    ) -> int:
        """Store one pulled page and advance the cursor; return how many entries were new."""
        check_text("peer_id", peer_id)
        check_text("feed", feed)
        check_int("new_cursor", new_cursor)
        check_int("now", now)
        for index, entry in enumerate(entries):
            if not isinstance(entry, FeedEntry):
                raise StorageValueError(f"entries[{index}] must be a FeedEntry")
            check_int(f"entries[{index}].seq", entry.seq, 1)
            check_bytes(f"entries[{index}].entry_id", entry.entry_id, MAX_ID_BYTES)
            check_text(f"entries[{index}].kind", entry.kind)
            check_bytes(f"entries[{index}].payload", entry.payload, MAX_PAYLOAD_BYTES, 0)
            if entry.seq > new_cursor:
                raise StorageValueError(
                    f"entries[{index}].seq {entry.seq} is beyond the new cursor {new_cursor}"
                )
        stored = 0
        async with self._db.transaction():
            for entry in entries:
                stored += await self._db.execute(
                    "INSERT INTO replica_entries"
                    " (peer_id, feed, seq, entry_id, kind, payload, received_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    peer_id,
                    feed,
                    entry.seq,
                    entry.entry_id,
                    entry.kind,
                    entry.payload,
                    now,
                )
            await self._db.execute(
                "INSERT INTO peer_cursors (peer_id, feed, cursor, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (peer_id, feed) DO UPDATE SET"
                " cursor = CASE WHEN excluded.cursor > peer_cursors.cursor"
                " THEN excluded.cursor ELSE peer_cursors.cursor END,"
                " updated_at = excluded.updated_at",
                peer_id,
                feed,
                new_cursor,
                now,
            )
        return stored

    async def record_head(self, peer_id: str, feed: str, head: int, now: int) -> None:
        """The peer's feed head at a complete pull, for the node's other processes (their
        status and feed-lag metrics)."""
        check_text("peer_id", peer_id)
        check_text("feed", feed)
        check_int("head", head)
        check_int("now", now)
        value = json.dumps({"peer": peer_id, "feed": feed, "head": head, "at": now}).encode()
        await self._db.execute(
            "INSERT INTO node_state (key, value, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
            " updated_at = excluded.updated_at",
            f"{_HEAD_KEY}{json.dumps([peer_id, feed])}",
            value,
            now,
        )

    async def heads(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(peer, feed) -> (head at the last complete pull, when), as recorded."""
        rows = await self._db.fetch_all(
            "SELECT value FROM node_state WHERE key LIKE ?", _HEAD_KEY + "%"
        )
        out = {}
        for row in rows:
            v = json.loads(bytes(row["value"]))
            out[(str(v["peer"]), str(v["feed"]))] = (int(v["head"]), int(v["at"]))
        return out

    async def stored_bytes(self, peer_id: str) -> int:
        """Payload bytes stored of all the peer's feeds (what its feed-bytes cap bounds)."""
        check_text("peer_id", peer_id)
        value = await self._db.fetch_value(
            "SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM replica_entries WHERE peer_id = ?",
            peer_id,
        )
        return int(value or 0)

    async def entries(
        self, peer_id: str, feed: str, after_seq: int = 0, limit: int = 1000
    ) -> list[ReplicaEntry]:
        """Stored entries of a peer's feed with ``seq > after_seq``, oldest first."""
        check_text("peer_id", peer_id)
        check_text("feed", feed)
        check_int("after_seq", after_seq)
        check_int("limit", limit, 1, MAX_READ_LIMIT)
        rows = await self._db.fetch_all(
            "SELECT * FROM replica_entries WHERE peer_id = ? AND feed = ? AND seq > ?"
            " ORDER BY seq LIMIT ?",
            peer_id,
            feed,
            after_seq,
            limit,
        )
        return [_replica(r) for r in rows]
