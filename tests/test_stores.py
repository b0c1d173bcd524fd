"""The services' narrow stores on both backends: which items are live and published, the
published index's differences, match jobs, cases, and the banks' own queries."""

from __future__ import annotations

import os

import pytest

from blindmatch.node import signals
from blindmatch.node.clock import FixedClock
from blindmatch.node.federation.job_ledger import JobLedger
from blindmatch.node.metrics import Metrics
from blindmatch.node.storage import Database, IntegrityError
from blindmatch.node.storage.banks import BankStore, NewItem
from blindmatch.node.storage.cases import CaseStore
from blindmatch.node.storage.job_ledger import JobLedgerStore
from blindmatch.node.storage.match_jobs import MatchJobStore, MatchResult
from blindmatch.node.storage.published_index import PublishedIndexStore
from blindmatch.protocol.matching import QueryHash


def _item(ref: bytes, now: int, *, expires_at: int | None = None) -> NewItem:
    return NewItem(
        signal_type="pdq", hash=os.urandom(32), quality=90, item_ref=ref, provenance={},
        categories=("ncii",), source="local", added_at=now, expires_at=expires_at,
        withdrawal_secret_hash=None,
    )  # fmt: skip


async def _bank(banks: BankStore, name: str, now: int, *, shared: bool, enabled: bool = True):  # type: ignore[no-untyped-def]
    await banks.insert_bank(name, "", "survivor-submitted", ("ncii",), 31, enabled, shared, now)
    bank = await banks.bank(name)
    assert bank is not None
    return bank


async def test_only_live_items_of_enabled_shared_banks_are_published(
    db: Database, clock: FixedClock
) -> None:  # through the pdq adapter, which builds its queries on storage/live_items.py
    now = clock.now()
    banks, index = BankStore(db), PublishedIndexStore(db)
    shared = await _bank(banks, "shared", now, shared=True)
    private = await _bank(banks, "private", now, shared=False)
    off = await _bank(banks, "off", now, shared=True, enabled=False)
    live, gone, stale = b"L" * 16, b"W" * 16, b"E" * 16
    for bank, ref in ((shared, live), (shared, gone), (private, b"P" * 16), (off, b"O" * 16)):
        await banks.insert_item(bank, _item(ref, now))
    await banks.insert_item(shared, _item(stale, now, expires_at=now + 10))
    withdrawn = await banks.item_by_ref(gone)
    assert withdrawn is not None
    await banks.mark_withdrawn(withdrawn[0].id, "survivor", now)

    pdq = signals.adapter("pdq")

    async def unpublished(at: int) -> set[bytes]:
        return {p.item_ref for p in await pdq.unpublished(db, at, b"k")}

    async def stale_publications(at: int) -> dict[bytes, bytes]:
        check = pdq.live_ref_sql()
        assert check is not None
        return await index.no_longer_live([(check, pdq.live_ref_params(at))], b"k")

    assert await unpublished(now) == {live, stale}
    assert await unpublished(now + 10) == {live}  # expiry is live-ness
    async with db.transaction():
        await index.record({live: b"entries-l", stale: b"entries-e"}, "pdq-lsh-1", b"k", now)
    assert await unpublished(now) == set()
    # published per key (spec 8.4): under a successor key the items are not published yet
    assert {p.item_ref for p in await pdq.unpublished(db, now, b"k2")} == {live, stale}
    assert await index.key_ids() == [b"k"]
    assert await stale_publications(now) == {}
    # Once the item expires, the index must take back exactly the entries it published.
    assert await stale_publications(now + 10) == {stale: b"entries-e"}
    assert await pdq.holder_item(db, live, now, (8, 16)) is not None
    assert await pdq.holder_item(db, gone, now, (8, 16)) is None
    async with db.transaction():
        await index.forget([stale], b"k")
    assert await stale_publications(now + 10) == {}
    assert await index.published(b"k") == {live: b"entries-l"}


