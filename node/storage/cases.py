"""The cases' tables: cases, their event history, the feedback records about items, and the
per-item match counts the quarantine rule reads.

Every method runs in the caller's transaction when there is one; timestamps are passed in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from blindmatch.node.storage.database import Database, Row

_CASE_COLUMNS = (
    "case_ref, content_ref, job_ref, source, holder, item_ref, band, variant, release, state,"
    " priority, decided_by, reason, decided_at, created_at, updated_at, signals"
)


@dataclass(frozen=True)
class Case:
    case_ref: bytes
    content_ref: str
    source: str
    holder: str
    item_ref: bytes
    band: int
    variant: str
    release: dict[str, Any]
    state: str
    priority: int
    decided_by: str | None
    reason: str | None
    appeal: str | None
    needs_rereview: bool
    created_at: int
    updated_at: int
    # What the node computed about the upload's uploader (recidivism, known elsewhere, the
    # signals that moved priority) and the platform's context as reviewers see it.
    signals: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)


def _case(row: Row) -> Case:
    signals = json.loads(row["signals"] or "{}")
    context = signals.pop("context", {})
    return Case(
        case_ref=bytes(row["case_ref"]),
        content_ref=row["content_ref"],
        source=row["source"],
        holder=row["holder"],
        item_ref=bytes(row["item_ref"]),
        band=int(row["band"]),
        variant=row["variant"],
        release=json.loads(row["release"]),
        state=row["state"],
        priority=int(row["priority"]),
        decided_by=row["decided_by"],
        reason=row["reason"],
        appeal=row["appeal"],
        needs_rereview=bool(row["needs_rereview"]),
        created_at=int(row["created_at"]),
        updated_at=int(row["updated_at"]),
        signals=signals,
        context=context,
    )


class CaseStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- cases ---------------------------------------------------------------------------------

    async def insert(
        self,
        case_ref: bytes,
        *,
        content_ref: str,
        job_ref: bytes | None,
        source: str,
        holder: str,
        item_ref: bytes,
        band: int,
        variant: str,
        release_json: str,
        state: str,
        priority: int,
        decided_by: str | None,
        reason: str,
        decided_at: int | None,
        now: int,
        signals_json: str = "{}",
    ) -> None:
        await self.db.execute(
            f"INSERT INTO cases ({_CASE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " ?, ?, ?)",
            case_ref, content_ref, job_ref, source, holder, item_ref, band, variant,
            release_json, state, priority, decided_by, reason, decided_at, now, now, signals_json,
        )  # fmt: skip

    async def set_signals(
        self, case_ref: bytes, signals_json: str, priority: int, now: int
    ) -> None:
        """A case's uploader signals changed (the keeper's feed): its signals and priority."""
        await self.db.execute(
            "UPDATE cases SET signals = ?, priority = ?, updated_at = ? WHERE case_ref = ?",
            signals_json, priority, now, case_ref,
        )  # fmt: skip

    async def signals_of(self, case_ref: bytes) -> dict[str, Any]:
        raw = await self.db.fetch_value("SELECT signals FROM cases WHERE case_ref = ?", case_ref)
        return json.loads(raw or "{}")

    async def open_with_uploader_tags(self) -> list[Case]:
        """Cases waiting for a person whose uploader has repeat-uploader tags."""
        rows = await self.db.fetch_all(
            "SELECT DISTINCT c.* FROM cases c JOIN case_uploader_tags t ON t.case_ref ="
            " c.case_ref WHERE c.state IN ('queued', 'quarantined', 'escalated')"
        )
        return [_case(r) for r in rows]

    async def case(self, case_ref: bytes) -> Case | None:
        row = await self.db.fetch_one("SELECT * FROM cases WHERE case_ref = ?", case_ref)
        return None if row is None else _case(row)

    async def case_for_match(self, content_ref: str, holder: str, item_ref: bytes) -> Case | None:
        row = await self.db.fetch_one(
            "SELECT * FROM cases WHERE content_ref = ? AND holder = ? AND item_ref = ?",
            content_ref, holder, item_ref,
        )  # fmt: skip
        return None if row is None else _case(row)

    async def queue(self, limit: int) -> list[Case]:
        """Cases waiting for a person: re-reviews and appeals first, then by priority."""
        rows = await self.db.fetch_all(
            "SELECT * FROM cases WHERE state IN ('queued', 'quarantined', 'escalated')"
            " OR needs_rereview = 1 OR appeal = 'open'"
            " ORDER BY needs_rereview DESC, (appeal = 'open') DESC, priority DESC, created_at"
            " LIMIT ?",
            limit,
        )
        return [_case(r) for r in rows]

    async def for_content(self, content_ref: str) -> list[Case]:
        rows = await self.db.fetch_all(
            "SELECT * FROM cases WHERE content_ref = ? ORDER BY created_at", content_ref
        )
        return [_case(r) for r in rows]

    async def for_item(self, holder: str, item_ref: bytes) -> list[Case]:
        rows = await self.db.fetch_all(
            "SELECT * FROM cases WHERE holder = ? AND item_ref = ?", holder, item_ref
        )
        return [_case(r) for r in rows]

    async def match_of(self, case_ref: bytes) -> tuple[bytes | None, str, bytes]:
        """The case's job, holder and item (what names its match in the log)."""
        row = await self.db.fetch_one(
            "SELECT job_ref, holder, item_ref FROM cases WHERE case_ref = ?", case_ref
        )
        assert row is not None  # the case was just written
        job_ref = None if row["job_ref"] is None else bytes(row["job_ref"])
        return job_ref, row["holder"], bytes(row["item_ref"])

    async def set_decision(
        self, case_ref: bytes, outcome: str, reviewer: str, reason: str, now: int
    ) -> None:
        await self.db.execute(
            "UPDATE cases SET state = ?, decided_by = ?, reason = ?, decided_at = ?,"
            " needs_rereview = 0, priority = CASE WHEN ? = 'escalated' THEN priority + 50"
            " ELSE priority END, updated_at = ? WHERE case_ref = ?",
            outcome, reviewer, reason, now, outcome, now, case_ref,
        )  # fmt: skip

    async def open_appeal(self, case_ref: bytes, now: int) -> None:
        await self.db.execute(
            "UPDATE cases SET appeal = 'open', priority = priority + 60, updated_at = ?"
            " WHERE case_ref = ?",
            now, case_ref,
        )  # fmt: skip

    async def uphold_appeal(self, case_ref: bytes, reviewer: str, reason: str, now: int) -> None:
        await self.db.execute(
            "UPDATE cases SET appeal = 'upheld', state = 'dismissed', decided_by = ?,"
            " reason = ?, decided_at = ?, updated_at = ? WHERE case_ref = ?",
            reviewer, reason, now, now, case_ref,
        )  # fmt: skip

    async def deny_appeal(self, case_ref: bytes, now: int) -> None:
        await self.db.execute(
            "UPDATE cases SET appeal = 'denied', updated_at = ? WHERE case_ref = ?", now, case_ref
        )

    async def close(self, case_ref: bytes, reason: str, now: int) -> None:
        await self.db.execute(
            "UPDATE cases SET state = 'closed', reason = ?, needs_rereview = 0,"
            " updated_at = ? WHERE case_ref = ?",
            reason, now, case_ref,
        )  # fmt: skip

    async def ask_rereview(self, case_ref: bytes, now: int) -> None:
        await self.db.execute(
            "UPDATE cases SET needs_rereview = 1, updated_at = ? WHERE case_ref = ?",
            now, case_ref,
        )  # fmt: skip

    # --- history -------------------------------------------------------------------------------

    async def add_event(
        self, case_ref: bytes, at: int, actor: str, event: str, detail: dict[str, Any]
    ) -> None:
        await self.db.execute(
            "INSERT INTO case_events (case_ref, at, actor, event, detail) VALUES (?, ?, ?, ?, ?)",
            case_ref, at, actor, event, json.dumps(detail, sort_keys=True),
        )  # fmt: skip

    async def history(self, case_ref: bytes) -> list[dict[str, Any]]:
        rows = await self.db.fetch_all(
            "SELECT at, actor, event, detail FROM case_events WHERE case_ref = ? ORDER BY id",
            case_ref,
        )
        return [
            {"at": int(r["at"]), "actor": r["actor"], "event": r["event"],
             "detail": json.loads(r["detail"])}
            for r in rows
        ]  # fmt: skip

    async def event_count(self, case_ref: bytes) -> int:
        return int(
            await self.db.fetch_value(
                "SELECT COUNT(*) FROM case_events WHERE case_ref = ?", case_ref
            )
        )

    async def last_event_id(self, case_ref: bytes, events: tuple[str, ...] = ()) -> int:
        """The newest event of the case (of one of ``events`` when given)."""
        sql = "SELECT MAX(id) FROM case_events WHERE case_ref = ?"
        if events:
            sql += f" AND event IN ({', '.join('?' for _ in events)})"
        return int(await self.db.fetch_value(sql, case_ref, *events))

    # --- feedback and match counts -------------------------------------------------------------

    async def feedback_records(self, holder: str, item_ref: bytes) -> list[bytes]:
        rows = await self.db.fetch_all(
            "SELECT record FROM feedback_records WHERE holder = ? AND item_ref = ?",
            holder,
            item_ref,
        )
        return [bytes(r["record"]) for r in rows]

    async def add_feedback_record(
        self,
        record_id: bytes,
        origin: str,
        holder: str,
        item_ref: bytes,
        opinion: str,
        at_ms: int,
        signed: bytes,
        now: int,
    ) -> bool:
        """Store a verified record; False if it was stored before."""
        inserted = await self.db.execute(
            "INSERT INTO feedback_records (record_id, origin, holder, item_ref, opinion, at_ms,"
            " record, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            record_id, origin, holder, item_ref, opinion, at_ms, signed, now,
        )  # fmt: skip
        return bool(inserted)

    async def count_match(
        self, holder: str, item_ref: bytes, window_start: int, window_s: int, windows: int
    ) -> tuple[int, int]:
        """Count one match of the item in its window; returns the window's count and the sum
        over the ``windows`` windows before it."""
        await self.db.execute(
            "INSERT INTO item_match_counts (holder, item_ref, window_start, matches)"
            " VALUES (?, ?, ?, 1) ON CONFLICT (holder, item_ref, window_start)"
            " DO UPDATE SET matches = item_match_counts.matches + 1",
            holder, item_ref, window_start,
        )  # fmt: skip
        current = await self.db.fetch_value(
            "SELECT matches FROM item_match_counts WHERE holder = ? AND item_ref = ?"
            " AND window_start = ?",
            holder, item_ref, window_start,
        )  # fmt: skip
        past = await self.db.fetch_value(
            "SELECT COALESCE(SUM(matches), 0) FROM item_match_counts WHERE holder = ?"
            " AND item_ref = ? AND window_start >= ? AND window_start < ?",
            holder, item_ref, window_start - windows * window_s, window_start,
        )  # fmt: skip
        return int(current), int(past)
