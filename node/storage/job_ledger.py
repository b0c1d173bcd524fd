"""The job ledger's statements: how a match job's parts and the job itself end and restart.

Each method is one step of :class:`blindmatch.node.federation.job_ledger.JobLedger`, which
decides what ends when and runs the steps inside its transactions.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager

from blindmatch.node.storage.database import Database, Row


class JobLedgerStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def transaction(self) -> AbstractAsyncContextManager[None]:
        return self._db.transaction()

    async def tasks(self, job_ref: bytes) -> list[Row]:
        """Every part of the job: ``peer_id``, ``state``, ``last_error``, by peer."""
        return await self._db.fetch_all(
            "SELECT peer_id, state, last_error FROM match_tasks WHERE job_ref = ? ORDER BY peer_id",
            job_ref,
        )

    async def task_peers(self, job_ref: bytes, state: str) -> list[str]:
        rows = await self._db.fetch_all(
            "SELECT peer_id FROM match_tasks WHERE job_ref = ? AND state = ?", job_ref, state
        )
        return [r["peer_id"] for r in rows]

    async def job_state(self, job_ref: bytes) -> str | None:
        state = await self._db.fetch_value(
            "SELECT state FROM match_jobs WHERE job_ref = ?", job_ref
        )
        return None if state is None else str(state)

    async def end_running_job(
        self, job_ref: bytes, state: str, reason: str | None, now: int
    ) -> bool:
        """End a running job in ``state``; False if it was not running."""
        changed = await self._db.execute(
            "UPDATE match_jobs SET state = ?, ended_reason = ?,"
            " completed_at = COALESCE(completed_at, ?) WHERE job_ref = ? AND state = 'running'",
            state, reason, now, job_ref,
        )  # fmt: skip
        return bool(changed)

    async def fail_pending_task(
        self, job_ref: bytes, peer_id: str, reason: str, now: int, message_id: bytes
    ) -> bool:
        """Fail one pending part and dead-letter its outbox message; False if not pending."""
        changed = await self._db.execute(
            "UPDATE match_tasks SET state = 'failed', last_error = ?, updated_at = ?"
            " WHERE job_ref = ? AND peer_id = ? AND state = 'pending'",
            reason, now, job_ref, peer_id,
        )  # fmt: skip
        if not changed:
            return False
        await self._dead_letter([message_id], reason, now)
        return True

    async def _dead_letter(self, message_ids: Sequence[bytes], reason: str, now: int) -> None:
        await self._db.execute_many(
            "UPDATE outbox SET state = 'dead', last_error = ?, updated_at = ?"
            " WHERE message_id = ? AND state = 'pending'",
            [(reason, now, m) for m in message_ids],
        )

    async def cancel(
        self, job_ref: bytes, reason: str, now: int, message_ids: Sequence[bytes]
    ) -> None:
        """Fail the job's pending parts as cancelled, dead-letter their messages, end it."""
        await self._db.execute(
            "UPDATE match_tasks SET state = 'failed', last_error = 'cancelled',"
            " updated_at = ? WHERE job_ref = ? AND state = 'pending'",
            now, job_ref,
        )  # fmt: skip
        await self._dead_letter(message_ids, "cancelled", now)
        await self._db.execute(
            "UPDATE match_jobs SET state = 'cancelled', ended_reason = ?,"
            " completed_at = COALESCE(completed_at, ?) WHERE job_ref = ?",
            reason, now, job_ref,
        )  # fmt: skip

    async def restart(self, job_ref: bytes, now: int, message_ids: Sequence[bytes]) -> None:
        """Put the job's failed parts back with fresh attempts and run the job again; its
        cases reopen from scratch when it ends again (they are deduplicated)."""
        await self._db.execute(
            "UPDATE match_tasks SET state = 'pending', last_error = NULL, updated_at = ?"
            " WHERE job_ref = ? AND state = 'failed'",
            now, job_ref,
        )  # fmt: skip
        await self._db.execute_many(
            "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?,"
            " last_error = NULL, updated_at = ? WHERE message_id = ? AND state = 'dead'",
            [(now, now, m) for m in message_ids],
        )
        await self._db.execute(
            "UPDATE match_jobs SET state = 'running', ended_reason = NULL,"
            " completed_at = NULL, cases_opened = 0 WHERE job_ref = ?",
            job_ref,
        )

    async def counts(self) -> dict[str, int]:
        rows = await self._db.fetch_all(
            "SELECT state, COUNT(*) AS n FROM match_jobs GROUP BY state"
        )
        return {r["state"]: int(r["n"]) for r in rows}
