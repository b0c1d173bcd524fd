"""A demo run for the transparency report: a real federation on loopback, logging as it works.

A hub and two platforms start on this machine (real keys, governance-signed roster, SQLite,
HTTP). For three simulated weeks (a fixed clock moved a day at a time) the hub adds hashes to
its shared bank and survivors withdraw some; the hub publishes its blinded index and logs each
publication. Every day platform A matches uploads privately against the hub (near-copies of
protected hashes, and unrelated ones) and logs each confirmed match and its traffic with the
hub. Review outcomes are drawn by a seeded stand-in for the review queue (close matches
actioned by policy, the rest by a "reviewer"; some appeals, some overturned), and the feedback
they produce is logged on both sides, sent by the platform and received by the hub.

Each log (the platform's: matches, decisions, appeals, feedback sent, traffic as querier; the
hub's: index publications and withdrawals, feedback received, traffic as holder) is then
served on loopback through the public ``/log/v1`` API, fetched, audited against its signed tree
head and turned into a report in ``OUT/platform-a`` and ``OUT/hub``, exactly as
``blindmatch report --url`` does for any live node.

Everything logged about matches, publications and traffic comes from the real exchange; only
the review outcomes are simulated (the decision workflow logs real ones once it is wired in).
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from aiohttp import web

from blindmatch.node.clock import FixedClock
from blindmatch.node.localfed import LocalFederation, NodeSpec
from blindmatch.node.translog import TransparencyLog
from blindmatch.node.translog_hooks import (
    TrafficCounts,
    log_appeal,
    log_decision,
    log_feedback,
    log_index_publication,
    log_match,
    match_id_for,
)
from blindmatch.node.translog_http import build_log_routes
from blindmatch.protocol.matching import QueryHash

DEMO_START = 1_789_948_800  # Monday 2026-09-21 00:00 UTC
DAY = 86_400


def _flip(rng: random.Random, h: bytes, n: int) -> bytes:
    out = bytearray(h)
    for i in rng.sample(range(256), n):
        out[i >> 3] ^= 0x80 >> (i & 7)
    return bytes(out)


async def _publish(fed: LocalFederation, log: TransparencyLog, after: int) -> int:
    """Reconcile the hub's index and log every feed entry published since ``after``."""
    hub = fed["hub"].node
    await hub.reconcile_index()
    for entry in await hub.feeds.read("index", after, 1000):
        await log_index_publication(log, entry)
        after = entry.seq
    return after


