"""What the reviewer console's pages read beyond the case service: the decision log, the
reports' counts, a case's media and the reveals of it (the console's store)."""

from __future__ import annotations

from blindmatch.node.storage.database import Database, Row

REVEALED = "media:revealed"


class ConsoleStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def recent_events(self, limit: int) -> list[Row]:
        """The newest case events: ``case_ref, at, actor, event, detail`` (JSON text)."""
        return await self._db.fetch_all(
            "SELECT e.case_ref, e.at, e.actor, e.event, e.detail FROM case_events e"
            " ORDER BY e.id DESC LIMIT ?",
            limit,
        )

    async def cases_by_state(self) -> list[Row]:
        return await self._db.fetch_all(
            "SELECT state, COUNT(*) AS n FROM cases GROUP BY state ORDER BY state"
        )

    async def reviewer_activity(self) -> list[Row]:
        """Counts of decisions, appeals, re-review requests and reveals, by event."""
        return await self._db.fetch_all(
            "SELECT event, COUNT(*) AS n FROM case_events WHERE event LIKE 'decided:%'"
            " OR event LIKE 'appeal:%' OR event LIKE 're-review:%' OR event = ?"
            " GROUP BY event ORDER BY event",
            REVEALED,
        )

    async def last_reveal(self, case_ref: bytes, reviewer_id: str) -> int | None:
        last = await self._db.fetch_value(
            "SELECT MAX(at) FROM case_events WHERE case_ref = ? AND actor = ? AND event = ?",
            case_ref, reviewer_id, REVEALED,
        )  # fmt: skip
        return None if last is None else int(last)

    async def add_reveal(self, case_ref: bytes, reviewer_id: str, at: int) -> None:
        await self._db.execute(
            "INSERT INTO case_events (case_ref, at, actor, event, detail) VALUES (?, ?, ?, ?, ?)",
            case_ref, at, reviewer_id, REVEALED, "{}",
        )  # fmt: skip

    async def has_media(self, content_ref: str) -> bool:
        n = await self._db.fetch_value(
            "SELECT COUNT(*) FROM case_media WHERE content_ref = ?", content_ref
        )
        return bool(n)

    async def media(self, content_ref: str) -> bytes | None:
        row = await self._db.fetch_one(
            "SELECT media FROM case_media WHERE content_ref = ?", content_ref
        )
        return None if row is None else bytes(row["media"])
