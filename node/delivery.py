"""Running the outbox: match tasks against holders, feedback to holders, webhooks to the
platform, each retried with backoff until delivered.

A job's peers (and different jobs) proceed concurrently, bounded by ``match_workers``; a case's
webhooks go one after another in their sequence (message id) order.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random

from blindmatch.node.cases.decisions import FEEDBACK_KIND
from blindmatch.node.cases.webhooks import WEBHOOK_KIND, WebhookSender
from blindmatch.node.clock import Clock
from blindmatch.node.errors import NodeError
from blindmatch.node.federation.job_ledger import JobLedger
from blindmatch.node.federation.peer_client import PeerClient, PeerError
from blindmatch.node.federation.querier import MATCH_TASK_KIND, Querier
from blindmatch.node.federation.uploader_signals import (
    PUBLISH_KIND,
    WITHDRAW_KIND,
    UploaderSignals,
)
from blindmatch.node.metrics import Metrics
from blindmatch.node.storage import Outbox, OutboxMessage
from blindmatch.node.storage.match_jobs import MatchJobStore
from blindmatch.protocol.roster import Roster

log = logging.getLogger("blindmatch.node")

# A peer's part of a job must end within this (the outbox lease, 120 s, is longer).
TASK_TIMEOUT_S = 90.0
# Refusals a retry cannot change: the peer's part of the job is dead-lettered at once.
PERMANENT = ("bad-body", "unknown-item", "not-allowed")


class OutboxWorker:
    def __init__(
        self,
        outbox: Outbox,
        roster: Roster,
        querier: Querier,
        jobs: MatchJobStore,
        ledger: JobLedger,
        client: PeerClient,
        webhooks: WebhookSender,
        metrics: Metrics,
        clock: Clock,
        rng: random.Random,
        workers: int,
        uploaders: UploaderSignals | None = None,
    ) -> None:
        self.outbox = outbox
        self.uploaders = uploaders
        self.roster = roster
        self.querier = querier
        self.jobs = jobs
        self.ledger = ledger
        self.client = client
        self.webhooks = webhooks
        self.metrics = metrics
        self.clock = clock
        self.rng = rng
        self.workers = workers
        self.in_flight: dict[asyncio.Task[None], str] = {}  # outbox work running, by peer
        self._peer_gates: dict[str, asyncio.Semaphore] = {}

    async def process_due(self, limit: int = 16, wait: bool = True) -> int:
        """Run the outbox messages whose time has come; returns how many were claimed.

        Each peer has at most ``workers`` messages in flight, and a peer at its limit is not
        claimed for, so a slow or hostile peer holds only its own slots: the loop
        (``wait=False``) starts what it claims and comes back for more as soon as any message
        ends, instead of waiting for a batch's slowest peer. With ``wait`` the call returns
        when what it claimed has run (tests and tools drain the outbox this way).
        """
        self.in_flight = {t: p for t, p in self.in_flight.items() if not t.done()}
        per_peer = collections.Counter(self.in_flight.values())
        cap = max(1, self.workers)
        busy = sorted(p for p, n in per_peer.items() if n >= cap)
        messages = await self.outbox.claim_due(self.clock.now(), limit, exclude_peers=busy)
        # A case's webhooks go one after another in their sequence (message id) order.
        groups: dict[bytes, list[OutboxMessage]] = {}
        for m in messages:
            key = m.message_id[:16] if m.kind == WEBHOOK_KIND else m.message_id
            groups.setdefault(key, []).append(m)
        started = []
        for group in groups.values():
            gate = self._peer_gates.setdefault(group[0].peer_id, asyncio.Semaphore(cap))

            async def run(
                group: list[OutboxMessage] = group, gate: asyncio.Semaphore = gate
            ) -> None:
                async with gate:
                    for m in sorted(group, key=lambda m: m.message_id):
                        await self._process(m)
                self.querier.wake.set()  # a slot is free

            task = asyncio.create_task(run())
            self.in_flight[task] = group[0].peer_id
            started.append(task)
        if wait:
            await asyncio.gather(*started)
        return len(messages)

    async def _process(self, m: OutboxMessage) -> None:
        peer = self.roster.member(m.peer_id)
        try:
            if m.kind == WEBHOOK_KIND:
                await self.webhooks.deliver(m.payload)
                await self.outbox.mark_delivered(m.message_id, self.clock.now())
                return
            if peer is None:
                raise NodeError("peer left the roster", code="not-allowed")
            if m.kind == MATCH_TASK_KIND:
                # A peer's part has its own deadline (inside the outbox's lease, so it is never
                # run twice at once); a slow peer delays only its own part.
                await asyncio.wait_for(self.querier.run_task(m.payload, peer), TASK_TIMEOUT_S)
            elif m.kind == FEEDBACK_KIND:
                await self.client.call(peer, "feedback.submit", {"record": m.payload})
            elif m.kind in (PUBLISH_KIND, WITHDRAW_KIND) and self.uploaders is not None:
                await self.uploaders.deliver(m.kind, m.peer_id, m.payload)
            else:
                raise NodeError(f"unknown outbox kind {m.kind}", code="internal")
            await self.outbox.mark_delivered(m.message_id, self.clock.now())
        except Exception as exc:
            await self._failed_attempt(m, exc)

    async def _failed_attempt(self, m: OutboxMessage, exc: Exception) -> None:
        """One attempt failed: retry it later (bounded by the outbox's policy), or, when it
        can never succeed or its attempts ran out, dead-letter the peer's part of the job."""
        if isinstance(exc, TimeoutError | PeerError | NodeError | OSError):
            code = str(getattr(exc, "code", exc.__class__.__name__))
        else:  # a fault of ours: logged with its traceback, retried, still bounded
            log.error("match task against %s failed unexpectedly", m.peer_id, exc_info=exc)
            code = f"internal ({exc.__class__.__name__})"
        now = self.clock.now()
        if m.kind == MATCH_TASK_KIND and isinstance(exc, NodeError) and exc.code in PERMANENT:
            await self.ledger.fail_task(m.payload, m.peer_id, f"{code}: {exc.detail}", now)
            self.querier.wake.set()
            return
        if m.kind == MATCH_TASK_KIND:
            await self.jobs.task_failed(m.payload, m.peer_id, code, now)
        message = await self.outbox.schedule_retry(m.message_id, code, now, self.rng)
        if message.state == "dead" and m.kind == MATCH_TASK_KIND:
            reason = f"gave up after {message.attempts} attempts; last error {code}"
            await self.ledger.fail_task(m.payload, m.peer_id, reason, now)
            self.querier.wake.set()
            return
        self.metrics.inc("match_task_retries_total", labels={"peer": m.peer_id})
        log.info("match task against %s deferred: %s", m.peer_id, code)

    async def run(self, wake: asyncio.Event, stopping: asyncio.Event) -> None:
        """Deliver until ``stopping`` is set; sleep up to a second when there is nothing to do,
        or until ``wake`` is set."""
        while not stopping.is_set():
            try:
                n = await self.process_due(wait=False)
                n += await self.querier.open_pending_cases()
            except Exception:
                log.exception("match round failed")
                n = 0
            if n == 0:
                wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=1.0)
