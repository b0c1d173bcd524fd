"""Real nodes on loopback over real HTTP: matching across peers, withdrawal, restart, and a
clear refusal (with no state change) for every kind of bad message."""

from __future__ import annotations

import os
import random
from pathlib import Path

import aiohttp
import pytest

from blindmatch.crypto import oprf, signing
from blindmatch.node.clock import FixedClock
from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec
from blindmatch.node.federation.peer_client import CONTENT_TYPE, FEDERATION_PATH, PeerError
from blindmatch.protocol import canonical, envelope
from blindmatch.protocol.lsh import PDQ_LSH_1
from blindmatch.protocol.matching import QueryHash

RNG = random.Random(11)


def flip(h: bytes, n: int) -> bytes:
    out = bytearray(h)
    for i in RNG.sample(range(256), n):
        out[i >> 3] ^= 0x80 >> (i & 7)
    return bytes(out)


@pytest.fixture
async def fed(tmp_path: Path):
    clock = FixedClock(1_800_000_000)
    federation = await LocalFederation(tmp_path, clock=clock, background=False).start(
        [
            NodeSpec("hub", ("hub",)),
            NodeSpec("platform-a", budget={"evaluations_per_hour": 400}),
            NodeSpec("platform-b", holds_index=False),
        ]
    )
    hub = federation["hub"]
    await hub.banks.create_bank(
        "ncii", provenance="survivor-submitted", shared=True, categories=["ncii"]
    )
    federation.hashes = [os.urandom(32) for _ in range(30)]  # type: ignore[attr-defined]
    for h in federation.hashes:  # type: ignore[attr-defined]
        await hub.banks.add_item("ncii", "pdq", h)
    await hub.node.publisher.reconcile()
    yield federation
    await federation.stop()


async def match(node, queries: list[bytes]):  # type: ignore[no-untyped-def]
    job = await node.querier.submit([QueryHash(q) for q in queries])
    while await node.delivery.process_due():
        pass
    return await node.querier.job_status(job)


async def test_edited_copies_match_across_peers_and_unrelated_do_not(fed) -> None:
    platform = fed["platform-b"].node
    await platform.sync.sync_all()
    queries = [flip(fed.hashes[0], 4), flip(fed.hashes[1], 20), os.urandom(32), os.urandom(32)]
    status = await match(platform, queries)
    assert status.complete
    hits = {(r.query_index, r.band) for r in status.results}
    assert hits == {(0, 8), (1, 31)}
    assert all(
        r.peer == "hub" and r.release["provenance"] == "survivor-submitted" for r in status.results
    )


async def test_withdrawn_hash_stops_matching_after_the_next_sync(fed) -> None:
    hub, platform = fed["hub"], fed["platform-b"].node
    await platform.sync.sync_all()
    query = flip(fed.hashes[2], 3)
    assert len((await match(platform, [query])).results) == 1
    items = await hub.banks.list_items("ncii")
    target = next(i for i in items if i.hash == fed.hashes[2])
    head = (await hub.node.feeds.read("index", 0, 1000))[-1].seq
    await hub.banks.withdraw(target.item_ref, reason="survivor withdrew")
    # Even before any sync, the holder no longer confirms it...
    assert (await match(platform, [query])).results == []
    await hub.node.publisher.reconcile()
    await platform.sync.sync_all()
    # ...and the withdrawal publishes nothing, even unbatched (spec 8.7): an index.remove of
    # its entries would hand out its 24 buckets, its hash. Its entries stay in every replica
    # and still nominate it, but the holder answers them as decoys: no match, ever.
    assert await hub.node.feeds.read("index", head, 1000) == []
    status = await match(platform, [query])
    assert status.results == [] and status.tasks[0]["candidates"] > 0
    assert platform.replication.replica_indexes["hub"].entries == len(fed.hashes) * PDQ_LSH_1.tables


