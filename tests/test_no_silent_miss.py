"""No silent miss: a querier restarted under concurrent load finds every held near copy.

Right after a restart the querier's replicas are rebuilt from its store; concurrent match jobs
then probe them from worker threads while the sync loop applies new deltas. A job may report
``complete`` only when each peer's part ran against a replica consistent at a known feed
cursor, so every round below requires every near copy to match.

``BLINDMATCH_RESTART_ROUNDS`` sets how many rounds run (each a fresh federation and restart);
CI keeps a few, the issue's done-criterion is 100 in a row::

    BLINDMATCH_RESTART_ROUNDS=100 ./dev test tests/test_no_silent_miss.py -q
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from pathlib import Path

import pytest

from blindmatch.node.clock import FixedClock
from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec
from blindmatch.protocol.lsh import PDQ_LSH_1
from blindmatch.protocol.matching import QueryHash

ROUNDS = int(os.environ.get("BLINDMATCH_RESTART_ROUNDS", "2"))
HELD = 400  # hashes at the hub: a replica large enough that rebuilding it takes real time
JOBS = 12  # concurrent jobs right after the restart, one near copy each


def _near(h: bytes, bits: int, rng: random.Random) -> bytes:
    out = bytearray(h)
    for i in rng.sample(range(256), bits):
        out[i >> 3] ^= 0x80 >> (i & 7)
    return bytes(out)


async def _drain(node) -> None:  # type: ignore[no-untyped-def]
    while await node.delivery.process_due(limit=64):
        pass


@pytest.mark.parametrize("round_", range(ROUNDS))
async def test_restarted_querier_under_concurrent_load_finds_every_near_copy(
    tmp_path: Path, round_: int
) -> None:
    rng = random.Random(round_)
    fed = await LocalFederation(tmp_path, clock=FixedClock(1_800_000_000), background=False).start(
        [NodeSpec("hub", ("hub",)), NodeSpec("platform", holds_index=False)]
    )
    try:
        hub = fed["hub"]
        await hub.banks.create_bank("ncii", provenance="survivor-submitted", shared=True)
        held = [rng.randbytes(32) for _ in range(HELD)]
        for h in held:
            await hub.banks.add_item("ncii", "pdq", h)
        await hub.node.publisher.reconcile()
        await fed["platform"].node.sync.sync_all()

        # More deltas wait at the hub, so the restarted querier's sync applies them while
        # its jobs probe the replica it rebuilt from its store.
        late = [rng.randbytes(32) for _ in range(HELD // 4)]
        for h in late:
            await hub.banks.add_item("ncii", "pdq", h)
        await hub.node.publisher.reconcile()

        stopped = await fed.stop_node("platform")
        querier = (await fed.restart_node("platform", stopped)).node
        targets = rng.sample(held, JOBS)
        near = [_near(t, 6, rng) for t in targets]
        jobs = await asyncio.gather(*(querier.querier.submit([QueryHash(q)]) for q in near))
        querier.cfg.match_workers = JOBS
        await asyncio.gather(_drain(querier), querier.sync.sync_all(), _drain(querier))
        await _drain(querier)

        missed = []
        for i, job in enumerate(jobs):
            status = await querier.querier.job_status(job)
            assert status.complete
            if not any(r.peer == "hub" for r in status.results):
                missed.append(i)
            # Each peer's part names the replica cursor it ran against.
            assert all(t["replica_cursor"] and t["replica_cursor"] > 0 for t in status.tasks)
        if missed:  # the same queries once more, one at a time, on the now warm replica
            found_warm = 0
            for i in missed:
                warm = await querier.querier.submit([QueryHash(near[i])])
                await _drain(querier)
                found_warm += bool((await querier.querier.job_status(warm)).results)
            pytest.fail(
                f"round {round_}: {len(missed)} of {JOBS} near copies missed under load;"
                f" {found_warm} of them match when run alone afterwards"
            )
        expected = (HELD + len(late)) * PDQ_LSH_1.tables
        assert querier.replication.replica_indexes["hub"].entries == expected
    finally:
        await fed.stop()


def _page_entries(n: int, rng: random.Random) -> bytes:
    from blindmatch.protocol import index

    return index.pack_entries(rng.randbytes(index.ENTRY_BYTES) for _ in range(n))


def _add(seq: int, key_id: bytes, packed: bytes):  # type: ignore[no-untyped-def]
    from blindmatch.node.federation.peer_replicas import StoredEntry
    from blindmatch.protocol import canonical

    payload = canonical.encode({"scheme": PDQ_LSH_1.name, "key_id": key_id, "entries": packed})
    return StoredEntry(seq, seq.to_bytes(16, "big"), "index.add", payload)


def test_a_page_applies_only_after_the_position_it_follows_and_only_once() -> None:
    from blindmatch.node.federation.peer_replicas import PeerReplica

    rng = random.Random(1)
    key_id = b"k" * 8
    replica = PeerReplica("hub", PDQ_LSH_1.name, key_id)
    first = [_add(1, key_id, _page_entries(10, rng)), _add(2, key_id, _page_entries(10, rng))]
    second = [_add(3, key_id, _page_entries(10, rng))]
    assert replica.apply_page(2, second) is None  # not there yet: nothing applied
    assert (replica.cursor, replica.entries) == (0, 0)
    assert replica.apply_page(0, first) == []
    assert replica.apply_page(0, first) is None  # a racing copy of the same page
    assert replica.apply_page(2, second) == []
    assert (replica.cursor, replica.entries) == (3, 30)


def test_lookups_from_threads_see_whole_pages_while_pages_are_applied() -> None:
    """Readers in threads, a writer applying pages: every lookup at cursor c finds exactly
    the entries of the pages up to c (a half-merged replica would miss some)."""
    import threading

    from blindmatch.node.federation.peer_replicas import PeerReplica
    from blindmatch.protocol import index

    rng = random.Random(2)
    key_id = b"k" * 8
    replica = PeerReplica("hub", PDQ_LSH_1.name, key_id)
    pages = [_page_entries(2000, rng) for _ in range(60)]
    # One probe per page: an OPRF output whose tag and mask reproduce one of its entries.
    probes = [index.split_entries(p)[0] + bytes(40) for p in pages]
    errors: list[str] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            cursor, found = replica.lookup_many_at(probes)
            hits = [bool(f) for f in found]
            if hits != [i < cursor for i in range(len(pages))]:
                errors.append(f"at cursor {cursor}: {hits}")

    readers = [threading.Thread(target=read) for _ in range(3)]
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: races show within a few pages
    for t in readers:
        t.start()
    try:
        for seq, packed in enumerate(pages, start=1):
            assert replica.apply_page(seq - 1, [_add(seq, key_id, packed)]) == []
            stop.wait(0.005)  # let the readers meet each page fresh (its merge is the race)
    finally:
        stop.set()
        for t in readers:
            t.join()
        sys.setswitchinterval(switch)
    assert errors == []
