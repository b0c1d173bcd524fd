"""How a match job ends, and how an operator ends or restarts one.

A job runs one durable task per holder (the outbox retries each with backoff). It ends

* ``complete`` when every peer's part is done;
* ``dead-lettered`` when every part is settled and at least one failed for good: its retries
  ran out (the outbox's bounded policy), or it can never run (its queries are unusable, the
  peer left the roster); the reason names each failed peer and its last error;
* ``cancelled`` when an operator says so; its pending parts are not attempted again.

A job that ends in any state has ``completed_at`` set, so the cases of the matches it did
confirm are opened (a confirmed match is never dropped because another peer failed).
``retry`` puts a dead-lettered or cancelled job's failed parts back with fresh attempts.
"""

from __future__ import annotations

import logging

from blindmatch.node.errors import BlindmatchError
from blindmatch.node.metrics import Metrics
from blindmatch.node.storage.job_ledger import JobLedgerStore

log = logging.getLogger("blindmatch.jobs")

MAX_REASON_CHARS = 500
ENDED = ("complete", "dead-lettered", "cancelled")


class JobStateError(BlindmatchError):
    """An operator action the job's state does not allow (code: conflict or unknown-item)."""

    _code_in_str = True


def task_message_id(job_ref: bytes, peer_id: str) -> bytes:
    """The outbox message that carries one peer's part of a job."""
    return job_ref + peer_id.encode()[:32]


class JobLedger:
    def __init__(self, store: JobLedgerStore, metrics: Metrics) -> None:
        self._store = store
        self._metrics = metrics

    async def settle(self, job_ref: bytes, now: int) -> str | None:
        """End the job if no part is pending; returns its end state, or None if it runs on.
        Called inside the transaction that settled a part."""
        rows = await self._store.tasks(job_ref)
        if any(r["state"] == "pending" for r in rows):
            return None
        failed = [r for r in rows if r["state"] == "failed"]
        state = "dead-lettered" if failed else "complete"
        reason = "; ".join(f"{r['peer_id']}: {r['last_error']}" for r in failed) or None
        stored = None if reason is None else reason[:MAX_REASON_CHARS]
        if not await self._store.end_running_job(job_ref, state, stored, now):
            return None
        self._metrics.inc("match_jobs_ended_total", labels={"state": state})
        if failed:
            log.warning("match job %s dead-lettered: %s", job_ref.hex()[:8], (reason or "")[:200])
        return state

    async def fail_task(self, job_ref: bytes, peer_id: str, reason: str, now: int) -> str | None:
        """Dead-letter one peer's part (its outbox message is already dead or done); returns
        the job's end state if this was its last pending part."""
        async with self._store.transaction():
            if not await self._store.fail_pending_task(
                job_ref, peer_id, reason[:MAX_REASON_CHARS], now, task_message_id(job_ref, peer_id)
            ):
                return None
            self._metrics.inc("match_tasks_dead_lettered_total", labels={"peer": peer_id})
            log.warning("match task of job %s against %s dead-lettered: %s",
                        job_ref.hex()[:8], peer_id, reason[:200])  # fmt: skip
            return await self.settle(job_ref, now)

    async def cancel(self, job_ref: bytes, reason: str, now: int) -> None:
        async with self._store.transaction():
            state = await self._state(job_ref)
            if state != "running":
                raise JobStateError(f"the job has ended ({state})", code="conflict")
            peers = await self._store.task_peers(job_ref, "pending")
            messages = [task_message_id(job_ref, p) for p in peers]
            await self._store.cancel(job_ref, reason[:MAX_REASON_CHARS], now, messages)
        self._metrics.inc("match_jobs_ended_total", labels={"state": "cancelled"})
        log.info("match job %s cancelled by the operator", job_ref.hex()[:8])

    async def retry(self, job_ref: bytes, now: int) -> list[str]:
        """Fresh attempts for a dead-lettered or cancelled job's failed parts; returns the
        peers whose parts run again."""
        async with self._store.transaction():
            state = await self._state(job_ref)
            if state not in ("dead-lettered", "cancelled"):
                raise JobStateError(
                    f"only an ended, incomplete job is retried ({state})", code="conflict"
                )
            peers = await self._store.task_peers(job_ref, "failed")
            await self._store.restart(job_ref, now, [task_message_id(job_ref, p) for p in peers])
        log.info("match job %s retried by the operator (%d parts)", job_ref.hex()[:8], len(peers))
        return peers

    async def counts(self) -> dict[str, int]:
        out = {s: 0 for s in ("running", *ENDED)}
        out.update(await self._store.counts())
        return out

    async def _state(self, job_ref: bytes) -> str:
        state = await self._store.job_state(job_ref)
        if state is None:
            raise JobStateError("no such job", code="unknown-item")
        return state
