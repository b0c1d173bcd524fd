"""Admitting a peer's request: the I/O around :func:`blindmatch.protocol.admission.decide`.

The decision is the protocol's, made once per request on every fact it needs: the sender, the
envelope's timestamp against the clock it was opened with, whether the nonce was seen, and the
budget's state. The facts come from atomic statements whose effects the decision then keeps or
undoes: the nonce is inserted if absent (its result says whether it was seen) and the budget
is charged by one conditional upsert (its result says which windows took the units), so the
per-request path costs no read beyond them.

A request that comes over HTTP carries a nonce (:class:`PendingNonce`) the federation endpoint
hands to the handler. A request whose handler charges a budget records its nonce in the
charge's transaction (one commit per request instead of two), still before any crypto runs;
any other request is admitted on its nonce alone before its handler runs, and a request refused
by its handler before the charge still records its nonce. Either way a refused request uses
its nonce up, and a replay of it is answered as a replay.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from blindmatch.node.clock import Clock
from blindmatch.node.errors import BlindmatchError, NodeError
from blindmatch.node.federation.occupancy import IndexOccupancy
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
    """The nonce of the request being handled, not yet recorded, with the envelope's timestamp
    and the time it was opened at (the admission decision checks the one against the other)."""

    sender: str
    nonce: bytes
    expires_at: int
    recorded: bool = False
    timestamp_ms: int | None = None
    opened_ms: int | None = None


class _Undo(BlindmatchError):
    """Raised inside an admission transaction to undo its statements (a refusal after which
    the nonce must not stay recorded)."""


def _refusal(decision: admission_rules.Decision) -> NodeError:
    return NodeError(
        decision.message, code=decision.code or "internal", retry_after_ms=decision.retry_after_ms
    )


def _usage(took: dict[str, int], n: int, limits: BudgetLimits) -> admission_rules.Usage:
    """The budget state the charge's statement found: a window that took the units held
    ``took - n`` before; one that refused is reported as full, which the decision refuses for
    any units exactly as the statement did (used + units > limit)."""
    hour, day = took.get("hour"), took.get("day")
    return admission_rules.Usage(
        hour - n if hour is not None else limits.per_hour,
        day - n if day is not None else limits.per_day,
    )


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
        occupancy: IndexOccupancy | None = None,
    ) -> None:
        self.db = db
        self.nonces = nonces
        self.budgets = budgets
        self.traffic = traffic
        self.metrics = metrics
        self.clock = clock
        self.incidents = incidents
        self.node_id = node_id
        # the threshold budget follows the index's occupancy, decoys counted (8.3)
        self.occupancy = occupancy
        self._exhausted: dict[tuple[str, str], int] = {}  # (peer, budget) -> refused until
        self._penalty: dict[str, tuple[int, int]] = {}  # peer -> (refused until, seconds)
        self._bad_queries: OrderedDict[bytes, str] = OrderedDict()  # digest -> why refused

    def pending(
        self,
        sender: str,
        nonce: bytes,
        timestamp_ms: int | None = None,
        opened_ms: int | None = None,
    ) -> PendingNonce:
        return PendingNonce(
            sender, nonce, self.clock.now() + NONCE_RETENTION_S, False, timestamp_ms, opened_ms
        )

    def _decide(
        self,
        sender: str,
        pending: PendingNonce | None,
        nonce_seen: bool,
        charge: admission_rules.Charge | None = None,
    ) -> admission_rules.Decision:
        now_ms = self.clock.now() * 1000
        if pending is not None and pending.opened_ms is not None:
            now_ms = pending.opened_ms
        timestamp_ms = now_ms  # a request not from the wire (or not timed) is on time
        if pending is not None and pending.timestamp_ms is not None:
            timestamp_ms = pending.timestamp_ms
        return admission_rules.decide(
            sender=sender,
            self_id=self.node_id,
            now_ms=now_ms,
            timestamp_ms=timestamp_ms,
            nonce_seen=nonce_seen,
            charge=charge,
        )

    async def admit(self, pending: PendingNonce) -> None:
        """Admit a request no budget pays for, on its nonce: recorded if fresh (one statement),
        refused as the decision says (a refusal that must not use the nonce up gives it back:
        a message from ourselves or out of time, which the envelope's opening refuses first)."""
        fresh = await self.nonces.remember(
            pending.sender, pending.nonce, pending.expires_at, self.clock.now()
        )
        pending.recorded = True
        decision = self._decide(pending.sender, pending, nonce_seen=not fresh)
        if decision.admit:
            return
        if fresh and not decision.record_nonce:
            await self.nonces.forget(pending.sender, pending.nonce)
        raise _refusal(decision)

    async def record(self, pending: PendingNonce) -> bool:
        """Record the request's nonce unless its charge already did; False for a replay."""
        if pending.recorded:
            return True
        fresh = await self.nonces.remember(
            pending.sender, pending.nonce, pending.expires_at, self.clock.now()
        )
        pending.recorded = True
        return fresh

    async def limits(self, peer: Member, what: str) -> BudgetLimits:
        """The peer's budget for ``what`` as this holder enforces it: the roster's figures, and
        for threshold candidates those scaled to the index's occupancy (8.3)."""
        hour, day = peer.budget[f"{what}_per_hour"], peer.budget[f"{what}_per_day"]
        if what == "threshold_items" and self.occupancy is not None:
            scaled = await self.occupancy.limits(admission_rules.Limits(hour, day))
            hour, day = scaled.per_hour, scaled.per_day
        return BudgetLimits(per_hour=hour, per_day=day)

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
        limits = await self.limits(peer, what)
        now = self.clock.now()
        key = f"{peer.node_id}/{what}"
        rule = admission_rules.Limits(limits.per_hour, limits.per_day)
        try:
            async with self.db.transaction(durable=False):
                seen = pending is not None and not await self.nonces.remember(
                    pending.sender, pending.nonce, pending.expires_at, now
                )
                took: dict[str, int] = {}
                if seen or n < 1:
                    usage = admission_rules.Usage()  # decided without it
                elif n > limits.per_hour or n > limits.per_day:
                    # Over a whole window's limit: no statement can take it; the refusal
                    # names the window to wait for from what is spent (a refusal's read).
                    used = await self.budgets.usage(key, now)
                    usage = admission_rules.Usage(used["hour"], used["day"])
                else:
                    # One conditional upsert: a refused charge undoes itself.
                    took = await self.budgets.charge_windows(key, n, now, limits)
                    usage = _usage(took, n, limits)
                decision = self._decide(
                    peer.node_id,
                    pending,
                    seen,
                    admission_rules.Charge(what, n, rule, usage, counter),
                )
                if decision.admit != (len(took) == 2) or not decision.record_nonce:
                    raise _Undo  # nothing this request did may stay
                if decision.count_traffic:
                    await self.traffic.record(peer.node_id, counter, "received", 1, n, now * 1000)
        except _Undo:
            if decision.admit:  # the statement refused what the rule admits: never expected
                raise NodeError("the budget charge failed", code="internal") from None
        if pending is not None:
            pending.recorded = True
        if decision.admit:
            self.metrics.inc(f"peer_{what}_total", n, labels={"peer": peer.node_id})
            return
        if decision.code == "budget-exhausted":
            retry = decision.retry_after_ms or (3600 - now % 3600) * 1000
            self._exhausted[(peer.node_id, what)] = now + retry // 1000
            self.metrics.inc("budget_refusals_total", labels={"peer": peer.node_id, "what": what})
        raise _refusal(decision)

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
