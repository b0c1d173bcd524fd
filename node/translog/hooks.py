"""Turning node events into verifiable-log entries (specs/transparency.md section 3.3).

One function per event, each building exactly its kind's entry from what the caller already
holds and appending it; none of them takes a hash or an image. Call them inside the
transaction that records the event itself, so the event and its log entry commit together::

    async with node.db.transaction():
        entry = await node.feeds.append(...)
        await translog_hooks.log_index_publication(node.translog, entry)

Per-peer traffic is counted in durable hourly windows (:class:`TrafficCounts`) and flushed
into ``query-counts`` / ``evaluation-counts`` entries once a window has ended.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from blindmatch.node.storage.database import Database
from blindmatch.node.storage.feeds import FeedEntry
from blindmatch.node.storage.node_state import NodeState
from blindmatch.node.storage.translog import TranslogStore
from blindmatch.node.translog.log import LOCK_NAME, TransparencyLog
from blindmatch.protocol import canonical, index
from blindmatch.protocol import roster as roster_mod

HOUR_MS = 3_600_000
MATCH_ID_DOMAIN = b"blindmatch-v1 log match id"
_COUNT_MAX = (1 << 32) - 1


# --- index publications ---------------------------------------------------------------------


def feed_digest(entries: Sequence[FeedEntry]) -> bytes:
    """SHA-256 of the canonical array of feed entries exactly as served in ``feed.page``
    (``{seq, id, kind, payload}``), in seq order: what a replica recomputes."""
    ordered = sorted(entries, key=lambda e: e.seq)
    return hashlib.sha256(
        canonical.encode(
            [
                {"seq": e.seq, "id": e.entry_id, "kind": e.kind, "payload": e.payload}
                for e in ordered
            ]
        )
    ).digest()


def index_publication_entry(entries: Sequence[FeedEntry]) -> dict[str, Any]:
    """The ``index-publication`` entry for consecutive feed entries of one feed and key."""
    if not entries:
        raise ValueError("an index publication covers at least one feed entry")
    ordered = sorted(entries, key=lambda e: e.seq)
    feeds = {e.feed for e in ordered}
    if len(feeds) != 1:
        raise ValueError("an index publication covers one feed")
    seqs = [e.seq for e in ordered]
    if seqs != list(range(seqs[0], seqs[0] + len(seqs))):
        raise ValueError("an index publication covers consecutive feed entries")
    added = removed = 0
    key_ids: set[bytes] = set()
    for e in ordered:
        body = canonical.decode(e.payload)
        key_ids.add(bytes(body["key_id"]))
        if e.kind == "index.add":
            added += len(body["entries"]) // index.ENTRY_BYTES
        elif e.kind == "index.remove":
            removed += len(body["entries"]) // index.ENTRY_BYTES
    if len(key_ids) != 1:
        raise ValueError("an index publication covers entries under one VOPRF key")
    return {
        "kind": "index-publication",
        "feed": ordered[0].feed,
        "key_id": key_ids.pop(),
        "seq_from": seqs[0],
        "seq_to": seqs[-1],
        "digest": feed_digest(ordered),
        "entries_added": min(added, _COUNT_MAX),
        "entries_removed": min(removed, _COUNT_MAX),
    }


async def log_index_publication(log: TransparencyLog, *feed_entries: FeedEntry) -> int:
    """Log the publication of one (or several consecutive) index feed entries."""
    return await log.append(index_publication_entry(feed_entries))


# --- matches, decisions, feedback, appeals ---------------------------------------------------


def match_id_for(job_ref: bytes, peer_id: str, item_ref: bytes, query_index: int) -> bytes:
    """A stable 16-byte match id for one stored match result (job, holder, item, query).

    Derived from the job's random reference, so it carries nothing about any hash, and the
    same result always gets the same id (the decision code can recompute it from a
    ``match_results`` row without storing it)."""
    h = hashlib.sha256(
        MATCH_ID_DOMAIN
        + job_ref
        + b"\x00"
        + peer_id.encode()
        + b"\x00"
        + item_ref
        + query_index.to_bytes(8, "big")
    )
    return h.digest()[:16]


async def log_match(
    log: TransparencyLog,
    *,
    match_id: bytes,
    peer: str,
    item_ref: bytes,
    band: int,
    role: str = "querier",
    signal_type: str = "pdq",
) -> int:
    """A match confirmed by the private threshold test (``band``: the released upper bound)."""
    return await log.append(
        {
            "kind": "match",
            "match_id": match_id,
            "peer": peer,
            "role": role,
            "item_ref": item_ref,
            "signal_type": signal_type,
            "band": band,
        }
    )


async def log_decision(
    log: TransparencyLog,
    *,
    decision_id: bytes,
    match_id: bytes,
    outcome: str,
    decided_by: str,
    policy: str | None = None,
    signals: Sequence[str] = (),
) -> int:
    """``outcome``: actioned | dismissed | escalated; ``decided_by``: policy | reviewer;
    ``signals``: the context signals that moved the case (names, counted by the report)."""
    entry: dict[str, Any] = {
        "kind": "decision",
        "decision_id": decision_id,
        "match_id": match_id,
        "outcome": outcome,
        "decided_by": decided_by,
    }
    if policy is not None:
        entry["policy"] = policy
    names = sorted({s.split(":")[0] for s in signals})
    if names:
        entry["signals"] = names
    return await log.append(entry)


async def log_feedback(
    log: TransparencyLog,
    *,
    feedback_id: bytes,
    peer: str,
    direction: str,
    item_ref: bytes,
    opinion: str,
) -> int:
    """A feedback record sent to (``direction="sent"``) or received from a peer; ``opinion``:
    confirm | dispute | withdraw | retract | appeal-overturned. Log a received record only
    after its signature verified."""
    return await log.append(
        {
            "kind": "feedback",
            "feedback_id": feedback_id,
            "peer": peer,
            "direction": direction,
            "item_ref": item_ref,
            "opinion": opinion,
        }
    )


async def log_appeal(
    log: TransparencyLog, *, appeal_id: bytes, decision_id: bytes, status: str
) -> int:
    """``status``: opened | decision-upheld | decision-overturned."""
    return await log.append(
        {"kind": "appeal", "appeal_id": appeal_id, "decision_id": decision_id, "status": status}
    )


async def log_roster(log: TransparencyLog, roster: roster_mod.Roster) -> int:
    """The node adopted this roster (digest over the signed roster body)."""
    body = roster.document.get("roster", roster.document)
    return await log.append(
        {
            "kind": "roster",
            "roster_version": roster.serial if roster.serial >= 1 else 1,
            "roster_digest": hashlib.sha256(roster_mod.signed_bytes(body)).digest(),
            "members": len(roster.members),
        }
    )


async def log_roster_once(
    log: TransparencyLog, db: Database, state: NodeState, roster: roster_mod.Roster, now: int
) -> None:
    """Log the roster the node runs under, once per serial (a restart logs nothing new)."""
    key = f"translog:roster:{roster.serial}"
    if await state.get(key) is None:
        async with db.transaction():
            # The node's other processes load the same roster at the same moment.
            await db.lock(key)
            if await state.get(key) is None:
                await log_roster(log, roster)
                await state.set(key, b"1", now)


async def log_key_rotation(
    log: TransparencyLog,
    *,
    key_type: str,
    new_key_id: bytes,
    old_key_id: bytes | None = None,
    overlap_ms: int = 0,
) -> int:
    entry: dict[str, Any] = {
        "kind": "key-rotation",
        "key_type": key_type,
        "new_key_id": new_key_id,
        "overlap_ms": overlap_ms,
    }
    if old_key_id is not None:
        entry["old_key_id"] = old_key_id
    return await log.append(entry)


# --- per-peer traffic ------------------------------------------------------------------------


COUNTERS = ("evaluations", "queries", "uploader-holder", "uploader-keeper")


class TrafficCounts:
    """Durable per-peer, per-window counters, flushed into the log when windows end.

    ``counter`` is ``"evaluations"`` (``messages``: ``oprf.evaluate`` requests, ``items``:
    blinded elements) or ``"queries"`` (``messages``: ``threshold.query`` messages, ``items``:
    candidate items tested), or for repeat-uploader signals ``"uploader-holder"`` and
    ``"uploader-keeper"`` (``uploader.evaluate`` / ``uploader.tag`` messages and their blinded
    elements). ``direction`` is ``"received"`` when this node answered and ``"sent"`` when it
    asked.
    """

    def __init__(self, store: TranslogStore, window_ms: int = HOUR_MS) -> None:
        if not 1 <= window_ms <= 2_678_400_000:
            raise ValueError("a window is 1 ms .. 31 days")
        self.store = store
        self.window_ms = window_ms

    async def record(
        self, peer: str, counter: str, direction: str, messages: int, items: int, now_ms: int
    ) -> None:
        if counter not in COUNTERS or direction not in ("sent", "received"):
            raise ValueError(f"counter: {'|'.join(COUNTERS)}; direction: sent|received")
        await self.store.ensure()
        start = now_ms - now_ms % self.window_ms
        await self.store.count(peer, counter, direction, start, self.window_ms, messages, items)

    async def flush(self, log: TransparencyLog, now_ms: int | None = None) -> int:
        """Append one counts entry per ended window (and delete its counters), atomically;
        returns the number of entries appended."""
        await self.store.ensure()
        now_ms = log.now_ms() if now_ms is None else now_ms
        appended = 0
        async with self.store.locked(LOCK_NAME + ":counters"):
            rows = await self.store.ended_counters(now_ms)
            for r in rows:
                common = {
                    "peer": r["peer_id"],
                    "direction": r["direction"],
                    "window_start_ms": int(r["window_start_ms"]),
                    "window_ms": int(r["window_ms"]),
                }
                messages = min(int(r["messages"]), _COUNT_MAX)
                items = min(int(r["items"]), _COUNT_MAX)
                if r["counter"].startswith("uploader-"):
                    entry = {
                        "kind": "uploader-evaluation-counts",
                        **common,
                        "stage": r["counter"].removeprefix("uploader-"),
                        "requests": messages,
                        "evaluations": items,
                    }
                elif r["counter"] == "evaluations":
                    entry = {
                        "kind": "evaluation-counts",
                        **common,
                        "requests": messages,
                        "evaluations": items,
                    }
                else:
                    entry = {
                        "kind": "query-counts",
                        **common,
                        "queries": messages,
                        "candidates": items,
                    }
                await log.append(entry)
                await self.store.drop_counter(r)
                appended += 1
        return appended


async def log_counts(log: TransparencyLog, counts: TrafficCounts, now_ms: int | None = None) -> int:
    """Flush ended traffic windows into the log (call periodically, e.g. from the sync loop)."""
    return await counts.flush(log, now_ms)


__all__ = [
    "TrafficCounts",
    "feed_digest",
    "index_publication_entry",
    "log_appeal",
    "log_counts",
    "log_decision",
    "log_feedback",
    "log_index_publication",
    "log_key_rotation",
    "log_match",
    "log_roster",
    "match_id_for",
]
