"""Versioned schema migrations, written once for both engines.

Each migration is a list of statements in the shared SQL spelling (see ``database.py``).
``apply_migrations`` applies the missing ones in version order, each in its own transaction
together with its row in ``schema_migrations``, under a lock so two workers starting at once
cannot both apply the same migration. Running it again changes nothing.

Never edit a migration that has shipped; add a new one.
"""

from __future__ import annotations

import importlib
import pkgutil
import weakref

from blindmatch.node.storage import signal_tables
from blindmatch.node.storage.database import MIGRATIONS_LOCK, Database, Migration, apply_migrations
from blindmatch.protocol.messages import PROVENANCE_CLASSES

__all__ = ["MIGRATIONS", "TRANSPARENCY_SCHEMA", "Migration", "apply_migrations"]

_PROVENANCE_CHECK = ", ".join(f"'{p}'" for p in PROVENANCE_CLASSES)

INITIAL_SCHEMA = Migration(
    1,
    "initial schema: banks, bank items, feeds, replicas, outbox, nonces, budgets, node state",
    (
        # Named banks of hashes. categories is a JSON array of labels.
        f"""
        CREATE TABLE banks (
            id                 {{ID}},
            name               TEXT NOT NULL UNIQUE,
            description        TEXT NOT NULL DEFAULT '',
            provenance         TEXT NOT NULL CHECK (provenance IN ({_PROVENANCE_CHECK})),
            categories         TEXT NOT NULL DEFAULT '[]',
            distance_threshold BIGINT NOT NULL DEFAULT 31
                               CHECK (distance_threshold BETWEEN 0 AND 63),
            enabled            BIGINT NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
            shared             BIGINT NOT NULL DEFAULT 0 CHECK (shared IN (0, 1)),
            created_at         BIGINT NOT NULL,
            updated_at         BIGINT NOT NULL
        )""",
        # One hash in one bank. The raw hash never leaves the node; item_ref (16 random bytes)
        # is what peers see. withdrawal_secret_hash is a hash of the survivor's secret, never
        # the secret. A withdrawn row stays as a tombstone so the hash cannot silently return.
        """
        CREATE TABLE bank_items (
            id                     {ID},
            bank_id                BIGINT NOT NULL REFERENCES banks (id) ON DELETE CASCADE,
            signal_type            TEXT NOT NULL,
            hash                   {BLOB} NOT NULL,
            quality                BIGINT CHECK (quality IS NULL OR quality BETWEEN 0 AND 100),
            item_ref               {BLOB} NOT NULL UNIQUE,
            provenance             TEXT NOT NULL DEFAULT '{}',
            categories             TEXT NOT NULL DEFAULT '[]',
            source                 TEXT NOT NULL DEFAULT 'local',
            added_at               BIGINT NOT NULL,
            expires_at             BIGINT,
            withdrawn_at           BIGINT,
            withdrawal_reason      TEXT,
            withdrawal_secret_hash {BLOB},
            UNIQUE (bank_id, signal_type, hash)
        )""",
        # The matcher reads the live items of one bank and signal type, in id order.
        """
        CREATE INDEX bank_items_live ON bank_items (bank_id, signal_type, id)
            WHERE withdrawn_at IS NULL""",
        # Append-only change feeds, read as "seq > cursor LIMIT n". seq is contiguous per feed
        # (assigned under a per-feed lock), so a reader never skips an entry committed late.
        """
        CREATE TABLE feed_entries (
            feed       TEXT NOT NULL,
            seq        BIGINT NOT NULL,
            entry_id   {BLOB} NOT NULL,
            kind       TEXT NOT NULL,
            payload    {BLOB} NOT NULL,
            created_at BIGINT NOT NULL,
            PRIMARY KEY (feed, seq),
            UNIQUE (feed, entry_id)
        )""",
        # How far we have pulled each peer's feeds.
        """
        CREATE TABLE peer_cursors (
            peer_id    TEXT NOT NULL,
            feed       TEXT NOT NULL,
            cursor     BIGINT NOT NULL DEFAULT 0 CHECK (cursor >= 0),
            updated_at BIGINT NOT NULL,
            PRIMARY KEY (peer_id, feed)
        )""",
        # What we pulled; re-pulling the same entries inserts nothing.
        """
        CREATE TABLE replica_entries (
            peer_id     TEXT NOT NULL,
            feed        TEXT NOT NULL,
            seq         BIGINT NOT NULL,
            entry_id    {BLOB} NOT NULL,
            kind        TEXT NOT NULL,
            payload     {BLOB} NOT NULL,
            received_at BIGINT NOT NULL,
            PRIMARY KEY (peer_id, feed, seq),
            UNIQUE (peer_id, feed, entry_id)
        )""",
        # Messages to peers, delivered at least once with backoff; the receiver deduplicates
        # by message_id.
        """
        CREATE TABLE outbox (
            message_id      {BLOB} PRIMARY KEY,
            peer_id         TEXT NOT NULL,
            kind            TEXT NOT NULL,
            payload         {BLOB} NOT NULL,
            attempts        BIGINT NOT NULL DEFAULT 0,
            next_attempt_at BIGINT NOT NULL,
            state           TEXT NOT NULL DEFAULT 'pending'
                            CHECK (state IN ('pending', 'delivered', 'dead')),
            last_error      TEXT,
            created_at      BIGINT NOT NULL,
            updated_at      BIGINT NOT NULL
        )""",
        """
        CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'pending'""",
        # Replay protection: the primary key makes "first time seen?" one atomic insert.
        """
        CREATE TABLE seen_nonces (
            sender_id  TEXT NOT NULL,
            nonce      {BLOB} NOT NULL,
            expires_at BIGINT NOT NULL,
            PRIMARY KEY (sender_id, nonce)
        )""",
        """
        CREATE INDEX seen_nonces_expiry ON seen_nonces (expires_at)""",
        # Per-peer query budgets in fixed hour and day windows.
        """
        CREATE TABLE budget_usage (
            peer_id      TEXT NOT NULL,
            window_kind  TEXT NOT NULL CHECK (window_kind IN ('hour', 'day')),
            window_start BIGINT NOT NULL,
            used         BIGINT NOT NULL CHECK (used >= 0),
            PRIMARY KEY (peer_id, window_kind, window_start)
        )""",
        # Small settings and state (node id, keys' public halves, ...).
        """
        CREATE TABLE node_state (
            key        TEXT PRIMARY KEY,
            value      {BLOB} NOT NULL,
            updated_at BIGINT NOT NULL
        )""",
    ),
)

