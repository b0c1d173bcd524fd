"""The VOPRF key's lifetime enforced by the node (spec 8.2, 8.4), over real nodes on loopback:
evaluations are counted per key; at 7/8 of the cap the holder makes a successor and publishes its
index beside the current one; when the roster names it, queriers re-sync and no match is lost
before, during (both keys answer) or after the rotation; after the overlap the old key is refused
and its secret erased; past the cap a key is refused."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest

from blindmatch.node import keys as keyfiles
from blindmatch.node.clock import FixedClock
from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec
from blindmatch.node.federation.peer_client import PeerError
from blindmatch.node.storage.key_usage import KeyUsageStore
from blindmatch.node.storage.translog import TranslogStore
from blindmatch.protocol import index
from blindmatch.protocol import roster as roster_mod
from blindmatch.protocol.matching import QueryHash
from blindmatch.protocol.roster import voprf_key_id

RNG = random.Random(13)


def flip(h: bytes, n: int) -> bytes:
    out = bytearray(h)
    for i in RNG.sample(range(256), n):
        out[i >> 3] ^= 0x80 >> (i & 7)
    return bytes(out)


async def match(node, queries: list[bytes]):  # type: ignore[no-untyped-def]
    job = await node.querier.submit([QueryHash(q) for q in queries])
    while await node.delivery.process_due():
        pass
    return await node.querier.job_status(job)


async def _federation(tmp_path: Path, cap: int) -> LocalFederation:
    fed = await LocalFederation(tmp_path, clock=FixedClock(1_800_000_000), background=False).start(
        [
            NodeSpec("hub", ("hub",), voprf_key_cap=cap),
            NodeSpec("platform-a", holds_index=False),
            NodeSpec("platform-b", holds_index=False),
        ]
    )
    hub = fed["hub"]
    await hub.banks.create_bank("ncii", provenance="survivor-submitted", shared=True)
    fed.hashes = [os.urandom(32) for _ in range(10)]  # type: ignore[attr-defined]
    for h in fed.hashes:  # type: ignore[attr-defined]
        await hub.banks.add_item("ncii", "pdq", h)
    await hub.node.publisher.reconcile()
    return fed


async def _usage(hub, key_id: bytes) -> int:  # type: ignore[no-untyped-def]
    v = await hub.db.fetch_value("SELECT evaluations FROM voprf_key_usage WHERE key_id = ?", key_id)
    return int(v or 0)


def _roster_naming(fed: LocalFederation, serial: int, hub_pk: bytes) -> roster_mod.Roster:
    """What governance signs once the hub asks for its successor key (8.4)."""
    assert fed.roster is not None
    body = dict(fed.roster.document["roster"])
    body["serial"] = serial
    body["members"] = [
        {**m, "voprf_key": hub_pk.hex()} if m["id"] == "hub" else m for m in body["members"]
    ]
    doc = roster_mod.sign_roster(body, fed.governance[:2])
    now_ms = fed.clock.now() * 1000
    return roster_mod.verify_roster(doc, [k.public_key for k in fed.governance], 2, now_ms)


async def _published(hub, key_id: bytes) -> int:  # type: ignore[no-untyped-def]
    n = await hub.db.fetch_value("SELECT COUNT(*) FROM index_publications WHERE key_id = ?", key_id)
    return int(n)


async def _matches(node, h: bytes) -> bool:  # type: ignore[no-untyped-def]
    status = await match(node, [flip(h, 6)])
    return [r.band for r in status.results] == [8]


async def test_a_rotation_loses_no_match(tmp_path: Path) -> None:
    # room for the old key's answers during the rotation: the successor is made at 875
    fed = await _federation(tmp_path, 1000)
    hashes = fed.hashes  # type: ignore[attr-defined]
    try:
        hub = fed["hub"].node
        a, b = fed["platform-a"].node, fed["platform-b"].node
        keys_dir = hub.cfg.keys_dir
        old_id = hub.keys.voprf_key_id
        for p in (a, b):
            await p.sync.sync_all()
        # before: queries match; then a bulk of evaluations takes the key past 7/8 of its cap
        assert await _matches(a, hashes[9])
        member = a.roster.member("hub")
        assert member is not None and hub.keys.successor is None
        for _ in range(2):
            await a.client.call(
                member, "oprf.evaluate", {"key_id": old_id, "elements": [hub.keys.voprf.pk] * 430}
            )
        assert hub.keys.successor is not None
        assert await _usage(hub, old_id) == 24 + 860
        successor = hub.keys.successor
        new_id = voprf_key_id(successor.pk)
        assert (keys_dir / "voprf.next.key").exists()
        await hub.publisher.reconcile()  # the sync loop's next round
        assert await _published(hub, new_id) == await _published(hub, old_id) == 10
        # the same items under two keys are two feed entries (10.3: a delta's id is made from
        # its key id and its sorted entries, which differ under two keys)
        from blindmatch.protocol import canonical

        feed = await hub.feeds.read("index", 0, 100)
        adds = [e for e in feed if e.kind == "index.add"]
        by_key = {canonical.decode(e.payload)["key_id"]: e.entry_id for e in adds}
        assert set(by_key) == {old_id, new_id} and len({e.entry_id for e in adds}) == 2
        for e in adds:
            body = canonical.decode(e.payload)
            digest = hashlib.sha256(body["entries"]).digest()[:16]
            assert e.entry_id == index.feed_entry_id("index.add", body["key_id"], [digest])
        for p in (a, b):
            await p.sync.sync_all()  # stored, not applied: their roster still names the old key
        assert await _matches(b, hashes[0])

        # during: governance names the successor. platform-a takes the new roster in before
        # the hub does (the hub answers its successor already), then the hub; platform-b is
        # a roster behind and is answered under the retired key for the overlap
        new = _roster_naming(fed, 2, successor.pk)
        await a.adopt_roster(new)
        assert await _matches(a, hashes[1])  # re-synced from the feed it had stored
        assert await _usage(hub, new_id) > 0
        await hub.adopt_roster(new)
        assert hub.keys.voprf_key_id == new_id and hub.keys.retired is not None
        assert (keys_dir / "voprf.retired.key").exists() and not (
            keys_dir / "voprf.next.key"
        ).exists()
        assert await _matches(a, hashes[2])
        assert await _matches(b, hashes[3])  # the retired key answers in the overlap
        assert hub.metrics.value("voprf_key_rotations_total") == 1

        # a restart in the overlap: the keys and the retirement deadline come back from disk
        fed.roster = new
        stopped = await fed.stop_node("hub")
        spec, _, address = stopped
        await fed.restart_node("hub", (spec, keyfiles.load(keys_dir), address))
        hub = fed["hub"].node
        assert hub.keys.voprf_key_id == new_id and hub.keys.retired is not None
        assert await _matches(b, hashes[4])
        assert await _matches(a, hashes[5])

        # after the overlap: the old key's index withdrawn, its secret erased, its id refused
        fed.clock.advance(hub.cfg.key_overlap_s + 1)
        await hub.publisher.reconcile()
        assert hub.keys.retired is None
        assert not (keys_dir / "voprf.retired.key").exists()
        assert not (keys_dir / "voprf.retired.seed").exists()
        assert await _published(hub, old_id) == 0
        assert await _published(hub, new_id) == 10
        member = b.roster.member("hub")
        with pytest.raises(PeerError) as refused:
            await b.client.call(
                member, "oprf.evaluate", {"key_id": old_id, "elements": [successor.pk]}
            )
        assert refused.value.code == "not-allowed"
        await b.adopt_roster(new)
        await b.sync.sync_all()
        assert await _matches(b, hashes[6])
        assert await _matches(a, hashes[7])
    finally:
        await fed.stop()


async def test_the_key_is_refused_past_its_cap(tmp_path: Path) -> None:
    fed = await _federation(tmp_path, 100)  # four 24-probe queries fit, the fifth does not
    try:
        hub = fed["hub"].node
        a = fed["platform-a"].node
        await a.sync.sync_all()
        key_id = hub.keys.voprf_key_id
        for k in range(4):
            status = await match(a, [flip(fed.hashes[k], 4)])  # type: ignore[attr-defined]
            assert [r.band for r in status.results] == [8]
        assert await _usage(hub, key_id) == 96
        member = a.roster.member("hub")
        assert member is not None
        with pytest.raises(PeerError) as refused:
            await a.client.call(
                member,
                "oprf.evaluate",
                {"key_id": key_id, "elements": [hub.keys.voprf.pk] * 24},
            )
        assert refused.value.code == "not-allowed"
        assert await _usage(hub, key_id) == 96  # a refused request counts nothing
        assert hub.metrics.value("voprf_key_rotation_due_total") == 1  # started at 7/8
        assert hub.keys.successor is not None
    finally:
        await fed.stop()


async def test_the_processes_of_one_node_rotate_once_and_agree(db, clock, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Two processes of one node (shared home and database, README: Running several
    processes): a successor one makes the other takes in; the promotion's files move once; the
    retirement deadline and its log entry are recorded once; the other erases nothing twice."""
    from blindmatch.node.federation.key_ring import VoprfKeyRing
    from blindmatch.node.metrics import Metrics
    from blindmatch.node.translog.log import TransparencyLog

    d = tmp_path / "keys"
    first = keyfiles.create(d)

    def process() -> VoprfKeyRing:
        keys = keyfiles.load(d)
        log = TransparencyLog(TranslogStore(db), "hub", keys.identity, clock)
        return VoprfKeyRing(
            KeyUsageStore(db), keys, d, log, Metrics(), clock, cap=100, overlap_s=3600
        )

    a, b = process(), process()
    assert await a.start_rotation()
    successor = a.keys.successor
    assert successor is not None
    assert not await b.start_rotation()  # it finds a's successor on disk, makes none
    assert b.keys.successor == successor
    new_id = voprf_key_id(successor.pk)
    assert b.answering(new_id, clock.now()) is not None

    # each process takes the roster naming the successor in, b a minute later
    assert a.roster_names(successor.pk)
    await a.settle()
    clock.advance(60)
    assert b.roster_names(successor.pk)
    await b.settle()
    for ring in (a, b):
        assert ring.keys.voprf == successor and ring.keys.retired == first.voprf
    assert keyfiles.load(d).voprf == successor and keyfiles.load(d).retired == first.voprf
    old_id = voprf_key_id(first.voprf.pk)
    assert a.expired_retired(clock.now()) is None
    assert a._retire_at == b._retire_at  # one deadline, a's
    entries = await a.translog.entries()
    assert sum(b"key-rotation" in e.entry for e in entries) == 1

    clock.advance(3600)
    assert a.expired_retired(clock.now()) == old_id == b.expired_retired(clock.now())
    a.erase_retired()
    assert await b.refresh() and b.keys.retired is None
    assert b.answering(old_id, clock.now()) is None


