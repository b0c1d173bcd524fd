"""Messages waiting to be delivered to peers: at-least-once, with backoff and a dead letter.

Life of a message: ``enqueue`` (idempotent by message_id) -> ``claim_due`` leases it to one
worker (counts an attempt and pushes ``next_attempt_at`` out by the lease, so a worker killed
mid-send simply lets the lease lapse and the message is claimed again) -> ``mark_delivered``,
or ``schedule_retry`` (exponential backoff with jitter) until ``max_attempts``, then ``dead``.
The clock and the random source are passed in so tests are deterministic.

Several processes of one node may share the outbox (PostgreSQL): a claim skips rows another
process is claiming (``FOR UPDATE SKIP LOCKED``), so no message is leased twice, and names the
claiming process (``owner``), so a message leased by a process that died is handed out again as
soon as that is known (:meth:`Outbox.release_leases`) rather than when its lease lapses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from blindmatch.node.storage.database import Database, Row
from blindmatch.node.storage.validation import (
    MAX_ID_BYTES,
    MAX_PAYLOAD_BYTES,
    StorageValueError,
    check_bytes,
    check_int,
    check_text,
)

MAX_ERROR_CHARS = 500
MAX_CLAIM = 1000


class RandomSource(Protocol):
    def random(self) -> float:
        """A float in [0, 1)."""
        ...


@dataclass(frozen=True)
class RetryPolicy:
    base_delay: int = 5  # seconds before the second attempt
    max_delay: int = 6 * 3600
    max_attempts: int = 12
    jitter: float = 0.5  # the delay is drawn from [delay * (1 - jitter), delay]
    lease: int = 120  # seconds a claimed message is reserved for its worker

    def delay(self, attempts: int, rng: RandomSource) -> int:
        """Seconds to wait after the ``attempts``-th failed attempt."""
        capped = min(self.max_delay, self.base_delay * 2 ** max(attempts - 1, 0))
        spread = capped * self.jitter * rng.random()
        return max(1, int(capped - spread))


@dataclass(frozen=True)
class OutboxMessage:
    message_id: bytes
    peer_id: str
    kind: str
    payload: bytes
    attempts: int
    next_attempt_at: int
    state: str
    last_error: str | None
    created_at: int


def _message(row: Row) -> OutboxMessage:
    return OutboxMessage(
        message_id=bytes(row["message_id"]),
        peer_id=row["peer_id"],
        kind=row["kind"],
        payload=bytes(row["payload"]),
        attempts=int(row["attempts"]),
        next_attempt_at=int(row["next_attempt_at"]),
        state=row["state"],
        last_error=row["last_error"],
        created_at=int(row["created_at"]),
    )


class Outbox:
    def __init__(
        self, db: Database, policy: RetryPolicy | None = None, owner: str | None = None
    ) -> None:
        self._db = db
        self.policy = policy or RetryPolicy()
        self.owner = owner  # the claiming process's instance id (storage/processes.py)

    async def enqueue(
        self, message_id: bytes, peer_id: str, kind: str, payload: bytes, now: int
    ) -> bool:
        """Queue a message for delivery now; False if this message_id is already queued."""
        message_id = check_bytes("message_id", message_id, MAX_ID_BYTES)
        check_text("peer_id", peer_id)
        check_text("kind", kind)
        payload = check_bytes("payload", payload, MAX_PAYLOAD_BYTES, min_len=0)
        check_int("now", now)
        inserted = await self._db.execute(
            "INSERT INTO outbox (message_id, peer_id, kind, payload, attempts, next_attempt_at,"
            " state, created_at, updated_at) VALUES (?, ?, ?, ?, 0, ?, 'pending', ?, ?)"
            " ON CONFLICT (message_id) DO NOTHING",
            message_id,
            peer_id,
            kind,
            payload,
            now,
            now,
            now,
        )
        return inserted == 1

    async def claim_due(
        self, now: int, limit: int = 100, exclude_peers: Sequence[str] = ()
    ) -> list[OutboxMessage]:
        """Lease up to ``limit`` pending messages whose time has come (oldest due first),
        none for the peers in ``exclude_peers`` (those at their limit of work in flight)."""
        check_int("now", now)
        check_int("limit", limit, 1, MAX_CLAIM)
        for peer_id in exclude_peers:
            check_text("exclude_peers[]", peer_id)
        skip = (" AND peer_id NOT IN (" + ", ".join("?" * len(exclude_peers)) + ")") * bool(
            exclude_peers
        )
        async with self._db.transaction():
            rows = await self._db.fetch_all(
                self._db.dialect.render(
                    "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?,"
                    " updated_at = ?, leased_by = ? WHERE message_id IN ("
                    " SELECT message_id FROM outbox WHERE state = 'pending'"
                    " AND next_attempt_at <= ?" + skip + " ORDER BY next_attempt_at, created_at"
                    " LIMIT ? {FOR_UPDATE_SKIP_LOCKED}) RETURNING *"
                ),
                now + self.policy.lease,
                now,
                self.owner,
                now,
                *exclude_peers,
                limit,
            )
        messages = [_message(r) for r in rows]
        messages.sort(key=lambda m: (m.created_at, m.message_id))
        return messages

    async def lease_owners(self, now: int) -> list[str]:
        """The processes holding leases that have not lapsed yet, other than this one."""
        check_int("now", now)
        rows = await self._db.fetch_all(
            "SELECT DISTINCT leased_by FROM outbox WHERE state = 'pending'"
            " AND next_attempt_at > ? AND leased_by IS NOT NULL",
            now,
        )
        return sorted(str(r["leased_by"]) for r in rows if r["leased_by"] != self.owner)

    async def release_leases(self, owner: str, now: int) -> int:
        """Make due now the pending messages a dead process had leased; returns how many.
        Only for a process known dead: a live one may still be sending them."""
        check_text("owner", owner)
        check_int("now", now)
        return await self._db.execute(
            "UPDATE outbox SET next_attempt_at = ?, leased_by = NULL, updated_at = ?"
            " WHERE state = 'pending' AND leased_by = ? AND next_attempt_at > ?",
            now,
            now,
            owner,
            now,
        )

    async def mark_delivered(self, message_id: bytes, now: int) -> bool:
        message_id = check_bytes("message_id", message_id, MAX_ID_BYTES)
        check_int("now", now)
        changed = await self._db.execute(
            "UPDATE outbox SET state = 'delivered', last_error = NULL, updated_at = ?"
            " WHERE message_id = ? AND state = 'pending'",
            now,
            message_id,
        )
        return changed == 1

    async def schedule_retry(
        self, message_id: bytes, error: str, now: int, rng: RandomSource
    ) -> OutboxMessage:
        """Record a failed attempt: back off, or dead-letter after ``max_attempts``."""
        message_id = check_bytes("message_id", message_id, MAX_ID_BYTES)
        if not isinstance(error, str):
            raise StorageValueError("error must be a string")
        check_int("now", now)
        async with self._db.transaction():
            row = await self._db.fetch_one("SELECT * FROM outbox WHERE message_id = ?", message_id)
            if row is None:
                raise StorageValueError("no such outbox message")
            message = _message(row)
            if message.state != "pending":
                return message
            attempts = max(message.attempts, 1)
            if attempts >= self.policy.max_attempts:
                state, next_at = "dead", message.next_attempt_at
            else:
                state, next_at = "pending", now + self.policy.delay(attempts, rng)
            rows = await self._db.fetch_all(
                "UPDATE outbox SET state = ?, next_attempt_at = ?, last_error = ?, updated_at = ?,"
                " leased_by = NULL WHERE message_id = ? RETURNING *",
                state,
                next_at,
                error[:MAX_ERROR_CHARS],
                now,
                message_id,
            )
        return _message(rows[0])

    async def get(self, message_id: bytes) -> OutboxMessage | None:
        message_id = check_bytes("message_id", message_id, MAX_ID_BYTES)
        row = await self._db.fetch_one("SELECT * FROM outbox WHERE message_id = ?", message_id)
        return None if row is None else _message(row)

    async def pending_between(self, kind: str, low: bytes, high: bytes) -> int:
        """Pending messages of ``kind`` whose ids are in ``[low, high)`` (ids that share a
        prefix, such as a case's webhooks, form a key range)."""
        check_text("kind", kind)
        n = await self._db.fetch_value(
            "SELECT COUNT(*) FROM outbox WHERE kind = ? AND state = 'pending'"
            " AND message_id >= ? AND message_id < ?",
            kind, low, high,
        )  # fmt: skip
        return int(n or 0)

    async def count(self, state: str = "pending") -> int:
        if state not in ("pending", "delivered", "dead"):
            raise StorageValueError(f"unknown outbox state {state!r}")
        return int(await self._db.fetch_value("SELECT COUNT(*) FROM outbox WHERE state = ?", state))

    async def requeue_dead(self, message_id: bytes, now: int) -> bool:
        """Give a dead message a fresh set of attempts (an operator decision)."""
        message_id = check_bytes("message_id", message_id, MAX_ID_BYTES)
        check_int("now", now)
        changed = await self._db.execute(
            "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?,"
            " updated_at = ? WHERE message_id = ? AND state = 'dead'",
            now,
            now,
            message_id,
        )
        return changed == 1
