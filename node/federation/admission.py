"""Admitting a peer's request: its nonce, its budget charge and its traffic count, in one place.

A request that comes over HTTP carries a nonce (:class:`PendingNonce`) the federation endpoint
hands to the handler. A request whose handler charges a budget records its nonce in the
charge's transaction (one commit per request instead of two), still before any crypto runs;
any other request, and a request refused before its charge, records it on its own. Either way
a refused request uses its nonce up, and a replay of it is answered as a replay.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from blindmatch.node.clock import Clock
from blindmatch.node.errors import NodeError
from blindmatch.node.metrics import Metrics
from blindmatch.node.storage import BudgetLedger, BudgetLimits, Database, NonceStore
from blindmatch.node.storage.incidents import PeerIncidents
from blindmatch.node.translog.hooks import TrafficCounts
from blindmatch.protocol import admission as admission_rules
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
        incidents: PeerIncidents,
        node_id: str,
    ) -> None:
        self.db = db
        self.nonces = nonces
        self.budgets = budgets
        self.traffic = traffic
        self.metrics = metrics
        self.clock = clock
        self.incidents = incidents
        self.node_id = node_id
        self._exhausted: dict[tuple[str, str], int] = {}  # (peer, budget) -> refused until
        self._penalty: dict[str, tuple[int, int]] = {}  # peer -> (refused until, seconds)
        self._bad_queries: OrderedDict[bytes, str] = OrderedDict()  # digest -> why refused

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
                raise NodeError("this message was already received", code="replayed")
            # A refused charge undoes itself; the nonce is used up regardless.
            charged = await self.budgets.charge_in_transaction(
                f"{peer.node_id}/{what}", n, now, limits
            )
            if charged:
                await self.traffic.record(peer.node_id, counter, "received", 1, n, now * 1000)
        if pending is not None:
            pending.recorded = True
        if not charged:
            # The atomic charge applies admission's rule (used + units <= limit, both
            # windows); the decision function names the refusal and the window to wait for.
            used = await self.budgets.usage(f"{peer.node_id}/{what}", now)
            decision = admission_rules.decide(
                sender=peer.node_id,
                self_id=self.node_id,
                now_ms=now * 1000,
                timestamp_ms=now * 1000,  # the envelope's timestamp was checked on opening
                nonce_seen=False,
                charge=admission_rules.Charge(
                    what,
                    n,
                    admission_rules.Limits(limits.per_hour, limits.per_day),
                    admission_rules.Usage(used["hour"], used["day"]),
                    counter,
                ),
            )
            retry = decision.retry_after_ms or (3600 - now % 3600) * 1000
            self._exhausted[(peer.node_id, what)] = now + retry // 1000
            self.metrics.inc("budget_refusals_total", labels={"peer": peer.node_id, "what": what})
            raise NodeError(
                decision.message or f"{what} budget for {peer.node_id} is used up for this window",
                code="budget-exhausted",
                retry_after_ms=retry,
            )
        self.metrics.inc(f"peer_{what}_total", n, labels={"peer": peer.node_id})

    def refuse_early(self, peer: Member, what: str) -> None:
        """Refuse from memory, before any database work or crypto, a peer whose budget for
        ``what`` is known to be used up this window, or that is serving a penalty for a bad
        proof (a refusal then costs the holder microseconds, not a commit)."""
        now = self.clock.now()
        for until, why in (
            (self._exhausted.get((peer.node_id, what), 0), f"{what} budget is used up"),
            (self._penalty.get(peer.node_id, (0, 0))[0], "a bad proof was sent recently"),
        ):
            if now < until:
                self.metrics.inc("early_refusals_total", labels={"peer": peer.node_id})
                raise NodeError(
                    f"{why} for {peer.node_id}",
                    code="budget-exhausted",
                    retry_after_ms=(until - now) * 1000,
                )

    def known_bad(self, digest: bytes) -> NodeError | None:
        """The refusal of a threshold query already found to carry a bad proof."""
        detail = self._bad_queries.get(digest)
        return None if detail is None else NodeError(detail, code="bad-proof")

    async def bad_proof(self, peer: Member, digest: bytes, detail: str) -> NodeError:
        """A threshold query whose proofs fail: remembered, so the same bytes are refused
        without verifying again, and the peer pays a penalty (10 s, doubling to an hour)
        during which its threshold queries are refused before any crypto."""
        self._bad_queries[digest] = detail
        while len(self._bad_queries) > 4096:
            self._bad_queries.popitem(last=False)
        now = self.clock.now()
        _, last = self._penalty.get(peer.node_id, (0, 0))
        seconds = min(3600, max(10, last * 2))
        self._penalty[peer.node_id] = (now + seconds, seconds)
        self.metrics.inc("bad_proofs_total", labels={"peer": peer.node_id})
        await self.incidents.record(
            peer.node_id,
            "bad-proof",
            f"a threshold query's proofs failed; its queries refused for {seconds} s",
            {"what": "threshold.query", "penalty_s": seconds},
            now,
        )
        return NodeError(detail, code="bad-proof")
