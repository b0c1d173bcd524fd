"""Tables of the node's verifiable log (specs/transparency.md) and of its watch over peers' logs.

The statements are idempotent (``CREATE ... IF NOT EXISTS``): :func:`ensure_schema` runs them
on any database, before or after :data:`TRANSPARENCY_SCHEMA` is registered in
``node/storage/migrations.py``, and registering the migration later changes nothing on a
database that already has the tables.
"""

from __future__ import annotations

import weakref

from blindmatch.node.storage.database import Database

STATEMENTS: tuple[str, ...] = (
    # The log: leaf i is row seq = i. ``entry`` is the canonical encoding (what is hashed);
    # ``leaf_hash`` is SHA-256(0x00 || entry) as computed when it was appended, kept so an
    # auditor can tell an altered entry from an altered hash (specs/transparency.md 8.2).
    """
    CREATE TABLE IF NOT EXISTS log_entries (
        seq        BIGINT PRIMARY KEY CHECK (seq >= 0),
        entry      {BLOB} NOT NULL,
        leaf_hash  {BLOB} NOT NULL,
        created_at BIGINT NOT NULL
    )""",
    # The newest head this node signed for each tree size (a later re-signing of the same
    # size, to show liveness, replaces the older one: same root, later timestamp).
    """
    CREATE TABLE IF NOT EXISTS log_tree_heads (
        tree_size    BIGINT PRIMARY KEY CHECK (tree_size >= 0),
        root         {BLOB} NOT NULL,
        timestamp_ms BIGINT NOT NULL,
        signature    {BLOB} NOT NULL,
        created_at   BIGINT NOT NULL
    )""",
    # Per-peer traffic counters of the current windows, flushed into query-counts and
    # evaluation-counts entries when a window ends (durable, so a restart loses no count).
    """
    CREATE TABLE IF NOT EXISTS log_counters (
        peer_id         TEXT NOT NULL,
        counter         TEXT NOT NULL CHECK (counter IN ('queries', 'evaluations')),
        direction       TEXT NOT NULL CHECK (direction IN ('sent', 'received')),
        window_start_ms BIGINT NOT NULL,
        window_ms       BIGINT NOT NULL,
        messages        BIGINT NOT NULL DEFAULT 0,
        items           BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (peer_id, counter, direction, window_start_ms, window_ms)
    )""",
    # Monitoring peers' logs: every head of a peer's log this node accepted (sth: its bytes).
    """
    CREATE TABLE IF NOT EXISTS peer_tree_heads (
        peer_id      TEXT NOT NULL,
        tree_size    BIGINT NOT NULL,
        root         {BLOB} NOT NULL,
        timestamp_ms BIGINT NOT NULL,
        sth          {BLOB} NOT NULL,
        seen_at      BIGINT NOT NULL,
        PRIMARY KEY (peer_id, tree_size)
    )""",
    # Misbehaviour found while monitoring: fork, rollback, bad signature, ... with the evidence
    # (the heads' bytes, hex, in a JSON map) so an operator can hand it to the federation.
    """
    CREATE TABLE IF NOT EXISTS peer_log_incidents (
        id          {ID},
        peer_id     TEXT NOT NULL,
        code        TEXT NOT NULL,
        detail      TEXT NOT NULL,
        evidence    TEXT NOT NULL DEFAULT '{}',
        detected_at BIGINT NOT NULL
    )""",
)

TRANSPARENCY_SCHEMA_NAME = (
    "transparency: log entries, signed tree heads, traffic counters, peers' tree heads"
)


def __getattr__(name: str) -> object:
    # The migration object lives in the one migration list (version 4); importing it from
    # here at module level would make the two modules import each other.
    if name == "TRANSPARENCY_SCHEMA":
        from blindmatch.node.storage.migrations import TRANSPARENCY_SCHEMA

        return TRANSPARENCY_SCHEMA
    raise AttributeError(name)


_ENSURED: weakref.WeakSet[Database] = weakref.WeakSet()


async def ensure_schema(db: Database) -> None:
    """Create the tables if they are missing (idempotent; cheap after the first call)."""
    if db in _ENSURED:
        return
    async with db.transaction():
        await db.lock("blindmatch:schema_migrations")
        for statement in STATEMENTS:
            await db.execute(db.dialect.render(statement))
    _ENSURED.add(db)
