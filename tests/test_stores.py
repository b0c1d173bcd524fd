"""The services' narrow stores on both backends: which items are live and published, the
published index's differences, match jobs and their ledger, cases, the banks' own queries,
budgets, reviewers, the verifiable log, uploads, the console's and the ops gauges' reads."""

from __future__ import annotations

import os

import pytest

from blindmatch.node import signals
from blindmatch.node.clock import FixedClock
from blindmatch.node.federation.job_ledger import JobLedger, task_message_id
from blindmatch.node.metrics import Metrics
from blindmatch.node.storage import BudgetLedger, BudgetLimits, Database, IntegrityError
from blindmatch.node.storage.banks import BankStore, NewItem
from blindmatch.node.storage.cases import CaseStore
from blindmatch.node.storage.console import ConsoleStore
from blindmatch.node.storage.job_ledger import JobLedgerStore
from blindmatch.node.storage.key_usage import KeyUsageStore
from blindmatch.node.storage.match_jobs import MatchJobStore, MatchResult
from blindmatch.node.storage.ops import OpsStore
from blindmatch.node.storage.outbox import Outbox, RetryPolicy
from blindmatch.node.storage.published_index import PublishedIndexStore
from blindmatch.node.storage.reviewers import ReviewerStore
from blindmatch.node.storage.translog import TranslogStore
from blindmatch.node.storage.uploaders import UploaderStore
from blindmatch.node.storage.uploads import UploadStore
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


async def test_job_ledger_store_cancels_retries_and_dead_letters(
    db: Database, clock: FixedClock
) -> None:
    now = clock.now()
    jobs, store = MatchJobStore(db), JobLedgerStore(db)
    ledger = JobLedger(store, Metrics())
    job = os.urandom(16)
    async with db.transaction():
        await jobs.create(job, [QueryHash(os.urandom(32), None, "identity")], ["a", "b"], "api",
                          None, now)  # fmt: skip
    outbox = Outbox(db, RetryPolicy())
    for peer in ("a", "b"):
        await outbox.enqueue(task_message_id(job, peer), peer, "match", b"", now)
    assert await store.task_peers(job, "pending") == ["a", "b"]
    await ledger.cancel(job, "no longer needed", now)
    assert await store.job_state(job) == "cancelled" and await outbox.count("dead") == 2
    assert await ledger.retry(job, now) == ["a", "b"]
    assert await store.job_state(job) == "running" and await outbox.count("pending") == 2
    assert await ledger.fail_task(job, "a", "unreachable", now) is None  # b still runs
    assert await ledger.fail_task(job, "a", "again", now) is None  # not pending any more
    assert await ledger.fail_task(job, "b", "unreachable", now) == "dead-lettered"
    assert [(r["peer_id"], r["state"]) for r in await store.tasks(job)] == [
        ("a", "failed"), ("b", "failed")
    ]  # fmt: skip
    assert (await ledger.counts())["dead-lettered"] == 1
    assert await store.job_state(os.urandom(16)) is None


async def test_budget_charge_says_which_windows_took_the_units(
    db: Database, clock: FixedClock
) -> None:
    now, limits = clock.now(), BudgetLimits(per_hour=10, per_day=12)
    budgets = BudgetLedger(db)
    async with db.transaction():
        assert await budgets.charge_windows("p/e", 6, now, limits) == {"hour": 6, "day": 6}
    async with db.transaction():  # the hour takes 5 more (11 > 10 refuses), the day does not
        assert await budgets.charge_windows("p/e", 5, now, limits) == {"day": 11}
    assert await budgets.usage("p/e", now) == {"hour": 6, "day": 6}  # given back
    async with db.transaction():
        assert await budgets.charge_windows("p/e", 11, now, limits) == {}  # over the hour's limit


async def test_reviewer_store_keeps_accounts_and_sessions(db: Database, clock: FixedClock) -> None:
    now, store = clock.now(), ReviewerStore(db)
    assert await store.insert("ana", "reviewer", "hash-1", now)
    assert not await store.insert("ana", "admin", "hash-2", now)
    assert (await store.get("ana") or {})["role"] == "reviewer"
    assert (await store.credentials("ana") or {})["password_hash"] == "hash-1"
    await store.upgrade_hash("ana", "not-the-stored-one", "hash-3")
    await store.upgrade_hash("ana", "hash-1", "hash-2")
    assert (await store.credentials("ana") or {})["password_hash"] == "hash-2"
    await store.add_session(b"t" * 32, "ana", "csrf", now + 60, now)
    assert (await store.session(b"t" * 32) or {})["csrf_token"] == "csrf"
    assert await store.set_disabled("ana", True) and await store.enabled_role("ana") is None
    assert await store.session(b"t" * 32) is None  # a disabled account has no live session
    await store.set_disabled("ana", False)
    await store.end_session(b"t" * 32)
    assert await store.session(b"t" * 32) is None
    assert [r["reviewer_id"] for r in await store.all()] == ["ana"]
    assert not await store.set_password_hash("nobody", "x")