async def test_restart_mid_sync_resumes_without_loss_or_duplicates(fed) -> None:
    hub = fed["hub"]
    # Many small deltas so the sync spans several pages.
    for _ in range(3):
        for h in [os.urandom(32) for _ in range(300)]:
            await hub.banks.add_item("ncii", "pdq", h)
        await hub.node.publisher.reconcile()
    platform = fed["platform-b"].node
    peer = platform.roster.member("hub")
    await platform.replication.sync_peer(peer, max_pages=1)  # stopped part-way: one page of several
    partial = await platform.replicas.cursor("hub", "index")
    head = await hub.node.feeds.head("index")
    assert 0 < partial <= head
    stopped = await fed.stop_node("platform-b")
    platform = (await fed.restart_node("platform-b", stopped)).node
    assert await platform.replicas.cursor("hub", "index") == partial
    await platform.sync.sync_all()
    assert await platform.replicas.cursor("hub", "index") == head
    rows = await platform.db.fetch_all(
        "SELECT seq, COUNT(*) AS n FROM replica_entries WHERE peer_id = 'hub' GROUP BY seq"
    )
    assert len(rows) == head and all(r["n"] == 1 for r in rows)
    active = len(await hub.banks.active_items("pdq"))
    assert platform.replication.replica_indexes["hub"].entries == active * PDQ_LSH_1.tables
    # A second full sync changes nothing.
    assert (await platform.sync.sync_all())["hub"] == 0


async def test_a_peer_that_is_down_delays_matching_and_loses_nothing(fed) -> None:
    platform = fed["platform-b"].node
    await platform.sync.sync_all()
    stopped = await fed.stop_node("hub")
    job = await platform.querier.submit([QueryHash(flip(fed.hashes[5], 2))])
    await platform.delivery.process_due()
    status = await platform.querier.job_status(job)
    assert not status.complete and status.tasks[0]["last_error"] == "unreachable"
    await fed.restart_node("hub", stopped)
    fed.clock.advance(3600)  # past the backoff
    while await platform.delivery.process_due():
        pass
    status = await platform.querier.job_status(job)
    assert status.complete and len(status.results) == 1


# --- refusals -------------------------------------------------------------------------------


async def _post(fed, target: str, data: bytes) -> tuple[int, envelope.Envelope]:  # type: ignore[no-untyped-def]
    node = fed[target].node
    url = fed[target].endpoint + FEDERATION_PATH
    async with (
        aiohttp.ClientSession() as s,
        s.post(url, data=data, headers={"Content-Type": CONTENT_TYPE}) as resp,
    ):
        body = await resp.read()
    env = envelope.open_envelope(
        body, now_ms=node.now() * 1000, sender_key=lambda sid: node.keys.identity.public_key
    )
    return resp.status, env


async def _state(fed) -> tuple:  # type: ignore[no-untyped-def]
    db = fed["hub"].node.db
    return (
        await db.fetch_all("SELECT * FROM budget_usage ORDER BY peer_id, window_kind"),
        await fed["hub"].node.feeds.head("index"),
        await db.fetch_value("SELECT COUNT(*) FROM bank_items"),
    )


def _seal(fed, sender: str, mtype: str, body: dict, *, key=None, ts=None, nonce=None) -> bytes:  # type: ignore[no-untyped-def]
    node = fed[sender].node if sender in fed.nodes else None
    return envelope.seal(
        key or node.keys.identity,
        sender,
        mtype,
        body,
        (ts if ts is not None else fed.clock.now() * 1000),
        nonce or os.urandom(16),
    )


def _evaluate_body(fed, n: int = 4) -> dict:  # type: ignore[no-untyped-def]
    _, blinded = oprf.blind([os.urandom(8) for _ in range(n)], oprf.Mode.VOPRF)
    return {"key_id": fed["hub"].node.keys.voprf_key_id, "elements": blinded}


async def test_refusals_are_clear_and_change_no_state(fed) -> None:
    before = await _state(fed)
    stranger = signing.SigningKey.generate()
    good = _seal(fed, "platform-a", "oprf.evaluate", _evaluate_body(fed))
    ok_status, ok = await _post(fed, "hub", good)
    assert ok_status == 200 and ok.type == "oprf.evaluated"
    after_good = await _state(fed)
    fields = canonical.decode(good)
    cases = {
        "unknown-sender": _seal(fed, "mallory", "oprf.evaluate", _evaluate_body(fed), key=stranger),
        "bad-signature": _seal(
            fed, "platform-a", "oprf.evaluate", _evaluate_body(fed), key=stranger
        ),
        "replayed": good,
        "stale-timestamp": _seal(
            fed,
            "platform-a",
            "oprf.evaluate",
            _evaluate_body(fed),
            ts=fed.clock.now() * 1000 - 3_600_000,
        ),
        "bad-envelope": good[:-3],
        # The body changed after signing: the signature no longer covers it.
        "bad-signature ": canonical.encode([*fields[:5], {"key_id": b"x"}, fields[6]]),
    }
    for code, data in cases.items():
        status, env = await _post(fed, "hub", data)
        assert env.type == "error", code
        assert env.body["code"] == code.strip() and status >= 400, (code, env.body)
        assert env.body["message"]
    assert await _state(fed) == after_good  # none of them charged a budget or wrote anything
    assert before != after_good  # while the good request did charge the budget


