"""Admitting a peer's request: its nonce, its budget charge and its traffic count, in one place.

A request that comes over HTTP carries a nonce (:class:`PendingNonce`) the federation endpoint
hands to the handler. A request whose handler charges a budget records its nonce in the
charge's transaction (one commit per request instead of two), still before any crypto runs;
any other request, and a request refused before its charge, records it on its own. Either way
a refused request uses its nonce up, and a replay of it is answered as a replay.
"""

from __future__ import annotations

from dataclasses import dataclass

from blindmatch.node.clock import Clock
from blindmatch.node.errors import NodeError
from blindmatch.node.metrics import Metrics
from blindmatch.node.storage import BudgetLedger, BudgetLimits, Database, NonceStore
from blindmatch.node.translog.hooks import TrafficCounts
from blindmatch.protocol import envelope
from blindmatch.protocol.roster import Member

NONCE_RETENTION_S = 2 * envelope.DEFAULT_MAX_SKEW_MS // 1000
# Requests whose handler charges a budget: their nonce is recorded in the charge's transaction.
CHARGED_TYPES = ("oprf.evaluate", "threshold.query")


@dataclass
class PendingNonce:
    """The nonce of the request being handled, not yet recorded."""

    sender: str
    nonce: bytes
    expires_at: int
    recorded: bool = False


class Admission:
    def __init__(
        self,
        db: Database,
        nonces: NonceStore,
        budgets: BudgetLedger,
        traffic: TrafficCounts,
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        self.db = db
        self.nonces = nonces
        self.budgets = budgets
        self.traffic = traffic
        self.metrics = metrics
        self.clock = clock

    def pending(self, sender: str, nonce: bytes) -> PendingNonce:
        return PendingNonce(sender, nonce, self.clock.now() + NONCE_RETENTION_S)

    async def record(self, pending: PendingNonce) -> bool:
        """Record the request's nonce unless its charge already did; False for a replay."""
        if pending.recorded:
            return True
        fresh = await self.nonces.remember(
            pending.sender, pending.nonce, pending.expires_at, self.clock.now()
        )
        pending.recorded = True
        return fresh

    async def charge(
        self, peer: Member, what: str, n: int, counter: str, pending: PendingNonce | None
    ) -> None:
        """Admit one request: record its nonce (when it came over HTTP), charge the peer's
        budget and count the traffic, in one transaction, so a request costs one commit.

        The commit skips its fsync (``durable=False``): a power loss may forget the last few
        nonces, charges and counts together, so a replay within the envelope's time window
        would be charged again; no state is half-written and a killed process loses nothing.
        """
        if pending is not None and (pending.recorded or pending.sender != peer.node_id):
            pending = None
        limits = BudgetLimits(
            per_hour=peer.budget[f"{what}_per_hour"], per_day=peer.budget[f"{what}_per_day"]
        )
        now = self.clock.now()
        async with self.db.transaction(durable=False):
            if pending is not None and not await self.nonces.remember(
                pending.sender, pending.nonce, pending.expires_at, now
            ):
                raise NodeError("replayed", "this message was already received")
            # A refused charge undoes itself; the nonce is used up regardless.
            charged = await self.budgets.charge_in_transaction(
                f"{peer.node_id}/{what}", n, now, limits
            )
            if charged:
                await self.traffic.record(peer.node_id, counter, "received", 1, n, now * 1000)
        if pending is not None:
            pending.recorded = True
        if not charged:
            retry = (3600 - now % 3600) * 1000
            self.metrics.inc("budget_refusals_total", labels={"peer": peer.node_id, "what": what})
            raise NodeError(
                "budget-exhausted",
                f"{what} budget for {peer.node_id} is used up for this window",
                retry_after_ms=retry,
            )
        self.metrics.inc(f"peer_{what}_total", n, labels={"peer": peer.node_id})