async def test_keys_rotate_starts_a_rotation_now(db, clock, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """``blindmatch keys rotate`` (an early rotation: suspected compromise, or collecting
    decoys, 8.4) makes the successor a running node takes in on its next round, prints its
    public key for governance and never a secret; a second one while it is under way is
    refused and changes nothing."""
    import json

    from blindmatch.node.cli.main import main
    from blindmatch.node.federation.key_ring import VoprfKeyRing
    from blindmatch.node.metrics import Metrics
    from blindmatch.node.translog.log import TransparencyLog

    home = tmp_path / "hub"
    assert main(["init", "--home", str(home), "--node-id", "hub", "--role", "hub"]) == 0
    capsys.readouterr()
    d = home / "keys"
    keys = keyfiles.load(d)
    log = TransparencyLog(TranslogStore(db), "hub", keys.identity, clock)
    ring = VoprfKeyRing(KeyUsageStore(db), keys, d, log, Metrics(), clock, cap=1 << 40)
    assert ring.publishing() == [keys.voprf]  # nothing under way

    assert main(["keys", "rotate", "--config", str(home)]) == 0
    out = json.loads(capsys.readouterr().out)
    successor = keyfiles.load(d).successor
    assert successor is not None and out["voprf_key"] == successor.pk.hex()
    assert out["successor_key_id"] == voprf_key_id(successor.pk).hex()
    assert successor.sk.hex() not in json.dumps(out)
    # while it is under way a second one is refused and changes nothing
    assert main(["keys", "rotate", "--config", str(home)]) == 1
    assert "already under way" in capsys.readouterr().err
    assert keyfiles.load(d).successor == successor
    # the running node takes it in: it publishes under both keys until the roster names it
    assert await ring.refresh()
    assert ring.publishing() == [keys.voprf, successor]
    assert ring.roster_names(successor.pk) and ring.current == successor
