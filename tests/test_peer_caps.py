"""Per-peer caps (spec 10.4): a holder that publishes past what it declared in the roster is cut
off with an incident and a metric, its replica keeps its last good state, nothing more of it is
stored, and matching against honest holders goes on. Incidents per peer are capped too."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from blindmatch.node.clock import FixedClock
from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec
from blindmatch.node.federation.publisher import INDEX_FEED
from blindmatch.node.storage import PeerIncidents
from blindmatch.protocol import canonical, index, replication
from blindmatch.protocol.matching import QueryHash

DECLARED = 1000  # the hostile holder's declared size: caps of 10,000 entries, ~4.2 MB of feed


def _delta(scheme: str, key_id: bytes, n: int) -> bytes:
    entries = b"".join(sorted(os.urandom(index.ENTRY_BYTES) for _ in range(n)))
    return canonical.encode({"scheme": scheme, "key_id": key_id, "entries": entries})


def test_caps_follow_the_declared_size() -> None:
    assert replication.PeerCaps.from_declared(0).entries == replication.MIN_ENTRY_CAP
    caps = replication.PeerCaps.from_declared(2_400_000)
    assert caps.entries == 3_000_000
    assert caps.feed_bytes == (4 << 20) + 2_400_000 * 8 * index.ENTRY_BYTES
    with pytest.raises(ValueError):
        replication.PeerCaps.from_declared(-1)


def test_an_addition_past_the_entry_cap_is_not_applied_nor_anything_after_it() -> None:
    key = b"k" * 8
    r = replication.IndexReplica("pdq-lsh-1", key, max_entries=100)
    assert r.apply(1, "index.add", _delta("pdq-lsh-1", key, 60)).outcome.value == "added"
    over = r.apply(2, "index.add", _delta("pdq-lsh-1", key, 41))
    assert over.outcome is replication.EntryOutcome.OVER_CAP
    assert r.over_cap == replication.CapExceeded("entries", 100, 101, 2)
    # Later entries (even small ones, even removals) are not applied: the last good state stays.
    assert r.apply(3, "index.add", _delta("pdq-lsh-1", key, 1)).outcome.value == "over-cap"
    assert r.index.entries == 60 and r.position == 3
    # Another key's entries do not count against the cap.
    other = replication.IndexReplica("pdq-lsh-1", key, max_entries=10)
    assert other.apply(1, "index.add", _delta("pdq-lsh-1", b"o" * 8, 50)).outcome.value == (
        "other-key"
    )


def test_a_page_past_the_feed_bytes_cap_is_refused_whole() -> None:
    pull = replication.FeedPull("index", 0, page_limit=10, stored_bytes=90, max_bytes=100)
    pull.request()
    page = {
        "feed": "index",
        "head": 2,
        "entries": [
            {"seq": 1, "id": b"a" * 16, "kind": "index.add", "payload": b"x" * 5},
            {"seq": 2, "id": b"b" * 16, "kind": "index.add", "payload": b"x" * 6},
        ],
    }
    with pytest.raises(replication.ReplicationError) as info:
        pull.receive(page)
    assert info.value.code == "over-cap" and pull.state is replication.PullState.FAILED
    assert pull.over_cap == replication.CapExceeded("feed-bytes", 100, 101, 2)
    assert pull.cursor == 0 and pull.stored_bytes == 90


@pytest.fixture
async def fed(tmp_path: Path):
    federation = await LocalFederation(
        tmp_path, clock=FixedClock(1_800_000_000), background=False
    ).start(
        [
            NodeSpec("hub", ("hub",)),
            NodeSpec("hostile", ("platform",), budget={"index_entries": DECLARED}),
            NodeSpec("platform", holds_index=False),
        ]
    )
    federation.held = {}  # type: ignore[attr-defined]
    for name in ("hub", "hostile"):
        local = federation[name]
        await local.banks.create_bank("b", provenance="survivor-submitted", shared=True)
        held = os.urandom(32)
        federation.held[name] = held  # type: ignore[attr-defined]
        await local.banks.add_item("b", "pdq", held)
        await local.node.publisher.reconcile()
    yield federation
    await federation.stop()


async def _matched_by(platform, held: bytes) -> set[str]:  # type: ignore[no-untyped-def]
    job = await platform.querier.submit([QueryHash(held)])
    while await platform.delivery.process_due():
        pass
    return {r.peer for r in (await platform.querier.job_status(job)).results}


async def test_a_holder_past_its_entry_cap_is_cut_off(fed) -> None:
    hostile, platform = fed["hostile"].node, fed["platform"].node
    key_id = hostile.roster.member("hostile").voprf_key_id
    scheme = hostile.scheme.name

    async def publish(n_deltas: int, size: int) -> None:
        await hostile.feeds.append_many(
            INDEX_FEED,
            [(os.urandom(16), "index.add", _delta(scheme, key_id, size)) for _ in range(n_deltas)],
            hostile.now(),
        )

    await publish(3, 4000)  # 12,000 entries (and its 24 honest ones) past a cap of 10,000
    out = await platform.sync.sync_all()
    assert out["hostile"] == "error: over-cap" and isinstance(out["hub"], int)
    replica = platform.replication.peer_replicas["hostile"]
    assert replica.over_cap is not None and replica.over_cap.cap == "entries"
    held_entries = replica.entries
    assert held_entries == 24 + 2 * 4000  # the last good state: the third delta not applied
    incidents = await PeerIncidents(platform.db).list("hostile", "over-cap")
    assert len(incidents) == 1 and incidents[0]["evidence"]["cap"] == "entries"
    labels = {"peer": "hostile", "cap": "entries"}
    assert platform.metrics.value("peer_caps_exceeded_total", labels) == 1
    assert b"blindmatch_peer_caps_exceeded_total" in platform.metrics.exposition()

    # It goes on publishing: nothing more is pulled, stored or applied, and nothing new filed.
    cursor = await platform.replication.stored_cursor("hostile")
    await publish(2, 4000)
    assert (await platform.sync.sync_all())["hostile"] == "error: over-cap"
    assert await platform.replication.stored_cursor("hostile") == cursor
    assert replica.entries == held_entries
    assert len(await PeerIncidents(platform.db).list("hostile")) == 1
    assert platform.metrics.value("peer_caps_exceeded_total", labels) == 1

    # Matching goes on: the honest hub's item, and the hostile holder's from its last good state.
    assert await _matched_by(platform, fed.held["hub"]) == {"hub"}
    assert "hostile" in await _matched_by(platform, fed.held["hostile"])

    # After a restart the replica is rebuilt to the same state, the holder is found over its
    # cap again from what is stored (no new incident), and nothing more is pulled.
    await fed.restart_node("platform", await fed.stop_node("platform"))
    platform = fed["platform"].node
    assert (await platform.sync.sync_all())["hostile"] == "error: over-cap"
    assert platform.replication.peer_replicas["hostile"].entries == held_entries
    assert await platform.replication.stored_cursor("hostile") == cursor
    assert len(await PeerIncidents(platform.db).list("hostile")) == 1


async def test_a_holder_past_its_feed_bytes_cap_stores_nothing_more(fed) -> None:
    hostile, platform = fed["hostile"].node, fed["platform"].node
    caps = platform.replication.caps("hostile")
    await platform.sync.sync_all()
    before = await platform.replicas.stored_bytes("hostile")
    assert 0 < before < caps.feed_bytes
    # Deltas under a key the replica does not match with: never applied, but stored bytes.
    delta = _delta(hostile.scheme.name, b"\x00" * 8, 40_000)  # 960,000 bytes of entries
    n = caps.feed_bytes // len(delta) + 1
    await hostile.feeds.append_many(
        INDEX_FEED, [(os.urandom(16), "index.add", delta) for _ in range(n)], hostile.now()
    )
    out = await platform.sync.sync_all()
    assert out["hostile"] == "error: over-cap"
    # Pages within the cap may be stored (a reply is at most 16 MiB); the one past it is not.
    stored = await platform.replicas.stored_bytes("hostile")
    assert before <= stored <= caps.feed_bytes < before + n * len(delta)
    await hostile.feeds.append_many(
        INDEX_FEED, [(os.urandom(16), "index.add", delta)], hostile.now()
    )
    assert (await platform.sync.sync_all())["hostile"] == "error: over-cap"
    assert await platform.replicas.stored_bytes("hostile") == stored
    incidents = await PeerIncidents(platform.db).list("hostile", "over-cap")
    assert [i["evidence"]["cap"] for i in incidents] == ["feed-bytes"]
    labels = {"peer": "hostile", "cap": "feed-bytes"}
    assert platform.metrics.value("peer_caps_exceeded_total", labels) == 1
    assert await _matched_by(platform, fed.held["hub"]) == {"hub"}


async def test_incidents_per_peer_are_capped(fed) -> None:
    dropped: list[str] = []
    incidents = PeerIncidents(fed["hub"].node.db, limit=3, on_dropped=dropped.append)
    filed = [
        await incidents.record("flood", "bad-index-entry", f"entry {i}", {"seq": i}, 1)
        for i in range(6)
    ]
    assert filed == [True, True, False, False, False, False]
    rows = await incidents.list("flood")
    assert [r["code"] for r in rows] == ["bad-index-entry", "bad-index-entry", "incidents-capped"]
    assert dropped == ["flood"] * 4
    assert await incidents.record("other", "bad-index-entry", "entry 0", {}, 1)  # per peer
