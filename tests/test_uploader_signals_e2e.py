"""Repeat-uploader signals over real nodes (real aiohttp on loopback, SQLite stores): a repeat
uploader actioned at platform A is "known elsewhere for this picture" at platform B, an
unrelated uploader is not, an upheld appeal at A withdraws the signal at B after one sync, and
nothing that identifies an uploader crosses the wire in clear."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from blindmatch.node.api.client import BlindmatchClient
from blindmatch.node.cases.context import identifier
from blindmatch.node.clock import FixedClock
from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec
from blindmatch.protocol import transparency as tl
from blindmatch.protocol import uploaders as up

RNG = random.Random(18)
PLATFORM_CAPS = (up.CAP_READ, up.CAP_PUBLISH)
MALLORY = [("email", "Mallory.Repeat+ncii@example.net"), ("phone", "+44 20 7946 0958")]
ALICE = [("email", "alice.unrelated@example.org")]


def flip(h: bytes, n: int) -> bytes:
    out = bytearray(h)
    for i in RNG.sample(range(256), n):
        out[i >> 3] ^= 0x80 >> (i & 7)
    return bytes(out)


@pytest.fixture
async def fed(tmp_path: Path):
    clock = FixedClock(1_800_000_000)
    federation = await LocalFederation(
        tmp_path, clock=clock, background=False, record_wire=True
    ).start(
        [
            NodeSpec("hub", ("hub",), uploader_key=True),
            NodeSpec("keeper", ("auditor",), holds_index=False, keeper=True,
                     capabilities=(up.CAP_KEEPER,)),
            NodeSpec("platform-a", holds_index=False, capabilities=PLATFORM_CAPS),
            NodeSpec("platform-b", holds_index=False, capabilities=PLATFORM_CAPS),
        ]
    )  # fmt: skip
    hub = federation["hub"]
    await hub.banks.create_bank("ncii", provenance="moderator-confirmed", shared=True)
    federation.picture = os.urandom(32)  # type: ignore[attr-defined]
    await hub.banks.add_item("ncii", "pdq", federation.picture)  # type: ignore[attr-defined]
    await hub.node.publisher.reconcile()
    federation.clock = clock  # type: ignore[attr-defined]
    yield federation
    await federation.stop()


async def settle(fed, rounds: int = 6) -> None:  # type: ignore[no-untyped-def]
    """Run every node's outbox and sync, as the background loops would, a few times."""
    for _ in range(rounds):
        for name in ("platform-a", "platform-b", "hub", "keeper"):
            node = fed[name].node
            while await node.delivery.process_due():
                pass
            await node.sync.sync_all()
        fed.clock.advance(30)


async def upload(fed, platform: str, ref: str, who, content_ref: str) -> list[dict]:  # type: ignore[no-untyped-def]
    local = fed[platform]
    async with BlindmatchClient(local.api_url, local.api_token) as client:
        await client.match_hashes(
            [flip(fed.picture, 3).hex()],
            content_ref=content_ref,
            uploader={"ref": ref, "identifiers": [identifier(k, v) for k, v in who]},
            context={"account_age_days": 2, "surface": "public-post"},
        )
        await settle(fed, 2)
        return await client.cases_for_content(content_ref)


