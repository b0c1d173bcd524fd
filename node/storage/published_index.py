"""The holder's published index: which items it holds, with the entries that went out for them.

``index_publications`` holds, per published item and VOPRF key, the packed index entries of its
``index.add`` delta, so a removal can send exactly those entries back out (during a rotation an
item is published under two keys, spec 8.4). What is live and
publishable is each signal type's (``node/signals``); this store answers which publications
are no longer backed by a live item, reading only the differences.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from blindmatch.node.storage.database import Database


class PublishedIndexStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def no_longer_live(
        self, live_checks: Sequence[tuple[str, list[Any]]], key_id: bytes
    ) -> dict[bytes, bytes]:
        """Publications under ``key_id`` for which none of ``live_checks`` (``SELECT 1 ... =
        p.item_ref`` with its bound values) finds a live item: item_ref -> packed entries."""
        # a decoy (spec 8.6) is never live and never removed: its row leaves with its key
        sql = (
            "SELECT p.item_ref, p.entries FROM index_publications p WHERE p.key_id = ?"
            " AND p.scheme NOT LIKE 'decoy/%'"
        )
        params: list[Any] = [key_id]
        for check, values in live_checks:
            sql += f" AND NOT EXISTS ({check})"
            params += values
        return {
            bytes(r["item_ref"]): bytes(r["entries"]) for r in await self.db.fetch_all(sql, *params)
        }

    async def record(
        self, per_item: dict[bytes, bytes], scheme: str, key_id: bytes, now: int
    ) -> None:
        """Items now in the index with their packed entries (in the caller's transaction)."""
        await self.db.execute_many(
            "INSERT INTO index_publications (item_ref, scheme, key_id, entries,"
            " published_at) VALUES (?, ?, ?, ?, ?)",
            [(r, scheme, key_id, packed, now) for r, packed in per_item.items()],
        )

    async def forget(self, refs: Sequence[bytes], key_id: bytes) -> None:
        """Items taken out of the index under ``key_id`` (in the caller's transaction)."""
        await self.db.execute_many(
            "DELETE FROM index_publications WHERE item_ref = ? AND key_id = ?",
            [(r, key_id) for r in refs],
        )

    async def key_ids(self) -> list[bytes]:
        """The VOPRF keys something is published under."""
        rows = await self.db.fetch_all("SELECT DISTINCT key_id FROM index_publications")
        return [bytes(r["key_id"]) for r in rows]

    async def with_prefix(self, prefix: bytes, key_id: bytes) -> dict[bytes, bytes]:
        """The items published under ``key_id`` whose reference starts with the 8-byte
        ``prefix`` (what a candidate names): item_ref -> packed entries."""
        rows = await self.db.fetch_all(
            "SELECT item_ref, entries FROM index_publications"
            " WHERE item_ref >= ? AND item_ref <= ? AND key_id = ?",
            prefix + bytes(8), prefix + b"\xff" * 8, key_id,
        )  # fmt: skip
        return {bytes(r["item_ref"]): bytes(r["entries"]) for r in rows}

    async def published(self, key_id: bytes) -> dict[bytes, bytes]:
        """Everything published under ``key_id``: item_ref -> packed entries."""
        rows = await self.db.fetch_all(
            "SELECT item_ref, entries FROM index_publications WHERE key_id = ?", key_id
        )
        return {bytes(r["item_ref"]): bytes(r["entries"]) for r in rows}

    async def entry_count(self, key_id: bytes) -> int:
        """Index entries published under ``key_id`` (items and decoys)."""
        v = await self.db.fetch_value(
            "SELECT COALESCE(SUM(LENGTH(entries)), 0) FROM index_publications WHERE key_id = ?",
            key_id,
        )
        return int(v) // 24

    async def entry_counts(self, key_id: bytes) -> tuple[int, int]:
        """Index entries published under ``key_id``: all of them, and those that are no decoy
        (items, answered or no longer: a withdrawn item's entries stay, 8.7)."""
        row = await self.db.fetch_one(
            "SELECT COALESCE(SUM(LENGTH(entries)), 0) AS entries,"
            " COALESCE(SUM(CASE WHEN scheme LIKE 'decoy/%' THEN 0 ELSE LENGTH(entries) END), 0)"
            " AS real_entries FROM index_publications WHERE key_id = ?",
            key_id,
        )
        assert row is not None
        return int(row["entries"]) // 24, int(row["real_entries"]) // 24

    async def any_published(self, key_id: bytes) -> bool:
        """Whether anything is published under ``key_id``."""
        v = await self.db.fetch_value(
            "SELECT 1 FROM index_publications WHERE key_id = ? LIMIT 1", key_id
        )
        return v is not None

    async def missing(self, shown_key: bytes, key_id: bytes) -> dict[bytes, str]:
        """What is published under ``shown_key`` and not yet under ``key_id`` (items and
        decoys): ref -> its scheme column (a decoy's label)."""
        rows = await self.db.fetch_all(
            "SELECT p.item_ref, p.scheme FROM index_publications p WHERE p.key_id = ?"
            " AND NOT EXISTS (SELECT 1 FROM index_publications q"
            " WHERE q.item_ref = p.item_ref AND q.key_id = ?)",
            shown_key, key_id,
        )  # fmt: skip
        return {bytes(r["item_ref"]): str(r["scheme"]) for r in rows}

    async def refs(self, key_id: bytes) -> set[bytes]:
        """The references published under ``key_id`` (items and decoys)."""
        rows = await self.db.fetch_all(
            "SELECT item_ref FROM index_publications WHERE key_id = ?", key_id
        )
        return {bytes(r["item_ref"]) for r in rows}

    async def shared_banks_off_threshold(self, threshold: int) -> int:
        """Shared, enabled banks whose distance threshold is not ``threshold`` (their answers
        show their own bands, spec 8.7)."""
        v = await self.db.fetch_value(
            "SELECT COUNT(*) FROM banks WHERE shared = 1 AND enabled = 1"
            " AND distance_threshold != ?",
            threshold,
        )
        return int(v or 0)

    async def labels(self, refs: Sequence[bytes]) -> dict[bytes, str]:
        """The row label (scheme column) each published reference was published under."""
        out: dict[bytes, str] = {}
        for start in range(0, len(refs), 500):
            part = list(refs[start : start + 500])
            rows = await self.db.fetch_all(
                "SELECT item_ref, scheme FROM index_publications WHERE item_ref IN ("
                + ", ".join("?" * len(part)) + ")",
                *part,
            )  # fmt: skip
            out.update({bytes(r["item_ref"]): str(r["scheme"]) for r in rows})
        return out