async def test_translog_store_entries_heads_counters_and_peers(
    db: Database, clock: FixedClock
) -> None:
    now, store = clock.now(), TranslogStore(db)
    await store.ensure()
    async with store.locked("test-log"):
        assert await store.insert_entry(b"e0", b"h0" * 16, now) == 0
        assert await store.insert_entry(b"e1", b"h1" * 16, now) == 1
    assert await store.size() == 2
    assert [int(r["seq"]) for r in await store.leaf_hashes(1, 10)] == [1]
    assert [bytes(r["entry"]) for r in await store.entries(0, 2)] == [b"e0", b"e1"]
    await store.put_head(2, b"r" * 32, 1000, b"s" * 64, now)
    await store.put_head(2, b"r" * 32, 2000, b"t" * 64, now)  # re-signed: replaces
    assert int((await store.latest_head() or {})["timestamp_ms"]) == 2000
    assert await store.head_at(1) is None and len(await store.heads()) == 1
    for _ in range(2):
        await store.count("peer", "queries", "received", 0, 3_600_000, 1, 5)
    [ended] = await store.ended_counters(3_600_000)
    assert (int(ended["messages"]), int(ended["items"])) == (2, 10)
    await store.drop_counter(ended)
    assert await store.ended_counters(3_600_000) == []
    await store.remember_peer_head("hub", 5, b"R" * 32, 100, b"sth-old", now)
    await store.remember_peer_head("hub", 5, b"R" * 32, 200, b"sth-new", now)
    await store.remember_peer_head("hub", 5, b"X" * 32, 300, b"sth-forged", now)  # kept out
    await store.remember_peer_head("hub", 3, b"Q" * 32, 50, b"sth-3", now)
    assert await store.peer_heads("hub") == [b"sth-3", b"sth-new"]
    assert await store.witnessed() == [b"sth-new"]
    await store.peer_incidents.record("hub", "fork", "two roots", {"a": 1}, now, once=False)
    assert [r["code"] for r in await store.incidents("hub")] == ["fork"]


async def test_upload_console_and_ops_stores(db: Database, clock: FixedClock) -> None:
    now = clock.now()
    uploads, console, ops, cases = UploadStore(db), ConsoleStore(db), OpsStore(db), CaseStore(db)
    await uploads.save_context("c1", "u1", '{"surface": "feed"}', now)
    await uploads.save_context("c2", "u1", "{}", now)
    assert await uploads.context("c1") == '{"surface": "feed"}'
    assert await uploads.context("nope") is None
    for ref, content, state in ((b"1" * 16, "c1", "actioned"), (b"2" * 16, "c2", "queued")):
        await cases.insert(
            ref, content_ref=content, job_ref=None, source="peer", holder="hub", item_ref=ref,
            band=8, variant="identity", release_json="{}", state=state, priority=1,
            decided_by=None, reason="", decided_at=None, now=now - 5,
        )  # fmt: skip
    assert await uploads.actioned_elsewhere("u1", "c2") == 1
    assert await uploads.actioned_elsewhere("u1", "c1") == 0
    assert not await console.has_media("c2")
    await uploads.put_media("c2", b"jpeg", "image/jpeg", now)
    assert await console.has_media("c2") and await console.media("c2") == b"jpeg"
    assert await console.last_reveal(b"2" * 16, "ana") is None
    await console.add_reveal(b"2" * 16, "ana", now)
    assert await console.last_reveal(b"2" * 16, "ana") == now
    assert [r["event"] for r in await console.recent_events(10)] == ["media:revealed"]
    assert [(r["event"], int(r["n"])) for r in await console.reviewer_activity()] == [
        ("media:revealed", 1)
    ]
    assert {r["state"] for r in await console.cases_by_state()} == {"actioned", "queued"}
    [queued] = await ops.review_queue()
    assert (queued["state"], int(queued["n"]), int(queued["first"])) == ("queued", 1, now - 5)
    assert await ops.dead_lettered_jobs() == 0 and await ops.key_evaluations(b"k" * 8) == 0
    assert int((await ops.running_jobs() or {})["n"]) == 0
    outbox = Outbox(db, RetryPolicy())
    for seq in (1, 2):
        await outbox.enqueue(b"2" * 16 + bytes([0, 0, 0, seq]), "platform", "webhook", b"", now)
    assert await outbox.pending_between("webhook", b"2" * 16, b"2" * 16 + bytes([0, 0, 0, 2])) == 1
    [queue] = await ops.outbox_queues()
    assert (queue["kind"], queue["state"], int(queue["n"])) == ("webhook", "pending", 2)


