"""The holder's published index: which items are in it, and what must be added or removed.

``index_publications`` holds, per published item, the packed index entries that went out in
its ``index.add`` delta, so a removal can send exactly those entries back out. Only the
differences with the live items are read, so a round with nothing to do reads nothing of size.
"""

from __future__ import annotations

from collections.abc import Sequence

from blindmatch.node.storage.database import Database, Row
from blindmatch.node.storage.live_items import (
    PUBLISHED,
    PUBLISHED_FRAMES_FROM,
    PUBLISHED_ITEMS_FROM,
    PUBLISHED_TILES_FROM,
)

_NOT_PUBLISHED = (
    " AND NOT EXISTS (SELECT 1 FROM index_publications p WHERE p.item_ref = {}.item_ref)"
)
_TO_PUBLISH_SQL = (
    "SELECT i.item_ref, i.hash, NULL AS cell" + PUBLISHED_ITEMS_FROM + _NOT_PUBLISHED.format("i")
)
_TO_PUBLISH_TILES_SQL = (
    "SELECT t.item_ref, t.hash, t.cell" + PUBLISHED_TILES_FROM + _NOT_PUBLISHED.format("t")
)
_TO_PUBLISH_FRAMES_SQL = (
    "SELECT f.item_ref, f.hash, 'vpdq' AS cell" + PUBLISHED_FRAMES_FROM + _NOT_PUBLISHED.format("f")
)
_TO_UNPUBLISH_SQL = (
    "SELECT p.item_ref, p.entries FROM index_publications p WHERE NOT EXISTS"
    " (SELECT 1" + PUBLISHED_ITEMS_FROM + " AND i.item_ref = p.item_ref) AND NOT EXISTS"
    " (SELECT 1" + PUBLISHED_TILES_FROM + " AND t.item_ref = p.item_ref) AND NOT EXISTS"
    " (SELECT 1" + PUBLISHED_FRAMES_FROM + " AND f.item_ref = p.item_ref)"
)
_HOLDER_ITEM_SQL = (
    "SELECT i.item_ref, i.hash, i.categories AS item_categories, b.categories AS"
    " bank_categories, b.provenance AS bank_provenance, b.distance_threshold,"
    " s.grp, s.source_cells FROM bank_items i JOIN banks b ON b.id = i.bank_id"
    " LEFT JOIN protected_sources s ON s.source_id = i.id"
    " WHERE " + PUBLISHED + " AND i.item_ref = ?"
)
_HOLDER_FRAME_SQL = (
    "SELECT f.hash, v.grp, v.indexed_frames, i.categories AS item_categories,"
    " b.categories AS bank_categories, b.provenance AS bank_provenance,"
    " b.distance_threshold" + PUBLISHED_FRAMES_FROM + " AND f.item_ref = ?"
)
_HOLDER_TILE_SQL = (
    "SELECT t.hash, s.scheme, s.grp, s.source_cells" + PUBLISHED_TILES_FROM + " AND t.item_ref = ?"
)


class PublishedIndexStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def to_publish(self, now: int, tiles: bool) -> dict[bytes, tuple[bytes, str | None]]:
        """Published items (and, with ``tiles``, protected sources' tiles; and published
        videos' indexed frames) not yet in the index: item_ref -> (hash, cell or None; 'vpdq'
        for a video frame)."""
        rows = await self.db.fetch_all(_TO_PUBLISH_SQL, now)
        if tiles:
            rows += await self.db.fetch_all(_TO_PUBLISH_TILES_SQL, now)
        rows += await self.db.fetch_all(_TO_PUBLISH_FRAMES_SQL, now)
        return {bytes(r["item_ref"]): (bytes(r["hash"]), r["cell"]) for r in rows}

    async def to_unpublish(self, now: int) -> dict[bytes, bytes]:
        """Items in the index that are no longer published: item_ref -> their packed entries."""
        rows = await self.db.fetch_all(_TO_UNPUBLISH_SQL, now, now, now)
        return {bytes(r["item_ref"]): bytes(r["entries"]) for r in rows}

    async def record(
        self, per_item: dict[bytes, bytes], scheme: str, key_id: bytes, now: int
    ) -> None:
        """Items now in the index with their packed entries (in the caller's transaction)."""
        await self.db.execute_many(
            "INSERT INTO index_publications (item_ref, scheme, key_id, entries,"
            " published_at) VALUES (?, ?, ?, ?, ?)",
            [(r, scheme, key_id, packed, now) for r, packed in per_item.items()],
        )

    async def forget(self, refs: Sequence[bytes]) -> None:
        """Items taken out of the index (in the caller's transaction)."""
        await self.db.execute_many(
            "DELETE FROM index_publications WHERE item_ref = ?", [(r,) for r in refs]
        )

    async def published_item(self, item_ref: bytes, now: int) -> Row | None:
        """A published whole-picture item with its bank's release settings, or None."""
        return await self.db.fetch_one(_HOLDER_ITEM_SQL, now, item_ref)

    async def published_tile(self, item_ref: bytes, now: int) -> Row | None:
        """A published protected source's tile with its source's group, or None."""
        return await self.db.fetch_one(_HOLDER_TILE_SQL, now, item_ref)

    async def published_frame(self, item_ref: bytes, now: int) -> Row | None:
        """A published video's indexed frame with its video's group and bank settings, or None."""
        return await self.db.fetch_one(_HOLDER_FRAME_SQL, now, item_ref)
