"""The querier: match jobs, run against every holder through durable per-peer tasks.

A job is written with one task per holder; the outbox runs each task (:meth:`Querier.run_task`)
and retries it with backoff, so a holder that is down delays its part of a job and loses
nothing. One task is one exchange (:mod:`blindmatch.protocol.matching`): the VOPRF round, the
candidates from the holder's replica, and the private threshold test for each candidate.
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from blindmatch.node import signals
from blindmatch.node.cases.decisions import DecisionService
from blindmatch.node.clock import Clock
from blindmatch.node.errors import NodeError
from blindmatch.node.federation.job_ledger import JobLedger, JobStateError
from blindmatch.node.federation.peer_client import PeerClient, PeerError
from blindmatch.node.federation.replication import Replicator
from blindmatch.node.metrics import Metrics
from blindmatch.node.storage import Database, Outbox
from blindmatch.node.storage.match_jobs import MatchJobStore, MatchResult
from blindmatch.node.translog import hooks as translog_hooks
from blindmatch.node.translog.log import TransparencyLog
from blindmatch.protocol import matching, signal_types
from blindmatch.protocol.lsh import BitSamplingScheme
from blindmatch.protocol.roster import Member
from blindmatch.protocol.signals import HashFormatError, check_float_vector, check_pdq_bytes

MATCH_TASK_KIND = "match"
LEGACY_HOLDER_TTL_S = 3600  # an older holder is asked the older way for this long, then tried


@dataclass(frozen=True)
class JobStatus:
    job_ref: bytes
    peers_total: int
    peers_done: int
    complete: bool
    results: list[MatchResult]
    tasks: list[dict[str, Any]]
    state: str = "running"  # running, complete, dead-lettered, cancelled
    reason: str | None = None  # why it ended other than complete

    @property
    def ended(self) -> bool:
        """Nothing more will happen to it (complete with its cases open, or given up)."""
        return self.complete or self.state in ("dead-lettered", "cancelled")


class Querier:
    def __init__(
        self,
        db: Database,
        jobs: MatchJobStore,
        ledger: JobLedger,
        outbox: Outbox,
        replication: Replicator,
        client: PeerClient,
        traffic: translog_hooks.TrafficCounts,
        translog: TransparencyLog,
        metrics: Metrics,
        clock: Clock,
        scheme: BitSamplingScheme,
        decisions: DecisionService,
        wake: asyncio.Event,
    ) -> None:
        self.db = db
        self.jobs = jobs
        self.ledger = ledger  # a job's end: complete, dead-lettered or cancelled
        self.outbox = outbox
        self.replication = replication
        self.client = client
        self.traffic = traffic
        self.translog = translog
        self.metrics = metrics
        self.clock = clock
        self.scheme = scheme
        self.decisions = decisions  # turns a finished job's matches into cases
        self.wake = wake  # set when there is work for the outbox worker
        self._encryptions: OrderedDict[bytes, matching.EncryptionCache] = OrderedDict()
        self._job_locks: dict[bytes, asyncio.Lock] = {}
        # holders that refused a field of the rounds as an older version does, until when
        self._legacy_holders: dict[str, int] = {}

    async def submit(
        self,
        queries: Sequence[matching.QueryHash],
        source: str = "api",
        content_ref: str | None = None,
    ) -> bytes:
        """Create a match job with one durable task per holder; returns the job reference."""
        for i, q in enumerate(queries):
            # What a job stores must be what its tasks can run: a value the LSH cannot rank
            # (inf, NaN, beyond float32) would fail every attempt of every task.
            try:
                check_pdq_bytes(q.hash)
                if q.float_vector is not None:
                    check_float_vector(q.float_vector)
            except HashFormatError as exc:
                raise NodeError(f"queries[{i}]: {exc}", code="bad-body") from None
            if not isinstance(q.variant, str) or len(q.variant.encode()) > 256:
                raise NodeError(f"queries[{i}]: a variant is text of <= 256 bytes", code="bad-body")
        job_ref = os.urandom(16)
        holders = self.replication.holders()
        now = self.clock.now()
        async with self.db.transaction():
            await self.jobs.create(
                job_ref, queries, [p.node_id for p in holders], source, content_ref, now
            )
            for peer in holders:
                await self.outbox.enqueue(
                    job_ref + peer.node_id.encode()[:32],
                    peer.node_id,
                    MATCH_TASK_KIND,
                    job_ref,
                    now,
                )
        self.metrics.inc("match_jobs_total")
        if not holders:
            await self.decisions.on_job_done(job_ref)
        self.wake.set()
        return job_ref

    async def job_queries(self, job_ref: bytes) -> list[matching.QueryHash]:
        queries = await self.jobs.queries(job_ref)
        if queries is None:
            raise NodeError("no such job", code="unknown-item")
        return queries

    def _encryptions_for(self, job_ref: bytes) -> matching.EncryptionCache:
        cache = self._encryptions.get(job_ref)
        if cache is None:
            cache = matching.EncryptionCache(os.urandom)
            self._encryptions[job_ref] = cache
            while len(self._encryptions) > 256:
                old, _ = self._encryptions.popitem(last=False)
                self._job_locks.pop(old, None)
        return cache

    async def run_task(self, job_ref: bytes, peer: Member) -> list[matching.Confirmation]:
        """One job against one holder: VOPRF round, candidates, private confirmation."""
        if peer.voprf_key is None:
            raise NodeError(f"{peer.node_id} holds no index", code="not-allowed")
        stored = await self.replication.stored_cursor(peer.node_id)
        if stored == 0:
            await self.replication.sync_peer(peer)  # first contact: fetch the index first
            stored = await self.replication.stored_cursor(peer.node_id)
        # Probe a replica that holds at least everything stored when the task began (at
        # start-up it is still being rebuilt; a pull may be half applied).
        replica = await self.replication.catch_up(peer.node_id)
        assert replica is not None
        job_queries = await self.job_queries(job_ref)
        for i, q in enumerate(job_queries):
            if q.float_vector is not None and not np.isfinite(q.float_vector).all():
                # Stored before submit checked it: no attempt can ever run this job.
                raise NodeError(f"query {i} has a float vector that is not finite", code="bad-body")
        # A signal type banked by one role only (tiles: hubs, specs/derivatives.md 5.1) is
        # asked of that role only.
        wanted = [i for i, q in enumerate(job_queries) if signals.asked_of(q, peer.roles)]
        # Every signal type's hashes in one batch (each probed under its own type's buckets):
        # still one round trip per peer.
        ex = signal_types.SignalPeerExchange(
            peer.node_id, peer.voprf_key, self.scheme, [job_queries[i] for i in wanted]
        )
        # later rounds name the query by digest (7.3); a holder found to be of an older
        # version a little while ago is asked the older way from the start
        ex.refer_by_digest = True
        ex.legacy_holder = self._legacy_holders.get(peer.node_id, 0) > self.clock.now()
        sent_before, received_before = self.client.bytes_with(peer.node_id)
        request = await asyncio.to_thread(ex.evaluate_request)
        reply = await self.client.call(peer, "oprf.evaluate", request)
        reader = replica.reader()
        try:
            await asyncio.to_thread(ex.on_evaluated, reply.body, reader)
        except matching.ExchangeError as exc:
            raise PeerError(str(exc), code=exc.code) from exc
        ran_at = replica.cursor if reader.cursor is None else reader.cursor
        if ran_at < stored:  # the replica was replaced (key change) while this task ran
            raise NodeError("the peer's replica moved back during the task", code="replica-behind")
        cache = self._encryptions_for(job_ref)
        # A job's peers run concurrently; its query hashes are encrypted once, under this lock.
        lock = self._job_locks.setdefault(job_ref, asyncio.Lock())
        # Rounds: a tile exchange asks only what the derivative rule needs (derivatives.md 6.5).
        while True:
            async with lock:
                requests = await asyncio.to_thread(ex.next_threshold_requests, cache)
            if not requests:
                break
            for req in requests:
                answer, req = await self._threshold_call(peer, ex, req, cache)
                try:
                    await asyncio.to_thread(ex.on_answer, req, answer.body, cache)
                except matching.ExchangeError as exc:
                    raise PeerError(str(exc), code=exc.code) from exc
        sent, received = self.client.bytes_with(peer.node_id)
        sent, received = sent - sent_before, received - received_before
        await self._record(job_ref, peer, ex, wanted, sent, received, ran_at)
        self.metrics.inc("matches_confirmed_total", len(ex.confirmed))
        if await self.jobs.is_complete(job_ref):
            await self.decisions.on_job_done(job_ref)
        return ex.confirmed

    async def _threshold_call(
        self,
        peer: Member,
        ex: matching.PeerExchange,
        req: dict[str, Any],
        cache: matching.EncryptionCache,
    ) -> tuple[Any, dict[str, Any]]:
        """One ``threshold.query``, sent again in the form the holder accepts when it refuses a
        field of the rounds: ``unknown-query`` (the query named by digest is no longer kept:
        sent whole) or ``bad-body`` from a holder of an older version (sent whole without
        tokens, and the rest of the exchange asked that way). Returns the answer and the
        request it answers."""
        for _ in range(3):  # at most: digest -> whole with tokens -> older form
            try:
                return await self.client.call(peer, "threshold.query", req), req
            except PeerError as exc:
                retry = ex.on_refused(req, exc.code, cache) if exc.refused else None
                if retry is None:
                    raise
                self.metrics.inc(
                    "threshold_query_fallbacks_total",
                    labels={"peer": peer.node_id, "code": exc.code},
                )
                if ex.legacy_holder:
                    self._legacy_holders[peer.node_id] = self.clock.now() + LEGACY_HOLDER_TTL_S
                req = retry
        raise PeerError(f"{peer.node_id} refused every form of a threshold query", code="bad-body")

    async def _record(
        self,
        job_ref: bytes,
        peer: Member,
        ex: matching.PeerExchange,
        wanted: list[int],
        sent: int,
        received: int,
        ran_at: int,
    ) -> None:
        """A finished task's matches, counts and log records, in one transaction."""
        now = self.clock.now()
        candidates = sum(len(v) for v in ex.candidates.values())
        matches = [
            MatchResult(
                c.peer, c.item_ref, wanted[c.query_index], c.variant, c.band, dict(c.release)
            )
            for c in ex.confirmed
        ]
        async with self.db.transaction():
            changed = await self.jobs.finish_task(
                job_ref, peer.node_id, matches, probes=ex.probes_sent, candidates=candidates,
                bytes_sent=sent, bytes_received=received, replica_cursor=ran_at, now=now,
            )  # fmt: skip
            if not changed:
                return
            await self.traffic.record(
                peer.node_id, "evaluations", "sent", 1, ex.probes_sent, now * 1000
            )
            if candidates:
                await self.traffic.record(
                    peer.node_id, "queries", "sent", len(ex.candidates), candidates, now * 1000
                )
            best: dict[bytes, int] = {}
            for c in ex.confirmed:
                best[c.item_ref] = min(c.band, best.get(c.item_ref, c.band))
            for item_ref, band in sorted(best.items()):
                await translog_hooks.log_match(
                    self.translog,
                    match_id=translog_hooks.match_id_for(job_ref, peer.node_id, item_ref, 0),
                    peer=peer.node_id,
                    item_ref=item_ref,
                    band=band,
                )
            await self.jobs.count_peer_done(job_ref)
            await self.ledger.settle(job_ref, now)

    async def open_pending_cases(self, limit: int = 16) -> int:
        """Open the cases of finished jobs that have none yet (the node stopped between the
        job's last task and its cases); returns how many jobs it handled."""
        refs = await self.jobs.finished_without_cases(limit)
        for job_ref in refs:
            await self.decisions.on_job_done(job_ref)
        return len(refs)

    async def job_status(self, job_ref: bytes) -> JobStatus:
        job = await self.jobs.job(job_ref)
        if job is None:
            raise NodeError("no such job", code="unknown-item")
        return JobStatus(
            job_ref=job_ref,
            peers_total=int(job["peers_total"]),
            peers_done=int(job["peers_done"]),
            # A job with a content reference is complete once its cases are open too, so a
            # caller that waited for it finds them.
            complete=job["state"] == "complete"
            and (job["content_ref"] is None or bool(job["cases_opened"])),
            state=job["state"],
            reason=job["ended_reason"],
            results=await self.jobs.results(job_ref),
            tasks=await self.jobs.tasks(job_ref),
        )

    async def cancel_job(self, job_ref: bytes, reason: str = "cancelled by the operator") -> None:
        """Stop a running job: its pending parts are not attempted again (what it confirmed
        so far still opens cases)."""
        try:
            await self.ledger.cancel(job_ref, reason, self.clock.now())
        except JobStateError as exc:
            raise NodeError(exc.detail, code=exc.code) from None
        self.wake.set()

    async def retry_job(self, job_ref: bytes) -> list[str]:
        """Run a dead-lettered or cancelled job's failed parts again, with fresh attempts."""
        try:
            peers = await self.ledger.retry(job_ref, self.clock.now())
        except JobStateError as exc:
            raise NodeError(exc.detail, code=exc.code) from None
        self.wake.set()
        return peers

    async def wait_for_job(self, job_ref: bytes, timeout: float = 60.0) -> JobStatus:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            status = await self.job_status(job_ref)
            if status.ended or asyncio.get_running_loop().time() > deadline:
                return status
            self.wake.set()
            await asyncio.sleep(0.05)
