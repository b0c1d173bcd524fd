"""A running blindmatch node: the composition root that builds its services and runs them.

Holder: :mod:`.federation.publisher` (the blinded index), :mod:`.federation.responder` (peers'
requests, admitted by :mod:`.federation.admission`). Querier: :mod:`.federation.replication`
(peers' feeds), :mod:`.federation.querier` (match jobs, run and retried by :mod:`.delivery`).
Matches become cases (:mod:`.cases.decisions`). Each service is handed its collaborators and
its store; nothing here stores, sends or decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from blindmatch.node.cases.decisions import DecisionService
from blindmatch.node.cases.webhooks import WebhookSender
from blindmatch.node.clock import Clock, SystemClock
from blindmatch.node.config import NodeConfig
from blindmatch.node.delivery import OutboxWorker
from blindmatch.node.errors import NodeError
from blindmatch.node.federation.admission import Admission
from blindmatch.node.federation.job_ledger import JobLedger
from blindmatch.node.federation.peer_client import PeerClient, PeerError
from blindmatch.node.federation.publisher import IndexPublisher
from blindmatch.node.federation.querier import Querier
from blindmatch.node.federation.replication import Replicator
from blindmatch.node.federation.responder import PeerResponder
from blindmatch.node.federation.uploader_signals import FEED as UPLOADERS_FEED
from blindmatch.node.federation.uploader_signals import UploaderSignals
from blindmatch.node.keys import NodeKeys
from blindmatch.node.metrics import Metrics
from blindmatch.node.storage import (
    BudgetLedger,
    Database,
    FeedLog,
    NodeState,
    NonceStore,
    Outbox,
    ReplicaStore,
    RetryPolicy,
    open_database,
)
from blindmatch.node.storage.banks import BankStore
from blindmatch.node.storage.cases import CaseStore
from blindmatch.node.storage.incidents import PeerIncidents
from blindmatch.node.storage.match_jobs import MatchJobStore
from blindmatch.node.storage.migrations import MIGRATIONS, apply_migrations
from blindmatch.node.storage.processes import ProcessGroup
from blindmatch.node.storage.published_index import PublishedIndexStore
from blindmatch.node.translog import hooks as translog_hooks
from blindmatch.node.translog.log import TransparencyLog
from blindmatch.protocol import index
from blindmatch.protocol.lsh import SCHEMES
from blindmatch.protocol.roster import Member, Roster

log = logging.getLogger("blindmatch.node")


class Node:
    def __init__(
        self,
        cfg: NodeConfig,
        keys: NodeKeys,
        db: Database,
        roster: Roster,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        me = roster.member(cfg.node_id)
        if me is None:
            raise NodeError("not-allowed", f"{cfg.node_id} is not in the roster")
        if me.signing_key != keys.identity.public_key:
            raise NodeError("not-allowed", "the roster lists another identity key for this node")
        if me.voprf_key is not None and me.voprf_key != keys.voprf.pk:
            raise NodeError("not-allowed", "the roster pins another VOPRF key for this node")
        for name in ("uploader_key", "keeper_key"):  # specs/uploaders.md: pinned like the VOPRF key
            key = getattr(keys, name.removesuffix("_key"))
            if getattr(me, name) is not None and (key is None or getattr(me, name) != key.pk):
                raise NodeError("not-allowed", f"the roster pins another {name} for this node")
        self.cfg, self.node_id, self.keys, self.db = cfg, cfg.node_id, keys, db
        self._roster, self._me = roster, me
        self.clock = clock = clock or SystemClock()
        self.rng = rng or random.SystemRandom()
        self.scheme = SCHEMES[cfg.lsh_scheme]
        self.feeds = FeedLog(db)
        self.replicas = ReplicaStore(db)
        # This process among the node's processes on the database (one on SQLite).
        self.processes = ProcessGroup(db)
        self.outbox = Outbox(
            db,
            RetryPolicy(base_delay=2, max_delay=600, max_attempts=30),
            owner=self.processes.instance,
        )
        self.nonces = NonceStore(db)
        self.budgets = BudgetLedger(db)
        self.state = NodeState(db)
        self.job_store = MatchJobStore(db)
        published = PublishedIndexStore(db)
        self.traffic = translog_hooks.TrafficCounts(db)
        self.translog = TransparencyLog(db, cfg.node_id, keys.identity, clock)
        # Services, each handed what it works with.
        self.metrics = metrics = Metrics()
        self.jobs = JobLedger(db, metrics)
        self.client = PeerClient(cfg.node_id, keys.identity, clock, metrics, cfg.tls_ca)
        self.uploaders = UploaderSignals(
            db, node_id=cfg.node_id, roster=lambda: self.roster, keys=keys, feeds=self.feeds,
            replicas=self.replicas, client=self.client, outbox=self.outbox,
            budgets=self.budgets, traffic=self.traffic, translog=self.translog,
            metrics=metrics, clock=clock,
            refresh_feedback=lambda holder: self.replication.sync_peer(holder),
        )  # fmt: skip
        self.decisions = DecisionService(
            db, node_id=cfg.node_id, identity=keys.identity, roster=roster, clock=clock,
            metrics=metrics, translog=self.translog, outbox=self.outbox, feeds=self.feeds,
            jobs=self.job_store, cases=CaseStore(db), bank_items=BankStore(db),
            release_bands=cfg.release_bands, uploaders=self.uploaders,
        )  # fmt: skip
        self.publisher = IndexPublisher(
            db, published, self.feeds, self.translog, keys, self.scheme, metrics, clock,
            roles=me.roles,
        )  # fmt: skip
        incidents = PeerIncidents(db)
        self.admission = Admission(
            db, self.nonces, self.budgets, self.traffic, metrics, clock, incidents, cfg.node_id
        )
        self.responder = PeerResponder(
            db, self.admission, self.feeds, self.decisions, keys, metrics, clock,
            cfg.release_bands, uploaders=self.uploaders, voprf_key_cap=cfg.voprf_key_cap,
        )  # fmt: skip
        self.replication = Replicator(
            roster, cfg.node_id, self.scheme.name, self.replicas, incidents, self.client,
            self.decisions, metrics, clock,
        )  # fmt: skip
        self._wake_matcher = asyncio.Event()
        self._stopping = asyncio.Event()
        self.querier = Querier(
            db, self.job_store, self.jobs, self.outbox, self.replication, self.client, self.traffic,
            self.translog, metrics, clock, self.scheme, self.decisions,
            self._wake_matcher,
        )  # fmt: skip
        webhooks = WebhookSender(
            db, lambda: (self.decisions.webhook_url, self.decisions.webhook_secret),
            self.client.http_session,
        )  # fmt: skip
        self.delivery = OutboxWorker(
            self.outbox, roster, self.querier, self.job_store, self.jobs, self.client, webhooks,
            metrics, clock, self.rng, cfg.match_workers, uploaders=self.uploaders,
        )  # fmt: skip
        self._tasks: list[asyncio.Task[None]] = []
        self.started_at = clock.now()
        # The services' entry points, as callers (API, survivor page, CLI, tests) use them.
        self.peer_replicas = self.replication.peer_replicas
        self.feed_heads = self.replication.feed_heads
        self.rejected_feedback = self.replication.rejected_feedback
        self.handle_evaluate = self.responder.evaluate
        self.handle_threshold = self.responder.threshold
        self.handle_feed_pull = self.responder.feed_pull
        self.handle_feedback_submit = self.responder.feedback_submit
        self.sync_peer = self.replication.sync_peer
        self.sync_all = self._sync_all
        self.submit = self.querier.submit
        self.run_task = self.querier.run_task
        self.job_status = self.querier.job_status
        self.wait_for_job = self.querier.wait_for_job
        self.cancel_job = self.querier.cancel_job
        self.retry_job = self.querier.retry_job
        self._job_queries = self.querier.job_queries
        self.open_pending_cases = self.querier.open_pending_cases
        self.process_due_tasks = self.delivery.process_due

    REPLICATED_FEEDS = Replicator.REPLICATED_FEEDS

    @property
    def replica_indexes(self) -> dict[str, index.ReplicaIndex]:
        return self.replication.replica_indexes

    @property
    def roster(self) -> Roster:
        return self._roster

    @roster.setter
    def roster(self, roster: Roster) -> None:
        """A new roster (a reload) reaches every service that reads it."""
        self._roster = roster
        for service in (self.decisions, self.replication, self.delivery):
            service.roster = roster

    @property
    def me(self) -> Member:
        return self._me

    @me.setter
    def me(self, me: Member) -> None:
        self._me = me
        self.publisher.roles = me.roles

    # --- lifecycle ------------------------------------------------------------------------

    @staticmethod
    async def open_database(cfg: NodeConfig, now: int) -> Database:
        db = await open_database(cfg.database_url)
        await apply_migrations(db, now, MIGRATIONS)
        return db

    async def start(self, background: bool = True) -> None:
        await self.client.start()
        await self.processes.start()
        await self.translog.load()
        await self._log_roster()
        await self.replication.load()
        if background:
            self._tasks = [
                asyncio.create_task(self._sync_loop(), name=f"{self.node_id}-sync"),
                asyncio.create_task(
                    self.delivery.run(self._wake_matcher, self._stopping),
                    name=f"{self.node_id}-match",
                ),
            ]

    async def _log_roster(self) -> None:
        """Log the roster this node runs under, once per serial."""
        key = f"translog:roster:{self.roster.serial}"
        if await self.state.get(key) is None:
            async with self.db.transaction():
                # The node's other processes load the same roster at the same moment.
                await self.db.lock(key)
                if await self.state.get(key) is None:
                    await translog_hooks.log_roster(self.translog, self.roster)
                    await self.state.set(key, b"1", self.now())

    async def sign_log_head(self) -> None:
        """Log ended traffic windows, then sign a head if the log grew or the last one is over
        an hour old, so peers see the log is alive (the sync loop calls this)."""
        await translog_hooks.log_counts(self.translog, self.traffic, self.now() * 1000)
        await self.translog.sign_if_due()

    async def reconcile_index(self) -> dict[str, int]:
        return await self.publisher.reconcile()

    async def _sync_all(self) -> dict[str, int | str]:
        """Every holder's feeds, then the repeat-uploader signals: the keeper expires its
        publications; a reader pulls the keeper's feed and carries its changes to open cases."""
        out = await self.replication.sync_all()
        await self.uploaders.expire()
        try:
            change = await self.uploaders.pull()
        except (PeerError, NodeError) as exc:
            keeper = self.uploaders.keeper()
            if keeper is not None:
                out[f"{keeper.node_id}/{UPLOADERS_FEED}"] = f"error: {exc.code}"
            return out
        if change.added or change.removed:
            await self.decisions.apply_uploader_change(change)
        return out

    async def sync_round(self) -> None:
        """One round of the node's periodic work. The leader (storage/processes.py) publishes,
        pulls peers' feeds, signs log heads and frees dead processes' leases; every other
        process of the node follows what the leader stored (each peer's replica catches up
        from the shared cursor), so every process sees every entry."""
        if await self.processes.refresh():
            await self.reconcile_index()
            await self.sync_all()
            await self.sign_log_head()
            await self.release_dead_leases()
        else:
            await self.replication.load()

    async def release_dead_leases(self) -> int:
        """Hand out again at once the outbox messages leased by processes of this node that
        died (their presence lock is free): a killed process's match tasks would otherwise
        wait out the lease."""
        released = 0
        now = self.now()
        for owner in await self.processes.dead(await self.outbox.lease_owners(now)):
            n = await self.outbox.release_leases(owner, now)
            if n:
                log.warning("released %d outbox leases of a stopped process", n)
                self.metrics.inc("outbox_leases_released_total", n)
                released += n
        if released:
            self._wake_matcher.set()
        return released

    async def _sync_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.sync_round()
            except Exception:  # keep the loop alive; the error is logged without content
                log.exception("sync round failed")
            await asyncio.sleep(self.cfg.sync_interval_s)

    async def stop(self) -> None:
        self._stopping.set()
        self._wake_matcher.set()
        for t in [*self._tasks, *self.delivery.in_flight]:
            t.cancel()
        for t in [*self._tasks, *self.delivery.in_flight]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await self.client.close()
        with contextlib.suppress(Exception):  # the database may already be gone
            await self.processes.close()
        await self.db.close()

    def now(self) -> int:
        return self.clock.now()

    def peers(self) -> list[Member]:
        return list(self.roster.peers_of(self.node_id))

    def holders(self) -> list[Member]:
        return self.replication.holders()