# The federation layer (node/node.py): what the node has published, match jobs and results.
FEDERATION_SCHEMA = Migration(
    2,
    "federation: index publications, match jobs, match results",
    (
        # One row per item whose entries are in the published index, with the exact entries,
        # so that a later index.remove names them byte for byte.
        """
        CREATE TABLE index_publications (
            item_ref     {BLOB} PRIMARY KEY,
            scheme       TEXT NOT NULL,
            key_id       {BLOB} NOT NULL,
            entries      {BLOB} NOT NULL,
            published_at BIGINT NOT NULL
        )""",
        # A platform's match request. queries holds the query hashes and float vectors (local
        # only: this table never leaves the node).
        """
        CREATE TABLE match_jobs (
            id           {ID},
            job_ref      {BLOB} NOT NULL UNIQUE,
            submitted_at BIGINT NOT NULL,
            source       TEXT NOT NULL DEFAULT 'api',
            queries      {BLOB} NOT NULL,
            peers_total  BIGINT NOT NULL,
            peers_done   BIGINT NOT NULL DEFAULT 0,
            completed_at BIGINT
        )""",
        """
        CREATE TABLE match_results (
            id           {ID},
            job_ref      {BLOB} NOT NULL REFERENCES match_jobs (job_ref) ON DELETE CASCADE,
            peer_id      TEXT NOT NULL,
            item_ref     {BLOB} NOT NULL,
            query_index  BIGINT NOT NULL,
            variant      TEXT NOT NULL,
            band         BIGINT NOT NULL,
            release      TEXT NOT NULL DEFAULT '{}',
            confirmed_at BIGINT NOT NULL,
            UNIQUE (job_ref, peer_id, item_ref, query_index)
        )""",
        # Per-peer progress and traffic of a job, for status and the demo's byte counts.
        """
        CREATE TABLE match_tasks (
            job_ref        {BLOB} NOT NULL REFERENCES match_jobs (job_ref) ON DELETE CASCADE,
            peer_id        TEXT NOT NULL,
            state          TEXT NOT NULL DEFAULT 'pending'
                           CHECK (state IN ('pending', 'done', 'failed')),
            probes         BIGINT NOT NULL DEFAULT 0,
            candidates     BIGINT NOT NULL DEFAULT 0,
            bytes_sent     BIGINT NOT NULL DEFAULT 0,
            bytes_received BIGINT NOT NULL DEFAULT 0,
            last_error     TEXT,
            updated_at     BIGINT NOT NULL,
            PRIMARY KEY (job_ref, peer_id)
        )""",
    ),
)

