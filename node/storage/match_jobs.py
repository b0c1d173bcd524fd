"""Match jobs: a job's query hashes, its per-peer tasks and its confirmed matches.

A job is written with one task per holder in the transaction that queues the tasks' outbox
messages; a task is marked done with its matches in one transaction, so a job's peers count
(``peers_done``) moves exactly once per peer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np

from blindmatch.node.storage.database import Database, Row
from blindmatch.protocol.matching import QueryHash


@dataclass(frozen=True)
class MatchResult:
    peer: str
    item_ref: bytes
    query_index: int
    variant: str
    band: int
    release: dict[str, Any]


def _release_json(release: Any) -> str:
    """A holder's release as stored: JSON, with byte fields (a tile's ``group``) as hex."""
    return json.dumps(
        {k: v.hex() if isinstance(v, bytes) else v for k, v in dict(release).items()},
        sort_keys=True,
    )


def _pack_queries(queries: Sequence[QueryHash]) -> bytes:
    return msgpack.packb(
        [
            [
                q.hash,
                None
                if q.float_vector is None
                else np.asarray(q.float_vector, dtype="<f4").tobytes(),
                q.variant,
            ]
            for q in queries
        ],
        use_bin_type=True,
    )


class MatchJobStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        job_ref: bytes,
        queries: Sequence[QueryHash],
        peers: Sequence[str],
        source: str,
        content_ref: str | None,
        now: int,
    ) -> None:
        """A job and one pending task per peer (in the caller's transaction); a job with no
        peer is complete at once."""
        await self.db.execute(
            "INSERT INTO match_jobs (job_ref, submitted_at, source, queries, peers_total,"
            " peers_done, content_ref) VALUES (?, ?, ?, ?, ?, 0, ?)",
            job_ref, now, source, _pack_queries(queries), len(peers), content_ref,
        )  # fmt: skip
        for peer in peers:
            await self.db.execute(
                "INSERT INTO match_tasks (job_ref, peer_id, updated_at) VALUES (?, ?, ?)",
                job_ref, peer, now,
            )  # fmt: skip
        if not peers:
            await self.db.execute(
                "UPDATE match_jobs SET completed_at = ?, state = 'complete' WHERE job_ref = ?",
                now,
                job_ref,
            )

    async def queries(self, job_ref: bytes) -> list[QueryHash] | None:
        row = await self.db.fetch_one("SELECT queries FROM match_jobs WHERE job_ref = ?", job_ref)
        if row is None:
            return None
        out = []
        for h, fv, variant in msgpack.unpackb(bytes(row["queries"]), raw=False):
            floats = None if fv is None else np.frombuffer(fv, dtype="<f4").astype(np.float64)
            out.append(QueryHash(bytes(h), floats, variant))
        return out

    async def finish_task(
        self,
        job_ref: bytes,
        peer_id: str,
        matches: Sequence[MatchResult],
        *,
        probes: int,
        candidates: int,
        bytes_sent: int,
        bytes_received: int,
        replica_cursor: int,
        now: int,
    ) -> bool:
        """Store a task's matches and mark it done at the peer's replica position it ran at (in
        the caller's transaction); False if it was not pending any more (done, or given up)."""
        for m in matches:
            await self.db.execute(
                "INSERT INTO match_results (job_ref, peer_id, item_ref, query_index, variant,"
                " band, release, confirmed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                job_ref, m.peer, m.item_ref, m.query_index, m.variant, m.band,
                _release_json(m.release), now,
            )  # fmt: skip
        changed = await self.db.execute(
            "UPDATE match_tasks SET state = 'done', probes = ?, candidates = ?,"
            " bytes_sent = bytes_sent + ?, bytes_received = bytes_received + ?,"
            " last_error = NULL, replica_cursor = ?, updated_at = ? WHERE job_ref = ?"
            " AND peer_id = ? AND state = 'pending'",
            probes, candidates, bytes_sent, bytes_received, replica_cursor, now, job_ref,
            peer_id,
        )  # fmt: skip
        return bool(changed)

    async def count_peer_done(self, job_ref: bytes) -> None:
        """One more peer of the job is done (the job ledger settles its end)."""
        await self.db.execute(
            "UPDATE match_jobs SET peers_done = peers_done + 1 WHERE job_ref = ?", job_ref
        )

    async def is_complete(self, job_ref: bytes) -> bool:
        done = await self.db.fetch_value(
            "SELECT completed_at FROM match_jobs WHERE job_ref = ?", job_ref
        )
        return done is not None

    async def task_failed(self, job_ref: bytes, peer_id: str, code: str, now: int) -> None:
        await self.db.execute(
            "UPDATE match_tasks SET last_error = ?, updated_at = ? WHERE job_ref = ?"
            " AND peer_id = ? AND state = 'pending'",
            code, now, job_ref, peer_id,
        )  # fmt: skip

    async def job(self, job_ref: bytes) -> Row | None:
        return await self.db.fetch_one("SELECT * FROM match_jobs WHERE job_ref = ?", job_ref)

    async def results(self, job_ref: bytes) -> list[MatchResult]:
        rows = await self.db.fetch_all(
            "SELECT * FROM match_results WHERE job_ref = ? ORDER BY peer_id, query_index, band",
            job_ref,
        )
        return [
            MatchResult(
                peer=r["peer_id"],
                item_ref=bytes(r["item_ref"]),
                query_index=int(r["query_index"]),
                variant=r["variant"],
                band=int(r["band"]),
                release=json.loads(r["release"]),
            )
            for r in rows
        ]

    async def tasks(self, job_ref: bytes) -> list[dict[str, Any]]:
        rows = await self.db.fetch_all(
            "SELECT peer_id, state, probes, candidates, bytes_sent, bytes_received, last_error,"
            " replica_cursor FROM match_tasks WHERE job_ref = ? ORDER BY peer_id",
            job_ref,
        )
        return [dict(t) for t in rows]

    async def finished_without_cases(self, limit: int) -> list[bytes]:
        """Finished jobs of platform content whose cases are not opened yet (the node stopped
        between the job's last task and its cases)."""
        rows = await self.db.fetch_all(
            "SELECT job_ref FROM match_jobs WHERE cases_opened = 0 AND content_ref IS NOT NULL"
            " AND completed_at IS NOT NULL ORDER BY id LIMIT ?",
            limit,
        )
        return [bytes(r["job_ref"]) for r in rows]

    async def mark_cases_opened(self, job_ref: bytes) -> None:
        await self.db.execute("UPDATE match_jobs SET cases_opened = 1 WHERE job_ref = ?", job_ref)
