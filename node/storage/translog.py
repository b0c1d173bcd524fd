"""The verifiable log's tables (specs/transparency.md): its entries and signed heads, the
per-peer traffic counters not yet logged, and what this node saw of its peers' logs (their
heads and the incidents found in them). The translog service's one store.

The tables may be missing in a database that was never migrated: :meth:`TranslogStore.ensure`
creates them, and every reader that may run first calls it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from blindmatch.node.storage.database import Database, Row
from blindmatch.node.storage.incidents import PeerIncidents
from blindmatch.node.storage.migrations import ensure_transparency_tables

_HEAD_SELECT = "SELECT tree_size, root, timestamp_ms, signature FROM log_tree_heads"


class TranslogStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    @property
    def peer_incidents(self) -> PeerIncidents:
        """Where misbehaviour found in a peer's log is filed, beside every other incident."""
        return PeerIncidents(self._db)

    async def ensure(self) -> None:
        await ensure_transparency_tables(self._db)

    @asynccontextmanager
    async def locked(self, name: str) -> AsyncIterator[None]:
        """A transaction holding the named lock (one appender or signer at a time across
        processes)."""
        async with self._db.transaction():
            await self._db.lock(name)
            yield

    # --- entries --------------------------------------------------------------------------------

    async def leaf_hashes(self, start: int, limit: int) -> list[Row]:
        """``seq, leaf_hash`` from ``start`` on, in order."""
        return await self._db.fetch_all(
            "SELECT seq, leaf_hash FROM log_entries WHERE seq >= ? ORDER BY seq LIMIT ?",
            start, limit,
        )  # fmt: skip

    async def size(self) -> int:
        return int(await self._db.fetch_value("SELECT COALESCE(MAX(seq), -1) + 1 FROM log_entries"))

    async def insert_entry(self, entry: bytes, leaf_hash: bytes, created_at: int) -> int:
        """Append at the next index; call under :meth:`locked`. Returns the index."""
        seq = await self.size()
        await self._db.execute(
            "INSERT INTO log_entries (seq, entry, leaf_hash, created_at) VALUES (?, ?, ?, ?)",
            seq, entry, leaf_hash, created_at,
        )  # fmt: skip
        return seq

    async def entries(self, start: int, end: int) -> list[Row]:
        """``seq, entry, leaf_hash, created_at`` of entries ``start .. end-1``."""
        return await self._db.fetch_all(
            "SELECT seq, entry, leaf_hash, created_at FROM log_entries WHERE seq >= ? AND seq < ?"
            " ORDER BY seq",
            start, end,
        )  # fmt: skip

    # --- signed heads -----------------------------------------------------------------------------

    async def latest_head(self) -> Row | None:
        return await self._db.fetch_one(_HEAD_SELECT + " ORDER BY tree_size DESC LIMIT 1")

    async def head_at(self, tree_size: int) -> Row | None:
        return await self._db.fetch_one(_HEAD_SELECT + " WHERE tree_size = ?", tree_size)

    async def heads(self) -> list[Row]:
        return await self._db.fetch_all(_HEAD_SELECT + " ORDER BY tree_size")

    async def put_head(
        self, tree_size: int, root: bytes, timestamp_ms: int, signature: bytes, created_at: int
    ) -> None:
        """Store a signed head (a re-signed size replaces the older head)."""
        await self._db.execute(
            "INSERT INTO log_tree_heads (tree_size, root, timestamp_ms, signature,"
            " created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (tree_size) DO UPDATE SET"
            " root = excluded.root, timestamp_ms = excluded.timestamp_ms,"
            " signature = excluded.signature, created_at = excluded.created_at",
            tree_size, root, timestamp_ms, signature, created_at,
        )  # fmt: skip

    # --- traffic counters -------------------------------------------------------------------------

    async def count(
        self,
        peer: str,
        counter: str,
        direction: str,
        window_start_ms: int,
        window_ms: int,
        messages: int,
        items: int,
    ) -> None:
        await self._db.execute(
            "INSERT INTO log_counters (peer_id, counter, direction, window_start_ms, window_ms,"
            " messages, items) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (peer_id, counter,"
            " direction, window_start_ms, window_ms) DO UPDATE SET"
            " messages = log_counters.messages + excluded.messages,"
            " items = log_counters.items + excluded.items",
            peer, counter, direction, window_start_ms, window_ms, messages, items,
        )  # fmt: skip

    async def ended_counters(self, now_ms: int) -> list[Row]:
        """Every counter whose window has ended, in window, peer, counter order."""
        return await self._db.fetch_all(
            "SELECT * FROM log_counters WHERE window_start_ms + window_ms <= ?"
            " ORDER BY window_start_ms, peer_id, counter, direction",
            now_ms,
        )

    async def drop_counter(self, row: Row) -> None:
        await self._db.execute(
            "DELETE FROM log_counters WHERE peer_id = ? AND counter = ? AND direction = ?"
            " AND window_start_ms = ? AND window_ms = ?",
            row["peer_id"], row["counter"], row["direction"], row["window_start_ms"],
            row["window_ms"],
        )  # fmt: skip

    # --- peers' logs ------------------------------------------------------------------------------

    async def peer_heads(self, peer_id: str) -> list[bytes]:
        """The heads of a peer's log this node accepted, by size (as signed bytes)."""
        rows = await self._db.fetch_all(
            "SELECT sth FROM peer_tree_heads WHERE peer_id = ? ORDER BY tree_size", peer_id
        )
        return [bytes(r["sth"]) for r in rows]

    async def witnessed(self) -> list[bytes]:
        """The newest accepted head of each peer's log, by peer."""
        rows = await self._db.fetch_all(
            "SELECT h.sth FROM peer_tree_heads h WHERE h.tree_size = (SELECT MAX(tree_size) FROM"
            " peer_tree_heads g WHERE g.peer_id = h.peer_id) ORDER BY h.peer_id"
        )
        return [bytes(r["sth"]) for r in rows]

    async def remember_peer_head(
        self, peer_id: str, tree_size: int, root: bytes, timestamp_ms: int, sth: bytes, now: int
    ) -> None:
        """Keep a peer's head; a newer signature over the same root replaces an older one."""
        await self._db.execute(
            "INSERT INTO peer_tree_heads (peer_id, tree_size, root, timestamp_ms, sth, seen_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (peer_id, tree_size) DO UPDATE SET"
            " timestamp_ms = excluded.timestamp_ms, sth = excluded.sth, seen_at = excluded.seen_at"
            " WHERE peer_tree_heads.root = excluded.root"
            " AND peer_tree_heads.timestamp_ms < excluded.timestamp_ms",
            peer_id, tree_size, root, timestamp_ms, sth, now,
        )  # fmt: skip

    async def incidents(self, peer_id: str) -> list[Row]:
        """``code, detail, evidence`` (JSON text), ``detected_at`` of a peer's log, in order."""
        return await self._db.fetch_all(
            "SELECT code, detail, evidence, detected_at FROM peer_log_incidents WHERE"
            " peer_id = ? ORDER BY id",
            peer_id,
        )