# Decisions (node/cases/decisions.py): cases, their history, feedback records, match rates,
# reviewers and their sessions, and the uploads reviewers look at.
DECISIONS_SCHEMA = Migration(
    3,
    "decisions: cases, case events, feedback records, item match counts, reviewers, media",
    (
        "ALTER TABLE match_jobs ADD COLUMN content_ref TEXT",
        "ALTER TABLE match_jobs ADD COLUMN cases_opened BIGINT NOT NULL DEFAULT 0",
        """
        CREATE TABLE cases (
            id             {ID},
            case_ref       {BLOB} NOT NULL UNIQUE,
            content_ref    TEXT NOT NULL,
            job_ref        {BLOB},
            source         TEXT NOT NULL CHECK (source IN ('peer', 'local')),
            holder         TEXT NOT NULL,
            item_ref       {BLOB} NOT NULL,
            band           BIGINT NOT NULL,
            variant        TEXT NOT NULL,
            release        TEXT NOT NULL DEFAULT '{}',
            state          TEXT NOT NULL CHECK (state IN
                           ('queued', 'quarantined', 'escalated', 'actioned', 'dismissed',
                            'closed')),
            priority       BIGINT NOT NULL,
            decided_by     TEXT,
            reason         TEXT,
            decided_at     BIGINT,
            appeal         TEXT CHECK (appeal IS NULL OR appeal IN ('open', 'upheld', 'denied')),
            needs_rereview BIGINT NOT NULL DEFAULT 0,
            created_at     BIGINT NOT NULL,
            updated_at     BIGINT NOT NULL,
            UNIQUE (content_ref, holder, item_ref)
        )""",
        "CREATE INDEX cases_queue ON cases (state, needs_rereview, priority)",
        "CREATE INDEX cases_item ON cases (holder, item_ref)",
        """
        CREATE TABLE case_events (
            id       {ID},
            case_ref {BLOB} NOT NULL REFERENCES cases (case_ref) ON DELETE CASCADE,
            at       BIGINT NOT NULL,
            actor    TEXT NOT NULL,
            event    TEXT NOT NULL,
            detail   TEXT NOT NULL DEFAULT '{}'
        )""",
        # Verified, signed feedback records (ours and replicated), idempotent by record id.
        """
        CREATE TABLE feedback_records (
            record_id   {BLOB} PRIMARY KEY,
            origin      TEXT NOT NULL,
            holder      TEXT NOT NULL,
            item_ref    {BLOB} NOT NULL,
            opinion     TEXT NOT NULL,
            at_ms       BIGINT NOT NULL,
            record      {BLOB} NOT NULL,
            received_at BIGINT NOT NULL
        )""",
        "CREATE INDEX feedback_item ON feedback_records (holder, item_ref)",
        """
        CREATE TABLE item_match_counts (
            holder       TEXT NOT NULL,
            item_ref     {BLOB} NOT NULL,
            window_start BIGINT NOT NULL,
            matches      BIGINT NOT NULL,
            PRIMARY KEY (holder, item_ref, window_start)
        )""",
        """
        CREATE TABLE reviewers (
            reviewer_id   TEXT PRIMARY KEY,
            role          TEXT NOT NULL CHECK (role IN ('reviewer', 'admin', 'auditor')),
            password_hash TEXT NOT NULL,
            disabled      BIGINT NOT NULL DEFAULT 0,
            created_at    BIGINT NOT NULL
        )""",
        """
        CREATE TABLE reviewer_sessions (
            token_hash  {BLOB} PRIMARY KEY,
            reviewer_id TEXT NOT NULL REFERENCES reviewers (reviewer_id) ON DELETE CASCADE,
            csrf_token  TEXT NOT NULL,
            expires_at  BIGINT NOT NULL
        )""",
        # The platform's upload, kept only for review (blurred until a reviewer reveals it).
        """
        CREATE TABLE case_media (
            content_ref  TEXT PRIMARY KEY,
            media        {BLOB} NOT NULL,
            content_type TEXT NOT NULL,
            stored_at    BIGINT NOT NULL
        )""",
    ),
)