async def test_repeat_uploader_is_known_elsewhere_for_this_picture_until_an_appeal(fed) -> None:
    for name in ("platform-a", "platform-b"):
        await fed[name].node.sync.sync_all()
    # Platform A: the uploader's case, then a reviewer actions it.
    (case_a,) = await upload(fed, "platform-a", "acct-a-17", MALLORY, "a-1")
    assert case_a["signals"]["known_elsewhere"] is False
    assert case_a["context"]["account_age_days"] == 2
    a = fed["platform-a"]
    async with BlindmatchClient(a.api_url, a.api_token) as client:
        await client.decide(case_a["case"], "actioned", reason="confirmed NCII")
    await settle(fed)
    keeper = fed["keeper"].node
    assert await keeper.feeds.head(up.FEED) >= 1
    published = await keeper.db.fetch_all("SELECT origin, withdrawn_at FROM uploader_publications")
    assert [(r["origin"], r["withdrawn_at"]) for r in published] == [("platform-a", None)]

    # Platform B: the same person (other spellings of the same email and phone), same picture.
    same_person = [("email", "mallory.repeat@EXAMPLE.net"), ("phone", "0044 20 7946 0958")]
    (case_b,) = await upload(fed, "platform-b", "b-user-3", same_person, "b-1")
    assert case_b["signals"]["known_elsewhere"] is True
    assert "known-elsewhere" in case_b["signals"]["fired"]
    # An unrelated uploader of the same picture: nothing.
    (other,) = await upload(fed, "platform-b", "b-user-4", ALICE, "b-2")
    assert other["signals"]["known_elsewhere"] is False
    assert case_b["priority"] > other["priority"]
    # Neither case was acted on automatically: the signal only orders the queue.
    assert case_b["state"] == other["state"] == "queued"

    # The uploader's appeal at A is upheld: A withdraws, and after one sync B no longer says so.
    await a.node.decisions.open_appeal(bytes.fromhex(case_a["case"]), "it was not me")
    await a.node.decisions.decide_appeal(bytes.fromhex(case_a["case"]), True, "reviewer-2")
    for name in ("platform-a", "keeper"):
        while await fed[name].node.delivery.process_due():
            pass
    await fed["platform-b"].node.sync.sync_all()  # one sync
    b = fed["platform-b"]
    async with BlindmatchClient(b.api_url, b.api_token) as client:
        (after,) = await client.cases_for_content("b-1")
    assert after["signals"]["known_elsewhere"] is False
    assert after["priority"] < case_b["priority"]
    history = await b.node.decisions.history(bytes.fromhex(after["case"]))
    assert any(h["event"] == "signal:known-elsewhere-withdrawn" for h in history)
    # Logged: the publication and its withdrawal, by id, at both ends.
    for name, direction in (("platform-a", "sent"), ("keeper", "received")):
        stored = await fed[name].node.translog.entries()
        entries = [tl.decode_entry(e.entry) for e in stored]
        entries = [e for e in entries if e["kind"] == "uploader-signal"]
        assert {e["action"] for e in entries if e["direction"] == direction} == {
            "publish", "withdraw"
        }  # fmt: skip

    # A's transparency report counts its decision by the context signals that moved the case
    # and its publications by action, never who.
    from blindmatch.node.translog import report as report_mod

    log_a = a.node.translog
    head = await log_a.sign_head()
    stored = await log_a.entries(0, head.tree_size)
    rep = report_mod.build_report(
        [e.entry for e in stored], head.to_bytes(), a.node.keys.identity.public_key
    )
    assert rep.decisions_by_signal["new-account"]["actioned"] == 1
    assert rep.decisions_by_signal["surface"]["actioned"] == 1
    assert rep.uploader_signals == {"publish (sent)": 1, "withdraw (sent)": 1}
    text = report_mod.render_markdown(rep)
    assert "| new-account | 1 |" in text
    assert "acct-a-17" not in text and "mallory" not in text.lower()

    # On the wire between nodes: no email, phone, uploader reference or identifier digest.
    wire = fed.wire_bytes()
    secrets = [b"acct-a-17", b"b-user-3", b"b-user-4", b"mallory", b"Mallory", b"example.net",
               b"alice", b"442079460958"]  # fmt: skip
    for kind, value in [*MALLORY, *ALICE]:
        digest = up.identifier_digest(kind, value)
        secrets += [digest, digest.hex().encode(), up.normalise(kind, value).encode()]
    assert len(wire) > 10_000
    found = [s for s in secrets if s in wire]
    assert not found, found


