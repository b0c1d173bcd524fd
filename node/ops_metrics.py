"""The gauges an operator alerts on, read from the store at scrape time.

A stuck queue shows as a growing ``blindmatch_queue_oldest_age_seconds``; a peer that stopped
answering as a growing ``blindmatch_feed_last_pull_age_seconds``; a roster about to lapse as a
falling ``blindmatch_roster_expires_in_seconds``. Reading them from the database (not from
counters kept in memory) keeps them right across restarts and across processes sharing a store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from blindmatch.node.storage.ops import OpsStore

if TYPE_CHECKING:
    from blindmatch.node.node import Node

# Outbox states an operator watches (delivered messages are history, not a queue).
OUTBOX_STATES = ("pending", "dead")
CASE_STATES = ("queued", "quarantined", "escalated")
BUDGETS = ("evaluations", "threshold_items")


async def refresh(node: Node) -> None:
    """Bring every scrape-time gauge of ``node.metrics`` up to date."""
    now = node.now()
    m = node.metrics
    depth: dict[tuple[str, ...], float] = {}
    oldest: dict[tuple[str, ...], float] = {}
    retrying: dict[tuple[str, ...], float] = {}

    ops = OpsStore(node.db)
    rows = await ops.outbox_queues()
    for kind in ("match", "feedback", "webhook"):
        for state in OUTBOX_STATES:
            depth[(f"outbox:{kind}", state)] = 0
            oldest[(f"outbox:{kind}", state)] = 0
        retrying[(f"outbox:{kind}",)] = 0
    for r in rows:
        queue = f"outbox:{r['kind']}"
        depth[(queue, r["state"])] = int(r["n"])
        oldest[(queue, r["state"])] = max(0, now - int(r["first"]))
        if r["state"] == "pending":
            retrying[(queue,)] = int(r["failed"] or 0)

    job = await ops.running_jobs()
    depth[("match-jobs", "pending")] = int(job["n"]) if job else 0
    depth[("match-jobs", "dead-lettered")] = await ops.dead_lettered_jobs()
    first = job["first"] if job else None
    oldest[("match-jobs", "pending")] = 0 if first is None else max(0, now - int(first))

    for state in CASE_STATES:
        depth[("review-cases", state)] = 0
        oldest[("review-cases", state)] = 0
    cases = await ops.review_queue()
    for r in cases:
        depth[("review-cases", r["state"])] = int(r["n"])
        oldest[("review-cases", r["state"])] = max(0, now - int(r["first"]))

    m.set_gauges("queue_depth", depth)
    m.set_gauges("queue_oldest_age_seconds", oldest)
    m.set_gauges("queue_retrying", retrying)

    lag: dict[tuple[str, ...], float] = {}
    pull_age: dict[tuple[str, ...], float] = {}
    for peer in node.replication.holders():
        for feed in node.replication.REPLICATED_FEEDS:
            cursor = await node.replicas.cursor(peer.node_id, feed)
            head, pulled_at = node.replication.feed_heads.get(
                (peer.node_id, feed), (cursor, node.started_at)
            )
            lag[(peer.node_id, feed)] = max(0, head - cursor)
            pull_age[(peer.node_id, feed)] = max(0, now - pulled_at)
    m.set_gauges("feed_lag_entries", lag)
    m.set_gauges("feed_last_pull_age_seconds", pull_age)

    m.gauge("roster_expires_in_seconds").set(node.roster.expires_ms / 1000 - now)
    m.gauge("roster_serial").set(node.roster.serial)
    key_file = node.cfg.keys_dir / "voprf.key"
    if key_file.exists():
        m.gauge("voprf_key_age_seconds").set(max(0.0, now - key_file.stat().st_mtime))
    evaluated = await ops.key_evaluations(node.keys.voprf_key_id)
    m.gauge("voprf_key_evaluations_left").set(max(0, node.cfg.voprf_key_cap - evaluated))

    remaining: dict[tuple[str, ...], float] = {}
    for peer in node.peers():
        for what in BUDGETS:
            used = await node.budgets.usage(f"{peer.node_id}/{what}", now)
            limits = await node.admission.limits(peer, what)
            for window, limit in (("hour", limits.per_hour), ("day", limits.per_day)):
                remaining[(peer.node_id, what, window)] = max(0, limit - used.get(window, 0))
    m.set_gauges("budget_remaining", remaining)
    if node.admission.occupancy is not None:
        entries, real = await node.admission.occupancy.counts()
        m.set_gauges("index_entries_published", {("all",): entries, ("real",): real})