async def test_uploader_store_publications_signals_and_tags(
    db: Database, clock: FixedClock
) -> None:
    now, store = clock.now(), UploaderStore(db)
    await store.note_candidates("peer", [b"i" * 16], now - 5)
    await store.note_candidates("peer", [b"i" * 16], now)
    assert await store.candidate_at("peer", b"i" * 16) == now
    assert await store.candidate_at("other", b"i" * 16) is None
    assert await store.live_item(b"i" * 16, now) is None and await store.tile_group(b"i") is None
    pub, tags = b"p" * 16, b"t" * 32 + b"u" * 32
    async with store.transaction():
        assert not await store.confirm_used(b"c" * 16)
        await store.add_publication(pub, "peer", "hub", b"i" * 16, b"c" * 16, tags, 5000, now)
    assert await store.confirm_used(b"c" * 16)
    assert (await store.publication(pub) or {})["origin"] == "peer"
    assert [bytes(r["tags"]) for r in await store.live_publications(4000)] == [tags]
    assert await store.expired_publications(4000) == []
    assert len(await store.expired_publications(5000)) == 1
    await store.mark_withdrawn(pub, now)
    assert await store.live_publications(0) == [] and await store.expired_publications(9999) == []
    assert await store.confirm_at(b"r" * 16, "peer", "hub", b"i" * 16) is None
    assert not await store.retracted_since("peer", "hub", b"i" * 16, 0)
    await store.add_signal("keeper", b"t" * 32, 100)
    await store.add_signal("keeper", b"t" * 32, 50)  # the later expiry stays
    assert await store.signal_expiry("keeper", b"t" * 32) == 100
    await store.remove_signal("keeper", b"t" * 32)
    assert await store.signal_expiry("keeper", b"t" * 32) is None
    case = b"C" * 16
    await CaseStore(db).insert(
        case, content_ref="c", job_ref=None, source="peer", holder="hub", item_ref=b"i" * 16,
        band=8, variant="identity", release_json="{}", state="actioned", priority=1,
        decided_by=None, reason="", decided_at=None, now=now,
    )  # fmt: skip
    await store.remember_tags(case, "hub", [b"b" * 32, b"a" * 32, b"a" * 32])
    assert await store.case_tags(case) == [b"a" * 32, b"b" * 32]
    assert await store.own_published_tags() == set()
    await store.add_outgoing(pub, case, "keeper", now)
    assert await store.own_published_tags() == {b"a" * 32, b"b" * 32}
    assert [bytes(r["publication"]) for r in await store.outgoing_published(case)] == [pub]
    await store.mark_outgoing_withdrawn(pub, now)
    assert await store.outgoing_published(case) == [] and await store.own_published_tags() == set()


async def test_key_usage_store_counts_and_retires(db: Database, clock: FixedClock) -> None:
    now, usage, key = clock.now(), KeyUsageStore(db), b"k" * 8
    assert await usage.evaluations(key) == 0
    async with usage.transaction():
        await usage.add_key(key, now)
        await usage.add_key(key, now)  # once
        await usage.set_evaluations(key, 10)
    await usage.uncount(key, 4)
    await usage.uncount(key, 40)  # never below 0: nothing
    assert await usage.evaluations(key) == 6
    assert await usage.retire_at(key) is None
    await usage.set_retire_at(key, now, now + 60)
    await usage.set_retire_at(b"o" * 8, now, now + 5)  # a key not counted here yet
    assert (await usage.retire_at(key), await usage.retire_at(b"o" * 8)) == (now + 60, now + 5)
    assert await OpsStore(db).key_evaluations(key) == 6
