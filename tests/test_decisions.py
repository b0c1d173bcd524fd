"""From match to decision over real nodes: disputes and appeals that travel, withdrawal that
closes cases everywhere, quarantine of a flooding hash, allowlists, signed webhooks, and
refusal of forged feedback."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
from pathlib import Path

import pytest
from aiohttp import web

from blindmatch.crypto import signing
from blindmatch.node.cases.policy import Policy, Quarantine
from blindmatch.node.clock import FixedClock
from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec
from blindmatch.protocol import feedback as fb
from blindmatch.protocol.matching import QueryHash

RNG = random.Random(5)


def near(h: bytes, n: int = 3) -> bytes:
    out = bytearray(h)
    for i in RNG.sample(range(256), n):
        out[i >> 3] ^= 0x80 >> (i & 7)
    return bytes(out)


class WebhookReceiver:
    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.events: list[dict] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        async def hook(request: web.Request) -> web.Response:
            body = await request.read()
            expected = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
            if request.headers.get("X-Blindmatch-Signature") != expected:
                return web.Response(status=401)
            event = json.loads(body)
            assert request.headers["Idempotency-Key"] == event["idempotency_key"]
            self.events.append(event)
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/hook", hook)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"

    def kinds(self, content_ref: str) -> list[str]:
        return [e["event"] for e in self.events if e["content_ref"] == content_ref]


@pytest.fixture
async def fed(tmp_path: Path):
    clock = FixedClock(1_800_000_000)
    federation = await LocalFederation(tmp_path, clock=clock, background=False).start(
        [
            NodeSpec("hub", ("hub",)),
            NodeSpec("platform-a", holds_index=False),
            NodeSpec("platform-b", holds_index=False),
        ]
    )
    hub = federation["hub"]
    await hub.banks.create_bank("reports", provenance="survivor-submitted", shared=True)
    federation.held = [os.urandom(32) for _ in range(6)]  # type: ignore[attr-defined]
    for h in federation.held:  # type: ignore[attr-defined]
        await hub.banks.add_item("reports", "pdq", h)
    await hub.node.publisher.reconcile()
    federation.hooks = {}  # type: ignore[attr-defined]
    for name in ("platform-a", "platform-b"):
        receiver = WebhookReceiver(secret=os.urandom(16))
        await receiver.start()
        node = federation[name].node
        node.decisions.webhook_url = receiver.url
        node.decisions.webhook_secret = receiver.secret
        federation.hooks[name] = receiver  # type: ignore[attr-defined]
        await node.sync.sync_all()
    yield federation
    for r in federation.hooks.values():  # type: ignore[attr-defined]
        await r.runner.cleanup()
    await federation.stop()


async def drain(*nodes) -> None:  # type: ignore[no-untyped-def]
    for _ in range(5):
        busy = 0
        for n in nodes:
            busy += await n.delivery.process_due()
        if not busy:
            return


async def upload(fed, platform: str, h: bytes, content_ref: str):  # type: ignore[no-untyped-def]
    node = fed[platform].node
    await node.querier.submit([QueryHash(h)], content_ref=content_ref)
    await drain(node)
    return await node.decisions.cases_for_content(content_ref)


async def test_dispute_on_a_triggers_rereview_on_b(fed) -> None:
    a, b, hub = fed["platform-a"].node, fed["platform-b"].node, fed["hub"].node
    (case_b,) = await upload(fed, "platform-b", near(fed.held[0]), "b-1")
    (case_a,) = await upload(fed, "platform-a", near(fed.held[0]), "a-1")
    assert case_a.item_ref == case_b.item_ref and case_a.state == "queued"
    await b.decisions.decide(case_b.case_ref, "actioned", "rev-b", "looks right")
    await a.decisions.decide(case_a.case_ref, "dismissed", "rev-a", "false positive")
    await drain(a, b)  # feedback.submit to the hub
    opinion = await hub.decisions.opinion("hub", case_a.item_ref)
    assert (opinion.disputes, opinion.confirmations) == (1, 1)
    await b.sync.sync_all()
    after = await b.decisions.case(case_b.case_ref)
    assert after.needs_rereview
    assert any(
        e["event"] == "re-review:dispute" for e in await b.decisions.history(case_b.case_ref)
    )
    assert (await b.decisions.queue())[0].case_ref == case_b.case_ref
    # A's own dispute does not ask A to re-review itself.
    await a.sync.sync_all()
    assert not (await a.decisions.case(case_a.case_ref)).needs_rereview


async def test_upheld_appeal_restores_on_b_and_counts_everywhere(fed) -> None:
    a, b = fed["platform-a"].node, fed["platform-b"].node
    (case_b,) = await upload(fed, "platform-b", near(fed.held[1]), "b-2")
    (case_a,) = await upload(fed, "platform-a", near(fed.held[1]), "a-2")
    await b.decisions.decide(case_b.case_ref, "actioned", "rev-b")
    await a.decisions.decide(case_a.case_ref, "actioned", "rev-a")
    await b.decisions.open_appeal(case_b.case_ref, "this is me, posted with consent")
    assert (await b.decisions.queue())[0].case_ref == case_b.case_ref
    await b.decisions.decide_appeal(case_b.case_ref, True, "rev-b2", "consent shown")
    await drain(a, b)
    assert fed.hooks["platform-b"].kinds("b-2") == ["remove", "restore"]
    for node in (a, b):
        await node.sync.sync_all()
        opinion = await node.decisions.opinion("hub", case_b.item_ref)
        assert opinion.appeals_upheld == 1 and opinion.label == "disputed"
    assert (await a.decisions.case(case_a.case_ref)).needs_rereview


async def test_withdrawal_stops_matches_everywhere_and_closes_cases(fed) -> None:
    hub = fed["hub"]
    a, b = fed["platform-a"].node, fed["platform-b"].node
    (case_a,) = await upload(fed, "platform-a", near(fed.held[2]), "a-3")
    (case_b,) = await upload(fed, "platform-b", near(fed.held[2]), "b-3")
    await a.decisions.decide(case_a.case_ref, "actioned", "rev-a")
    await drain(a)
    item = case_a.item_ref
    await hub.banks.withdraw(item, reason="survivor withdrew")
    await hub.node.decisions.withdraw_item(item)
    await hub.node.publisher.reconcile()
    for node in (a, b):
        await node.sync.sync_all()  # one sync
    assert (await a.decisions.case(case_a.case_ref)).state == "closed"
    assert (await b.decisions.case(case_b.case_ref)).state == "closed"
    await drain(a, b)
    assert fed.hooks["platform-a"].kinds("a-3") == ["remove", "notify"]
    assert await upload(fed, "platform-a", near(fed.held[2]), "a-3-again") == []
    assert await upload(fed, "platform-b", near(fed.held[2]), "b-3-again") == []


async def test_flooding_hash_is_quarantined_not_acted_on(fed) -> None:
    b = fed["platform-b"].node
    b.decisions.policy = Policy(quarantine=Quarantine(window_s=3600, min_matches=5, factor=3.0))
    states = []
    for i in range(8):
        cases = await upload(fed, "platform-b", near(fed.held[3]), f"flood-{i}")
        states.append(cases[0].state)
    assert states[:4] == ["queued"] * 4
    assert set(states[4:]) == {"quarantined"}
    assert fed.hooks["platform-b"].kinds("flood-7") == []  # nothing acted on


async def test_allowlisted_image_is_never_queued(fed) -> None:
    a = fed["platform-a"]
    harmless = fed.held[4]  # a popular harmless image some hub wrongly banked
    await a.banks.create_bank("allowlist", provenance="moderator-confirmed")
    await a.banks.add_item("allowlist", "pdq", harmless)
    assert await upload(fed, "platform-a", near(harmless, 2), "a-allow") == []
    assert (await a.node.decisions.queue()) == []
    # The same image is still a case on a platform without the allowlist.
    assert len(await upload(fed, "platform-b", near(harmless, 2), "b-allow")) == 1


async def test_auto_action_only_for_close_trusted_confirmed_matches(fed) -> None:
    from blindmatch.node.cases.policy import AutoAction

    a, b = fed["platform-a"].node, fed["platform-b"].node
    policy = Policy(
        auto_action=AutoAction(
            enabled=True, max_band=8, provenance=("survivor-submitted",),
            trusted_sources=("hub",), min_confirmations=1,
        )
    )  # fmt: skip
    b.decisions.policy = policy
    (first,) = await upload(fed, "platform-b", near(fed.held[5], 2), "b-5")
    assert first.state == "queued"  # no confirmation yet
    (case_a,) = await upload(fed, "platform-a", near(fed.held[5], 2), "a-5")
    await a.decisions.decide(case_a.case_ref, "actioned", "rev-a")
    await drain(a)
    await b.sync.sync_all()
    (second,) = await upload(fed, "platform-b", near(fed.held[5], 2), "b-5b")
    assert second.state == "actioned" and second.decided_by == "policy"
    await drain(b)
    assert fed.hooks["platform-b"].kinds("b-5b") == ["block"]
    (far,) = await upload(fed, "platform-b", near(fed.held[5], 20), "b-5c")
    assert far.state == "queued"  # band 31: a person decides


async def test_forged_feedback_is_refused_and_reported(fed) -> None:
    hub, b = fed["hub"].node, fed["platform-b"].node
    (case_b,) = await upload(fed, "platform-b", near(fed.held[0]), "b-forged")
    # A record claiming to come from platform-a but signed by another key...
    forged = fb.make_record(
        signing.SigningKey.generate(), record_id=os.urandom(16), origin="platform-a",
        holder="hub", item=case_b.item_ref, opinion="dispute", at_ms=hub.now() * 1000,
    )  # fmt: skip
    from blindmatch.node.federation.peer_client import PeerError

    # ...is refused by the holder when submitted...
    with pytest.raises(PeerError) as info:
        await fed["platform-a"].node.client.call(
            hub.roster.member("hub"), "feedback.submit", {"record": forged.signed}
        )
    assert info.value.code == "bad-signature"
    # ...and, if a holder's feed carried one anyway, replicas report it and do not apply it.
    await hub.feeds.append(fb.FEED, forged.id, "feedback.record", forged.signed, hub.now())
    await b.sync.sync_all()
    assert (
        b.replication.rejected_feedback
        and "bad-signature" in b.replication.rejected_feedback[-1][1]
    )
    assert not (await b.decisions.case(case_b.case_ref)).needs_rereview
    assert (await b.decisions.opinion("hub", case_b.item_ref)).disputes == 0


async def test_events_land_in_each_nodes_verifiable_log(fed) -> None:
    import aiohttp

    from blindmatch.protocol import transparency as tl

    a, hub = fed["platform-a"].node, fed["hub"].node
    (case_a,) = await upload(fed, "platform-a", near(fed.held[0]), "a-log")
    await a.decisions.decide(case_a.case_ref, "dismissed", "rev-a", "false positive")
    await drain(a)

    async def kinds(node) -> list[str]:  # type: ignore[no-untyped-def]
        lines = await node.translog.export_jsonl()
        return [tl.decode_entry(bytes.fromhex(json.loads(line)["entry"]))["kind"] for line in lines]

    platform_kinds, hub_kinds = await kinds(a), await kinds(hub)
    assert {"roster", "match", "decision", "feedback"} <= set(platform_kinds)
    assert {"roster", "index-publication", "feedback"} <= set(hub_kinds)
    raw = b"".join(bytes.fromhex(json.loads(x)["entry"]) for x in await a.translog.export_jsonl())
    assert not any(h in raw for h in fed.held)  # never a hash
    await a.sync.sign_log_head()
    async with aiohttp.ClientSession() as s, s.get(fed["platform-a"].endpoint + "/log/v1/sth") as r:
        sth = await r.json()
    assert r.status == 200 and sth["tree_size"] == len(platform_kinds)


async def test_local_bank_changes_are_seen_by_the_next_match(fed) -> None:
    """The node caches its local banks for matching; any change must reach the next upload."""
    a = fed["platform-a"]
    harmless = os.urandom(32)
    await a.banks.create_bank("allowlist", provenance="moderator-confirmed")
    assert await a.node.decisions.local_matches([QueryHash(harmless)]) == []
    await a.banks.add_item("allowlist", "pdq", harmless)
    assert len(await a.node.decisions.local_matches([QueryHash(harmless)])) == 1
    await a.banks.set_enabled("allowlist", False)  # same second: settings, not times, count
    assert await a.node.decisions.local_matches([QueryHash(harmless)]) == []


async def test_a_job_is_complete_only_with_its_cases_and_lost_cases_are_reopened(fed) -> None:
    node = fed["platform-a"].node
    job = await node.querier.submit([QueryHash(near(fed.held[0]))], content_ref="upload-crash")
    # The node stops between the job's last task and its cases (the window a crash can hit):
    # run the task without the case step.
    on_job_done, node.decisions.on_job_done = node.decisions.on_job_done, _nothing
    try:
        await node.delivery.process_due()
    finally:
        node.decisions.on_job_done = on_job_done
    status = await node.querier.job_status(job)
    assert status.peers_done == status.peers_total == 1 and status.results
    assert not status.complete  # a caller waiting for its cases keeps waiting
    assert await node.decisions.cases_for_content("upload-crash") == []
    assert await node.querier.open_pending_cases() == 1
    [case] = await node.decisions.cases_for_content("upload-crash")
    assert case.holder == "hub" and (await node.querier.job_status(job)).complete
    assert await node.querier.open_pending_cases() == 0  # once


async def _nothing(job_ref: bytes) -> list:  # type: ignore[type-arg]
    return []
