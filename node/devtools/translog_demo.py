"""A demo run for the transparency report: a real federation on loopback, logging as it works.

A hub and two platforms start on this machine (real keys, governance-signed roster, SQLite,
HTTP). For three simulated weeks (a fixed clock moved a day at a time) the hub adds hashes to
its shared bank and survivors withdraw some; the hub publishes its blinded index (the node
logs each publication). Every day platform A matches uploads privately against the hub
(near-copies of protected hashes, and unrelated ones); the node logs each confirmed match and
opens review cases. A seeded stand-in for the reviewers decides the cases through the node's
real decision workflow (actioned, dismissed, escalated; some actions appealed, some appeals
upheld), which logs the decisions, appeals and the feedback sent to the hub; the hub logs the
feedback it receives. Per-peer traffic is counted into hourly windows and logged.

Each log (the platform's: matches, decisions, appeals, feedback sent, traffic as querier; the
hub's: index publications and withdrawals, feedback received, traffic as holder) is then
served on loopback through the public ``/log/v1`` API, fetched, audited against its signed tree
head and turned into a report in ``OUT/platform-a`` and ``OUT/hub``, exactly as
``blindmatch report --url`` does for any live node.

Everything logged comes from the real exchange and the real decision workflow; only the
reviewers' choices are drawn at random.
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
from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec
from blindmatch.node.storage.translog import TranslogStore
from blindmatch.node.translog.hooks import (
    TrafficCounts,
)
from blindmatch.node.translog.http import build_log_routes
from blindmatch.node.translog.log import TransparencyLog
from blindmatch.protocol.matching import QueryHash

DEMO_START = 1_789_948_800  # Monday 2026-09-21 00:00 UTC
DAY = 86_400


def _flip(rng: random.Random, h: bytes, n: int) -> bytes:
    out = bytearray(h)
    for i in rng.sample(range(256), n):
        out[i >> 3] ^= 0x80 >> (i & 7)
    return bytes(out)


async def run_demo(
    out_dir: Path,
    days: int = 21,
    seed: int = 7,
    period: str = "week",
    out: TextIO | None = None,
) -> int:
    """Run the federation, log, serve and report; returns the exit status (0: written)."""
    from blindmatch.node.translog import report as translog_report

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
            hub_log: TransparencyLog = hub.node.translog
            plat_log: TransparencyLog = plat.node.translog
            plat_counts = TrafficCounts(TranslogStore(plat.node.db))
            hub_counts = TrafficCounts(TranslogStore(hub.node.db))
            await hub.banks.create_bank(
                "ncii", provenance="survivor-submitted", shared=True, categories=["ncii"]
            )
            protected: list[tuple[bytes, bytes]] = []  # (hash, item_ref)
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
                    await hub.node.decisions.withdraw_item(ref)
                await hub.node.publisher.reconcile()
                await plat.node.sync.sync_all()

                # Uploads at platform A: near-copies of protected hashes, and unrelated ones.
                clock.set(DEMO_START + day * DAY + 14 * 3600)
                copies = rng.sample(protected, min(len(protected), rng.randrange(1, 4)))
                queries = [_flip(rng, h, rng.choice([2, 6, 12, 20])) for h, _ in copies]
                queries += [os.urandom(32) for _ in range(rng.randrange(1, 3))]
                job = await plat.node.querier.submit(
                    [QueryHash(q) for q in queries], content_ref=f"upload-{day}"
                )
                while await plat.node.delivery.process_due():
                    pass
                status = await plat.node.querier.job_status(job)
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
                # The reviewers work the queue (their choices drawn at random); the node logs
                # every decision, appeal and feedback record itself.
                for case in await plat.node.decisions.queue():
                    if case.state == "closed" or case.decided_by is not None:
                        continue
                    outcome = rng.choices(["actioned", "dismissed", "escalated"], [7, 2, 1])[0]
                    case = await plat.node.decisions.decide(
                        case.case_ref, outcome, "reviewer-1", "demo review"
                    )
                    if outcome == "actioned" and rng.random() < 0.25:
                        await plat.node.decisions.open_appeal(case.case_ref, "demo appeal")
                        await plat.node.decisions.decide_appeal(
                            case.case_ref, rng.random() < 0.35, "reviewer-2", "demo appeal review"
                        )
                while await plat.node.delivery.process_due():  # feedback to the hub
                    pass
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
                entries, stored, sth = await translog_report.fetch_log(url, key)
                await runner.cleanup()
                runner = None
                print(f"{name}'s log served at {url}; key {key.hex()}", file=out)
                target = out_dir / name
                target.mkdir(parents=True, exist_ok=True)
                (target / "log.jsonl").write_text("\n".join(await log.export_jsonl()) + "\n")
                (target / "sth.hex").write_text(sth.hex() + "\n")
                (target / "key.hex").write_text(key.hex() + "\n")
                status_code = status_code or translog_report.make_report(
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
