"""``pdq-tiles-1``: a protected source photo's tile hashes, published and answered for while
their source item (a ``pdq`` item of a protected-source bank) is; banked and asked of hubs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from blindmatch.node.signals.base import PUBLISHED_ITEM, Publishable, SignalAdapter, bands
from blindmatch.node.storage import Database
from blindmatch.protocol import derivative, signal_types
from blindmatch.protocol.matching import HolderItem

_FROM = (
    " FROM source_tiles t JOIN protected_sources s ON s.source_id = t.source_id"
    " JOIN bank_items i ON i.id = t.source_id JOIN banks b ON b.id = i.bank_id"
    " WHERE b.provenance = 'protected-source' AND " + PUBLISHED_ITEM
)


class TilesAdapter(SignalAdapter):
    entry = signal_types.PDQ_TILES
    # Protected sources are banked by hubs (specs/derivatives.md 5.1): only a hub publishes
    # tiles and only a hub is asked about them, so derivative search costs other holders
    # nothing.
    asked_of_role = "hub"
    published_by_role = "hub"
    _source_signal = signal_types.PDQ.name  # a tile lives while its source pdq item does
    # 41 key prefixes (one per cell), each padded to the padding: batched apart, less often
    batch_class = "tiles"

    async def unpublished(self, db: Database, now: int, key_id: bytes) -> list[Publishable]:
        rows = await db.fetch_all(
            "SELECT t.item_ref, t.hash, t.cell, s.scheme" + _FROM + " AND NOT EXISTS"
            " (SELECT 1 FROM index_publications p WHERE p.item_ref = t.item_ref"
            " AND p.key_id = ?)",
            self._source_signal,
            now,
            key_id,
        )
        out = []
        for r in rows:
            scheme = derivative.DERIVATIVE_SCHEMES.get(r["scheme"])
            if scheme is not None:
                cell = derivative.Cell.parse(r["cell"])
                keys = scheme.index_keys(cell, bytes(r["hash"]))
                # answered with the tile scheme's threshold, not the bank's (holder_item), so
                # its decoys are too (8.7)
                out.append(Publishable(bytes(r["item_ref"]), keys, scheme.threshold))
        return out

    async def ballast(self, db: Database, refs: Sequence[bytes]) -> list[Publishable]:
        joins = _FROM.split(" WHERE ", 1)[0]
        out = []
        for start in range(0, len(refs), 500):
            part = list(refs[start : start + 500])
            rows = await db.fetch_all(
                "SELECT t.item_ref, t.hash, t.cell, s.scheme" + joins + " WHERE t.item_ref IN ("
                + ", ".join("?" * len(part)) + ")",
                *part,
            )  # fmt: skip
            for r in rows:
                scheme = derivative.DERIVATIVE_SCHEMES.get(r["scheme"])
                if scheme is not None:
                    cell = derivative.Cell.parse(r["cell"])
                    keys = scheme.index_keys(cell, bytes(r["hash"]))
                    out.append(Publishable(bytes(r["item_ref"]), keys))
        return out

    def live_ref_sql(self) -> str | None:
        return "SELECT 1" + _FROM + " AND t.item_ref = p.item_ref"

    def live_ref_params(self, now: int) -> list[Any]:
        return [self._source_signal, now]

    async def holder_item(
        self, db: Database, ref: bytes, now: int, release_bands: Sequence[int]
    ) -> HolderItem | None:
        row = await db.fetch_one(
            "SELECT t.hash, s.scheme, s.grp, s.source_cells" + _FROM + " AND t.item_ref = ?",
            self._source_signal,
            now,
            ref,
        )
        if row is None:
            return None
        scheme = derivative.DERIVATIVE_SCHEMES.get(row["scheme"])
        if scheme is None:
            return None
        return HolderItem(
            item_ref=ref,
            hash=bytes(row["hash"]),
            bands=bands(release_bands, scheme.threshold),
            release=derivative.release_for_tile(bytes(row["grp"]), int(row["source_cells"])),
        )