# The verifiable log (specs/transparency.md) and the node's watch over peers' logs
# (node/translog/). The statements are idempotent (CREATE ... IF NOT EXISTS), so
# ensure_transparency_tables can run them on a database that was never migrated (an auditor
# reading a copy), and the migration changes nothing on one that already has the tables.
_TRANSPARENCY_STATEMENTS: tuple[str, ...] = (
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

TRANSPARENCY_SCHEMA = Migration(
    4,
    "transparency: log entries, signed tree heads, traffic counters, peers' tree heads",
    _TRANSPARENCY_STATEMENTS,
)

# Protected sources (specs/derivatives.md): a source is an ordinary pdq item of a
# protected-source bank; its tile hashes hang off it and live and die with it, so withdrawing
# the source takes every tile out of the index in the same reconcile.
PROTECTED_SOURCES_SCHEMA = Migration(
    5,
    "protected sources: tile hashes of pdq-tiles-1 and their group references; pending cases",
    (
        # grp is released to queriers with every tile (8 random bytes, never derived from a
        # hash); source_cells is the mask of the source's quality cells in frame 0.
        """
        CREATE TABLE protected_sources (
            source_id    BIGINT PRIMARY KEY REFERENCES bank_items (id) ON DELETE CASCADE,
            scheme       TEXT NOT NULL,
            grp          {BLOB} NOT NULL UNIQUE,
            source_cells BIGINT NOT NULL
        )""",
        # One tile hash: its own item_ref (what a querier's candidate names), its cell and frame.
        """
        CREATE TABLE source_tiles (
            id        {ID},
            source_id BIGINT NOT NULL REFERENCES protected_sources (source_id) ON DELETE CASCADE,
            cell      TEXT NOT NULL,
            frame     BIGINT NOT NULL,
            hash      {BLOB} NOT NULL,
            quality   BIGINT NOT NULL CHECK (quality BETWEEN 0 AND 100),
            item_ref  {BLOB} NOT NULL UNIQUE,
            UNIQUE (source_id, cell, frame)
        )""",
        "CREATE INDEX source_tiles_source ON source_tiles (source_id)",
        # Finished jobs whose cases are not opened yet (a crash between the two): the matcher
        # sweeps them, so a match never goes without its case.
        """
        CREATE INDEX match_jobs_cases_pending ON match_jobs (id)
            WHERE cases_opened = 0 AND content_ref IS NOT NULL AND completed_at IS NOT NULL""",
    ),
)

# Jobs that end and say what they covered: each peer's part records the replica position
# (index-feed cursor) it ran against, and a job ends complete, dead-lettered (a peer's part
# ran out of attempts, or the job cannot be run) or cancelled, with the reason.
RELIABILITY_SCHEMA = Migration(
    6,
    "reliability: the replica cursor of each peer's part; a job's end state and reason",
    (
        "ALTER TABLE match_tasks ADD COLUMN replica_cursor BIGINT",
        "ALTER TABLE match_jobs ADD COLUMN state TEXT NOT NULL DEFAULT 'running'"
        " CHECK (state IN ('running', 'complete', 'dead-lettered', 'cancelled'))",
        "ALTER TABLE match_jobs ADD COLUMN ended_reason TEXT",
        "UPDATE match_jobs SET state = 'complete' WHERE completed_at IS NOT NULL",
    ),
)

# Context on uploads and repeat-uploader signals (specs/uploaders.md). An upload's context is
# the platform's and stays here: no column of it is ever sent to a peer. Identifier digests are
# inside ``context`` (JSON), used only blinded.
UPLOADER_CONTEXT_SCHEMA = Migration(
    8,
    "upload context and repeat-uploader signals: context per upload, case signals, candidates,"
    " tags, publications (sent and kept), the keeper feed replica",
    (
        """
        CREATE TABLE upload_context (
            content_ref  TEXT PRIMARY KEY,
            uploader_ref TEXT,
            context      TEXT NOT NULL,
            created_at   BIGINT NOT NULL
        )""",
        "CREATE INDEX upload_context_uploader ON upload_context (uploader_ref)",
        # What the node computed for the case (recidivism, known elsewhere, the signals that
        # moved its priority), JSON; shown to reviewers, counted in the transparency report.
        "ALTER TABLE cases ADD COLUMN signals TEXT NOT NULL DEFAULT '{}'",
        # Holder: the last threshold query of a peer naming one of our items.
        """
        CREATE TABLE uploader_candidates (
            peer_id  TEXT NOT NULL,
            item_ref {BLOB} NOT NULL,
            at       BIGINT NOT NULL,
            PRIMARY KEY (peer_id, item_ref)
        )""",
        # Reader and publisher: the tags computed for a case's uploader.
        """
        CREATE TABLE case_uploader_tags (
            case_ref {BLOB} NOT NULL REFERENCES cases (case_ref) ON DELETE CASCADE,
            tag      {BLOB} NOT NULL,
            holder   TEXT NOT NULL,
            PRIMARY KEY (case_ref, tag)
        )""",
        "CREATE INDEX case_uploader_tags_tag ON case_uploader_tags (tag)",
        # Publisher: what we published to the keeper, per case.
        """
        CREATE TABLE uploader_publications_out (
            publication {BLOB} PRIMARY KEY,
            case_ref    {BLOB} NOT NULL,
            keeper      TEXT NOT NULL,
            state       TEXT NOT NULL CHECK (state IN ('published', 'withdrawn')),
            at          BIGINT NOT NULL
        )""",
        "CREATE INDEX uploader_publications_out_case ON uploader_publications_out (case_ref)",
        # Keeper: publications received (the publisher is known here, never in the feed).
        """
        CREATE TABLE uploader_publications (
            publication  {BLOB} PRIMARY KEY,
            origin       TEXT NOT NULL,
            holder       TEXT NOT NULL,
            item_ref     {BLOB} NOT NULL,
            confirm      {BLOB} NOT NULL UNIQUE,
            tags         {BLOB} NOT NULL,
            expires_ms   BIGINT NOT NULL,
            created_at   BIGINT NOT NULL,
            withdrawn_at BIGINT
        )""",
        # The log's traffic counters also count uploader-signal evaluations (two stages).
        """
        CREATE TABLE log_counters_v8 (
            peer_id         TEXT NOT NULL,
            counter         TEXT NOT NULL CHECK (counter IN
                            ('queries', 'evaluations', 'uploader-holder', 'uploader-keeper')),
            direction       TEXT NOT NULL CHECK (direction IN ('sent', 'received')),
            window_start_ms BIGINT NOT NULL,
            window_ms       BIGINT NOT NULL,
            messages        BIGINT NOT NULL DEFAULT 0,
            items           BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (peer_id, counter, direction, window_start_ms, window_ms)
        )""",
        "INSERT INTO log_counters_v8 SELECT peer_id, counter, direction, window_start_ms,"
        " window_ms, messages, items FROM log_counters",
        "DROP TABLE log_counters",
        "ALTER TABLE log_counters_v8 RENAME TO log_counters",
        # Reader: the keeper's live tags, as replicated.
        """
        CREATE TABLE uploader_signals (
            keeper     TEXT NOT NULL,
            tag        {BLOB} NOT NULL,
            expires_ms BIGINT NOT NULL,
            PRIMARY KEY (keeper, tag)
        )""",
    ),
)

# The VOPRF key's lifetime (spec 8.2, 8.4): evaluations answered per key.
KEY_LIFETIME_SCHEMA = Migration(
    9,
    "key lifetime: evaluations answered per VOPRF key",
    (
        """
        CREATE TABLE voprf_key_usage (
            key_id      {BLOB} PRIMARY KEY,
            evaluations BIGINT NOT NULL DEFAULT 0 CHECK (evaluations >= 0),
            created_at  BIGINT NOT NULL
        )""",
    ),
)

# Automatic rotation (spec 8.4): a publication row per (item, key), as the index is published
# under the current key and its successor; a retired key answers until retire_at.
KEY_ROTATION_SCHEMA = Migration(
    10,
    "key rotation: index publications per item and key; when a retired key stops answering",
    (
        "ALTER TABLE voprf_key_usage ADD COLUMN retire_at BIGINT",
        "CREATE TABLE index_publications_by_key (item_ref {BLOB} NOT NULL, scheme TEXT NOT NULL,"
        " key_id {BLOB} NOT NULL, entries {BLOB} NOT NULL, published_at BIGINT NOT NULL,"
        " PRIMARY KEY (item_ref, key_id))",
        "INSERT INTO index_publications_by_key SELECT item_ref, scheme, key_id, entries,"
        " published_at FROM index_publications",
        "DROP TABLE index_publications",
        "ALTER TABLE index_publications_by_key RENAME TO index_publications",
    ),
)

# Scale-out (storage/processes.py): an outbox claim names its process, freed when it dies.
LEASED_BY = ("ALTER TABLE outbox ADD COLUMN leased_by TEXT",)
PROCESSES_SCHEMA = Migration(11, "scale-out: outbox leases name their process", LEASED_BY)

_CORE: tuple[Migration, ...] = (
    INITIAL_SCHEMA,
    FEDERATION_SCHEMA,
    DECISIONS_SCHEMA,
    TRANSPARENCY_SCHEMA,
    PROTECTED_SOURCES_SCHEMA,
    RELIABILITY_SCHEMA,
    # 7: the signal-type adapters' tables (signal_tables/)
    UPLOADER_CONTEXT_SCHEMA,
    KEY_LIFETIME_SCHEMA,
    KEY_ROTATION_SCHEMA,
    PROCESSES_SCHEMA,
)


def _signal_tables() -> tuple[Migration, ...]:
    """The migrations of the tables signal types keep beside bank_items: each type's module
    in ``signal_tables/`` lists its own, numbered in the one sequence (a database records a
    version once, whoever declared it)."""
    out: list[Migration] = []
    for info in pkgutil.iter_modules(signal_tables.__path__):
        module = importlib.import_module(f"{signal_tables.__name__}.{info.name}")
        out.extend(module.MIGRATIONS)
    return tuple(out)


MIGRATIONS: tuple[Migration, ...] = tuple(sorted(_CORE + _signal_tables(), key=lambda m: m.version))


_ENSURED: weakref.WeakSet[Database] = weakref.WeakSet()


async def ensure_transparency_tables(db: Database) -> None:
    """Create the transparency tables if they are missing (idempotent; cheap after the first
    call), for a database that may not have been migrated."""
    if db in _ENSURED:
        return
    async with db.transaction():
        await db.lock(MIGRATIONS_LOCK)
        for statement in TRANSPARENCY_SCHEMA.statements:
            await db.execute(db.dialect.render(statement))
    _ENSURED.add(db)