async def test_members_without_capability_are_refused_stage_one(fed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from blindmatch.node.federation.peer_client import PeerError
    from blindmatch.protocol.roster import voprf_key_id

    hub = fed["hub"].node
    keeper_member = fed["keeper"].node.roster.member("keeper")
    # The keeper has no uploader-read capability: the holder refuses to evaluate for it.
    _state, elements = up.start("hub", os.urandom(16), [os.urandom(32)], hub.me.uploader_key)
    with pytest.raises(PeerError) as err:
        await fed["keeper"].node.client.call(
            hub.roster.member("hub"), "uploader.evaluate",
            {"key_id": voprf_key_id(hub.me.uploader_key), "item": os.urandom(16),
             "picture": os.urandom(16), "elements": elements},
        )  # fmt: skip
    assert err.value.code == "not-allowed"
    # A platform that never had the item as a candidate is refused too (no lookups at will).
    with pytest.raises(PeerError) as err:
        await fed["platform-a"].node.client.call(
            hub.roster.member("hub"), "uploader.evaluate",
            {"key_id": voprf_key_id(hub.me.uploader_key), "item": os.urandom(16),
             "picture": os.urandom(16), "elements": elements},
        )  # fmt: skip
    assert err.value.code in ("unknown-item", "not-allowed")
    assert keeper_member is not None


async def test_keeper_and_holder_refuse_what_the_rules_refuse(fed) -> None:  # type: ignore[no-untyped-def]
    from blindmatch.node.federation.peer_client import PeerError
    from blindmatch.protocol.roster import voprf_key_id

    a = fed["platform-a"].node
    hub_member = a.roster.member("hub")
    keeper_member = a.roster.member("keeper")
    await a.sync.sync_all()
    # A publication not backed by a confirm record of the publisher is refused.
    body = {
        "publication": os.urandom(16), "key_id": voprf_key_id(keeper_member.keeper_key),
        "holder": "hub", "item": os.urandom(16), "confirm": os.urandom(16),
        "tags": [os.urandom(16)],
    }  # fmt: skip
    with pytest.raises(PeerError) as err:
        await a.client.call(keeper_member, "uploader.publish", body)
    assert err.value.code == "not-allowed"
    with pytest.raises(PeerError) as err:
        await a.client.call(keeper_member, "uploader.withdraw", {"publication": os.urandom(16)})
    assert err.value.code == "unknown-item"
    assert await fed["keeper"].node.feeds.head(up.FEED) == 0
    # The picture becomes a candidate of A's (a real match), then A may look uploaders up for
    # it, 16 identifiers a day and no more.
    await upload(fed, "platform-a", "acct-x", ALICE, "a-9")
    (item,) = [bytes.fromhex(c["item"]) for c in await _cases(fed, "platform-a", "a-9")]
    hub_key = hub_member.uploader_key
    for _ in range(3):  # the upload's own lookup used 1 of the 16
        _, elements = up.start("hub", item, [os.urandom(32)] * 4, hub_key)
        reply = await a.client.call(
            hub_member, "uploader.evaluate",
            {"key_id": voprf_key_id(hub_key), "item": item, "picture": item, "elements": elements},
        )  # fmt: skip
        assert len(reply.body["elements"]) == 4
    _, elements = up.start("hub", item, [os.urandom(32)] * 4, hub_key)
    with pytest.raises(PeerError) as err:
        await a.client.call(
            hub_member, "uploader.evaluate",
            {"key_id": voprf_key_id(hub_key), "item": item, "picture": item, "elements": elements},
        )  # fmt: skip
    assert err.value.code == "budget-exhausted"
    # The picture reference must be the item's own.
    with pytest.raises(PeerError) as err:
        await a.client.call(
            hub_member, "uploader.evaluate",
            {"key_id": voprf_key_id(hub_key), "item": item, "picture": os.urandom(16),
             "elements": elements[:1]},
        )  # fmt: skip
    assert err.value.code == "bad-body"


async def _cases(fed, platform: str, content_ref: str) -> list[dict]:  # type: ignore[no-untyped-def]
    local = fed[platform]
    async with BlindmatchClient(local.api_url, local.api_token) as client:
        return await client.cases_for_content(content_ref)
