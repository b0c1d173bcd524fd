"""The banks' tables: banks, their items, and protected sources' tiles.

Rows come back as :class:`Bank` and :class:`BankItem` (a raw hash is in a ``BankItem`` but
never in its repr). Validation and publication are the bank service's; every method here runs
in the caller's transaction when there is one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from blindmatch.node.storage.database import Database, Row
from blindmatch.node.storage.live_items import LIVE, NOT_WITHDRAWN

IN_CHUNK = 500  # values per "IN (...)" list


@dataclass(frozen=True)
class Bank:
    id: int
    name: str
    description: str
    provenance: str
    categories: tuple[str, ...]
    distance_threshold: int
    enabled: bool
    shared: bool
    created_at: int
    updated_at: int


@dataclass(frozen=True)
class BankItem:
    id: int
    bank: str
    signal_type: str
    hash: bytes = field(repr=False)
    quality: int | None
    item_ref: bytes
    provenance: Mapping[str, Any]
    categories: tuple[str, ...]
    source: str
    added_at: int
    expires_at: int | None
    withdrawn_at: int | None
    withdrawal_reason: str | None = field(repr=False)
    has_withdrawal_secret: bool

    def is_active(self, now: int) -> bool:
        return self.withdrawn_at is None and (self.expires_at is None or self.expires_at > now)


@dataclass(frozen=True)
class ActiveItem:
    """What the matcher needs of one live item."""

    bank: str
    item_id: int
    item_ref: bytes
    hash: bytes = field(repr=False)
    quality: int | None
    distance_threshold: int


@dataclass(frozen=True)
class NewItem:
    """An item to insert, validated by the caller."""

    signal_type: str
    hash: bytes = field(repr=False)
    quality: int | None
    item_ref: bytes
    provenance: Mapping[str, Any]
    categories: Sequence[str]
    source: str
    added_at: int
    expires_at: int | None
    withdrawal_secret_hash: bytes | None = field(repr=False)


def _bank(row: Row) -> Bank:
    return Bank(
        id=int(row["id"]),
        name=row["name"],
        description=row["description"],
        provenance=row["provenance"],
        categories=tuple(json.loads(row["categories"])),
        distance_threshold=int(row["distance_threshold"]),
        enabled=bool(row["enabled"]),
        shared=bool(row["shared"]),
        created_at=int(row["created_at"]),
        updated_at=int(row["updated_at"]),
    )


def _item(row: Row, bank_name: str) -> BankItem:
    return BankItem(
        id=int(row["id"]),
        bank=bank_name,
        signal_type=row["signal_type"],
        hash=bytes(row["hash"]),
        quality=None if row["quality"] is None else int(row["quality"]),
        item_ref=bytes(row["item_ref"]),
        provenance=json.loads(row["provenance"]),
        categories=tuple(json.loads(row["categories"])),
        source=row["source"],
        added_at=int(row["added_at"]),
        expires_at=None if row["expires_at"] is None else int(row["expires_at"]),
        withdrawn_at=None if row["withdrawn_at"] is None else int(row["withdrawn_at"]),
        withdrawal_reason=row["withdrawal_reason"],
        has_withdrawal_secret=row["withdrawal_secret_hash"] is not None,
    )


_ITEM_COLUMNS = (
    "i.id, i.signal_type, i.hash, i.quality, i.item_ref, i.provenance, i.categories, i.source,"
    " i.added_at, i.expires_at, i.withdrawn_at, i.withdrawal_reason, i.withdrawal_secret_hash"
)
_INSERT_ITEM_SQL = (
    "INSERT INTO bank_items (bank_id, signal_type, hash, quality, item_ref,"
    " provenance, categories, source, added_at, expires_at, withdrawal_secret_hash)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _item_params(bank: Bank, item: NewItem) -> tuple[Any, ...]:
    return (
        bank.id,
        item.signal_type,
        item.hash,
        item.quality,
        item.item_ref,
        json.dumps(dict(item.provenance)),
        json.dumps(list(item.categories)),
        item.source,
        item.added_at,
        item.expires_at,
        item.withdrawal_secret_hash,
    )


def _placeholders(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


class BankStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- banks ---------------------------------------------------------------------------------

    async def insert_bank(
        self,
        name: str,
        description: str,
        provenance: str,
        categories: Sequence[str],
        distance_threshold: int,
        enabled: bool,
        shared: bool,
        now: int,
    ) -> None:
        """A new bank (``IntegrityError`` if the name is taken)."""
        await self.db.execute(
            "INSERT INTO banks (name, description, provenance, categories,"
            " distance_threshold, enabled, shared, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            name, description, provenance, json.dumps(list(categories)), distance_threshold,
            int(enabled), int(shared), now, now,
        )  # fmt: skip

    async def bank(self, name: str) -> Bank | None:
        row = await self.db.fetch_one("SELECT * FROM banks WHERE name = ?", name)
        return None if row is None else _bank(row)

    async def banks(self) -> list[Bank]:
        return [_bank(r) for r in await self.db.fetch_all("SELECT * FROM banks ORDER BY name")]

    async def update_bank(self, bank_id: int, changes: Mapping[str, Any], now: int) -> None:
        """Set the named columns (the caller's keys are column names it validated)."""
        assignments = ", ".join(f"{column} = ?" for column in changes)
        await self.db.execute(
            f"UPDATE banks SET {assignments}, updated_at = ? WHERE id = ?",
            *changes.values(),
            now,
            bank_id,
        )

    async def delete_bank(self, bank_id: int) -> int:
        """Delete a bank and its items; returns how many items went."""
        removed = await self.db.execute("DELETE FROM bank_items WHERE bank_id = ?", bank_id)
        await self.db.execute("DELETE FROM banks WHERE id = ?", bank_id)
        return removed

    async def count_items(self, bank_id: int, now: int) -> dict[str, int]:
        """Item counts of a bank: active, expired, withdrawn."""
        row = await self.db.fetch_one(
            "SELECT SUM(CASE WHEN " + LIVE + " THEN 1 ELSE 0 END) AS active,"
            " SUM(CASE WHEN " + NOT_WITHDRAWN + " AND i.expires_at <= ? THEN 1 ELSE 0 END)"
            "     AS expired,"
            " SUM(CASE WHEN " + NOT_WITHDRAWN + " THEN 0 ELSE 1 END) AS withdrawn"
            " FROM bank_items i WHERE i.bank_id = ?",
            now,
            now,
            bank_id,
        )
        assert row is not None
        return {k: int(row[k] or 0) for k in ("active", "expired", "withdrawn")}

    # --- items ---------------------------------------------------------------------------------

    async def item_by_hash(
        self, bank: Bank, signal_type: str, hash_bytes: bytes
    ) -> BankItem | None:
        row = await self.db.fetch_one(
            f"SELECT {_ITEM_COLUMNS} FROM bank_items i"
            " WHERE i.bank_id = ? AND i.signal_type = ? AND i.hash = ?",
            bank.id,
            signal_type,
            hash_bytes,
        )
        return None if row is None else _item(row, bank.name)

    async def item_by_ref(self, ref: bytes) -> tuple[BankItem, Bank] | None:
        row = await self.db.fetch_one(
            f"SELECT {_ITEM_COLUMNS}, i.bank_id FROM bank_items i WHERE i.item_ref = ?", ref
        )
        if row is None:
            return None
        bank_row = await self.db.fetch_one("SELECT * FROM banks WHERE id = ?", row["bank_id"])
        assert bank_row is not None
        bank = _bank(bank_row)
        return _item(row, bank.name), bank

    async def ref_taken(self, ref: bytes) -> bool:
        return bool(
            await self.db.fetch_value("SELECT COUNT(*) FROM bank_items WHERE item_ref = ?", ref)
        )

    async def taken_refs(self, refs: Sequence[bytes]) -> list[bytes]:
        """Which of these item references an item already holds."""
        taken: list[bytes] = []
        refs = sorted(refs)
        for start in range(0, len(refs), IN_CHUNK):
            chunk = refs[start : start + IN_CHUNK]
            rows = await self.db.fetch_all(
                f"SELECT item_ref FROM bank_items WHERE item_ref IN ({_placeholders(chunk)})",
                *chunk,
            )
            taken += [bytes(r["item_ref"]) for r in rows]
        return taken

    async def existing(self, bank: Bank, hashes: Sequence[bytes]) -> dict[tuple[str, bytes], bool]:
        """Which of these hashes the bank already holds: (signal_type, hash) -> withdrawn?"""
        found: dict[tuple[str, bytes], bool] = {}
        hashes = sorted(set(hashes))
        for start in range(0, len(hashes), IN_CHUNK):
            chunk = hashes[start : start + IN_CHUNK]
            rows = await self.db.fetch_all(
                "SELECT signal_type, hash, withdrawn_at FROM bank_items"
                f" WHERE bank_id = ? AND hash IN ({_placeholders(chunk)})",
                bank.id,
                *chunk,
            )
            for row in rows:
                found[(row["signal_type"], bytes(row["hash"]))] = row["withdrawn_at"] is not None
        return found

    async def insert_item(self, bank: Bank, item: NewItem) -> BankItem:
        """Insert one item (``IntegrityError`` if its hash or reference is taken)."""
        await self.db.execute(_INSERT_ITEM_SQL, *_item_params(bank, item))
        row = await self.db.fetch_one(
            f"SELECT {_ITEM_COLUMNS} FROM bank_items i WHERE i.item_ref = ?", item.item_ref
        )
        assert row is not None
        return _item(row, bank.name)

    async def insert_items(self, bank: Bank, items: Sequence[NewItem]) -> None:
        """Insert a batch (``IntegrityError`` if any hash or reference is taken)."""
        await self.db.execute_many(_INSERT_ITEM_SQL, [_item_params(bank, i) for i in items])

    async def items_by_refs(self, bank: Bank, refs: Sequence[bytes]) -> list[BankItem]:
        out: list[BankItem] = []
        for start in range(0, len(refs), IN_CHUNK):
            chunk = refs[start : start + IN_CHUNK]
            rows = await self.db.fetch_all(
                f"SELECT {_ITEM_COLUMNS} FROM bank_items i"
                f" WHERE i.item_ref IN ({_placeholders(chunk)}) ORDER BY i.id",
                *chunk,
            )
            out += [_item(row, bank.name) for row in rows]
        return out

    async def delete_item(self, item_id: int) -> None:
        await self.db.execute("DELETE FROM bank_items WHERE id = ?", item_id)

    async def stored_secret_hash(self, ref: bytes) -> tuple[bool, bytes]:
        """Whether the item exists, and its stored withdrawal secret hash (b"" for none)."""
        row = await self.db.fetch_one(
            "SELECT i.id, i.withdrawal_secret_hash FROM bank_items i WHERE i.item_ref = ?", ref
        )
        if row is None:
            return False, b""
        return True, bytes(row["withdrawal_secret_hash"] or b"")

    async def secret_hash_of(self, item_id: int) -> bytes | None:
        value = await self.db.fetch_value(
            "SELECT withdrawal_secret_hash FROM bank_items WHERE id = ?", item_id
        )
        return None if value is None else bytes(value)

    async def mark_withdrawn(self, item_id: int, reason: str, now: int) -> None:
        await self.db.execute(
            "UPDATE bank_items SET withdrawn_at = ?, withdrawal_reason = ? WHERE id = ?",
            now,
            reason,
            item_id,
        )

    async def items_page(
        self,
        bank: Bank,
        *,
        after_id: int,
        limit: int,
        signal_type: str | None = None,
        live_at: int | None = None,
    ) -> list[BankItem]:
        """A bank's items in id order after ``after_id``; with ``live_at`` only the live ones."""
        sql = f"SELECT {_ITEM_COLUMNS} FROM bank_items i WHERE i.bank_id = ? AND i.id > ?"
        params: list[Any] = [bank.id, int(after_id)]
        if signal_type is not None:
            sql += " AND i.signal_type = ?"
            params.append(signal_type)
        if live_at is not None:
            sql += " AND " + LIVE
            params.append(live_at)
        sql += " ORDER BY i.id LIMIT ?"
        params.append(limit)
        return [_item(r, bank.name) for r in await self.db.fetch_all(sql, *params)]

    async def active_items_page(
        self,
        signal_type: str,
        now: int,
        *,
        after_id: int,
        limit: int,
        bank_names: Sequence[str] | None = None,
    ) -> list[ActiveItem]:
        """Live items of one signal type in enabled banks (or the named ones), by id. Uses the
        ``bank_items_live`` index."""
        sql = (
            "SELECT b.name AS bank, b.distance_threshold, i.id, i.item_ref, i.hash, i.quality"
            " FROM bank_items i JOIN banks b ON b.id = i.bank_id"
            " WHERE i.signal_type = ? AND " + LIVE + " AND i.id > ?"
        )
        params: list[Any] = [signal_type, now, int(after_id)]
        if bank_names is None:
            sql += " AND b.enabled = 1"
        else:
            sql += f" AND b.name IN ({_placeholders(bank_names)})"
            params.extend(bank_names)
        sql += " ORDER BY i.id LIMIT ?"
        params.append(limit)
        return [
            ActiveItem(
                bank=r["bank"],
                item_id=int(r["id"]),
                item_ref=bytes(r["item_ref"]),
                hash=bytes(r["hash"]),
                quality=None if r["quality"] is None else int(r["quality"]),
                distance_threshold=int(r["distance_threshold"]),
            )
            for r in await self.db.fetch_all(sql, *params)
        ]

    # --- protected sources ---------------------------------------------------------------------

    async def add_source_tiles(
        self,
        source_id: int,
        scheme: str,
        group: bytes,
        source_cells: int,
        tiles: Sequence[tuple[str, int, bytes, int, bytes]],
    ) -> None:
        """A protected source's group and its tiles: (cell, frame, hash, quality, item_ref)."""
        await self.db.execute(
            "INSERT INTO protected_sources (source_id, scheme, grp, source_cells)"
            " VALUES (?, ?, ?, ?)",
            source_id, scheme, group, source_cells,
        )  # fmt: skip
        for cell, frame, hash_bytes, quality, item_ref in tiles:
            await self.db.execute(
                "INSERT INTO source_tiles (source_id, cell, frame, hash, quality, item_ref)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                source_id, cell, frame, hash_bytes, quality, item_ref,
            )  # fmt: skip

    async def source_tiles(self, item_ref: bytes) -> list[tuple[str, int, bytes, int]]:
        """A protected source's tiles: (cell, frame, hash, quality), in insertion order."""
        rows = await self.db.fetch_all(
            "SELECT t.cell, t.frame, t.hash, t.quality FROM source_tiles t"
            " JOIN bank_items i ON i.id = t.source_id WHERE i.item_ref = ? ORDER BY t.id",
            item_ref,
        )
        return [(r["cell"], int(r["frame"]), bytes(r["hash"]), int(r["quality"])) for r in rows]

    # --- banked crops --------------------------------------------------------------------------

    async def add_item_crops(self, added: Any, crops: Sequence[Any], new_ref: Any) -> Any:
        """Store a picture's banked crops (``crop``, ``hash``, ``quality``) with the item just
        added (an ``AddResult``, returned), each under a fresh ``new_ref()``: when the item is
        new, or was banked before without crops (a hash-only import of the same picture)."""
        item = added.item
        if not crops or item.withdrawn_at is not None:
            return added
        if not added.created and await self.item_crops(item.item_ref):
            return added
        for c in crops:
            await self.db.execute(
                "INSERT INTO item_crops (item_id, crop, hash, quality, item_ref)"
                " VALUES (?, ?, ?, ?, ?)",
                item.id, c.crop, c.hash, c.quality, new_ref(),
            )  # fmt: skip
        return added

    async def item_crops(self, item_ref: bytes) -> list[tuple[str, bytes, int]]:
        """An item's banked crops: (crop name, hash, quality), in insertion order."""
        rows = await self.db.fetch_all(
            "SELECT c.crop, c.hash, c.quality FROM item_crops c"
            " JOIN bank_items i ON i.id = c.item_id WHERE i.item_ref = ? ORDER BY c.id",
            item_ref,
        )
        return [(r["crop"], bytes(r["hash"]), int(r["quality"])) for r in rows]

    # --- the node's own matching ---------------------------------------------------------------

    async def local_signature(self, signal_type: str) -> tuple[Any, ...]:
        """Changes whenever the items a node matches its own uploads against may have changed:
        the counts of its items of the type (one aggregate row) and every bank's settings."""
        row = await self.db.fetch_one(
            "SELECT COUNT(*) AS n, COALESCE(MAX(id), 0) AS top,"
            " COALESCE(SUM(CASE WHEN withdrawn_at IS NULL THEN 0 ELSE 1 END), 0) AS gone"
            " FROM bank_items WHERE signal_type = ?",
            signal_type,
        )
        banks = await self.db.fetch_all(
            "SELECT id, name, enabled, distance_threshold, provenance, categories FROM banks"
            " ORDER BY id"
        )  # a handful of rows: their settings are part of the signature
        assert row is not None  # an aggregate always answers one row
        return (
            *(int(row[k]) for k in ("n", "top", "gone")),
            *(tuple(b.values()) for b in banks),
        )

    async def local_items(self, signal_type: str) -> list[Row]:
        """The items of one signal type in enabled banks, not withdrawn (expiry is the
        caller's: it changes with the clock, not with the data), with their banks' settings."""
        # An item's banked crops (specs/signals-and-lsh.md 3.5) are more rows of the same item
        # (crop names the crop; NULL for the picture as banked).
        columns = " i.expires_at, b.name AS bank, b.provenance, b.categories, b.distance_threshold"
        where = " JOIN banks b ON b.id = i.bank_id WHERE i.signal_type = ? AND " + NOT_WITHDRAWN
        return await self.db.fetch_all(
            "SELECT i.item_ref, i.hash, NULL AS crop,"
            + columns
            + " FROM bank_items i"
            + where
            + " AND b.enabled = 1"
            " UNION ALL SELECT i.item_ref, c.hash, c.crop," + columns + " FROM item_crops c"
            " JOIN bank_items i ON i.id = c.item_id" + where + " AND b.enabled = 1",
            signal_type,
            signal_type,
        )
