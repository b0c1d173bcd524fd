"""The storage layer on both backends: migrations, transactions, feeds, replicas, outbox,
nonces, budgets and node state."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from blindmatch.node.clock import FixedClock
from blindmatch.node.storage import (
    BudgetLedger,
    BudgetLimits,
    Database,
    FeedConflictError,
    FeedEntry,
    FeedLog,
    IntegrityError,
    NodeState,
    NonceStore,
    Outbox,
    ReplicaStore,
    RetryPolicy,
    StorageError,
    StorageValueError,
    open_database,
    parse_database_url,
)
from blindmatch.node.storage.migrations import MIGRATIONS
from blindmatch.node.storage.postgres import to_numbered_placeholders

TABLES = {
    "schema_migrations",
    "banks",
    "bank_items",
    "feed_entries",
    "peer_cursors",
    "replica_entries",
    "outbox",
    "seen_nonces",
    "budget_usage",
    "node_state",
}


async def _count(db: Database, table: str) -> int:
    return int(await db.fetch_value(f"SELECT COUNT(*) FROM {table}"))


# --- URLs and dialects -------------------------------------------------------------------------


def test_database_urls() -> None:
    assert parse_database_url("sqlite:///:memory:").sqlite_path == ":memory:"
    assert parse_database_url("sqlite:///var/node.db").sqlite_path == "var/node.db"
    assert parse_database_url("sqlite:////abs/node.db").sqlite_path == "/abs/node.db"
    pg = parse_database_url("postgresql://u@h:5432/db?schema=tenant_1")
    assert pg.backend == "postgresql"
    assert pg.postgres_schema == "tenant_1"
    assert pg.postgres_dsn == "postgresql://u@h:5432/db"
    for bad in ("", "mysql://x/y", "sqlite://host/x.db", "postgresql://h/db?schema=Bad-Name"):
        with pytest.raises(StorageError):
            parse_database_url(bad)


def test_placeholder_rewrite_skips_literals() -> None:
    sql = "SELECT '?', x FROM t WHERE a = ? AND b = 'it''s ?' AND c = ?"
    assert to_numbered_placeholders(sql) == (
        "SELECT '?', x FROM t WHERE a = $1 AND b = 'it''s ?' AND c = $2"
    )


# --- migrations and transactions ---------------------------------------------------------------


async def test_migrations_are_idempotent(db: Database, clock: FixedClock) -> None:
    assert await db.schema_version() == len(MIGRATIONS)
    assert await db.migrate(clock.now()) == []
    assert await db.migrate(clock.now()) == []
    assert await _count(db, "schema_migrations") == len(MIGRATIONS)
    for table in TABLES:
        assert await _count(db, table) >= 0


async def test_migrations_apply_on_reopen_only_once(db_url: str, clock: FixedClock) -> None:
    first = await open_database(db_url)
    try:
        assert await first.migrate(clock.now()) == [m.version for m in MIGRATIONS]
    finally:
        await first.close()
    second = await open_database(db_url, migrate_now=clock.now())
    try:
        assert await second.schema_version() == len(MIGRATIONS)
        assert await _count(second, "schema_migrations") == len(MIGRATIONS)
    finally:
        await second.close()


async def test_concurrent_migrate_applies_once(db_url: str, clock: FixedClock) -> None:
    a = await open_database(db_url)
    b = await open_database(db_url)
    try:
        results = await asyncio.gather(a.migrate(clock.now()), b.migrate(clock.now()))
        assert sorted(v for r in results for v in r) == [m.version for m in MIGRATIONS]
    finally:
        await a.close()
        await b.close()


async def test_crash_inside_transaction_leaves_nothing(db: Database, clock: FixedClock) -> None:
    feed = FeedLog(db)
    state = NodeState(db)

    class Crash(Exception):
        pass

    with pytest.raises(Crash):
        async with db.transaction():
            await feed.append("items", b"e1", "item-added", b"p", clock.now())
            await state.set("k", b"v", clock.now())
            raise Crash
    assert await feed.head("items") == 0
    assert await state.get("k") is None


async def test_nested_transaction_is_a_savepoint(db: Database, clock: FixedClock) -> None:
    state = NodeState(db)
    async with db.transaction():
        await state.set("outer", b"1", clock.now())
        with pytest.raises(RuntimeError):
            async with db.transaction():
                await state.set("inner", b"2", clock.now())
                raise RuntimeError("inner fails")
    assert await state.get("outer") == b"1"
    assert await state.get("inner") is None


async def test_non_durable_transaction_commits_and_rolls_back(
    db: Database, clock: FixedClock
) -> None:
    state = NodeState(db)
    async with db.transaction(durable=False):
        await state.set("fast", b"1", clock.now())
    with pytest.raises(RuntimeError):
        async with db.transaction(durable=False):
            await state.set("lost", b"2", clock.now())
            raise RuntimeError("refused")
    assert await state.get("fast") == b"1" and await state.get("lost") is None
    # The relaxed setting ends with its transaction: the next one is durable again.
    if db.dialect.name == "sqlite":
        assert await db.fetch_value("PRAGMA synchronous") == 2  # FULL
    else:
        async with db.transaction():
            assert await db.fetch_value("SHOW synchronous_commit") == "on"


async def test_nonce_and_refused_charge_in_one_transaction(db: Database, clock: FixedClock) -> None:
    """A peer request's admission: the nonce is used up even when the charge is refused, and
    a replayed nonce rolls the whole admission back."""
    nonces, ledger = NonceStore(db), BudgetLedger(db)
    limits = BudgetLimits(per_hour=10, per_day=10)
    now = clock.now()

    async def admit(nonce: bytes, n: int) -> str:
        try:
            async with db.transaction(durable=False):
                if not await nonces.remember("peer-a", nonce, now + 60, now):
                    raise LookupError
                charged = await ledger.charge_in_transaction("peer-a", n, now, limits)
                return "charged" if charged else "refused"
        except LookupError:
            return "replayed"

    assert await admit(b"n1" * 8, 8) == "charged"
    assert await admit(b"n2" * 8, 5) == "refused"
    assert await ledger.usage("peer-a", now) == {"hour": 8, "day": 8}
    assert await admit(b"n2" * 8, 1) == "replayed"  # the refused request's nonce is used up
    assert await admit(b"n1" * 8, 1) == "replayed"
    assert await ledger.usage("peer-a", now) == {"hour": 8, "day": 8}
    assert await _count(db, "seen_nonces") == 2


async def test_concurrent_transactions_do_not_interleave(db: Database, clock: FixedClock) -> None:
    feed = FeedLog(db)

    async def writer(name: str) -> None:
        for i in range(5):
            await feed.append("items", f"{name}-{i}".encode(), "k", b"", clock.now())
            await asyncio.sleep(0)

    await asyncio.gather(*(writer(n) for n in "abcd"))
    entries = await feed.read("items", 0, 100)
    assert [e.seq for e in entries] == list(range(1, 21))


async def test_integrity_error_is_mapped(db: Database, clock: FixedClock) -> None:
    await db.execute(
        "INSERT INTO node_state (key, value, updated_at) VALUES (?, ?, ?)", "k", b"v", 1
    )
    with pytest.raises(IntegrityError):
        await db.execute(
            "INSERT INTO node_state (key, value, updated_at) VALUES (?, ?, ?)", "k", b"w", 1
        )
    with pytest.raises(IntegrityError):  # a CHECK constraint
        await db.execute(
            "INSERT INTO banks (name, provenance, created_at, updated_at) VALUES (?, ?, ?, ?)",
            "b",
            "made-up",
            1,
            1,
        )


async def test_sqlite_pragmas(tmp_path) -> None:
    db = await open_database(f"sqlite:///{tmp_path / 'n.db'}", migrate_now=1)
    try:
        assert await db.fetch_value("PRAGMA foreign_keys") == 1
        assert await db.fetch_value("PRAGMA journal_mode") == "wal"
        assert await db.fetch_value("PRAGMA synchronous") == 2  # FULL unless asked otherwise
    finally:
        await db.close()


@pytest.mark.postgres
async def test_unreachable_postgres_is_a_clear_error() -> None:
    with pytest.raises(StorageError, match="cannot connect to PostgreSQL"):
        await open_database("postgresql://nobody:secret@127.0.0.1:1/none")


# --- feeds and replicas ------------------------------------------------------------------------


async def test_feed_append_read_resume(db: Database, clock: FixedClock) -> None:
    feed = FeedLog(db)
    for i in range(7):
        entry = await feed.append("items", bytes([i]) * 16, "item-added", b"x%d" % i, clock.now())
        assert entry.seq == i + 1
    await feed.append("other", b"o" * 16, "k", b"", clock.now())
    assert await feed.head("items") == 7
    cursor, seen = 0, []
    while page := await feed.read("items", cursor, limit=3):
        seen.extend(e.payload for e in page)
        cursor = page[-1].seq
    assert seen == [b"x%d" % i for i in range(7)]
    assert await feed.read("items", 7) == []


async def test_feed_append_is_idempotent(db: Database, clock: FixedClock) -> None:
    feed = FeedLog(db)
    first = await feed.append("items", b"id-1", "item-added", b"p", clock.now())
    again = await feed.append("items", b"id-1", "item-added", b"p", clock.now() + 5)
    assert again == first
    assert await feed.head("items") == 1
    with pytest.raises(FeedConflictError):
        await feed.append("items", b"id-1", "item-added", b"different", clock.now())
    assert await feed.head("items") == 1


BAD_APPENDS: list[tuple[Any, ...]] = [
    ("", b"id", "k", b""),
    ("items", b"", "k", b""),
    ("items", "not-bytes", "k", b""),
    ("items", b"x" * 65, "k", b""),
    ("items", b"id", "", b""),
    ("items", b"id", "k", b"x" * ((1 << 20) + 1)),
    (7, b"id", "k", b""),
]


async def test_feed_rejects_bad_input(db: Database, clock: FixedClock) -> None:
    for args in BAD_APPENDS:
        with pytest.raises(StorageValueError):
            await FeedLog(db).append(*args, clock.now())
    assert await _count(db, "feed_entries") == 0


async def test_replica_repull_never_duplicates(db: Database, clock: FixedClock) -> None:
    replicas = ReplicaStore(db)
    page = [FeedEntry("items", s, b"e%d" % s, "item-added", b"p", 0) for s in (1, 2, 3)]
    assert await replicas.cursor("peer-a", "items") == 0
    assert await replicas.store_pulled("peer-a", "items", page, 3, clock.now()) == 3
    # A node killed after storing but before acting re-pulls the same page: nothing doubles.
    assert await replicas.store_pulled("peer-a", "items", page, 3, clock.now()) == 0
    more = [*page[1:], FeedEntry("items", 4, b"e4", "item-withdrawn", b"q", 0)]
    assert await replicas.store_pulled("peer-a", "items", more, 4, clock.now()) == 1
    assert [e.seq for e in await replicas.entries("peer-a", "items")] == [1, 2, 3, 4]
    assert await replicas.cursor("peer-a", "items") == 4
    # The cursor never moves back, and peers are kept apart.
    await replicas.store_pulled("peer-a", "items", [], 2, clock.now())
    assert await replicas.cursor("peer-a", "items") == 4
    assert await replicas.cursor("peer-b", "items") == 0
    assert await replicas.entries("peer-b", "items") == []


async def test_replica_bad_page_changes_nothing(db: Database, clock: FixedClock) -> None:
    replicas = ReplicaStore(db)
    good = FeedEntry("items", 1, b"e1", "k", b"p", 0)
    beyond = FeedEntry("items", 9, b"e9", "k", b"p", 0)
    with pytest.raises(StorageValueError, match="beyond the new cursor"):
        await replicas.store_pulled("peer-a", "items", [good, beyond], 5, clock.now())
    with pytest.raises(StorageValueError):
        await replicas.store_pulled("peer-a", "items", [good, "junk"], 5, clock.now())  # type: ignore[list-item]
    assert await replicas.cursor("peer-a", "items") == 0
    assert await _count(db, "replica_entries") == 0


# --- outbox ------------------------------------------------------------------------------------


async def test_outbox_delivery_and_idempotent_enqueue(db: Database, clock: FixedClock) -> None:
    outbox = Outbox(db)
    assert await outbox.enqueue(b"m1", "peer-a", "feedback", b"body", clock.now())
    assert not await outbox.enqueue(b"m1", "peer-a", "feedback", b"body", clock.now())
    claimed = await outbox.claim_due(clock.now())
    assert [m.message_id for m in claimed] == [b"m1"]
    assert claimed[0].attempts == 1
    # Leased: a second worker claims nothing until the lease lapses.
    assert await outbox.claim_due(clock.now()) == []
    assert await outbox.mark_delivered(b"m1", clock.now())
    assert await outbox.count("delivered") == 1
    clock.advance(10_000)
    assert await outbox.claim_due(clock.now()) == []


async def test_outbox_lease_lapses_after_a_crash(db: Database, clock: FixedClock) -> None:
    outbox = Outbox(db, RetryPolicy(lease=60))
    await outbox.enqueue(b"m1", "peer-a", "k", b"", clock.now())
    assert len(await outbox.claim_due(clock.now())) == 1
    # The worker dies without reporting; after the lease the message comes back.
    clock.advance(59)
    assert await outbox.claim_due(clock.now()) == []
    clock.advance(1)
    again = await outbox.claim_due(clock.now())
    assert [m.attempts for m in again] == [2]


async def test_outbox_backoff_then_dead_letter(db: Database, clock: FixedClock) -> None:
    policy = RetryPolicy(base_delay=10, max_delay=60, max_attempts=4, jitter=0.5, lease=5)
    outbox = Outbox(db, policy)
    rng = random.Random(7)
    await outbox.enqueue(b"m1", "peer-a", "k", b"", clock.now())
    delays = []
    for attempt in range(1, 4):
        (message,) = await outbox.claim_due(clock.now())
        assert message.attempts == attempt
        retried = await outbox.schedule_retry(b"m1", "connection refused", clock.now(), rng)
        assert retried.state == "pending"
        assert retried.last_error == "connection refused"
        delay = retried.next_attempt_at - clock.now()
        delays.append(delay)
        nominal = min(60, 10 * 2 ** (attempt - 1))
        assert nominal * 0.5 <= delay <= nominal
        clock.advance(delay - 1)
        assert await outbox.claim_due(clock.now()) == []
        clock.advance(1)
    expected = [RetryPolicy.delay(policy, a, random.Random(7)) for a in (1,)]
    assert delays[0] == expected[0]
    (message,) = await outbox.claim_due(clock.now())
    dead = await outbox.schedule_retry(b"m1", "still refused", clock.now(), rng)
    assert dead.state == "dead"
    assert await outbox.count("dead") == 1
    clock.advance(10**6)
    assert await outbox.claim_due(clock.now()) == []
    assert await outbox.requeue_dead(b"m1", clock.now())
    assert len(await outbox.claim_due(clock.now())) == 1


async def test_outbox_claims_in_due_order_and_respects_limit(
    db: Database, clock: FixedClock
) -> None:
    outbox = Outbox(db)
    for i in range(5):
        await outbox.enqueue(b"m%d" % i, "peer-a", "k", b"", clock.now() + i)
    clock.advance(10)
    first = await outbox.claim_due(clock.now(), limit=2)
    assert [m.message_id for m in first] == [b"m0", b"m1"]
    rest = await outbox.claim_due(clock.now(), limit=10)
    assert [m.message_id for m in rest] == [b"m2", b"m3", b"m4"]


async def test_outbox_rejects_bad_input(db: Database, clock: FixedClock) -> None:
    outbox = Outbox(db)
    with pytest.raises(StorageValueError):
        await outbox.enqueue("m1", "peer-a", "k", b"", clock.now())  # type: ignore[arg-type]
    with pytest.raises(StorageValueError):
        await outbox.enqueue(b"m1", "peer-a", "k", b"", -1)
    with pytest.raises(StorageValueError):
        await outbox.schedule_retry(b"unknown", "e", clock.now(), random.Random(1))
    assert await _count(db, "outbox") == 0


# --- nonces ------------------------------------------------------------------------------------


async def test_nonce_replay_is_refused(db: Database, clock: FixedClock) -> None:
    nonces = NonceStore(db)
    now = clock.now()
    assert await nonces.remember("peer-a", b"n" * 16, now + 600, now)
    assert not await nonces.remember("peer-a", b"n" * 16, now + 600, now)
    assert await nonces.remember("peer-b", b"n" * 16, now + 600, now)  # per sender
    # Racing duplicates: exactly one wins.
    results = await asyncio.gather(
        *(nonces.remember("peer-c", b"r" * 16, now + 600, now) for _ in range(10))
    )
    assert results.count(True) == 1


async def test_nonce_pruning(db: Database, clock: FixedClock) -> None:
    nonces = NonceStore(db)
    now = clock.now()
    await nonces.remember("peer-a", b"old", now + 10, now)
    await nonces.remember("peer-a", b"new", now + 1000, now)
    assert await nonces.prune(now + 10) == 1
    assert not await nonces.remember("peer-a", b"new", now + 2000, now + 10)
    assert await _count(db, "seen_nonces") == 1


async def test_nonce_expired_row_is_reused(db: Database, clock: FixedClock) -> None:
    nonces = NonceStore(db)
    now = clock.now()
    assert await nonces.remember("peer-a", b"n", now + 10, now)
    assert await nonces.remember("peer-a", b"n", now + 100, now + 10)
    assert not await nonces.remember("peer-a", b"n", now + 200, now + 50)


# --- budgets -----------------------------------------------------------------------------------


async def test_budget_refused_charge_changes_nothing(db: Database, clock: FixedClock) -> None:
    ledger = BudgetLedger(db)
    limits = BudgetLimits(per_hour=10, per_day=15)
    now = clock.now()
    assert await ledger.charge("peer-a", 6, now, limits)
    assert not await ledger.charge("peer-a", 5, now, limits)  # hour would be 11
    assert await ledger.usage("peer-a", now) == {"hour": 6, "day": 6}
    assert await ledger.charge("peer-a", 4, now, limits)
    assert await ledger.usage("peer-a", now) == {"hour": 10, "day": 10}
    later = now + 3600
    # New hour window; the day window (15) now refuses 6 but allows 5.
    assert not await ledger.charge("peer-a", 6, later, limits)
    assert await ledger.usage("peer-a", later) == {"hour": 0, "day": 10}
    assert await _count(db, "budget_usage") == 2  # the new hour's row was undone, not left at 0
    assert await ledger.charge("peer-a", 5, later, limits)
    assert await ledger.usage("peer-a", later) == {"hour": 5, "day": 15}
    assert not await ledger.charge("peer-a", 1, later, limits)
    assert not await ledger.charge("peer-a", 11, now + 86400 * 3, limits)  # over any window


async def test_budget_concurrent_charges_never_overspend(db: Database, clock: FixedClock) -> None:
    ledger = BudgetLedger(db)
    limits = BudgetLimits(per_hour=7, per_day=100)
    results = await asyncio.gather(
        *(ledger.charge("peer-a", 1, clock.now(), limits) for _ in range(20))
    )
    assert results.count(True) == 7
    assert (await ledger.usage("peer-a", clock.now()))["hour"] == 7


async def test_budget_prune_and_bad_input(db: Database, clock: FixedClock) -> None:
    ledger = BudgetLedger(db)
    limits = BudgetLimits(per_hour=5, per_day=50)
    await ledger.charge("peer-a", 1, clock.now(), limits)
    assert await ledger.prune(clock.now() + 86400 * 2) == 2
    for bad_n in (0, -1, True, 1.5):
        with pytest.raises(StorageValueError):
            await ledger.charge("peer-a", bad_n, clock.now(), limits)  # type: ignore[arg-type]
    assert await _count(db, "budget_usage") == 0


# --- node state --------------------------------------------------------------------------------


async def test_node_state_roundtrip(db: Database, clock: FixedClock) -> None:
    state = NodeState(db)
    assert await state.get("node.id") is None
    await state.set("node.id", b"abc", clock.now())
    await state.set("node.id", b"def", clock.now())
    await state.set("node.other", b"", clock.now())
    assert await state.get("node.id") == b"def"
    assert await state.get("node.other") == b""
    assert await state.keys("node.") == ["node.id", "node.other"]
    assert await state.delete("node.id")
    assert await state.get("node.id") is None


async def test_appended_migrations_apply_in_order(db: Database, clock: FixedClock) -> None:
    from blindmatch.node.storage.migrations import Migration, apply_migrations

    extra = Migration(
        len(MIGRATIONS) + 1,
        "test: an appended table",
        ("CREATE TABLE extra_things (id {ID}, blob {BLOB} NOT NULL)",),
    )
    assert await apply_migrations(db, clock.now(), (*MIGRATIONS, extra)) == [extra.version]
    assert await apply_migrations(db, clock.now(), (*MIGRATIONS, extra)) == []
    # Opening with only the base migrations (as `blindmatch bank` does) still works.
    assert await db.migrate(clock.now()) == []
    await db.execute("INSERT INTO extra_things (blob) VALUES (?)", b"x")
    assert await db.fetch_value("SELECT COUNT(*) FROM extra_things") == 1
    with pytest.raises(RuntimeError, match="in order"):
        await apply_migrations(db, clock.now(), (extra,))


async def test_sqlite_reads_do_not_wait_for_a_writer(tmp_path, clock: FixedClock) -> None:
    db = await open_database(f"sqlite:///{tmp_path / 'n.db'}", migrate_now=clock.now())
    state = NodeState(db)
    try:
        await state.set("k", b"committed", clock.now())
        inside, release = asyncio.Event(), asyncio.Event()

        async def long_writer() -> None:
            async with db.transaction():
                await state.set("k", b"uncommitted", clock.now())
                inside.set()
                await release.wait()

        writer = asyncio.create_task(long_writer())
        await inside.wait()
        # Read from another task while the write transaction is open: the last committed value.
        assert await asyncio.wait_for(state.get("k"), timeout=5) == b"committed"
        release.set()
        await writer
        assert await state.get("k") == b"uncommitted"
    finally:
        await db.close()


async def test_two_workers_never_claim_the_same_message(db_url: str, clock: FixedClock) -> None:
    first = await open_database(db_url, migrate_now=clock.now())
    second = await open_database(db_url)
    try:
        for i in range(40):
            await Outbox(first).enqueue(b"m%02d" % i, "peer-a", "k", b"", clock.now())
        claims = await asyncio.gather(
            *(Outbox(handle).claim_due(clock.now(), limit=7) for handle in (first, second) * 4)
        )
        claimed = [m.message_id for batch in claims for m in batch]
        assert len(claimed) == len(set(claimed)) == 40
    finally:
        await first.close()
        await second.close()


async def test_task_spawned_inside_a_transaction_does_not_join_it(
    db: Database, clock: FixedClock
) -> None:
    state = NodeState(db)
    release = asyncio.Event()

    async def later_writer() -> None:
        await release.wait()
        await state.set("child", b"1", clock.now())

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        async with db.transaction():
            await state.set("parent", b"1", clock.now())
            child = asyncio.create_task(later_writer())
            raise Abort
    release.set()
    await child  # runs after the parent's transaction ended: a plain autocommit write
    assert await state.get("parent") is None
    assert await state.get("child") == b"1"

    async with db.transaction():
        spawned = asyncio.create_task(state.set("during", b"1", clock.now()))
        if db.dialect.name == "sqlite":
            # One writer: waiting for the parent would deadlock, so it fails loudly instead.
            with pytest.raises(StorageError, match="started inside a transaction"):
                await spawned
        else:
            await spawned  # its own connection and its own (committed) transaction
    expected = None if db.dialect.name == "sqlite" else b"1"
    assert await state.get("during") == expected


async def test_feed_append_many(db: Database, clock: FixedClock) -> None:
    feed = FeedLog(db)
    await feed.append("items", b"a", "k", b"1", clock.now())
    batch = [(b"b", "k", b"2"), (b"a", "k", b"1"), (b"c", "k", b"3"), (b"b", "k", b"2")]
    result = await feed.append_many("items", batch, clock.now())
    assert [e.seq for e in result] == [2, 1, 3, 2]
    assert [e.payload for e in await feed.read("items")] == [b"1", b"2", b"3"]
    with pytest.raises(FeedConflictError):
        await feed.append_many("items", [(b"d", "k", b"4"), (b"a", "k", b"x")], clock.now())
    with pytest.raises(StorageValueError):
        await feed.append_many("items", [(b"e", "k")], clock.now())  # type: ignore[list-item]
    assert await feed.head("items") == 3
    assert await feed.append_many("items", [], clock.now()) == []
