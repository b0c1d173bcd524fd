"""A running blindmatch node: holder and querier in one.

As a **holder** it publishes a blinded index of its shared banks in its ``index`` change feed,
answers peers' VOPRF evaluations (budgeted) and threshold queries. As a **querier** it
replicates every peer's index feed, and matches query hashes against every peer through
durable per-peer tasks in the outbox, so a peer that is down delays its part of a job and
loses nothing.

The protocol steps are :mod:`blindmatch.protocol.matching`; this module stores, sends, retries
and counts. It never logs a hash, a bucket key, an OPRF output or a key.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import json
import logging
import os
import random
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgpack
import numpy as np

from blindmatch.crypto import oprf
from blindmatch.node import signals
from blindmatch.node.cases.decisions import FEEDBACK_KIND, WEBHOOK_KIND, DecisionService
from blindmatch.node.clock import Clock, SystemClock
from blindmatch.node.config import NodeConfig
from blindmatch.node.federation import index_build, oprf_workers
from blindmatch.node.federation.job_ledger import JobLedger, JobStateError
from blindmatch.node.federation.peer_client import PeerClient, PeerError
from blindmatch.node.federation.peer_replicas import PeerReplica, Rejected, StoredEntry
from blindmatch.node.keys import NodeKeys
from blindmatch.node.metrics import Metrics
from blindmatch.node.signals.base import bands as band_bounds
from blindmatch.node.storage import (
    BudgetLedger,
    BudgetLimits,
    Database,
    FeedLog,
    NodeState,
    NonceStore,
    Outbox,
    ReplicaStore,
    RetryPolicy,
    open_database,
)
from blindmatch.node.storage.feeds import FeedEntry
from blindmatch.node.storage.migrations import MIGRATIONS, apply_migrations
from blindmatch.node.translog import hooks as translog_hooks
from blindmatch.node.translog.log import TransparencyLog
from blindmatch.protocol import (
    admission,
    canonical,
    derivative,
    index,
    matching,
    replication,
    signal_types,
)
from blindmatch.protocol import feedback as fb
from blindmatch.protocol.key_lifetime import KeyExhausted, KeyLifetime
from blindmatch.protocol.lsh import SCHEMES
from blindmatch.protocol.roster import Member, Roster, voprf_key_id
from blindmatch.protocol.signals import (
    PDQ_MATCH_THRESHOLD,
    HashFormatError,
    check_float_vector,
    check_pdq_bytes,
)

log = logging.getLogger("blindmatch.node")

INDEX_FEED = "index"
FEED_PAGE_BYTES = 8 * 1024 * 1024  # half the querier's reply limit
MATCH_TASK_KIND = "match"
# An oprf.evaluate of this many elements or more runs in a worker process (a picture's tiles,
# ~3,000 elements, take a core for a quarter of a second); smaller ones in a thread.
EVALUATE_IN_WORKER_ELEMENTS = 512
# A peer's part of a job must end within this (the outbox lease, 120 s, is longer).
TASK_TIMEOUT_S = 90.0
# Refusals a retry cannot change: the peer's part of the job is dead-lettered at once.
PERMANENT = ("bad-body", "unknown-item", "not-allowed")


@dataclass(frozen=True)
class MatchResult:
    peer: str
    item_ref: bytes
    query_index: int
    variant: str
    band: int
    release: dict[str, Any]


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


class NodeError(Exception):
    """A refusal the node reports to its caller (peer or platform) with a stable code."""

    def __init__(self, code: str, message: str, retry_after_ms: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.detail = message
        self.retry_after_ms = retry_after_ms


def _release_json(release: Any) -> str:
    """A holder's release as stored: JSON, with byte fields (a tile's ``group``) as hex."""
    return json.dumps(
        {k: v.hex() if isinstance(v, bytes) else v for k, v in dict(release).items()},
        sort_keys=True,
    )


def _entry_id(kind: str, refs: Sequence[bytes], key_id: bytes) -> bytes:
    """Idempotent per change: the same items added (or removed) under the same key."""
    h = hashlib.sha256(kind.encode() + b"\x00" + key_id + b"".join(sorted(refs)))
    return h.digest()[:16]


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
        self.cfg = cfg
        self.node_id = cfg.node_id
        self.keys = keys
        self._set_keys(keys)
        self._key_lifetime = KeyLifetime(cfg.voprf_key_cap)
        self._retire_at: dict[bytes, int] = {}  # retired key id -> when it stops answering
        self._background_tasks: set[asyncio.Future[Any]] = set()
        self._rotation_to_record: bytes | None = None
        self.db = db
        self.roster = roster
        self.clock = clock or SystemClock()
        self.rng = rng or random.SystemRandom()
        self.scheme = SCHEMES[cfg.lsh_scheme]
        self.tile_scheme = derivative.PDQ_TILES_1
        self.feeds = FeedLog(db)
        self.replicas = ReplicaStore(db)
        self.outbox = Outbox(db, RetryPolicy(base_delay=2, max_delay=600, max_attempts=30))
        self.nonces = NonceStore(db)
        self.budgets = BudgetLedger(db)
        self.state = NodeState(db)
        self.metrics = Metrics()
        self.jobs = JobLedger(db, self.metrics)
        self.client = PeerClient(self)
        self.decisions = DecisionService(self)
        self.translog = TransparencyLog(db, cfg.node_id, keys.identity, self.clock)
        self.traffic = translog_hooks.TrafficCounts(db)
        self.rejected_feedback: list[tuple[str, str]] = []  # (holder, reason), for operators
        # (peer, feed) -> (the peer's head at our last complete pull, when): feed lag metrics
        self.feed_heads: dict[tuple[str, str], tuple[int, int]] = {}
        self.started_at = self.now()
        self.peer_replicas: dict[str, PeerReplica] = {}
        self._catch_up_locks: dict[str, asyncio.Lock] = {}
        self._encryptions: OrderedDict[bytes, matching.EncryptionCache] = OrderedDict()
        self._verified_queries: OrderedDict[bytes, Any] = OrderedDict()
        self._bad_queries: OrderedDict[bytes, str] = OrderedDict()  # digest -> why refused
        self._penalty: dict[str, tuple[int, int]] = {}  # peer -> (refused until, seconds)
        self._exhausted: dict[tuple[str, str], int] = {}  # (peer, budget) -> refused until
        self._job_locks: dict[bytes, asyncio.Lock] = {}
        self._reconcile_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._wake_matcher = asyncio.Event()
        self._stopping = False
        self._in_flight: dict[asyncio.Task[None], str] = {}  # outbox work running, by peer
        self._peer_gates: dict[str, asyncio.Semaphore] = {}
        me = roster.member(cfg.node_id)
        if me is None:
            raise NodeError("not-allowed", f"{cfg.node_id} is not in the roster")
        if me.signing_key != keys.identity.public_key:
            raise NodeError("not-allowed", "the roster lists another identity key for this node")
        if me.voprf_key is not None and me.voprf_key != keys.voprf.pk:
            raise NodeError("not-allowed", "the roster pins another VOPRF key for this node")
        self.me = me

    # --- lifecycle ------------------------------------------------------------------------

    @staticmethod
    async def open_database(cfg: NodeConfig, now: int) -> Database:
        db = await open_database(cfg.database_url)
        await apply_migrations(db, now, MIGRATIONS)
        return db

    async def start(self, background: bool = True) -> None:
        await self.client.start()
        await self.translog.load()
        await self._load_key_state()
        await self._log_roster()
        await self._load_replicas()
        if background:
            self._tasks = [
                asyncio.create_task(self._sync_loop(), name=f"{self.node_id}-sync"),
                asyncio.create_task(self._match_loop(), name=f"{self.node_id}-match"),
            ]

    async def _log_roster(self) -> None:
        """Log the roster this node runs under, once per serial."""
        key = f"translog:roster:{self.roster.serial}"
        if await self.state.get(key) is None:
            async with self.db.transaction():
                await translog_hooks.log_roster(self.translog, self.roster)
                await self.state.set(key, b"1", self.now())

    async def sign_log_head(self) -> None:
        """Log ended traffic windows, then sign a head if the log grew or the last one is over
        an hour old, so peers see the log is alive (the sync loop calls this)."""
        await translog_hooks.log_counts(self.translog, self.traffic, self.now() * 1000)
        await self.translog.sign_if_due()

    async def stop(self) -> None:
        self._stopping = True
        self._wake_matcher.set()
        for t in [*self._tasks, *self._in_flight]:
            t.cancel()
        for t in [*self._tasks, *self._in_flight]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await self.client.close()
        await self.db.close()

    def now(self) -> int:
        return self.clock.now()

    def peers(self) -> list[Member]:
        return [m for m in self.roster.peers_of(self.node_id)]

    def holders(self) -> list[Member]:
        return [m for m in self.peers() if m.voprf_key is not None]

    # --- holder: publishing the blinded index ------------------------------------------------

    def _publishing_adapters(self) -> list[signals.SignalAdapter]:
        return [
            a
            for a in signals.ADAPTERS
            if a.published_by_role is None or a.published_by_role in self.me.roles
        ]

    def _unpublish_sql(self, now: int, key_id: bytes) -> tuple[str, list[Any]]:
        """Published references (under one key) that are no longer a live item of any type."""
        sql = "SELECT p.item_ref, p.entries FROM index_publications p WHERE p.key_id = ?"
        params: list[Any] = [key_id]
        for a in signals.ADAPTERS:
            live = a.live_ref_sql()
            if live is not None:
                sql += f" AND NOT EXISTS ({live})"
                params += a.live_ref_params(now)
        return sql, params

    async def reconcile_index(self) -> dict[str, int]:
        """Bring the published index in line with the active shared items (one at a time: the
        sync loop and a bank change may ask at once, and both would publish the same items).

        Adds items not yet published (whole-picture hashes and the tiles of protected sources)
        and removes items no longer active (withdrawn, expired, bank disabled or unshared; a
        source's tiles with it), each delta in one transaction with its feed entry, so a crash
        leaves either both or neither.
        """
        async with self._reconcile_lock:
            return await self._reconcile_index()

    async def _reconcile_index(self) -> dict[str, int]:
        """The index under each key we publish: the current key and, during a rotation, its
        successor (spec 8.4); a retired key's entries are removed once its overlap ends."""
        now = self.now()
        await self._retire_expired_key(now)
        result = await self._reconcile_key(self.keys.voprf, now)
        if self.keys.successor is not None:
            await self._reconcile_key(self.keys.successor, now)
        return result

    async def _reconcile_key(self, key: oprf.ServerKey, now: int) -> dict[str, int]:
        key_id = voprf_key_id(key.pk)
        active: dict[bytes, list[bytes]] = {}
        for adapter in self._publishing_adapters():
            for p in await adapter.unpublished(self.db, now, key_id):
                active[p.item_ref] = p.keys
        unpublish_sql, unpublish_params = self._unpublish_sql(now, key_id)
        published = {
            bytes(r["item_ref"]): bytes(r["entries"])
            for r in await self.db.fetch_all(unpublish_sql, *unpublish_params)
        }
        to_add, to_remove = list(active), list(published)
        # One delta must fit a feed payload: at most MAX_ENTRIES_PER_DELTA entries.
        batch = max(1, index.MAX_ENTRIES_PER_DELTA // self.scheme.tables)
        added = removed = 0
        for start in range(0, len(to_remove), batch):
            refs = to_remove[start : start + batch]
            await self._unpublish_delta(refs, published, key_id, now)
            removed += len(refs)
        # The OPRF evaluations of the whole backlog start at once (worker processes when it
        # is large) and each delta is written as soon as its items are evaluated, so the
        # writes overlap the evaluation of the items after them.
        evaluations = index_build.start_entries(key, [(r, active[r]) for r in to_add])
        packed_all: list[bytes] = []
        try:
            for start in range(0, len(to_add), batch):
                refs = to_add[start : start + batch]
                while len(packed_all) < start + len(refs):
                    packed_all += await evaluations[0]
                    evaluations.pop(0)
                per_item = dict(zip(refs, packed_all[start : start + len(refs)], strict=True))
                await self._publish_delta(refs, per_item, key_id, now)
                added += len(refs)
        finally:
            for pending in evaluations:
                pending.cancel()
        if added or removed:
            self.metrics.inc("index_items_published_total", added)
            self.metrics.inc("index_items_removed_total", removed)
            log.info("index reconciled: %d items added, %d removed", added, removed)
        return {"added": added, "removed": removed}

    async def _unpublish_delta(
        self, refs: list[bytes], published: dict[bytes, bytes], key_id: bytes, now: int
    ) -> None:
        payload = canonical.encode(
            {
                "scheme": self.scheme.name,
                "key_id": key_id,
                "entries": index.pack_entries(
                    e for r in refs for e in index.split_entries(published[r])
                ),
            }
        )
        async with self.db.transaction():
            entry = await self.feeds.append(
                INDEX_FEED, _entry_id("index.remove", refs, key_id), "index.remove", payload, now
            )
            await translog_hooks.log_index_publication(self.translog, entry)
            await self.db.execute_many(
                "DELETE FROM index_publications WHERE item_ref = ? AND key_id = ?",
                [(r, key_id) for r in refs],
            )

    async def _publish_delta(
        self, refs: list[bytes], per_item: dict[bytes, bytes], key_id: bytes, now: int
    ) -> None:
        """One index.add delta: its feed entry, its log record and its publication rows,
        in one transaction."""
        payload = canonical.encode(
            {
                "scheme": self.scheme.name,
                "key_id": key_id,
                "entries": index.pack_entries(
                    e for packed in per_item.values() for e in index.split_entries(packed)
                ),
            }
        )
        async with self.db.transaction():
            entry = await self.feeds.append(
                INDEX_FEED, _entry_id("index.add", refs, key_id), "index.add", payload, now
            )
            await translog_hooks.log_index_publication(self.translog, entry)
            await self.db.execute_many(
                "INSERT INTO index_publications (item_ref, scheme, key_id, entries,"
                " published_at) VALUES (?, ?, ?, ?, ?)",
                [(r, self.scheme.name, key_id, packed, now) for r, packed in per_item.items()],
            )

    # --- the VOPRF key's lifetime (spec 8.2, 8.4) ------------------------------------------------

    def _set_keys(self, keys: NodeKeys) -> None:
        self.keys = keys
        # the keys of our table references (spec 8.5), one per VOPRF key we answer for
        self._reference_keys = {
            kid: index.reference_key(k.sk) for kid, k in keys.voprf_keys().items()
        }

    def _answering_key(self, key_id: bytes, now: int) -> oprf.ServerKey | None:
        """The current key, its successor (queriers holding a newer roster use it), and a
        retired key until its overlap window ends."""
        key = self.keys.voprf_keys().get(key_id)
        if key is None:
            return None
        retired = self.keys.retired is not None and key is self.keys.retired
        if retired and now >= self._retire_at.get(key_id, 0):
            return None
        return key

    async def _count_evaluations(self, key_id: bytes, n: int, now: int) -> int:
        """Count ``n`` evaluations under a key, refusing (whole, nothing counted) any that
        would take it past its lifetime cap; returns the new count."""
        async with self.db.transaction():
            await self.db.execute(
                "INSERT INTO voprf_key_usage (key_id, evaluations, created_at) VALUES (?, 0, ?)"
                " ON CONFLICT DO NOTHING",
                key_id, now,
            )  # fmt: skip
            used = int(
                await self.db.fetch_value(
                    "SELECT evaluations FROM voprf_key_usage WHERE key_id = ?", key_id
                )
            )
            try:
                total = self._key_lifetime.admit(used, n)
            except KeyExhausted as exc:
                self.metrics.inc("voprf_key_cap_refusals_total")
                raise NodeError("not-allowed", str(exc)) from exc
            await self.db.execute(
                "UPDATE voprf_key_usage SET evaluations = ? WHERE key_id = ?", total, key_id
            )
        return total

    async def _uncount_evaluations(self, key_id: bytes, n: int) -> None:
        await self.db.execute(
            "UPDATE voprf_key_usage SET evaluations = evaluations - ? WHERE key_id = ?"
            " AND evaluations >= ?",
            n, key_id, n,
        )  # fmt: skip

    async def _start_rotation(self, now: int) -> None:
        """Near the cap: make the successor key and publish the index under it, so queriers
        have it replicated by the time governance puts the successor in the roster."""
        from blindmatch.node import keys as keyfiles

        if self.keys.successor is not None:
            return
        self._set_keys(keyfiles.make_successor(self.cfg.keys_dir, self.keys))
        assert self.keys.successor is not None
        new_id = voprf_key_id(self.keys.successor.pk)
        await self.db.execute(
            "INSERT INTO voprf_key_usage (key_id, evaluations, created_at) VALUES (?, 0, ?)"
            " ON CONFLICT DO NOTHING",
            new_id, now,
        )  # fmt: skip
        self.metrics.inc("voprf_key_rotations_started_total")
        log.warning(
            "VOPRF key %s reached %d of its %d evaluations: successor %s made, its index is"
            " being published; governance must put its public key %s in the roster",
            self.keys.voprf_key_id.hex(), self._key_lifetime.rotate_at,
            self._key_lifetime.cap, new_id.hex(), self.keys.successor.pk.hex(),
        )  # fmt: skip
        self._spawn(self.reconcile_index())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background_tasks.add(task)
        task.add_done_callback(self._background_tasks.discard)

    def promote_successor(self) -> bool:
        """The roster now names our successor key: it becomes the key, and the old one answers
        until the overlap window ends (spec 8.4). Returns False if there is nothing to do."""
        from blindmatch.node import keys as keyfiles

        if self.keys.successor is None:
            return False
        old_id = self.keys.voprf_key_id
        self._set_keys(keyfiles.promote_successor(self.cfg.keys_dir, self.keys))
        self._retire_at = {old_id: self.now() + self.cfg.key_overlap_s}
        self._rotation_to_record = old_id
        self.metrics.inc("voprf_key_rotations_total")
        log.info("VOPRF key rotated: %s is the key, %s answers for %d s more",
                 self.keys.voprf_key_id.hex(), old_id.hex(), self.cfg.key_overlap_s)  # fmt: skip
        return True

    async def record_rotation(self) -> None:
        """After :meth:`promote_successor`: the retirement deadline, durably, and the rotation
        in the transparency log."""
        old_id, self._rotation_to_record = self._rotation_to_record, None
        if old_id is None:
            return
        await self.db.execute(
            "INSERT INTO voprf_key_usage (key_id, evaluations, created_at, retire_at)"
            " VALUES (?, 0, ?, ?) ON CONFLICT (key_id) DO UPDATE SET retire_at = ?",
            old_id, self.now(), self._retire_at[old_id], self._retire_at[old_id],
        )  # fmt: skip
        async with self.db.transaction():
            await translog_hooks.log_key_rotation(
                self.translog,
                key_type="voprf",
                new_key_id=self.keys.voprf_key_id,
                old_key_id=old_id,
                overlap_ms=self.cfg.key_overlap_s * 1000,
            )

    async def _load_key_state(self) -> None:
        if self.keys.retired is None:
            return
        rid = voprf_key_id(self.keys.retired.pk)
        retire_at = await self.db.fetch_value(
            "SELECT retire_at FROM voprf_key_usage WHERE key_id = ?", rid
        )
        self._retire_at = {rid: int(retire_at) if retire_at is not None else self.now()}

    async def _retire_expired_key(self, now: int) -> None:
        """After the overlap: remove the retired key's index and erase its secret."""
        from blindmatch.node import keys as keyfiles

        retired = self.keys.retired
        if retired is None:
            return
        rid = voprf_key_id(retired.pk)
        if now < self._retire_at.get(rid, 0):
            return
        rows = await self.db.fetch_all(
            "SELECT item_ref, entries FROM index_publications WHERE key_id = ?", rid
        )
        published = {bytes(r["item_ref"]): bytes(r["entries"]) for r in rows}
        refs = list(published)
        batch = max(1, index.MAX_ENTRIES_PER_DELTA // self.scheme.tables)
        for start in range(0, len(refs), batch):
            await self._unpublish_delta(refs[start : start + batch], published, rid, now)
        self._set_keys(keyfiles.erase_retired(self.cfg.keys_dir, self.keys))
        self._retire_at.pop(rid, None)
        log.info("retired VOPRF key %s erased after its overlap window", rid.hex())

    # --- holder: answering peers ---------------------------------------------------------------

    async def _charge(self, peer: Member, what: str, n: int, counter: str) -> None:
        """Admit one request: record its nonce (when it came over HTTP), charge the peer's
        budget and count the traffic, in one transaction, so a request costs one commit.

        The commit skips its fsync (``durable=False``): a power loss may forget the last few
        nonces, charges and counts together, so a replay within the envelope's time window
        would be charged again; no state is half-written and a killed process loses nothing.
        """
        from blindmatch.node.federation.http import pending_admission

        limits = BudgetLimits(
            per_hour=peer.budget[f"{what}_per_hour"], per_day=peer.budget[f"{what}_per_day"]
        )
        now = self.now()
        adm = pending_admission(peer.node_id)
        async with self.db.transaction(durable=False):
            if adm is not None and not await self.nonces.remember(
                adm.sender, adm.nonce, adm.expires_at, now
            ):
                raise NodeError("replayed", "this message was already received")
            # A refused charge undoes itself; the nonce is used up regardless.
            charged = await self.budgets.charge_in_transaction(
                f"{peer.node_id}/{what}", n, now, limits
            )
            if charged:
                await self.traffic.record(peer.node_id, counter, "received", 1, n, now * 1000)
        if adm is not None:
            adm.recorded = True
        if not charged:
            # The atomic charge applies admission's rule (used + units <= limit, both
            # windows); the decision function names the refusal and the window to wait for.
            used = await self.budgets.usage(f"{peer.node_id}/{what}", now)
            decision = admission.decide(
                sender=peer.node_id,
                self_id=self.node_id,
                now_ms=now * 1000,
                timestamp_ms=now * 1000,  # the envelope's timestamp was checked on opening
                nonce_seen=False,
                charge=admission.Charge(
                    what,
                    n,
                    admission.Limits(limits.per_hour, limits.per_day),
                    admission.Usage(used["hour"], used["day"]),
                    counter,
                ),
            )
            retry = decision.retry_after_ms or (3600 - now % 3600) * 1000
            self._exhausted[(peer.node_id, what)] = now + retry // 1000
            self.metrics.inc("budget_refusals_total", labels={"peer": peer.node_id, "what": what})
            raise NodeError(
                "budget-exhausted",
                decision.message or f"{what} budget for {peer.node_id} is used up for this window",
                retry_after_ms=retry,
            )
        self.metrics.inc(f"peer_{what}_total", n, labels={"peer": peer.node_id})

    def _refuse_early(self, peer: Member, what: str) -> None:
        """Refuse from memory, before any database work or crypto, a peer whose budget for
        ``what`` is known to be used up this window, or that is serving a penalty for a bad
        proof (a refusal then costs the holder microseconds, not a commit)."""
        now = self.now()
        for until, why in (
            (self._exhausted.get((peer.node_id, what), 0), f"{what} budget is used up"),
            (self._penalty.get(peer.node_id, (0, 0))[0], "a bad proof was sent recently"),
        ):
            if now < until:
                self.metrics.inc("early_refusals_total", labels={"peer": peer.node_id})
                raise NodeError(
                    "budget-exhausted", f"{why} for {peer.node_id}", (until - now) * 1000
                )

    async def _bad_proof(self, peer: Member, digest: bytes, detail: str) -> NodeError:
        """A threshold query whose proofs fail: remembered, so the same bytes are refused
        without verifying again, and the peer pays a penalty (10 s, doubling to an hour)
        during which its threshold queries are refused before any crypto."""
        from blindmatch.node.storage.incidents import PeerIncidents

        self._bad_queries[digest] = detail
        while len(self._bad_queries) > 4096:
            self._bad_queries.popitem(last=False)
        now = self.now()
        _, last = self._penalty.get(peer.node_id, (0, 0))
        seconds = min(3600, max(10, last * 2))
        self._penalty[peer.node_id] = (now + seconds, seconds)
        self.metrics.inc("bad_proofs_total", labels={"peer": peer.node_id})
        await PeerIncidents(self.db).record(
            peer.node_id,
            "bad-proof",
            f"a threshold query's proofs failed; its queries refused for {seconds} s",
            {"what": "threshold.query", "penalty_s": seconds},
            now,
        )
        return NodeError("bad-proof", detail)

    async def handle_evaluate(self, peer: Member, body: dict[str, Any]) -> dict[str, Any]:
        now = self.now()
        key_id = body["key_id"]
        key = self._answering_key(key_id, now)
        if key is None:
            raise NodeError("not-allowed", "unknown or retired VOPRF key id")
        self._refuse_early(peer, "evaluations")
        n = len(body["elements"])
        # Counted against the key's lifetime first (refused past its cap), then the budget;
        # a request the budget refuses is taken off the key's count again.
        used = await self._count_evaluations(key_id, n, now)
        try:
            await self._charge(peer, "evaluations", n, "evaluations")
        except NodeError:
            await self._uncount_evaluations(key_id, n)
            raise
        if key is self.keys.voprf and self._key_lifetime.needs_successor(used):
            await self._start_rotation(now)
        try:
            # The scalar multiplications run off the event loop: a large request (a picture's
            # tiles, thousands of elements) in a worker process, a small one in a thread.
            if n >= EVALUATE_IN_WORKER_ELEMENTS:
                return await oprf_workers.run(matching.answer_evaluate, key, key_id, body)
            return await asyncio.to_thread(matching.answer_evaluate, key, key_id, body)
        except matching.ExchangeError as exc:
            raise NodeError(exc.code, str(exc)) from exc

    async def _holder_items(self, refs: Sequence[bytes]) -> dict[bytes, matching.HolderItem | None]:
        """What the holder answers for each asked reference: the live item of whichever signal
        type holds it (None when none does: withdrawn, expired, never ours)."""
        now = self.now()
        out: dict[bytes, matching.HolderItem | None] = {}
        for ref in refs:
            item = None
            for adapter in signals.ADAPTERS:
                item = await adapter.holder_item(self.db, ref, now, self.cfg.release_bands)
                if item is not None:
                    break
            out[ref] = item
        return out

    async def _resolve_candidates(
        self, candidates: Sequence[bytes]
    ) -> dict[bytes, matching.HolderItem | None]:
        """What each candidate a querier names resolves to (spec 8.5): its table reference,
        opened with our reference key, gives an item prefix; the item must be published with an
        entry of the candidate's tag and still be active. Anything else resolves to None (the
        querier gets a dummy answer, as for an item that does not match)."""
        named: dict[bytes, bytes | None] = {}
        for c in candidates:
            if c in named:
                continue
            named[c] = None
            # a candidate comes from the index of one of our keys: the current one, or during
            # a rotation its successor or the retired one
            for key_id, ref_key in self._reference_keys.items():
                tag, prefix = index.resolve_candidate(ref_key, key_id, c)
                rows = await self.db.fetch_all(
                    "SELECT item_ref, entries FROM index_publications"
                    " WHERE item_ref >= ? AND item_ref <= ? AND key_id = ?",
                    prefix + bytes(8), prefix + b"\xff" * 8, key_id,
                )  # fmt: skip
                found = [
                    bytes(r["item_ref"])
                    for r in rows
                    if tag in index.entry_tags(bytes(r["entries"]))
                ]
                if found:
                    named[c] = found[0]
                    break
        items = await self._holder_items([r for r in set(named.values()) if r is not None])
        return {c: (items.get(ref) if ref is not None else None) for c, ref in named.items()}

    async def handle_threshold(self, peer: Member, body: dict[str, Any]) -> dict[str, Any]:
        self._refuse_early(peer, "threshold_items")
        digest = hashlib.sha256(body["query"]).digest()
        if digest in self._bad_queries:  # the same bad proof again: refused without crypto
            self.metrics.inc("bad_proofs_total", labels={"peer": peer.node_id})
            raise NodeError("bad-proof", self._bad_queries[digest])
        await self._charge(peer, "threshold_items", len(body["items"]), "queries")
        verified = self._verified_queries.get(digest)
        # The candidates are read from the database while the proofs are checked off the loop.
        items_read = asyncio.ensure_future(self._resolve_candidates(body["items"]))
        try:
            if verified is None:
                try:
                    verified = await asyncio.to_thread(matching.verify_threshold_query, body)
                except matching.ExchangeError as exc:
                    raise await self._bad_proof(peer, digest, str(exc)) from exc
                self._verified_queries[digest] = verified
                while len(self._verified_queries) > 64:
                    self._verified_queries.popitem(last=False)
            items = await items_read
        finally:
            if not items_read.done():
                items_read.cancel()
            elif not items_read.cancelled():
                items_read.exception()  # retrieved: a refusal above is what the peer hears
        answer = await asyncio.to_thread(
            matching.answer_threshold,
            verified,
            items,
            body,
            band_bounds(self.cfg.release_bands, PDQ_MATCH_THRESHOLD),
        )
        self.metrics.inc("threshold_answers_total", len(answer["answers"]))
        return answer

    async def handle_feedback_submit(self, peer: Member, body: dict[str, Any]) -> dict[str, Any]:
        from blindmatch.node.cases.decisions import DecisionError

        try:
            seq = await self.decisions.accept_feedback(peer.node_id, body["record"])
        except DecisionError as exc:
            raise NodeError(exc.code, exc.detail) from exc
        return {"seq": seq}

    async def handle_feed_pull(self, peer: Member, body: dict[str, Any]) -> dict[str, Any]:
        if body["feed"] not in (INDEX_FEED, fb.FEED):
            raise NodeError("not-allowed", f"no feed named {body['feed']}")
        entries = await self.feeds.read(body["feed"], body["after"], body["limit"])
        head = await self.feeds.head(body["feed"])
        # A page stops at a byte budget (always at least one entry), so a backlog of large
        # index deltas never makes a reply the querier must refuse as too large.
        page, size = [], 0
        for e in entries:
            if page and size + len(e.payload) > FEED_PAGE_BYTES:
                break
            page.append({"seq": e.seq, "id": e.entry_id, "kind": e.kind, "payload": e.payload})
            size += len(e.payload)
        return {"feed": body["feed"], "entries": page, "head": head}

    # --- querier: replication -------------------------------------------------------------------

    @property
    def replica_indexes(self) -> dict[str, index.ReplicaIndex]:
        """Each peer's replicated index (read it only while no sync or match runs: a live
        node reads it through :class:`PeerReplica`, under its lock)."""
        return {peer_id: r.index for peer_id, r in self.peer_replicas.items()}

    def _replica(self, peer_id: str) -> PeerReplica | None:
        member = self.roster.member(peer_id)
        if member is None or member.voprf_key_id is None:
            return None
        replica = self.peer_replicas.get(peer_id)
        if replica is None or replica.key_id != member.voprf_key_id:
            # A new key starts an empty replica at position 0; catching up replays the stored
            # feed, whose entries under the new key are then applied.
            replica = PeerReplica(peer_id, self.scheme.name, member.voprf_key_id)
            self.peer_replicas[peer_id] = replica
        return replica

    async def _apply_page(
        self, replica: PeerReplica, after: int, entries: Sequence[StoredEntry]
    ) -> bool:
        """Apply stored entries that follow position ``after``; False if the replica is not
        there (the caller catches up from the store). Off the event loop: a page may be
        megabytes to decode and a removal merges."""
        rejected = await asyncio.to_thread(replica.apply_page, after, entries)
        if rejected is None:
            return False
        for r in rejected:
            await self._report_rejected(replica.peer_id, r)
        return True

    async def _report_rejected(self, peer_id: str, r: Rejected) -> None:
        """An index-feed entry we cannot read came in a page the peer signed, so it is the
        peer's fault: it is never applied, it stays stored so the cursor moves on, and it is
        filed as an incident for the operator (and counted) instead of only logged."""
        from blindmatch.node.storage.incidents import PeerIncidents

        self.metrics.inc("replica_entries_rejected_total", labels={"peer": peer_id})
        log.warning("rejected index feed entry %d from %s: %s", r.seq, peer_id, r.reason)
        await PeerIncidents(self.db).record(
            peer_id,
            "bad-index-entry",
            f"index feed entry {r.seq} not applied: {r.reason}",
            {"feed": INDEX_FEED, "seq": r.seq, "entry_id": r.entry_id.hex(), "kind": r.kind[:64]},
            self.now(),
        )

    async def _catch_up(self, peer_id: str) -> PeerReplica | None:
        """Bring the peer's replica up to everything stored of its index feed."""
        replica = self._replica(peer_id)
        if replica is None:
            return None
        async with self._catch_up_locks.setdefault(peer_id, asyncio.Lock()):
            while True:
                after = replica.cursor
                rows = await self.replicas.entries(peer_id, INDEX_FEED, after, 1000)
                if not rows:
                    break
                stored = [StoredEntry(r.seq, r.entry_id, r.kind, r.payload) for r in rows]
                await self._apply_page(replica, after, stored)  # a racing page: read again
        return replica

    async def _load_replicas(self) -> None:
        for peer in self.holders():
            await self._catch_up(peer.node_id)

    REPLICATED_FEEDS = (INDEX_FEED, fb.FEED)

    async def sync_peer(self, peer: Member, max_pages: int = 1000) -> int:
        """Pull the peer's index and feedback feeds from our cursors; returns new entries."""
        new = await self._pull_feed(peer, INDEX_FEED, max_pages)
        new += await self._pull_feed(peer, fb.FEED, max_pages)
        return new

    async def _pull_feed(self, peer: Member, feed: str, max_pages: int) -> int:
        """One pass over the peer's feed, driven by the sans-I/O :class:`FeedPull` (it checks
        every page and owns the cursor; this method only sends, stores and applies)."""
        start = await self.replicas.cursor(peer.node_id, feed)
        pull = replication.FeedPull(feed, start, page_limit=500, max_pages=max_pages)
        while (request := pull.request()) is not None:
            reply = await self.client.call(peer, "feed.pull", request)
            try:
                page = pull.receive(reply.body)
            except replication.ReplicationError as exc:
                raise PeerError(exc.code, exc.message) from exc
            if not page.entries:
                break
            entries = [
                FeedEntry(feed, e.seq, e.entry_id, e.kind, e.payload, 0) for e in page.entries
            ]
            await self.replicas.store_pulled(peer.node_id, feed, entries, page.cursor, self.now())
            after = pull.cursor
            pull.stored()
            if feed == INDEX_FEED:
                # Apply what is now durably stored, in feed order, exactly once: directly if
                # the replica is at the position this page follows, else from the store.
                replica = self._replica(peer.node_id)
                stored = [StoredEntry(e.seq, e.entry_id, e.kind, e.payload) for e in entries]
                if replica is not None and not await self._apply_page(replica, after, stored):
                    await self._catch_up(peer.node_id)
            else:
                for e in entries:
                    await self._apply_feedback_entry(peer, e)
        if pull.head is not None:
            self.feed_heads[(peer.node_id, feed)] = (pull.head, self.now())
        if pull.pulled:
            self.metrics.inc(
                "replica_entries_pulled_total",
                pull.pulled,
                labels={"peer": peer.node_id, "feed": feed},
            )
        return pull.pulled

    async def _apply_feedback_entry(self, peer: Member, entry: FeedEntry) -> None:
        """Verify a replicated feedback record against its origin's key, then apply it."""
        try:
            record = fb.open_record(entry.payload, self.roster.signing_key)
            if record.holder != peer.node_id:
                raise fb.FeedbackError("not-allowed", "a feed carries only its holder's items")
        except fb.FeedbackError as exc:
            # Reported, never applied; the entry stays stored so the cursor can move on.
            self.rejected_feedback.append((peer.node_id, str(exc)))
            self.metrics.inc("feedback_rejected_total", labels={"peer": peer.node_id})
            log.warning("rejected a feedback record from %s's feed: %s", peer.node_id, exc.code)
            return
        await self.decisions.apply_feedback(record)

    async def sync_all(self) -> dict[str, int | str]:
        out: dict[str, int | str] = {}
        for peer in self.holders():
            try:
                out[peer.node_id] = await self.sync_peer(peer)
            except PeerError as exc:
                out[peer.node_id] = f"error: {exc.code}"
                log.info("sync with %s failed: %s", peer.node_id, exc.code)
        return out

    async def _sync_loop(self) -> None:
        while not self._stopping:
            try:
                await self.reconcile_index()
                await self.sync_all()
                await self.sign_log_head()
            except Exception:  # keep the loop alive; the error is logged without content
                log.exception("sync round failed")
            await asyncio.sleep(self.cfg.sync_interval_s)

    # --- querier: matching ------------------------------------------------------------------------

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
                raise NodeError("bad-body", f"queries[{i}]: {exc}") from None
            if not isinstance(q.variant, str) or len(q.variant.encode()) > 256:
                raise NodeError("bad-body", f"queries[{i}]: a variant is text of <= 256 bytes")
        job_ref = os.urandom(16)
        holders = self.holders()
        packed = msgpack.packb(
            [
                [
                    q.hash,
                    None
                    if q.float_vector is None
                    else np.asarray(q.float_vector, dtype="<f4").tobytes(),
                    q.variant,
                ]
                for q in queries
            ],
            use_bin_type=True,
        )
        now = self.now()
        async with self.db.transaction():
            await self.db.execute(
                "INSERT INTO match_jobs (job_ref, submitted_at, source, queries, peers_total,"
                " peers_done, content_ref) VALUES (?, ?, ?, ?, ?, 0, ?)",
                job_ref, now, source, packed, len(holders), content_ref,
            )  # fmt: skip
            for peer in holders:
                await self.db.execute(
                    "INSERT INTO match_tasks (job_ref, peer_id, updated_at) VALUES (?, ?, ?)",
                    job_ref, peer.node_id, now,
                )  # fmt: skip
                await self.outbox.enqueue(
                    job_ref + peer.node_id.encode()[:32],
                    peer.node_id,
                    MATCH_TASK_KIND,
                    job_ref,
                    now,
                )
            if not holders:
                await self.db.execute(
                    "UPDATE match_jobs SET completed_at = ?, state = 'complete' WHERE job_ref = ?",
                    now,
                    job_ref,
                )
        self.metrics.inc("match_jobs_total")
        if not holders:
            await self.decisions.on_job_done(job_ref)
        self._wake_matcher.set()
        return job_ref

    async def _job_queries(self, job_ref: bytes) -> list[matching.QueryHash]:
        row = await self.db.fetch_one("SELECT queries FROM match_jobs WHERE job_ref = ?", job_ref)
        if row is None:
            raise NodeError("unknown-item", "no such job")
        out = []
        for h, fv, variant in msgpack.unpackb(bytes(row["queries"]), raw=False):
            floats = None if fv is None else np.frombuffer(fv, dtype="<f4").astype(np.float64)
            out.append(matching.QueryHash(bytes(h), floats, variant))
        return out

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
            raise NodeError("not-allowed", f"{peer.node_id} holds no index")
        stored = await self.replicas.cursor(peer.node_id, INDEX_FEED)
        if stored == 0:
            await self.sync_peer(peer)  # first contact: fetch the index before probing it
            stored = await self.replicas.cursor(peer.node_id, INDEX_FEED)
        # Probe a replica that holds at least everything stored when the task began (at
        # start-up it is still being rebuilt; a pull may be half applied).
        replica = await self._catch_up(peer.node_id)
        assert replica is not None
        job_queries = await self._job_queries(job_ref)
        for i, q in enumerate(job_queries):
            if q.float_vector is not None and not np.isfinite(q.float_vector).all():
                # Stored before submit checked it: no attempt can ever run this job.
                raise NodeError("bad-body", f"query {i} has a float vector that is not finite")
        # Protected sources are banked by hubs (specs/derivatives.md 5.1): only a hub is asked
        # about tiles, which keeps derivative search from costing anything at other holders.
        # A signal type banked by one role only (tiles: hubs) is asked of that role only.
        wanted = [i for i, q in enumerate(job_queries) if signals.asked_of(q, peer.roles)]
        queries = [job_queries[i] for i in wanted]
        # Every signal type's hashes in one batch (each probed under its own type's buckets):
        # still one round trip per peer.
        ex = signal_types.SignalPeerExchange(peer.node_id, peer.voprf_key, self.scheme, queries)
        sent_before, received_before = self.client.bytes_with(peer.node_id)
        request = await asyncio.to_thread(ex.evaluate_request)
        reply = await self.client.call(peer, "oprf.evaluate", request)
        reader = replica.reader()
        try:
            await asyncio.to_thread(ex.on_evaluated, reply.body, reader)
        except matching.ExchangeError as exc:
            raise PeerError(exc.code, str(exc)) from exc
        ran_at = replica.cursor if reader.cursor is None else reader.cursor
        if ran_at < stored:  # the replica was replaced (key change) while this task ran
            raise NodeError("replica-behind", "the peer's replica moved back during the task")
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
                answer = await self.client.call(peer, "threshold.query", req)
                try:
                    await asyncio.to_thread(ex.on_answer, req, answer.body, cache)
                except matching.ExchangeError as exc:
                    raise PeerError(exc.code, str(exc)) from exc
        sent, received = self.client.bytes_with(peer.node_id)
        now = self.now()
        async with self.db.transaction():
            for c in ex.confirmed:
                await self.db.execute(
                    "INSERT INTO match_results (job_ref, peer_id, item_ref, query_index, variant,"
                    " band, release, confirmed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    job_ref, c.peer, c.item_ref, wanted[c.query_index], c.variant, c.band,
                    _release_json(c.release), now,
                )  # fmt: skip
            changed = await self.db.execute(
                "UPDATE match_tasks SET state = 'done', probes = ?, candidates = ?,"
                " bytes_sent = bytes_sent + ?, bytes_received = bytes_received + ?,"
                " last_error = NULL, replica_cursor = ?, updated_at = ? WHERE job_ref = ?"
                " AND peer_id = ? AND state = 'pending'",
                ex.probes_sent, sum(len(v) for v in ex.candidates.values()),
                sent - sent_before, received - received_before, ran_at, now, job_ref,
                peer.node_id,
            )  # fmt: skip
            if changed:
                candidates = sum(len(v) for v in ex.candidates.values())
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
                await self.db.execute(
                    "UPDATE match_jobs SET peers_done = peers_done + 1 WHERE job_ref = ?",
                    job_ref,
                )
                await self.jobs.settle(job_ref, now)
        self.metrics.inc("matches_confirmed_total", len(ex.confirmed))
        done = await self.db.fetch_value(
            "SELECT completed_at FROM match_jobs WHERE job_ref = ?", job_ref
        )
        if done is not None:
            await self.decisions.on_job_done(job_ref)
        return ex.confirmed

    async def process_due_tasks(self, limit: int = 16, wait: bool = True) -> int:
        """Run the outbox messages whose time has come; returns how many were claimed.

        Each peer has at most ``match_workers`` messages in flight, and a peer at its limit
        is not claimed for, so a slow or hostile peer holds only its own slots: the matching
        loop (``wait=False``) starts what it claims and comes back for more as soon as any
        message ends, instead of waiting for a batch's slowest peer. With ``wait`` the call
        returns when what it claimed has run (tests and tools drain the outbox this way).
        """
        self._in_flight = {t: p for t, p in self._in_flight.items() if not t.done()}
        per_peer = collections.Counter(self._in_flight.values())
        cap = max(1, self.cfg.match_workers)
        busy = sorted(p for p, n in per_peer.items() if n >= cap)
        messages = await self.outbox.claim_due(self.now(), limit, exclude_peers=busy)
        # A case's webhooks go one after another in their sequence (message id) order.
        groups: dict[bytes, list[Any]] = {}
        for m in messages:
            key = m.message_id[:16] if m.kind == WEBHOOK_KIND else m.message_id
            groups.setdefault(key, []).append(m)
        gates = self._peer_gates
        started = []
        for group in groups.values():
            gate = gates.setdefault(group[0].peer_id, asyncio.Semaphore(cap))

            async def run(group: list[Any] = group, gate: asyncio.Semaphore = gate) -> None:
                async with gate:
                    for m in sorted(group, key=lambda m: m.message_id):
                        await self._process(m)
                self._wake_matcher.set()  # a slot is free

            task = asyncio.create_task(run())
            self._in_flight[task] = group[0].peer_id
            started.append(task)
        if wait:
            await asyncio.gather(*started)
        return len(messages)

    async def _process(self, m: Any) -> None:
        peer = self.roster.member(m.peer_id)
        try:
            if m.kind == WEBHOOK_KIND:
                await self._deliver_webhook(m.payload)
                await self.outbox.mark_delivered(m.message_id, self.now())
                return
            if peer is None:
                raise NodeError("not-allowed", "peer left the roster")
            if m.kind == MATCH_TASK_KIND:
                # A peer's part has its own deadline (inside the outbox's lease, so it is never
                # run twice at once); a slow peer delays only its own part.
                await asyncio.wait_for(self.run_task(m.payload, peer), TASK_TIMEOUT_S)
            elif m.kind == FEEDBACK_KIND:
                await self.client.call(peer, "feedback.submit", {"record": m.payload})
            else:
                raise NodeError("internal", f"unknown outbox kind {m.kind}")
            await self.outbox.mark_delivered(m.message_id, self.now())
        except Exception as exc:
            await self._failed_attempt(m, exc)

    async def _failed_attempt(self, m: Any, exc: Exception) -> None:
        """One attempt failed: retry it later (bounded by the outbox's policy), or, when it
        can never succeed or its attempts ran out, dead-letter the peer's part of the job."""
        if isinstance(exc, TimeoutError | PeerError | NodeError | OSError):
            code = str(getattr(exc, "code", exc.__class__.__name__))
        else:  # a fault of ours: logged with its traceback, retried, still bounded
            log.error("match task against %s failed unexpectedly", m.peer_id, exc_info=exc)
            code = f"internal ({exc.__class__.__name__})"
        now = self.now()
        if m.kind == MATCH_TASK_KIND and isinstance(exc, NodeError) and exc.code in PERMANENT:
            await self.jobs.fail_task(m.payload, m.peer_id, f"{code}: {exc.detail}", now)
            self._wake_matcher.set()
            return
        if m.kind == MATCH_TASK_KIND:
            await self.db.execute(
                "UPDATE match_tasks SET last_error = ?, updated_at = ? WHERE job_ref = ?"
                " AND peer_id = ? AND state = 'pending'",
                code, now, m.payload, m.peer_id,
            )  # fmt: skip
        message = await self.outbox.schedule_retry(m.message_id, code, now, self.rng)
        if message.state == "dead" and m.kind == MATCH_TASK_KIND:
            reason = f"gave up after {message.attempts} attempts; last error {code}"
            await self.jobs.fail_task(m.payload, m.peer_id, reason, now)
            self._wake_matcher.set()
            return
        self.metrics.inc("match_task_retries_total", labels={"peer": m.peer_id})
        log.info("match task against %s deferred: %s", m.peer_id, code)

    async def _deliver_webhook(self, body: bytes) -> None:
        url = self.decisions.webhook_url
        if not url:
            return
        event = json.loads(body)
        if await self.decisions.earlier_webhook_pending(
            bytes.fromhex(event["case"]), event["sequence"]
        ):
            raise NodeError("deferred", "an earlier event for this case is not delivered yet")
        await self.client.start()
        assert self.client.session is not None
        headers = {
            "Content-Type": "application/json",
            "X-Blindmatch-Signature": "sha256=" + self.decisions.webhook_signature(body),
            "Idempotency-Key": event["idempotency_key"],
        }
        try:
            async with self.client.session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                if resp.status >= 300:
                    raise NodeError("unreachable", f"webhook answered {resp.status}")
        except aiohttp.ClientError as exc:
            raise NodeError("unreachable", f"webhook: {exc.__class__.__name__}") from exc

    async def open_pending_cases(self, limit: int = 16) -> int:
        """Open the cases of finished jobs that have none yet (the node stopped between the
        job's last task and its cases); returns how many jobs it handled."""
        rows = await self.db.fetch_all(
            "SELECT job_ref FROM match_jobs WHERE cases_opened = 0 AND content_ref IS NOT NULL"
            " AND completed_at IS NOT NULL ORDER BY id LIMIT ?",
            limit,
        )
        for r in rows:
            await self.decisions.on_job_done(bytes(r["job_ref"]))
        return len(rows)

    async def _match_loop(self) -> None:
        while not self._stopping:
            try:
                n = await self.process_due_tasks(wait=False)
                n += await self.open_pending_cases()
            except Exception:
                log.exception("match round failed")
                n = 0
            if n == 0:
                self._wake_matcher.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake_matcher.wait(), timeout=1.0)

    async def job_status(self, job_ref: bytes) -> JobStatus:
        job = await self.db.fetch_one("SELECT * FROM match_jobs WHERE job_ref = ?", job_ref)
        if job is None:
            raise NodeError("unknown-item", "no such job")
        rows = await self.db.fetch_all(
            "SELECT * FROM match_results WHERE job_ref = ? ORDER BY peer_id, query_index, band",
            job_ref,
        )
        tasks = await self.db.fetch_all(
            "SELECT peer_id, state, probes, candidates, bytes_sent, bytes_received, last_error,"
            " replica_cursor FROM match_tasks WHERE job_ref = ? ORDER BY peer_id",
            job_ref,
        )
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
            results=[
                MatchResult(
                    peer=r["peer_id"],
                    item_ref=bytes(r["item_ref"]),
                    query_index=int(r["query_index"]),
                    variant=r["variant"],
                    band=int(r["band"]),
                    release=json.loads(r["release"]),
                )
                for r in rows
            ],
            tasks=[dict(t) for t in tasks],
        )

    async def cancel_job(self, job_ref: bytes, reason: str = "cancelled by the operator") -> None:
        """Stop a running job: its pending parts are not attempted again (what it confirmed
        so far still opens cases)."""
        try:
            await self.jobs.cancel(job_ref, reason, self.now())
        except JobStateError as exc:
            raise NodeError(exc.code, exc.detail) from None
        self._wake_matcher.set()

    async def retry_job(self, job_ref: bytes) -> list[str]:
        """Run a dead-lettered or cancelled job's failed parts again, with fresh attempts."""
        try:
            peers = await self.jobs.retry(job_ref, self.now())
        except JobStateError as exc:
            raise NodeError(exc.code, exc.detail) from None
        self._wake_matcher.set()
        return peers

    async def wait_for_job(self, job_ref: bytes, timeout: float = 60.0) -> JobStatus:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            status = await self.job_status(job_ref)
            if status.ended or asyncio.get_running_loop().time() > deadline:
                return status
            self._wake_matcher.set()
            await asyncio.sleep(0.05)
