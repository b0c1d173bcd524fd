"""The holder's published index: which items it holds, with the entries that went out for them.

``index_publications`` holds, per published item, the packed index entries of its
``index.add`` delta, so a removal can send exactly those entries back out. What is live and
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
        self, live_checks: Sequence[tuple[str, list[Any]]]
    ) -> dict[bytes, bytes]:
        """Publications for which none of ``live_checks`` (``SELECT 1 ... = p.item_ref`` with
        its bound values) finds a live item: item_ref -> their packed entries."""
        sql = "SELECT p.item_ref, p.entries FROM index_publications p WHERE 1 = 1"
        params: list[Any] = []
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

    async def forget(self, refs: Sequence[bytes]) -> None:
        """Items taken out of the index (in the caller's transaction)."""
        await self.db.execute_many(
            "DELETE FROM index_publications WHERE item_ref = ?", [(r,) for r in refs]
        )
