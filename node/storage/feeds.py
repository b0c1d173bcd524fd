"""Append-only change feeds: what this node publishes for peers to pull.

A feed is a named sequence of entries numbered 1, 2, 3, ... with no gaps. Readers resume from
the last ``seq`` they processed (``read(feed, after_seq=cursor)``). Appends to one feed are
serialised by a per-feed lock, and the seq is taken inside the appending transaction, so seq
order is commit order and a reader can never skip an entry that commits late. Appending an
``entry_id`` that is already in the feed returns the existing entry: a retried append never
duplicates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from blindmatch.node.storage.database import Database, Row
from blindmatch.node.storage.validation import (
    MAX_ID_BYTES,
    MAX_PAYLOAD_BYTES,
    StorageValueError,
    check_bytes,
    check_int,
    check_text,
)

MAX_READ_LIMIT = 10_000
_IN_CHUNK = 500  # ids per "IN (...)" list: well under SQLite's 32766 and PostgreSQL's limits


class FeedConflictError(StorageValueError):
    """An entry_id already in the feed was appended again with a different kind or payload."""


@dataclass(frozen=True)
class FeedEntry:
    feed: str
    seq: int
    entry_id: bytes
    kind: str
    payload: bytes
    created_at: int


def _entry(row: Row) -> FeedEntry:
    return FeedEntry(
        feed=row["feed"],
        seq=int(row["seq"]),
        entry_id=bytes(row["entry_id"]),
        kind=row["kind"],
        payload=bytes(row["payload"]),
        created_at=int(row["created_at"]),
    )


class FeedLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def append(
        self, feed: str, entry_id: bytes, kind: str, payload: bytes, now: int
    ) -> FeedEntry:
        """Append one entry (or return the identical one already there)."""
        check_text("feed", feed)
        entry_id = check_bytes("entry_id", entry_id, MAX_ID_BYTES)
        check_text("kind", kind)
        payload = check_bytes("payload", payload, MAX_PAYLOAD_BYTES, min_len=0)
        check_int("now", now)
        async with self._db.transaction():
            await self._db.lock(f"feed:{feed}")
            existing = await self._db.fetch_one(
                "SELECT * FROM feed_entries WHERE feed = ? AND entry_id = ?", feed, entry_id
            )
            if existing is not None:
                entry = _entry(existing)
                if entry.kind != kind or entry.payload != payload:
                    raise FeedConflictError(
                        f"entry_id already in feed {feed!r} with a different kind or payload"
                    )
                return entry
            seq = await self._db.fetch_value(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM feed_entries WHERE feed = ?", feed
            )
            await self._db.execute(
                "INSERT INTO feed_entries (feed, seq, entry_id, kind, payload, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                feed,
                int(seq),
                entry_id,
                kind,
                payload,
                now,
            )
        return FeedEntry(feed, int(seq), entry_id, kind, payload, now)

    async def append_many(
        self, feed: str, entries: Sequence[tuple[bytes, str, bytes]], now: int
    ) -> list[FeedEntry]:
        """Append ``(entry_id, kind, payload)``s in order, in one transaction and one batch.

        Entries whose entry_id is already in the feed are returned as stored (after the same
        check as :meth:`append`), not appended again.
        """
        check_text("feed", feed)
        check_int("now", now)
        checked: list[tuple[bytes, str, bytes]] = []
        for index, entry in enumerate(entries):
            if not isinstance(entry, tuple) or len(entry) != 3:
                raise StorageValueError(f"entries[{index}] must be (entry_id, kind, payload)")
            entry_id, kind, payload = entry
            checked.append(
                (
                    check_bytes(f"entries[{index}].entry_id", entry_id, MAX_ID_BYTES),
                    check_text(f"entries[{index}].kind", kind),
                    check_bytes(f"entries[{index}].payload", payload, MAX_PAYLOAD_BYTES, 0),
                )
            )
        if not checked:
            return []
        async with self._db.transaction():
            await self._db.lock(f"feed:{feed}")
            existing: dict[bytes, FeedEntry] = {}
            ids = [entry_id for entry_id, _, _ in checked]
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = ids[start : start + _IN_CHUNK]
                rows = await self._db.fetch_all(
                    "SELECT * FROM feed_entries WHERE feed = ? AND entry_id IN"
                    f" ({', '.join('?' for _ in chunk)})",
                    feed,
                    *chunk,
                )
                existing.update((bytes(r["entry_id"]), _entry(r)) for r in rows)
            seq = int(
                await self._db.fetch_value(
                    "SELECT COALESCE(MAX(seq), 0) FROM feed_entries WHERE feed = ?", feed
                )
            )
            result: list[FeedEntry] = []
            new_rows: list[tuple[str, int, bytes, str, bytes, int]] = []
            for entry_id, kind, payload in checked:
                found = existing.get(entry_id)
                if found is not None:
                    if found.kind != kind or found.payload != payload:
                        raise FeedConflictError(
                            f"entry_id already in feed {feed!r} with a different kind or payload"
                        )
                    result.append(found)
                    continue
                seq += 1
                appended = FeedEntry(feed, seq, entry_id, kind, payload, now)
                existing[entry_id] = appended
                result.append(appended)
                new_rows.append((feed, seq, entry_id, kind, payload, now))
            await self._db.execute_many(
                "INSERT INTO feed_entries (feed, seq, entry_id, kind, payload, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                new_rows,
            )
        return result

    async def read(self, feed: str, after_seq: int = 0, limit: int = 1000) -> list[FeedEntry]:
        """Entries with ``seq > after_seq``, oldest first, at most ``limit``."""
        check_text("feed", feed)
        check_int("after_seq", after_seq)
        check_int("limit", limit, 1, MAX_READ_LIMIT)
        rows = await self._db.fetch_all(
            "SELECT * FROM feed_entries WHERE feed = ? AND seq > ? ORDER BY seq LIMIT ?",
            feed,
            after_seq,
            limit,
        )
        return [_entry(r) for r in rows]

    async def head(self, feed: str) -> int:
        """The newest seq in the feed (0 when empty)."""
        check_text("feed", feed)
        value = await self._db.fetch_value(
            "SELECT COALESCE(MAX(seq), 0) FROM feed_entries WHERE feed = ?", feed
        )
        return int(value)

    async def last_created(self, feed: str, kind: str) -> int | None:
        """When the newest entry of this kind was appended (None: none), walking back from the
        head (cheap when such entries are recent)."""
        check_text("feed", feed)
        value = await self._db.fetch_value(
            "SELECT created_at FROM feed_entries WHERE feed = ? AND kind = ?"
            " ORDER BY seq DESC LIMIT 1",
            feed,
            kind,
        )
        return None if value is None else int(value)
