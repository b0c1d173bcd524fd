"""The node's background round: publish the index, pull every holder's feeds and the
repeat-uploader signals, then log ended traffic windows and sign a log head if one is due.

Each step belongs to its service; this module only orders them and keeps the loop alive.

Of a node's several processes on one PostgreSQL database (README: Running several processes)
only the leader (:mod:`..storage.processes`) runs the round; it also hands out again the outbox
leases of the node's processes that died. Every other process follows what the leader stored:
each peer's replica catches up from the shared cursor, so every process sees every entry.
"""

from __future__ import annotations

import asyncio
import logging

from blindmatch.node.cases.decisions import DecisionService
from blindmatch.node.clock import Clock
from blindmatch.node.errors import NodeError
from blindmatch.node.federation.peer_client import PeerError
from blindmatch.node.federation.publisher import IndexPublisher
from blindmatch.node.federation.replication import Replicator
from blindmatch.node.federation.uploader_signals import FEED as UPLOADERS_FEED
from blindmatch.node.federation.uploader_signals import UploaderSignals
from blindmatch.node.metrics import Metrics
from blindmatch.node.storage import Outbox
from blindmatch.node.storage.processes import ProcessGroup
from blindmatch.node.translog import hooks as translog_hooks
from blindmatch.node.translog.log import TransparencyLog

log = logging.getLogger("blindmatch.node")


class SyncLoop:
    def __init__(
        self,
        publisher: IndexPublisher,
        replication: Replicator,
        uploaders: UploaderSignals,
        decisions: DecisionService,
        translog: TransparencyLog,
        traffic: translog_hooks.TrafficCounts,
        clock: Clock,
        interval_s: float,
        *,
        processes: ProcessGroup,
        outbox: Outbox,
        metrics: Metrics,
        wake: asyncio.Event,
    ) -> None:
        self.processes = processes
        self.outbox = outbox
        self.metrics = metrics
        self.wake = wake  # the outbox worker's: set when released leases are due
        self.publisher = publisher
        self.replication = replication
        self.uploaders = uploaders
        self.decisions = decisions
        self.translog = translog
        self.traffic = traffic
        self.clock = clock
        self.interval_s = interval_s

    async def sync_all(self) -> dict[str, int | str]:
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

    async def sign_log_head(self) -> None:
        """Log ended traffic windows, then sign a head if the log grew or the last one is over
        an hour old, so peers see the log is alive."""
        await translog_hooks.log_counts(self.translog, self.traffic, self.clock.now() * 1000)
        await self.translog.sign_if_due()

    async def round(self) -> None:
        """One round: the leader's work, or (another process) following the shared cursor."""
        if await self.processes.refresh():
            # First: a dead process's claims wait on nothing else that may fail this round.
            await self.release_dead_leases()
            await self.publisher.reconcile()
            await self.sync_all()
            await self.sign_log_head()
        else:
            await self.replication.load()

    async def release_dead_leases(self) -> int:
        """Hand out again at once the outbox messages leased by processes of this node that
        died (their presence lock is free): a killed process's match tasks would otherwise
        wait out the lease."""
        released = 0
        now = self.clock.now()
        for owner in await self.processes.dead(await self.outbox.lease_owners(now)):
            n = await self.outbox.release_leases(owner, now)
            if n:
                log.warning("released %d outbox leases of a stopped process", n)
                self.metrics.inc("outbox_leases_released_total", n)
                released += n
        if released:
            self.wake.set()
        return released

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.round()
            except Exception:  # keep the loop alive; the error is logged without content
                log.exception("sync round failed")
            await asyncio.sleep(self.interval_s)
