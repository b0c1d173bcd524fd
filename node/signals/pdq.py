"""``pdq``: a picture's PDQ hash, one bank item each (its protected-source group, if any)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from blindmatch.node.signals.base import PUBLISHED_ITEM, SignalAdapter, bands, categories_of
from blindmatch.node.storage import Database
from blindmatch.protocol import schema, signal_types
from blindmatch.protocol.lsh import SCHEMES
from blindmatch.protocol.matching import HolderItem
from blindmatch.protocol.messages import RELEASE_FIELDS


class PdqAdapter(SignalAdapter):
    entry = signal_types.PDQ
    published_from = " FROM bank_items i JOIN banks b ON b.id = i.bank_id WHERE " + PUBLISHED_ITEM

    def index_keys(self, hash_value: bytes) -> list[bytes]:
        return SCHEMES[self.entry.lsh or ""].index_keys(hash_value)

    async def holder_item(
        self, db: Database, ref: bytes, now: int, release_bands: Sequence[int]
    ) -> HolderItem | None:
        row = await db.fetch_one(
            "SELECT i.hash, i.categories AS item_categories, b.categories AS bank_categories,"
            " b.provenance AS bank_provenance, b.distance_threshold, s.grp, s.source_cells"
            " FROM bank_items i JOIN banks b ON b.id = i.bank_id"
            " LEFT JOIN protected_sources s ON s.source_id = i.id"
            " WHERE " + PUBLISHED_ITEM + " AND i.item_ref = ?",
            self.entry.name,
            now,
            ref,
        )
        if row is None:
            return None
        release: dict[str, Any] = {
            "categories": categories_of(row),
            "provenance": row["bank_provenance"],
            "signal": self.entry.release_signal,
        }
        if row["grp"] is not None:
            # A protected source's whole-picture item names its group too, so the querier
            # can put a whole-picture match and the tiles of the same source in one case.
            release["group"] = bytes(row["grp"])
            release["source_cells"] = int(row["source_cells"])
        try:
            schema.check(RELEASE_FIELDS, release)
        except schema.SchemaError:
            release = {"provenance": row["bank_provenance"], "signal": self.entry.release_signal}
        return HolderItem(
            item_ref=ref,
            hash=bytes(row["hash"]),
            bands=bands(release_bands, int(row["distance_threshold"])),
            release=release,
        )
