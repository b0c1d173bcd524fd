"""``vpdq``: a video, one bank item with its frame list (``banks/videos.py``); each indexed
frame is published under the ``vpdq`` buckets with its own reference and answered for while
the video item is live (specs/signals-and-lsh.md 7)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from blindmatch.node.signals.base import (
    PUBLISHED_ITEM,
    Publishable,
    SignalAdapter,
    bands,
    categories_of,
)
from blindmatch.node.storage import Database
from blindmatch.protocol import signal_types
from blindmatch.protocol.matching import HolderItem
from blindmatch.protocol.signal_types.vpdq import video

_FROM = (
    " FROM video_frames f JOIN videos v ON v.item_id = f.item_id"
    " JOIN bank_items i ON i.id = f.item_id JOIN banks b ON b.id = i.bank_id"
    " WHERE f.item_ref IS NOT NULL AND " + PUBLISHED_ITEM
)


class VpdqAdapter(SignalAdapter):
    entry = signal_types.VPDQ

    async def unpublished(self, db: Database, now: int, key_id: bytes) -> list[Publishable]:
        rows = await db.fetch_all(
            "SELECT f.item_ref, f.hash" + _FROM + " AND NOT EXISTS"
            " (SELECT 1 FROM index_publications p WHERE p.item_ref = f.item_ref"
            " AND p.key_id = ?)",
            self.entry.name,
            now,
            key_id,
        )
        return [Publishable(bytes(r["item_ref"]), video.index_keys(bytes(r["hash"]))) for r in rows]

    def live_ref_sql(self) -> str | None:
        return "SELECT 1" + _FROM + " AND f.item_ref = p.item_ref"

    def live_ref_params(self, now: int) -> list[Any]:
        return [self.entry.name, now]

    async def holder_item(
        self, db: Database, ref: bytes, now: int, release_bands: Sequence[int]
    ) -> HolderItem | None:
        row = await db.fetch_one(
            "SELECT f.hash, v.grp, v.indexed_frames, i.categories AS item_categories,"
            " b.categories AS bank_categories, b.provenance AS bank_provenance,"
            " b.distance_threshold" + _FROM + " AND f.item_ref = ?",
            self.entry.name,
            now,
            ref,
        )
        if row is None:
            return None
        return HolderItem(
            item_ref=ref,
            hash=bytes(row["hash"]),
            bands=bands(release_bands, int(row["distance_threshold"])),
            release=video.release_for_frame(
                bytes(row["grp"]),
                int(row["indexed_frames"]),
                row["bank_provenance"],
                categories_of(row),
            ),
        )

    async def part_refs(self, db: Database, item_ref: bytes) -> list[bytes]:
        rows = await db.fetch_all(
            "SELECT f.item_ref FROM video_frames f JOIN bank_items i ON i.id = f.item_id"
            " WHERE i.item_ref = ? AND f.item_ref IS NOT NULL ORDER BY f.position",
            item_ref,
        )
        return [bytes(r["item_ref"]) for r in rows]

    async def owner_of(self, db: Database, part_ref: bytes) -> bytes | None:
        value = await db.fetch_value(
            "SELECT i.item_ref FROM video_frames f JOIN bank_items i ON i.id = f.item_id"
            " WHERE f.item_ref = ?",
            part_ref,
        )
        return None if value is None else bytes(value)
