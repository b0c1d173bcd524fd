"""What the operator's scrape-time gauges read: queue depths and ages across the outbox, the
match jobs and the review queue, and the VOPRF key's durable evaluation count (``/metrics``'s
store)."""

from __future__ import annotations

from blindmatch.node.storage.database import Database, Row


class OpsStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def outbox_queues(self) -> list[Row]:
        """Per ``kind`` and ``state`` (pending, dead): ``n``, the oldest ``first`` and the
        ``failed`` ones (retried or with an error)."""
        return await self._db.fetch_all(
            "SELECT kind, state, COUNT(*) AS n, MIN(created_at) AS first,"
            " SUM(CASE WHEN attempts > 1 OR last_error IS NOT NULL THEN 1 ELSE 0 END) AS failed"
            " FROM outbox WHERE state IN ('pending', 'dead') GROUP BY kind, state"
        )

    async def running_jobs(self) -> Row | None:
        """``n`` and the oldest ``first`` submission of the jobs not yet ended."""
        return await self._db.fetch_one(
            "SELECT COUNT(*) AS n, MIN(submitted_at) AS first FROM match_jobs"
            " WHERE completed_at IS NULL"
        )

    async def dead_lettered_jobs(self) -> int:
        n = await self._db.fetch_value(
            "SELECT COUNT(*) FROM match_jobs WHERE state = 'dead-lettered'"
        )
        return int(n or 0)

    async def review_queue(self) -> list[Row]:
        """Per open case state: ``n`` and the oldest ``first``."""
        return await self._db.fetch_all(
            "SELECT state, COUNT(*) AS n, MIN(created_at) AS first FROM cases"
            " WHERE state IN ('queued', 'quarantined', 'escalated') GROUP BY state"
        )

    async def key_evaluations(self, key_id: bytes) -> int:
        used = await self._db.fetch_value(
            "SELECT evaluations FROM voprf_key_usage WHERE key_id = ?", key_id
        )
        return int(used or 0)
