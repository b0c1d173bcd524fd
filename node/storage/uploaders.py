"""Repeat-uploader signals' tables (specs/uploaders.md), the uploader-signals service's store:
the holder's recent candidates per peer, the keeper's publications, a reader's replica of the
keeper's feed, and a publisher's tags per case and its outgoing publications.

Tags and publication ids are opaque bytes here; what they mean is the service's.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager

from blindmatch.node.storage.database import Database, Row


class UploaderStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def transaction(self) -> AbstractAsyncContextManager[None]:
        return self._db.transaction()

    # --- holder -------------------------------------------------------------------------------

    async def note_candidates(self, peer_id: str, items: Sequence[bytes], now: int) -> None:
        await self._db.execute_many(
            "INSERT INTO uploader_candidates (peer_id, item_ref, at) VALUES (?, ?, ?)"
            " ON CONFLICT (peer_id, item_ref) DO UPDATE SET at = excluded.at",
            [(peer_id, ref, now) for ref in items],
        )

    async def candidate_at(self, peer_id: str, item_ref: bytes) -> int | None:
        """When the peer last had the item as a candidate."""
        at = await self._db.fetch_value(
            "SELECT at FROM uploader_candidates WHERE peer_id = ? AND item_ref = ?",
            peer_id, item_ref,
        )  # fmt: skip
        return None if at is None else int(at)

    async def live_item(self, item_ref: bytes, now: int) -> Row | None:
        """A live item of an enabled bank, with its protected source's ``grp`` (or None)."""
        return await self._db.fetch_one(
            "SELECT s.grp FROM bank_items i JOIN banks b ON b.id = i.bank_id"
            " LEFT JOIN protected_sources s ON s.source_id = i.id WHERE i.item_ref = ?"
            " AND i.withdrawn_at IS NULL AND (i.expires_at IS NULL OR i.expires_at > ?)"
            " AND b.enabled = 1",
            item_ref, now,
        )  # fmt: skip

    async def tile_group(self, item_ref: bytes) -> bytes | None:
        """The protected source's ``grp`` of a tile item whose source is not withdrawn."""
        row = await self._db.fetch_one(
            "SELECT s.grp FROM source_tiles t JOIN protected_sources s ON s.source_id ="
            " t.source_id JOIN bank_items i ON i.id = t.source_id WHERE t.item_ref = ?"
            " AND i.withdrawn_at IS NULL",
            item_ref,
        )
        return None if row is None else bytes(row["grp"])

    # --- keeper -------------------------------------------------------------------------------

    async def confirm_at(
        self, record_id: bytes, origin: str, holder: str, item_ref: bytes
    ) -> int | None:
        """``at_ms`` of that ``confirm`` record by ``origin`` about the holder's item."""
        row = await self._db.fetch_one(
            "SELECT at_ms FROM feedback_records WHERE record_id = ? AND origin = ? AND holder = ?"
            " AND item_ref = ? AND opinion = 'confirm'",
            record_id, origin, holder, item_ref,
        )  # fmt: skip
        return None if row is None else int(row["at_ms"])

    async def retracted_since(self, origin: str, holder: str, item_ref: bytes, at_ms: int) -> bool:
        n = await self._db.fetch_value(
            "SELECT COUNT(*) FROM feedback_records WHERE origin = ? AND opinion = 'retract'"
            " AND holder = ? AND item_ref = ? AND at_ms >= ?",
            origin, holder, item_ref, at_ms,
        )  # fmt: skip
        return bool(n)

    async def publication(self, publication: bytes) -> Row | None:
        return await self._db.fetch_one(
            "SELECT * FROM uploader_publications WHERE publication = ?", publication
        )

    async def confirm_used(self, confirm: bytes) -> bool:
        n = await self._db.fetch_value(
            "SELECT COUNT(*) FROM uploader_publications WHERE confirm = ?", confirm
        )
        return bool(n)

    async def add_publication(
        self,
        publication: bytes,
        origin: str,
        holder: str,
        item_ref: bytes,
        confirm: bytes,
        tags: bytes,
        expires_ms: int,
        now: int,
    ) -> None:
        await self._db.execute(
            "INSERT INTO uploader_publications (publication, origin, holder, item_ref,"
            " confirm, tags, expires_ms, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            publication, origin, holder, item_ref, confirm, tags, expires_ms, now,
        )  # fmt: skip

    async def live_publications(self, now_ms: int) -> list[Row]:
        """``publication, origin, tags, expires_ms`` of those not withdrawn nor expired."""
        return await self._db.fetch_all(
            "SELECT publication, origin, tags, expires_ms FROM uploader_publications"
            " WHERE withdrawn_at IS NULL AND expires_ms > ?",
            now_ms,
        )

    async def expired_publications(self, now_ms: int) -> list[Row]:
        return await self._db.fetch_all(
            "SELECT * FROM uploader_publications WHERE withdrawn_at IS NULL AND expires_ms <= ?",
            now_ms,
        )

    async def mark_withdrawn(self, publication: bytes, now: int) -> None:
        await self._db.execute(
            "UPDATE uploader_publications SET withdrawn_at = ? WHERE publication = ?",
            now, publication,
        )  # fmt: skip

    # --- reader -------------------------------------------------------------------------------

    async def signal_expiry(self, keeper: str, tag: bytes) -> int | None:
        exp = await self._db.fetch_value(
            "SELECT expires_ms FROM uploader_signals WHERE keeper = ? AND tag = ?", keeper, tag
        )
        return None if exp is None else int(exp)

    async def add_signal(self, keeper: str, tag: bytes, expires_ms: int) -> None:
        """A tag in the keeper's feed, until the later of its expiries."""
        await self._db.execute(
            "INSERT INTO uploader_signals (keeper, tag, expires_ms)"
            " VALUES (?, ?, ?) ON CONFLICT (keeper, tag) DO UPDATE SET"
            " expires_ms = CASE WHEN excluded.expires_ms >"
            " uploader_signals.expires_ms THEN excluded.expires_ms ELSE"
            " uploader_signals.expires_ms END",
            keeper, tag, expires_ms,
        )  # fmt: skip

    async def remove_signal(self, keeper: str, tag: bytes) -> None:
        await self._db.execute(
            "DELETE FROM uploader_signals WHERE keeper = ? AND tag = ?", keeper, tag
        )

    # --- publisher ----------------------------------------------------------------------------

    async def remember_tags(self, case_ref: bytes, holder: str, tags: Sequence[bytes]) -> None:
        await self._db.execute_many(
            "INSERT INTO case_uploader_tags (case_ref, tag, holder) VALUES (?, ?, ?)"
            " ON CONFLICT (case_ref, tag) DO NOTHING",
            [(case_ref, t, holder) for t in tags],
        )

    async def case_tags(self, case_ref: bytes) -> list[bytes]:
        rows = await self._db.fetch_all(
            "SELECT tag FROM case_uploader_tags WHERE case_ref = ? ORDER BY tag", case_ref
        )
        return [bytes(r["tag"]) for r in rows]

    async def own_published_tags(self) -> set[bytes]:
        """The tags of the cases this node published (and has not withdrawn)."""
        rows = await self._db.fetch_all(
            "SELECT t.tag FROM case_uploader_tags t JOIN uploader_publications_out p"
            " ON p.case_ref = t.case_ref WHERE p.state = 'published'"
        )
        return {bytes(r["tag"]) for r in rows}

    async def add_outgoing(
        self, publication: bytes, case_ref: bytes, keeper: str, now: int
    ) -> None:
        await self._db.execute(
            "INSERT INTO uploader_publications_out (publication, case_ref, keeper, state, at)"
            " VALUES (?, ?, ?, 'published', ?)",
            publication, case_ref, keeper, now,
        )  # fmt: skip

    async def outgoing_published(self, case_ref: bytes) -> list[Row]:
        """``publication, keeper`` of the case's publications still published."""
        return await self._db.fetch_all(
            "SELECT publication, keeper FROM uploader_publications_out WHERE case_ref = ?"
            " AND state = 'published'",
            case_ref,
        )

    async def mark_outgoing_withdrawn(self, publication: bytes, now: int) -> None:
        await self._db.execute(
            "UPDATE uploader_publications_out SET state = 'withdrawn', at = ?"
            " WHERE publication = ?",
            now, publication,
        )  # fmt: skip
