"""The VOPRF key's lifetime enforced by the node (spec 8.2, 8.4): evaluations are counted per
key, the rotation is called for at 7/8 of the cap, and past the cap the key is refused."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from blindmatch.node.clock import FixedClock
from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec
from blindmatch.node.federation.peer_client import PeerError
from blindmatch.protocol.matching import QueryHash

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
        assert hub.metrics.value("voprf_key_rotation_due_total") == 1  # called for at 7/8
    finally:
        await fed.stop()
