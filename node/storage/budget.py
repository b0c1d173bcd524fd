"""Per-peer query budgets over fixed hour and day windows.

``charge`` is all or nothing: each window's counter is raised only if it stays within its
limit (one conditional upsert of both rows, which row locks make race-free on PostgreSQL and the
single writer makes race-free on SQLite), and if either window refuses, the other window's rise
is undone in the same transaction, so a refused charge changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from blindmatch.node.storage.database import Database
from blindmatch.node.storage.validation import StorageValueError, check_int, check_text

WINDOW_SECONDS = {"hour": 3600, "day": 86400}


@dataclass(frozen=True)
class BudgetLimits:
    per_hour: int
    per_day: int

    def __post_init__(self) -> None:
        check_int("per_hour", self.per_hour)
        check_int("per_day", self.per_day)

    def for_window(self, kind: str) -> int:
        return self.per_hour if kind == "hour" else self.per_day


def window_start(kind: str, now: int) -> int:
    return now - now % WINDOW_SECONDS[kind]


class BudgetLedger:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def charge(self, peer_id: str, n: int, now: int, limits: BudgetLimits) -> bool:
        """Spend ``n`` units of the peer's budget if both windows allow it."""
        async with self._db.transaction():
            return await self.charge_in_transaction(peer_id, n, now, limits)

    async def charge_in_transaction(
        self, peer_id: str, n: int, now: int, limits: BudgetLimits
    ) -> bool:
        """:meth:`charge` as part of the caller's open transaction (one statement when it
        succeeds, no savepoint): a refusal undoes its own change before returning, so the rest
        of the caller's transaction, such as a request's nonce, still commits."""
        return len(await self.charge_windows(peer_id, n, now, limits)) == 2

    async def charge_windows(
        self, peer_id: str, n: int, now: int, limits: BudgetLimits
    ) -> dict[str, int]:
        """:meth:`charge_in_transaction`, saying what its one statement found: each window whose
        limit took the units, with the units it then held. Both windows: charged. Fewer: refused,
        and a window that took them has given them back already."""
        check_text("peer_id", peer_id)
        check_int("n", n, 1)
        check_int("now", now)
        if not isinstance(limits, BudgetLimits):
            raise StorageValueError("limits must be a BudgetLimits")
        if n > limits.per_hour or n > limits.per_day:
            return {}
        hour, day = window_start("hour", now), window_start("day", now)
        # Each window's row rises only if it stays within its limit; RETURNING names the rows
        # that did, so a partial charge (one window refused) is known without another read.
        rows = await self._db.fetch_all(
            "INSERT INTO budget_usage (peer_id, window_kind, window_start, used)"
            " VALUES (?, 'hour', ?, ?), (?, 'day', ?, ?)"
            " ON CONFLICT (peer_id, window_kind, window_start)"
            " DO UPDATE SET used = budget_usage.used + excluded.used"
            " WHERE budget_usage.used + excluded.used <= CASE budget_usage.window_kind"
            " WHEN 'hour' THEN CAST(? AS BIGINT) ELSE CAST(? AS BIGINT) END"
            " RETURNING window_kind, used",
            peer_id, hour, n, peer_id, day, n, limits.per_hour, limits.per_day,
        )  # fmt: skip
        took = {row["window_kind"]: int(row["used"]) for row in rows}
        if len(took) == 2:
            return took
        for row in rows:  # undo the window that did accept, inside the same transaction
            kind = row["window_kind"]
            await self._db.execute(
                "UPDATE budget_usage SET used = used - ?"
                " WHERE peer_id = ? AND window_kind = ? AND window_start = ?",
                n, peer_id, kind, window_start(kind, now),
            )  # fmt: skip
            await self._db.execute(
                "DELETE FROM budget_usage WHERE peer_id = ? AND window_kind = ?"
                " AND window_start = ? AND used = 0",
                peer_id, kind, window_start(kind, now),
            )  # fmt: skip
        return took

    async def usage(self, peer_id: str, now: int) -> dict[str, int]:
        """Units spent in the current hour and day windows."""
        check_text("peer_id", peer_id)
        check_int("now", now)
        result = {}
        for kind in WINDOW_SECONDS:
            used = await self._db.fetch_value(
                "SELECT used FROM budget_usage"
                " WHERE peer_id = ? AND window_kind = ? AND window_start = ?",
                peer_id,
                kind,
                window_start(kind, now),
            )
            result[kind] = int(used or 0)
        return result

    async def prune(self, now: int) -> int:
        """Drop counters of windows that have ended."""
        check_int("now", now)
        return await self._db.execute(
            "DELETE FROM budget_usage WHERE (window_kind = 'hour' AND window_start + 3600 <= ?)"
            " OR (window_kind = 'day' AND window_start + 86400 <= ?)",
            now,
            now,
        )