async def test_bad_body_with_valid_signature_is_refused(fed) -> None:
    after = await _state(fed)
    node = fed["platform-a"].node
    good = _seal(fed, "platform-a", "oprf.evaluate", _evaluate_body(fed))
    fields = canonical.decode(good)
    signed = canonical.encode([*fields[:5], {"key_id": b"x", "elements": []}])
    sig = node.keys.identity.sign(envelope.ENVELOPE_DOMAIN, signed)
    data = canonical.encode([*fields[:5], {"key_id": b"x", "elements": []}, sig])
    status, env = await _post(fed, "hub", data)
    assert (status, env.body["code"]) == (400, "bad-body")
    assert "key_id" in env.body["message"] or "elements" in env.body["message"]
    identity = _evaluate_body(fed)
    identity["elements"] = [bytes(32)]
    # An identity element can't even be sealed by our own code; craft it by hand.
    signed = canonical.encode([*fields[:4], os.urandom(16), identity])
    sig = node.keys.identity.sign(envelope.ENVELOPE_DOMAIN, signed)
    status, env = await _post(fed, "hub", canonical.encode([*canonical.decode(signed), sig]))
    assert (status, env.body["code"]) == (400, "bad-body")
    assert "identity" in env.body["message"]
    oversized = b"\x00" * (2 * 1024 * 1024)
    status, env = await _post(fed, "hub", oversized)
    assert status == 400 and env.body["code"] == "bad-envelope"
    assert await _state(fed) == after


async def test_exhausted_budget_is_refused_with_retry_after(fed) -> None:
    platform = fed["platform-a"].node
    hub_member = platform.roster.member("hub")
    body = _evaluate_body(fed, 300)
    await platform.client.call(hub_member, "oprf.evaluate", body)  # 300 of 400 this hour
    before = await _state(fed)
    with pytest.raises(PeerError) as info:
        await platform.client.call(hub_member, "oprf.evaluate", _evaluate_body(fed, 200))
    assert info.value.code == "budget-exhausted" and info.value.retry_after_ms
    assert await _state(fed) == before  # the refused request charged nothing
    fed.clock.advance(3600)
    await platform.client.call(hub_member, "oprf.evaluate", _evaluate_body(fed, 200))


async def test_admission_is_one_record_per_request(fed) -> None:
    """The nonce, the budget charge and the traffic count of a request are written together:
    two deliveries of one message at once are answered and charged once; a request refused
    for its budget or before its charge still uses up its nonce."""
    import asyncio

    db = fed["hub"].node.db
    used = "SELECT used FROM budget_usage WHERE peer_id = 'platform-a/evaluations'"
    good = _seal(fed, "platform-a", "oprf.evaluate", _evaluate_body(fed, 3))
    (s1, e1), (s2, e2) = await asyncio.gather(_post(fed, "hub", good), _post(fed, "hub", good))
    assert sorted([e1.type, e2.type]) == ["error", "oprf.evaluated"]
    assert sorted([s1, s2]) == [200, 409]
    assert {r["used"] for r in await db.fetch_all(used)} == {3}
    counted = "SELECT SUM(items) FROM log_counters WHERE peer_id = 'platform-a'"
    assert await db.fetch_value(counted) == 3
    too_many = _seal(fed, "platform-a", "oprf.evaluate", _evaluate_body(fed, 398))
    status, env = await _post(fed, "hub", too_many)
    assert (status, env.body["code"]) == (429, "budget-exhausted")
    status, env = await _post(fed, "hub", too_many)
    assert (status, env.body["code"]) == (409, "replayed")
    wrong_key = _evaluate_body(fed)
    wrong_key["key_id"] = bytes(8)
    refused = _seal(fed, "platform-a", "oprf.evaluate", wrong_key)
    assert (await _post(fed, "hub", refused))[1].body["code"] == "not-allowed"
    assert (await _post(fed, "hub", refused))[1].body["code"] == "replayed"
    assert {r["used"] for r in await db.fetch_all(used)} == {3}
    assert await db.fetch_value(counted) == 3


