"""Schema for the federation layer: what the node has published, and match jobs and results.

Appended to the storage migrations (see ``node/storage/migrations.py``); written once for
both engines in the shared SQL spelling.
"""

from __future__ import annotations

from blindmatch.node.storage.migrations import Migration

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
