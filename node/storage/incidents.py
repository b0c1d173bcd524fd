"""Peer misbehaviour an operator must see: one row per incident in ``peer_log_incidents``.

The table is the one the log monitor already files forks and rollbacks in (created by the
transparency migration), so every incident about a peer is listed in one place, whatever found
it. Rows carry codes, positions and ids, never content (no hash, entry or key bytes).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from blindmatch.node.storage.database import Database
from blindmatch.node.storage.validation import check_int, check_text

MAX_DETAIL_CHARS = 2000


class PeerIncidents:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(
        self, peer_id: str, code: str, detail: str, evidence: Mapping[str, Any], now: int
    ) -> bool:
        """File an incident once: the same (peer, code, detail) again is not a new incident
        (a replica rebuilt at start-up meets the same bad entry again). True if it was new."""
        check_text("peer_id", peer_id)
        check_text("code", code)
        check_int("now", now)
        detail = str(detail)[:MAX_DETAIL_CHARS]
        async with self._db.transaction():
            seen = await self._db.fetch_value(
                "SELECT COUNT(*) FROM peer_log_incidents WHERE peer_id = ? AND code = ?"
                " AND detail = ?",
                peer_id, code, detail,
            )  # fmt: skip
            if seen:
                return False
            await self._db.execute(
                "INSERT INTO peer_log_incidents (peer_id, code, detail, evidence, detected_at)"
                " VALUES (?, ?, ?, ?, ?)",
                peer_id, code, detail, json.dumps(dict(evidence), sort_keys=True), now,
            )  # fmt: skip
        return True

    async def list(
        self, peer_id: str | None = None, code: str | None = None
    ) -> list[dict[str, Any]]:
        """Incidents, oldest first, optionally of one peer and/or one code."""
        where, params = [], []
        if peer_id is not None:
            where.append("peer_id = ?")
            params.append(peer_id)
        if code is not None:
            where.append("code = ?")
            params.append(code)
        rows = await self._db.fetch_all(
            "SELECT peer_id, code, detail, evidence, detected_at FROM peer_log_incidents"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY id",
            *params,
        )
        return [{**r, "evidence": json.loads(r["evidence"])} for r in rows]