async def test_bad_index_entries_are_reported_not_applied_and_passed(fed) -> None:
    """Index-feed entries a querier cannot apply (signed by their holder, so its fault) become
    incidents and a metric; the replica keeps only good entries and the cursor moves past."""
    from blindmatch.node.storage import PeerIncidents
    from blindmatch.protocol import index

    hub, platform = fed["hub"].node, fed["platform-b"].node
    await platform.sync.sync_all()
    good_entries = platform.replication.replica_indexes["hub"].entries
    key_id = hub.keys.voprf_key_id
    scheme = hub.scheme.name
    fresh = os.urandom(index.ENTRY_BYTES)
    bad = [
        ("index.add", b"\xc1 not msgpack"),
        ("index.add", canonical.encode({"scheme": scheme, "key_id": key_id})),  # no entries
        # Schema-valid, but not a whole number of 24-byte entries.
        (
            "index.add",
            canonical.encode({"scheme": scheme, "key_id": key_id, "entries": fresh + b"x"}),
        ),
        ("index.rename", canonical.encode({"scheme": scheme, "key_id": key_id, "entries": fresh})),
    ]
    for i, (kind, payload) in enumerate(bad):
        await hub.feeds.append("index", (b"bad-%d" % i).ljust(16, b"."), kind, payload, hub.now())
    ok = canonical.encode({"scheme": scheme, "key_id": key_id, "entries": fresh})
    await hub.feeds.append("index", b"good-after".ljust(16, b"."), "index.add", ok, hub.now())
    head = await hub.feeds.head("index")

    await platform.sync.sync_all()
    assert await platform.replicas.cursor("hub", "index") == head
    assert (
        platform.replication.replica_indexes["hub"].entries == good_entries + 1
    )  # only the good one
    assert platform.metrics.value("replica_entries_rejected_total", {"peer": "hub"}) == 4
    incidents = await PeerIncidents(platform.db).list("hub", "bad-index-entry")
    assert [i["evidence"]["seq"] for i in incidents] == list(range(head - 4, head))
    assert [i["evidence"]["entry_id"] for i in incidents] == [
        (b"bad-%d" % i).ljust(16, b".").hex() for i in range(4)
    ]
    assert "unknown entry kind" in incidents[3]["detail"]
    assert all(fresh.hex() not in i["detail"] + str(i["evidence"]) for i in incidents)

    # A restart rebuilds the replica from the stored entries: same result, no new incidents.
    stopped = await fed.stop_node("platform-b")
    platform = (await fed.restart_node("platform-b", stopped)).node
    assert platform.replication.replica_indexes["hub"].entries == good_entries + 1
    assert len(await PeerIncidents(platform.db).list("hub")) == 4
    # ... and the operator sees them in the node's status.
    from blindmatch.node.api.client import BlindmatchClient

    local = fed["platform-b"]
    async with BlindmatchClient(local.api_url, local.api_token) as api:
        status = await api.status()
    assert {p["peer"]: p["incidents"] for p in status["peers"]}["hub"] == 4


async def test_a_bad_threshold_proof_is_refused_once(fed) -> None:
    """The holder reads the candidates while it checks the proofs; a bad proof is refused
    all the same (nothing answered), and its nonce is used up."""
    from blindmatch.crypto import threshold as th

    hub = fed["hub"].node
    ref = os.urandom(24)  # a candidate the holder will not resolve: the proof is refused first
    key = th.QuerierKey.generate()
    query = bytearray(th.encrypt_query(key, fed.hashes[0], os.urandom(16)).to_bytes())
    query[-40] ^= 1  # inside the last bit's proof
    data = _seal(fed, "platform-a", "threshold.query", {"query": bytes(query), "items": [ref]})
    answered = hub.metrics.value("threshold_answers_total")
    status, env = await _post(fed, "hub", data)
    assert (status, env.body["code"]) == (400, "bad-proof")
    assert (await _post(fed, "hub", data))[1].body["code"] == "replayed"
    assert hub.metrics.value("threshold_answers_total") == answered


async def test_querier_refuses_a_bad_voprf_proof(fed) -> None:
    """A holder answering under a key other than its pinned one is caught by the proof."""
    hub = fed["hub"].node
    platform = fed["platform-b"].node
    await platform.sync.sync_all()
    real = hub.keys.voprf
    impostor = oprf.generate_key_pair()
    object.__setattr__(hub.keys, "voprf", oprf.ServerKey(impostor.sk, real.pk))
    try:
        status = await match(platform, [flip(fed.hashes[0], 1)])
    finally:
        object.__setattr__(hub.keys, "voprf", real)
    assert not status.complete
    assert status.tasks[0]["last_error"] == "bad-proof" and status.results == []


