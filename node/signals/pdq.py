"""``pdq``: a picture's PDQ hash, one bank item each (its protected-source group, if any)."""

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
from blindmatch.node.storage.signal_tables import pdq as tables
from blindmatch.protocol import schema, signal_types
from blindmatch.protocol.lsh import SCHEMES
from blindmatch.protocol.matching import HolderItem
from blindmatch.protocol.messages import RELEASE_FIELDS

# A picture's banked crops (specs/signals-and-lsh.md 3.5; node/storage/signal_tables/pdq.py):
# each published under its own reference while its item is, and answered for as that item.
_CROPS_FROM = (
    " FROM item_crops c JOIN bank_items i ON i.id = c.item_id JOIN banks b ON b.id = i.bank_id"
    " WHERE " + PUBLISHED_ITEM
)


class PdqAdapter(SignalAdapter):
    entry = signal_types.PDQ
    published_from = " FROM bank_items i JOIN banks b ON b.id = i.bank_id WHERE " + PUBLISHED_ITEM
    migrations = tables.MIGRATIONS

    def index_keys(self, hash_value: bytes) -> list[bytes]:
        return SCHEMES[self.entry.lsh or ""].index_keys(hash_value)

    async def unpublished(self, db: Database, now: int, key_id: bytes) -> list[Publishable]:
        rows = await db.fetch_all(
            "SELECT i.item_ref, i.hash, b.distance_threshold AS thr" + self.published_from
            + " AND NOT EXISTS (SELECT 1 FROM index_publications p WHERE p.item_ref = i.item_ref"
            " AND p.key_id = ?) UNION ALL SELECT c.item_ref, c.hash, b.distance_threshold AS thr"
            + _CROPS_FROM + " AND NOT EXISTS (SELECT 1 FROM index_publications p"
            " WHERE p.item_ref = c.item_ref AND p.key_id = ?)",
            *(self.entry.name, now, key_id) * 2,
        )  # fmt: skip
        return [
            Publishable(bytes(r["item_ref"]), self.index_keys(bytes(r["hash"])), int(r["thr"]))
            for r in rows
        ]

    async def ballast(self, db: Database, refs: Sequence[bytes]) -> list[Publishable]:
        crops = _CROPS_FROM.split(" WHERE ", 1)[0]
        return await super().ballast(db, refs) + await self._ballast_rows(
            db, refs, "SELECT c.item_ref AS ref, c.hash AS hash" + crops + " WHERE c.item_ref IN "
        )

    def live_ref_sql(self) -> str | None:
        own = super().live_ref_sql()
        return f"{own} UNION ALL SELECT 1{_CROPS_FROM} AND c.item_ref = p.item_ref"

    def live_ref_params(self, now: int) -> list[Any]:
        return [self.entry.name, now] * 2

    async def holder_item(
        self, db: Database, ref: bytes, now: int, release_bands: Sequence[int]
    ) -> HolderItem | None:
        columns = (
            "i.item_ref, i.categories AS item_categories, b.categories AS bank_categories,"
            " b.provenance AS bank_provenance, b.distance_threshold, s.grp, s.source_cells"
        )
        row = await db.fetch_one(
            "SELECT i.hash, NULL AS crop, " + columns + " FROM bank_items i"
            " JOIN banks b ON b.id = i.bank_id LEFT JOIN protected_sources s ON s.source_id = i.id"
            " WHERE " + PUBLISHED_ITEM + " AND i.item_ref = ?",
            self.entry.name,
            now,
            ref,
        )
        if row is None:
            # A banked crop is the same item: the same threshold, release and reference (what a
            # querier's case and feedback name), and the release says which crop matched.
            row = await db.fetch_one(
                "SELECT c.hash, c.crop, " + columns + " FROM item_crops c"
                " JOIN bank_items i ON i.id = c.item_id JOIN banks b ON b.id = i.bank_id"
                " LEFT JOIN protected_sources s ON s.source_id = i.id"
                " WHERE " + PUBLISHED_ITEM + " AND c.item_ref = ?",
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
        if row["crop"] is not None:
            release["banked_crop"] = row["crop"]
        try:
            schema.check(RELEASE_FIELDS, release)
        except schema.SchemaError:
            release = {"provenance": row["bank_provenance"], "signal": self.entry.release_signal}
            if row["crop"] is not None:
                release["banked_crop"] = row["crop"]
        return HolderItem(
            item_ref=bytes(row["item_ref"]),
            hash=bytes(row["hash"]),
            bands=bands(release_bands, int(row["distance_threshold"])),
            release=release,
        )