async def run_demo(
    out_dir: Path,
    days: int = 21,
    seed: int = 7,
    period: str = "week",
    out: TextIO | None = None,
) -> int:
    """Run the federation, log, serve and report; returns the exit status (0: written)."""
    from blindmatch.node import cmd_report

    out = sys.stdout if out is None else out
    rng = random.Random(seed)
    clock = FixedClock(DEMO_START)
    with tempfile.TemporaryDirectory(prefix="blindmatch-translog-demo-") as home:
        fed = await LocalFederation(Path(home), clock=clock, background=False).start(
            [
                NodeSpec("hub", ("hub",)),
                NodeSpec("platform-a", holds_index=False),
                NodeSpec("platform-b", holds_index=False),
            ]
        )
        runner: web.AppRunner | None = None
        try:
            hub, plat = fed["hub"], fed["platform-a"]
            hub_log = TransparencyLog(hub.node.db, "hub", hub.node.keys.identity, clock)
            plat_log = TransparencyLog(plat.node.db, "platform-a", plat.node.keys.identity, clock)
            plat_counts = TrafficCounts(plat.node.db)
            hub_counts = TrafficCounts(hub.node.db)
            await hub.banks.create_bank(
                "ncii", provenance="survivor-submitted", shared=True, categories=["ncii"]
            )
            protected: list[tuple[bytes, bytes]] = []  # (hash, item_ref)
            published = 0
            print(f"demo federation up; simulating {days} days", file=out)
            for day in range(days):
                clock.set(DEMO_START + day * DAY + 9 * 3600)
                for _ in range(rng.randrange(2, 6)):
                    h = os.urandom(32)
                    added = await hub.banks.add_item("ncii", "pdq", h)
                    protected.append((h, added.item.item_ref))
                if protected and rng.random() < 0.25:  # a survivor withdraws a hash
                    h, ref = protected.pop(rng.randrange(len(protected)))
                    await hub.banks.withdraw(ref, reason="survivor withdrew")
                published = await _publish(fed, hub_log, published)
                await plat.node.sync_all()

                # Uploads at platform A: near-copies of protected hashes, and unrelated ones.
                clock.set(DEMO_START + day * DAY + 14 * 3600)
                copies = rng.sample(protected, min(len(protected), rng.randrange(1, 4)))
                queries = [_flip(rng, h, rng.choice([2, 6, 12, 20])) for h, _ in copies]
                queries += [os.urandom(32) for _ in range(rng.randrange(1, 3))]
                job = await plat.node.submit([QueryHash(q) for q in queries])
                while await plat.node.process_due_tasks():
                    pass
                status = await plat.node.job_status(job)
                now_ms = clock.now() * 1000
                for task in status.tasks:
                    peer = task["peer_id"]
                    probes, candidates = int(task["probes"]), int(task["candidates"])
                    asked = 1 if candidates else 0
                    await plat_counts.record(peer, "evaluations", "sent", 1, probes, now_ms)
                    await plat_counts.record(peer, "queries", "sent", asked, candidates, now_ms)
                    await hub_counts.record(
                        "platform-a", "evaluations", "received", 1, probes, now_ms
                    )
                    await hub_counts.record(
                        "platform-a", "queries", "received", asked, candidates, now_ms
                    )
                seen: set[tuple[bytes, int]] = set()
                for r in status.results:
                    if (r.item_ref, r.query_index) in seen:
                        continue
                    seen.add((r.item_ref, r.query_index))
                    mid = match_id_for(job, r.peer, r.item_ref, r.query_index)
                    await log_match(plat_log, match_id=mid, peer=r.peer, item_ref=r.item_ref,
                                    band=r.band)  # fmt: skip
                    # The review queue's outcome (simulated; see the module docstring).
                    did = os.urandom(16)
                    if r.band <= 16:
                        outcome, by, policy = "actioned", "policy", "very-close"
                    else:
                        outcome = rng.choices(["actioned", "dismissed", "escalated"], [7, 2, 1])[0]
                        by, policy = "reviewer", None
                    await log_decision(plat_log, decision_id=did, match_id=mid, outcome=outcome,
                                       decided_by=by, policy=policy)  # fmt: skip
                    opinion = {"actioned": "confirm", "dismissed": "dispute"}.get(outcome)
                    if outcome == "actioned" and rng.random() < 0.25:
                        aid = os.urandom(16)
                        await log_appeal(plat_log, appeal_id=aid, decision_id=did,
                                         status="opened")  # fmt: skip
                        overturned = rng.random() < 0.35
                        await log_appeal(
                            plat_log, appeal_id=aid, decision_id=did,
                            status="decision-overturned" if overturned else "decision-upheld",
                        )  # fmt: skip
                        if overturned:
                            opinion = "appeal-overturned"
                    if opinion is not None:
                        fid = os.urandom(16)
                        await log_feedback(plat_log, feedback_id=fid, peer=r.peer,
                                           direction="sent", item_ref=r.item_ref,
                                           opinion=opinion)  # fmt: skip
                        await log_feedback(hub_log, feedback_id=fid, peer="platform-a",
                                           direction="received", item_ref=r.item_ref,
                                           opinion=opinion)  # fmt: skip
                # End of the day: flush ended traffic windows, sign heads.
                clock.set(DEMO_START + (day + 1) * DAY - 1)
                await plat_counts.flush(plat_log)
                await hub_counts.flush(hub_log)
                await plat_log.sign_head()
                await hub_log.sign_head()
                print(
                    f"day {day + 1:2d}: {len(protected)} protected hashes, "
                    f"{len(status.results)} confirmed match(es) at platform-a, "
                    f"log size {await plat_log.size()}",
                    file=out,
                )

            # Serve each log like any node does, and report from it over HTTP.
            status_code = 0
            for name, log in (("platform-a", plat_log), ("hub", hub_log)):
                app = web.Application()
                app.add_routes(build_log_routes(log))
                runner = web.AppRunner(app, access_log=None)
                await runner.setup()
                site = web.TCPSite(runner, "127.0.0.1", 0)
                await site.start()
                port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
                url = f"http://127.0.0.1:{port}"
                key = log.public_key
                entries, stored, sth = await cmd_report.fetch_log(url, key)
                await runner.cleanup()
                runner = None
                print(f"{name}'s log served at {url}; key {key.hex()}", file=out)
                target = out_dir / name
                target.mkdir(parents=True, exist_ok=True)
                (target / "log.jsonl").write_text("\n".join(await log.export_jsonl()) + "\n")
                (target / "sth.hex").write_text(sth.hex() + "\n")
                (target / "key.hex").write_text(key.hex() + "\n")
                status_code = status_code or cmd_report.make_report(
                    entries, stored, sth, key, target, period=period, out=out
                )
                print(
                    f"reproduce: blindmatch report --log {target / 'log.jsonl'} --sth "
                    f"{target / 'sth.hex'} --key {key.hex()} --out DIR --period {period}",
                    file=out,
                )
            return status_code
        finally:
            if runner is not None:
                await runner.cleanup()
            await fed.stop()