async def test_feed_pages_stop_at_a_byte_budget_and_sync_still_completes(fed, monkeypatch) -> None:
    from blindmatch.node.federation import responder as node_mod

    hub, platform = fed["hub"].node, fed["platform-b"].node
    monkeypatch.setattr(node_mod, "FEED_PAGE_BYTES", 3000)
    head = await hub.feeds.head("index")
    for i in range(5):  # entries a replica skips as unreadable, but must still page through
        await hub.feeds.append("index", os.urandom(16), "index.note", bytes([i]) * 2000, hub.now())
    page = await hub.responder.feed_pull(
        platform.roster.member("platform-b"), {"feed": "index", "after": head, "limit": 500}
    )
    assert len(page["entries"]) == 1  # 2000 fits, 4000 would not
    await platform.sync.sync_all()
    assert await platform.replicas.cursor("hub", "index") == head + 5


async def test_concurrent_reconciles_publish_each_item_once(fed) -> None:
    import asyncio

    hub = fed["hub"]
    fresh = [os.urandom(32) for _ in range(40)]
    for h in fresh:
        await hub.banks.add_item("ncii", "pdq", h)
    # The sync loop and a bank change (e.g. a survivor's submission) may reconcile at once.
    results = await asyncio.gather(*(hub.node.publisher.reconcile() for _ in range(3)))
    assert sum(r["added"] for r in results) == len(fresh)
    assert await hub.node.db.fetch_value("SELECT COUNT(*) FROM index_publications") == 70


async def test_a_backlog_is_published_by_worker_processes_exactly_as_inline(fed) -> None:
    """A backlog large enough for the worker pool (node/federation/index_build.py) publishes the
    same entries the inline evaluation gives, delta by delta, and a peer matches against them."""
    from blindmatch.node.federation import index_build

    hub, platform = fed["hub"], fed["platform-b"].node
    per_item = hub.node.scheme.tables
    backlog = [os.urandom(32) for _ in range(index_build.POOL_MIN_KEYS // per_item + 20)]
    await hub.banks.import_items(
        "ncii", [f'{{"signal_type": "pdq", "hash": "{h.hex()}"}}' for h in backlog], fmt="jsonl"
    )
    result = await hub.node.publisher.reconcile()
    assert result == {"added": len(backlog), "removed": 0}
    rows = await hub.node.db.fetch_all(
        "SELECT p.item_ref, p.entries, i.hash FROM index_publications p"
        " JOIN bank_items i ON i.item_ref = p.item_ref"
    )
    assert len(rows) == len(backlog) + 30
    sample = [r for r in rows if bytes(r["hash"]) in set(backlog)][:: len(backlog) // 7]
    inline = index_build.evaluate_items(
        hub.node.keys.voprf,
        [(bytes(r["item_ref"]), hub.node.scheme.index_keys(bytes(r["hash"]))) for r in sample],
    )
    # Each entry carries a fresh table reference (spec 8.5), so the bytes differ run to run; the
    # buckets (tags) are the same, and every published reference resolves to its item.
    from blindmatch.crypto import oprf
    from blindmatch.protocol import index

    ref_key = index.reference_key(hub.node.keys.voprf.sk)
    for r, packed in zip(sample, inline, strict=True):
        published = bytes(r["entries"])
        assert index.entry_tags(published) == index.entry_tags(packed)
        for k in hub.node.scheme.index_keys(bytes(r["hash"])):
            f = oprf.evaluate(hub.node.keys.voprf, k, oprf.Mode.VOPRF)
            (entry,) = [e for e in index.split_entries(published) if e[:8] == f[:8]]
            candidate = f[:8] + bytes(a ^ b for a, b in zip(entry[8:], f[8:24], strict=True))
            _, prefix = index.resolve_candidate(ref_key, hub.node.keys.voprf_key_id, candidate)
            assert prefix == bytes(r["item_ref"])[:8]
    await platform.sync.sync_all()
    status = await match(platform, [flip(backlog[-1], 5)])
    assert [(r.peer, r.band) for r in status.results] == [("hub", 8)]
