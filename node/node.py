"""A running blindmatch node: the composition root that builds its services and runs them.

Holder: :mod:`.federation.publisher` (the blinded index), :mod:`.federation.responder` (peers'
requests, admitted by :mod:`.federation.admission`). Querier: :mod:`.federation.replication`
(peers' feeds), :mod:`.federation.querier` (match jobs, run and retried by :mod:`.delivery`).
Matches become cases (:mod:`.cases.decisions`); :mod:`.federation.sync_loop` runs the background
round. Each service is handed its collaborators and its store; nothing here stores, sends or
decides, and callers reach a service's entry points on the service (``node.querier.submit``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random

from blindmatch.node.cases.decisions import DecisionService
from blindmatch.node.cases.webhooks import WebhookSender
from blindmatch.node.clock import Clock, SystemClock
from blindmatch.node.config import NodeConfig
from blindmatch.node.delivery import OutboxWorker
from blindmatch.node.errors import NodeError
from blindmatch.node.federation.admission import Admission
from blindmatch.node.federation.job_ledger import JobLedger
from blindmatch.node.federation.key_ring import VoprfKeyRing
from blindmatch.node.federation.occupancy import IndexOccupancy
from blindmatch.node.federation.peer_client import PeerClient
from blindmatch.node.federation.publisher import IndexPublisher
from blindmatch.node.federation.querier import Querier
from blindmatch.node.federation.replication import Replicator
from blindmatch.node.federation.responder import PeerResponder
from blindmatch.node.federation.roster_watch import still_listed
from blindmatch.node.federation.sync_loop import SyncLoop
from blindmatch.node.federation.uploader_signals import UploaderSignals
from blindmatch.node.keys import NodeKeys, check_roster_pins
from blindmatch.node.metrics import Metrics
from blindmatch.node.storage import BudgetLedger, Database, FeedLog, NodeState, NonceStore
from blindmatch.node.storage.banks import BankStore
from blindmatch.node.storage.cases import CaseStore
from blindmatch.node.storage.incidents import PeerIncidents
from blindmatch.node.storage.job_ledger import JobLedgerStore
from blindmatch.node.storage.key_usage import KeyUsageStore
from blindmatch.node.storage.match_jobs import MatchJobStore
from blindmatch.node.storage.outbox import Outbox, RetryPolicy
from blindmatch.node.storage.processes import ProcessGroup
from blindmatch.node.storage.published_index import PublishedIndexStore
from blindmatch.node.storage.replicas import ReplicaStore
from blindmatch.node.storage.translog import TranslogStore
from blindmatch.node.storage.uploaders import UploaderStore
from blindmatch.node.translog import hooks as translog_hooks
from blindmatch.node.translog.log import TransparencyLog
from blindmatch.protocol.lsh import SCHEMES
from blindmatch.protocol.roster import Member, Roster


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
            raise NodeError(f"{cfg.node_id} is not in the roster", code="not-allowed")
        check_roster_pins(me, keys)
        self.cfg, self.node_id, self.db = cfg, cfg.node_id, db
        self._roster, self.me = roster, me
        self.clock = clock = clock or SystemClock()
        self.rng = rng or random.SystemRandom()
        self.scheme = SCHEMES[cfg.lsh_scheme]
        self.feeds, self.replicas = FeedLog(db), ReplicaStore(db)
        # This process among the node's processes on the database (one on SQLite).
        self.processes = ProcessGroup(db)
        self.outbox = Outbox(db, RetryPolicy(base_delay=2, max_delay=600, max_attempts=30),
                             owner=self.processes.instance)  # fmt: skip
        self.nonces, self.budgets = NonceStore(db), BudgetLedger(db)
        self.state, self.job_store = NodeState(db), MatchJobStore(db)
        published = PublishedIndexStore(db)
        logs = TranslogStore(db)
        self.traffic = translog_hooks.TrafficCounts(logs)
        self.translog = TransparencyLog(logs, cfg.node_id, keys.identity, clock)
        # Services, each handed what it works with.
        self.metrics = metrics = Metrics()
        # The VOPRF keys over their lifetime (spec 8.4); self.keys reads them from here. The
        # roster may already name the successor made before a restart: it is promoted.
        self.key_ring = VoprfKeyRing(
            KeyUsageStore(db), keys, cfg.keys_dir, self.translog, metrics, clock,
            cap=cfg.voprf_key_cap, overlap_s=cfg.key_overlap_s)  # fmt: skip
        if me.voprf_key is not None:
            self.key_ring.roster_names(me.voprf_key)
        self.jobs = JobLedger(JobLedgerStore(db), metrics)
        self.client = PeerClient(cfg.node_id, keys.identity, clock, metrics, cfg.tls_ca)
        self.uploaders = UploaderSignals(
            UploaderStore(db), node_id=cfg.node_id, roster=lambda: self.roster, keys=keys,
            feeds=self.feeds, replicas=self.replicas, client=self.client, outbox=self.outbox,
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
        occupancy = IndexOccupancy(db, published, lambda: self.key_ring.keys.voprf_key_id, clock)
        self.publisher = IndexPublisher(
            db, published, self.feeds, self.translog, self.key_ring, self.scheme, metrics, clock,
            roles=me.roles, batch_s=cfg.index_batch_s, padding=cfg.index_batch_padding,
            tile_batch_s=cfg.index_tile_batch_s, occupancy=occupancy,
        )  # fmt: skip
        self.publisher.declared_entries = lambda: int(self.me.budget["index_entries"])
        incidents = PeerIncidents(db, on_dropped=lambda peer: metrics.inc(
            "peer_incidents_dropped_total", labels={"peer": peer}))  # fmt: skip
        self.admission = Admission(
            db, self.nonces, self.budgets, self.traffic, metrics, clock, incidents, cfg.node_id,
            occupancy=occupancy,
        )  # fmt: skip
        self.responder = PeerResponder(
            db, self.admission, self.feeds, self.decisions, self.key_ring, metrics, clock,
            cfg.release_bands, uploaders=self.uploaders, published=published,
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
            self.outbox, lambda: (self.decisions.webhook_url, self.decisions.webhook_secret),
            self.client.http_session,
        )  # fmt: skip
        self.delivery = OutboxWorker(
            self.outbox, roster, self.querier, self.job_store, self.jobs, self.client, webhooks,
            metrics, clock, self.rng, cfg.match_workers, uploaders=self.uploaders,
        )  # fmt: skip
        self.sync = SyncLoop(
            self.publisher, self.replication, self.uploaders, self.decisions, self.translog,
            self.traffic, clock, cfg.sync_interval_s, processes=self.processes,
            outbox=self.outbox, metrics=metrics, wake=self._wake_matcher)  # fmt: skip
        self._tasks: list[asyncio.Task[None]] = []
        self.started_at = clock.now()

    @property
    def keys(self) -> NodeKeys:
        """The node's keys as they are now (a rotation replaces the VOPRF key)."""
        return self.key_ring.keys

    @property
    def roster(self) -> Roster:
        return self._roster

    @roster.setter
    def roster(self, roster: Roster) -> None:
        """A new roster (a reload) reaches every service that reads it."""
        self._roster = roster
        for service in (self.decisions, self.replication, self.delivery):
            service.roster = roster

    async def adopt_roster(self, new: Roster) -> None:
        """Put a verified roster in use (a reload), if it still lists this node with the keys
        it holds, and log it."""
        self.me = still_listed(new, self.node_id, self.keys)
        # naming our successor key promotes it: the rotation's second half (spec 8.4)
        if self.me.voprf_key is not None:
            self.key_ring.roster_names(self.me.voprf_key)
            await self.key_ring.settle()
        self.publisher.roles = self.me.roles
        self.roster = new
        await translog_hooks.log_roster_once(self.translog, self.db, self.state, new, self.now())

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self, background: bool = True) -> None:
        await self.client.start()
        await self.processes.start()
        await self.translog.load()
        await self.key_ring.load()
        await translog_hooks.log_roster_once(self.translog, self.db, self.state, self.roster,
                                             self.now())  # fmt: skip
        await self.replication.load()
        if background:
            self._tasks = [
                asyncio.create_task(self.sync.run(self._stopping), name=f"{self.node_id}-sync"),
                asyncio.create_task(self.delivery.run(self._wake_matcher, self._stopping),
                                    name=f"{self.node_id}-match"),
            ]  # fmt: skip

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
