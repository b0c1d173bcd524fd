"""The VOPRF key's lifetime enforced by the node (spec 8.2, 8.4): evaluations are counted per
key, a successor is made and its index published before the cap, queriers re-sync when the
roster names it and no match is lost across the rotation; past the cap the key is refused."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from blindmatch.node.clock import FixedClock
from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec
from blindmatch.node.federation.peer_client import PeerError
from blindmatch.node.federation.roster_watch import apply_roster
from blindmatch.protocol import roster as roster_mod
from blindmatch.protocol.matching import QueryHash
from blindmatch.protocol.roster import voprf_key_id

RNG = random.Random(13)
CAP = 400  # 16 queries of 24 probes; the successor is made at 350


def flip(h: bytes, n: int) -> bytes:
    out = bytearray(h)
    for i in RNG.sample(range(256), n):
        out[i >> 3] ^= 0x80 >> (i & 7)
    return bytes(out)


async def match(node, queries: list[bytes]):  # type: ignore[no-untyped-def]
    job = await node.submit([QueryHash(q) for q in queries])
    while await node.process_due_tasks():
        pass
    return await node.job_status(job)


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
    await hub.node.reconcile_index()
    return fed


def _roster_naming(fed: LocalFederation, serial: int, hub_pk: bytes) -> roster_mod.Roster:
    assert fed.roster is not None
    body = dict(fed.roster.document["roster"])
    body["serial"] = serial
    body["members"] = [
        {**m, "voprf_key": hub_pk.hex()} if m["id"] == "hub" else m for m in body["members"]
    ]
    doc = roster_mod.sign_roster(body, fed.governance[:2])
    now_ms = fed.clock.now() * 1000
    return roster_mod.verify_roster(doc, [k.public_key for k in fed.governance], 2, now_ms)


async def _usage(hub, key_id: bytes) -> int:  # type: ignore[no-untyped-def]
    v = await hub.db.fetch_value("SELECT evaluations FROM voprf_key_usage WHERE key_id = ?", key_id)
    return int(v or 0)


async def test_a_rotation_loses_no_match(tmp_path: Path) -> None:
    fed = await _federation(tmp_path, CAP)
    try:
        hub = fed["hub"].node
        a, b = fed["platform-a"].node, fed["platform-b"].node
        old_id = hub.keys.voprf_key_id
        for p in (a, b):
            await p.sync_all()
        # honest traffic until the key passes 7/8 of its cap: every query still matches
        i = 0
        while hub.keys.successor is None:
            status = await match(a, [flip(fed.hashes[i % 10], 4)])  # type: ignore[attr-defined]
            assert [r.band for r in status.results] == [8]
            i += 1
        assert await _usage(hub, old_id) >= CAP * 7 // 8
        await hub.reconcile_index()  # (also started in the background)
        new_id = voprf_key_id(hub.keys.successor.pk)
        rows = await hub.db.fetch_value(
            "SELECT COUNT(*) FROM index_publications WHERE key_id = ?", new_id
        )
        assert rows == 10  # the successor's index is published beside the current one
        for p in (a, b):
            await p.sync_all()  # stored, not yet applied: the roster still names the old key
        # governance names the successor; the hub and platform-a take the new roster in,
        # platform-b is a day late
        new = _roster_naming(fed, 2, hub.keys.successor.pk)
        apply_roster(hub, new)
        await hub.record_rotation()
        assert hub.keys.voprf_key_id == new_id and hub.keys.retired is not None
        apply_roster(a, new)
        status = await match(a, [flip(fed.hashes[0], 6)])  # type: ignore[attr-defined]
        assert [r.band for r in status.results] == [8]  # re-synced from the stored feed
        assert await _usage(hub, new_id) > 0
        status = await match(b, [flip(fed.hashes[1], 6)])  # type: ignore[attr-defined]
        assert [r.band for r in status.results] == [8]  # the old key answers in the overlap
        # after the overlap window the old key's index is withdrawn and its secret erased
        fed.clock.advance(hub.cfg.key_overlap_s + 1)
        await hub.reconcile_index()
        assert hub.keys.retired is None
        assert not (hub.cfg.keys_dir / "voprf.retired.key").exists()
        assert (
            await hub.db.fetch_value(
                "SELECT COUNT(*) FROM index_publications WHERE key_id = ?", old_id
            )
            == 0
        )
        apply_roster(b, new)
        await b.sync_all()
        status = await match(b, [flip(fed.hashes[2], 6)])  # type: ignore[attr-defined]
        assert [r.band for r in status.results] == [8]
    finally:
        await fed.stop()


async def test_the_key_is_refused_past_its_cap(tmp_path: Path) -> None:
    fed = await _federation(tmp_path, 100)  # four 24-probe queries fit, the fifth does not
    try:
        hub = fed["hub"].node
        a = fed["platform-a"].node
        await a.sync_all()
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
        assert hub.keys.successor is not None  # the rotation had started at 7/8 of the cap
    finally:
        await fed.stop()