async def test_bank_store_pages_live_items_and_refuses_a_second_bank_of_a_name(
    db: Database, clock: FixedClock
) -> None:
    now = clock.now()
    banks = BankStore(db)
    bank = await _bank(banks, "b", now, shared=False)
    with pytest.raises(IntegrityError):
        await _bank(banks, "b", now, shared=False)
    refs = [bytes([i]) * 16 for i in range(5)]
    for ref in refs:
        await banks.insert_item(bank, _item(ref, now))
    first = await banks.items_by_refs(bank, refs[:1])
    await banks.mark_withdrawn(first[0].id, "operator", now)
    signature = await banks.local_signature("pdq")
    page = await banks.items_page(bank, after_id=0, limit=2, live_at=now)
    assert [i.item_ref for i in page] == refs[1:3]
    rest = await banks.items_page(bank, after_id=page[-1].id, limit=10, live_at=now)
    assert [i.item_ref for i in rest] == refs[3:]
    assert len(await banks.items_page(bank, after_id=0, limit=10)) == 5  # withdrawn included
    assert sorted(await banks.taken_refs([refs[0], b"x" * 16])) == [refs[0]]
    await banks.insert_item(bank, _item(b"n" * 16, now))
    assert await banks.local_signature("pdq") != signature  # the local match cache rebuilds


async def test_match_jobs_count_each_peer_once_and_keep_their_queries(
    db: Database, clock: FixedClock
) -> None:
    now = clock.now()
    jobs, ledger = MatchJobStore(db), JobLedger(JobLedgerStore(db), Metrics())
    job = os.urandom(16)
    queries = [QueryHash(os.urandom(32), None, "identity"), QueryHash(os.urandom(32), None, "c0")]
    async with db.transaction():
        await jobs.create(job, queries, ["a", "b"], "api", "upload-1", now)
    assert [(q.hash, q.variant) for q in await jobs.queries(job) or []] == [
        (q.hash, q.variant) for q in queries
    ]
    match = MatchResult("a", b"i" * 16, 1, "c0", 8, {"group": b"g" * 8, "provenance": "x"})
    for expected in (True, False):  # a retried task is done once
        async with db.transaction():
            done = await jobs.finish_task(
                job, "a", [match], probes=3, candidates=1, bytes_sent=10, bytes_received=20,
                replica_cursor=4, now=now,
            )  # fmt: skip
            if done:
                await jobs.count_peer_done(job)
                await ledger.settle(job, now)
        assert done is expected
    assert not await jobs.is_complete(job)
    async with db.transaction():
        assert await jobs.finish_task(
            job,
            "b",
            [],
            probes=1,
            candidates=0,
            bytes_sent=1,
            bytes_received=1,
            replica_cursor=4,
            now=now,
        )
        await jobs.count_peer_done(job)
        assert await ledger.settle(job, now) == "complete"
    assert await jobs.is_complete(job)
    [stored] = await jobs.results(job)
    assert stored.release == {"group": (b"g" * 8).hex(), "provenance": "x"}
    assert await jobs.finished_without_cases(10) == [job]
    await jobs.mark_cases_opened(job)
    assert await jobs.finished_without_cases(10) == []


async def test_case_store_orders_the_queue_and_counts_matches_per_window(
    db: Database, clock: FixedClock
) -> None:
    now = clock.now()
    cases = CaseStore(db)
    refs = [bytes([i]) * 16 for i in range(3)]
    for ref, priority in zip(refs, (10, 50, 30), strict=True):
        await cases.insert(
            ref, content_ref=f"c{ref[0]}", job_ref=None, source="peer", holder="hub",
            item_ref=ref, band=8, variant="identity", release_json="{}", state="queued",
            priority=priority, decided_by=None, reason="", decided_at=None, now=now,
        )  # fmt: skip
    await cases.ask_rereview(refs[0], now)
    assert [c.case_ref for c in await cases.queue(10)] == [refs[0], refs[1], refs[2]]
    await cases.set_decision(refs[1], "dismissed", "r1", "no", now)
    assert [c.case_ref for c in await cases.queue(10)] == [refs[0], refs[2]]
    await cases.add_event(refs[1], now, "r1", "decided:dismissed", {"reason": "no"})
    await cases.add_event(refs[1], now, "r1", "note", {})
    assert await cases.event_count(refs[1]) == 2
    assert await cases.last_event_id(refs[1], ("decided:dismissed",)) < await cases.last_event_id(
        refs[1]
    )
    record = dict(origin="a", holder="hub", item_ref=refs[0], opinion="dispute", at_ms=1)
    assert await cases.add_feedback_record(b"r" * 16, signed=b"sig", now=now, **record)
    assert not await cases.add_feedback_record(b"r" * 16, signed=b"sig", now=now, **record)
    assert await cases.feedback_records("hub", refs[0]) == [b"sig"]
    hour = 3600
    start = now - now % hour
    for back in (1, 1, 2):
        await cases.count_match("hub", refs[0], start - back * hour, hour, 24)
    assert await cases.count_match("hub", refs[0], start, hour, 24) == (1, 3)
    assert await cases.count_match("hub", refs[0], start, hour, 1) == (2, 2)
