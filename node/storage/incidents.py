"""Peer misbehaviour an operator must see: one row per incident in ``peer_log_incidents``.

The table is the one the log monitor already files forks and rollbacks in (created by the
transparency migration), so every incident about a peer is listed in one place, whatever found
it. Rows carry codes, positions and ids, never content (no hash, entry or key bytes).

Incidents are capped per peer (``limit``, spec 10.4): a peer that can make us file incidents
(bad entries, bad proofs, log faults) cannot grow the database with them. The last row a peer
gets says so (code ``incidents-capped``); what comes after is only counted (``on_dropped``,
the metric ``peer_incidents_dropped_total``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from blindmatch.node.storage.database import Database
from blindmatch.node.storage.validation import check_int, check_text
from blindmatch.protocol.replication import INCIDENTS_PER_PEER

MAX_DETAIL_CHARS = 2000
CAPPED = "incidents-capped"


class PeerIncidents:
    def __init__(
        self,
        db: Database,
        limit: int = INCIDENTS_PER_PEER,
        on_dropped: Callable[[str], None] | None = None,
    ) -> None:
        if limit < 1:
            raise ValueError("an incident limit is at least 1")
        self._db = db
        self.limit = limit
        self._on_dropped = on_dropped

    async def record(
        self,
        peer_id: str,
        code: str,
        detail: str,
        evidence: Mapping[str, Any],
        now: int,
        *,
        once: bool = True,
    ) -> bool:
        """File an incident once: the same (peer, code, detail) again is not a new incident
        (a replica rebuilt at start-up meets the same bad entry again). True if it was filed;
        False if seen before or if the peer has used up its rows (then it is counted)."""
        check_text("peer_id", peer_id)
        check_text("code", code)
        check_int("now", now)
        detail = str(detail)[:MAX_DETAIL_CHARS]
        async with self._db.transaction():
            if once:
                seen = await self._db.fetch_value(
                    "SELECT COUNT(*) FROM peer_log_incidents WHERE peer_id = ? AND code = ?"
                    " AND detail = ?",
                    peer_id, code, detail,
                )  # fmt: skip
                if seen:
                    return False
            held = int(
                await self._db.fetch_value(
                    "SELECT COUNT(*) FROM peer_log_incidents WHERE peer_id = ?", peer_id
                )
                or 0
            )
            if held >= self.limit:
                if self._on_dropped is not None:
                    self._on_dropped(peer_id)
                return False
            if held == self.limit - 1:
                # The last row says that the rest is only counted (the detail names the
                # first incident not stored, by code).
                code, detail, evidence = (
                    CAPPED,
                    f"{self.limit} incidents of this peer are stored; later ones are only"
                    f" counted (first not stored: {code})",
                    {"limit": self.limit, "first_dropped": code},
                )
                if self._on_dropped is not None:
                    self._on_dropped(peer_id)
            await self._db.execute(
                "INSERT INTO peer_log_incidents (peer_id, code, detail, evidence, detected_at)"
                " VALUES (?, ?, ?, ?, ?)",
                peer_id, code, detail, json.dumps(dict(evidence), sort_keys=True), now,
            )  # fmt: skip
        return code != CAPPED

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
