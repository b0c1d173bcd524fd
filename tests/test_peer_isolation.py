"""Isolation between peers: a slow peer delays only its own part of a job; a bad proof costs
the holder one verification; refusals of a peer known to be over budget or under a penalty
cost no database work or crypto; redirects from a peer are never followed."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
from pathlib import Path

import pytest
from aiohttp import web

from blindmatch.node.clock import FixedClock
from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec
from blindmatch.node.federation.peer_client import FEDERATION_PATH, PeerError
from blindmatch.protocol.matching import QueryHash


@pytest.fixture
async def fed(tmp_path: Path):
    federation = await LocalFederation(
        tmp_path, clock=FixedClock(1_800_000_000), background=False
    ).start(
        [
            NodeSpec("hub", ("hub",)),
            NodeSpec("slow", ("platform",)),
            NodeSpec("platform", holds_index=False),
        ]
    )
    federation.held = {}  # type: ignore[attr-defined]
    for name in ("hub", "slow"):
        local = federation[name]
        await local.banks.create_bank("b", provenance="survivor-submitted", shared=True)
        held = os.urandom(32)
        federation.held[name] = held  # type: ignore[attr-defined]
        await local.banks.add_item("b", "pdq", held)
        await local.node.publisher.reconcile()
    await federation["platform"].node.sync.sync_all()
    yield federation
    await federation.stop()


async def test_a_slow_peer_delays_only_its_own_part(fed) -> None:
    slow = fed["slow"].node
    platform = fed["platform"].node
    release = asyncio.Event()
    real = slow.responder.evaluate

    async def stalled(*args):  # type: ignore[no-untyped-def]
        await release.wait()  # a holder that does not answer until told
        return await real(*args)

    slow.responder.evaluate = stalled
    first = await platform.querier.submit([QueryHash(fed.held["hub"])])
    await platform.delivery.process_due(wait=False)  # both parts start; the slow one hangs
    second = await platform.querier.submit([QueryHash(fed.held["hub"])])
    try:
        for _ in range(1200):  # the matching loop's rounds, until the second job's hub part ran
            await platform.delivery.process_due(wait=False)
            tasks = {
                t["peer_id"]: t["state"] for t in (await platform.querier.job_status(second)).tasks
            }
            if tasks["hub"] == "done":
                break
            await asyncio.sleep(0.05)
        assert tasks["hub"] == "done"  # ran while the first job's slow part still hangs
        first_tasks = {
            t["peer_id"]: t["state"] for t in (await platform.querier.job_status(first)).tasks
        }
        assert first_tasks["slow"] == "pending"  # (its hub part may still be running too)
        assert len((await platform.querier.job_status(second)).results) == 1
    finally:
        release.set()
        await platform.delivery.process_due()
        for task in list(platform.delivery.in_flight):
            await task


async def test_a_bad_proof_costs_the_holder_one_verification(fed, monkeypatch) -> None:
    from blindmatch.crypto import threshold as th
    from blindmatch.node.storage import PeerIncidents
    from blindmatch.protocol import matching

    hub = fed["hub"].node
    platform = fed["platform"].node
    verified = []
    real = matching.verify_threshold_query

    def counting(body):  # type: ignore[no-untyped-def]
        verified.append(1)
        return real(body)

    monkeypatch.setattr(matching, "verify_threshold_query", counting)
    ref = os.urandom(24)  # a candidate the holder will not resolve: the proof is refused first
    query = bytearray(
        th.encrypt_query(th.QuerierKey.generate(), fed.held["hub"], os.urandom(16)).to_bytes()
    )
    query[-40] ^= 1  # inside the last bit's proof
    body = {"query": bytes(query), "items": [ref]}
    me = hub.roster.member("platform")
    codes = []
    for _ in range(5):  # fresh envelopes (fresh nonces) around the same bad query
        try:
            await platform.client.call(hub.roster.member("hub"), "threshold.query", body)
        except PeerError as exc:
            codes.append(exc.code)
    # Verified once; then refused during the penalty, before any crypto or budget charge.
    assert codes == ["bad-proof"] + ["budget-exhausted"] * 4
    assert len(verified) == 1
    incidents = await PeerIncidents(hub.db).list("platform", "bad-proof")
    assert len(incidents) == 1 and incidents[0]["evidence"]["penalty_s"] == 10
    fed.clock.advance(11)  # the penalty is over; the same bytes are refused from memory
    with pytest.raises(PeerError) as info:
        await platform.client.call(hub.roster.member("hub"), "threshold.query", body)
    assert info.value.code == "bad-proof" and len(verified) == 1
    # A second, different bad query doubles the penalty.
    query[-41] ^= 1
    with pytest.raises(PeerError):
        await platform.client.call(
            hub.roster.member("hub"), "threshold.query", {**body, "query": bytes(query)}
        )
    assert hub.admission._penalty[me.node_id][1] == 20 and len(verified) == 2
    # An honest job after the penalty still matches.
    fed.clock.advance(21)
    job = await platform.querier.submit([QueryHash(fed.held["hub"])])
    while await platform.delivery.process_due():
        pass
    assert "hub" in {r.peer for r in (await platform.querier.job_status(job)).results}


async def test_copies_of_a_bad_query_sent_at_once_cost_one_verification(fed, monkeypatch):  # type: ignore[no-untyped-def]
    from blindmatch.crypto import threshold as th
    from blindmatch.node.storage import PeerIncidents
    from blindmatch.protocol import matching

    hub, platform = fed["hub"].node, fed["platform"].node
    verified = []
    real = matching.verify_threshold_query

    def counting(body):  # type: ignore[no-untyped-def]
        verified.append(1)
        return real(body)

    monkeypatch.setattr(matching, "verify_threshold_query", counting)
    query = bytearray(
        th.encrypt_query(th.QuerierKey.generate(), fed.held["hub"], os.urandom(16)).to_bytes()
    )
    query[-40] ^= 1
    body = {"query": bytes(query), "items": [os.urandom(24)]}
    # Four envelopes of one bad query in flight together (as a flooding peer sends them): the
    # ones that arrive while it is being checked wait for that check instead of checking again.
    got = await asyncio.gather(
        *(
            platform.client.call(hub.roster.member("hub"), "threshold.query", body)
            for _ in range(4)
        ),
        return_exceptions=True,
    )
    codes = [g.code for g in got if isinstance(g, PeerError)]
    assert len(codes) == 4 and "bad-proof" in codes
    assert set(codes) <= {"bad-proof", "budget-exhausted"}
    assert len(verified) == 1
    assert len(await PeerIncidents(hub.db).list("platform", "bad-proof")) == 1


async def test_a_peer_over_budget_is_refused_from_memory(fed) -> None:
    hub = fed["hub"].node
    platform = fed["platform"].node
    member = hub.roster.member("platform")
    limit = member.budget["evaluations_per_hour"]
    async with hub.db.transaction():
        await hub.budgets.charge_in_transaction(
            "platform/evaluations", limit, hub.now(), _limits(member)
        )
    calls = []
    real = hub.admission.charge

    async def counting(*args):  # type: ignore[no-untyped-def]
        calls.append(args)
        return await real(*args)

    hub.admission.charge = counting
    job = await platform.querier.submit([QueryHash(fed.held["hub"])])
    await platform.delivery.process_due()
    await platform.delivery.process_due()
    fed.clock.advance(1)
    tasks = {t["peer_id"]: t["last_error"] for t in (await platform.querier.job_status(job)).tasks}
    assert tasks["hub"] == "budget-exhausted"
    second = await platform.querier.submit([QueryHash(fed.held["hub"])])
    await platform.delivery.process_due()
    assert (await platform.querier.job_status(second)).tasks[0]["last_error"] == "budget-exhausted"
    assert len(calls) == 1  # the first refusal charged (and learned); the next cost nothing
    assert hub.metrics.value("early_refusals_total", {"peer": "platform"}) >= 1


def _limits(member):  # type: ignore[no-untyped-def]
    from blindmatch.node.storage import BudgetLimits

    return BudgetLimits(
        per_hour=member.budget["evaluations_per_hour"],
        per_day=member.budget["evaluations_per_day"],
    )


async def test_redirects_from_a_peer_are_never_followed(fed) -> None:
    platform = fed["platform"].node
    hits = []

    async def target(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(status=200, body=b"")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"http://127.0.0.1:{port}/elsewhere")

    app = web.Application()
    app.router.add_post("/elsewhere", target)
    app.router.add_post(FEDERATION_PATH, redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    await web.SockSite(runner, sock).start()
    try:
        hub = platform.roster.member("hub")
        redirecting = dataclasses.replace(hub, endpoint=f"http://127.0.0.1:{port}")
        with pytest.raises(PeerError) as info:
            await platform.client.call(
                redirecting, "feed.pull", {"feed": "index", "after": 0, "limit": 1}
            )
        assert info.value.code == "not-allowed" and "redirect" in str(info.value)
        assert hits == []  # the envelope never went where the peer pointed
    finally:
        await runner.cleanup()
        sock.close()
