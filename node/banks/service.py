"""Banks: named collections of hashes with provenance, and the operations on them.

A bank has a provenance class (who vouches for its hashes), category labels, a distance
threshold, an enabled switch and a shared-with-federation flag. Its items are hashes with an
opaque random ``item_ref`` (what peers and survivors see instead of the hash), optional expiry,
and withdrawal (a tombstone: a withdrawn hash stops matching and is not silently re-added).

Every mutation runs in one transaction. A mutation of a *shared* bank also appends its change
(``item-added``, ``item-withdrawn``, ``bank-updated``) to the ``bank-items`` feed in that same
transaction, so replication never misses or duplicates a change, even if the node is killed
half-way. Feed payloads are msgpack maps; an ``on_item_added`` hook supplies extra fields (the
blinded index keys) for each added item.

Raw hashes never appear in messages or logs; ``BankItem``'s repr omits them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
import json
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

from blindmatch.node.banks.formats import (
    EXPORT_FORMATS,
    MAX_REPORTED_PROBLEMS,
    ImportFormatError,
    LineProblem,
    LineSource,
    ParsedItem,
    export_record,
    parse_hash_list,
    te_export_line,
)
from blindmatch.node.banks.validation import (
    PDQ_QUALITY_THRESHOLD,
    PERCEPTUAL_SIGNAL_TYPES,
    BankValidationError,
    SourceTile,
    check_bank_name,
    check_categories,
    check_description,
    check_distance_threshold,
    check_flag,
    check_hash_bytes,
    check_item_ref,
    check_provenance_class,
    check_provenance_details,
    check_quality,
    check_reason,
    check_secret,
    check_signal_type,
    check_source,
    check_source_tiles,
    check_timestamp,
    echo,
    holds_frame_list,
    parse_hash_hex,
    parse_signal_value,
)
from blindmatch.node.banks.video_rows import insert_video_rows, signal_strings
from blindmatch.node.clock import Clock
from blindmatch.node.storage import Database, FeedLog, IntegrityError
from blindmatch.node.storage.database import Row

ITEMS_FEED = "bank-items"
FEED_PAYLOAD_VERSION = 1
# Feed payload keys the service owns; a hook may add others but not replace these.
CORE_PAYLOAD_KEYS = frozenset({"v", "bank", "item_ref", "signal_type", "reason"})
SECRET_DOMAIN = b"blindmatch/withdrawal-secret/v1\x00"
PAGE_SIZE = 1000
IN_CHUNK = 500  # values per "IN (...)" list

MediaHasher = Callable[[bytes], Iterable[tuple[str, bytes, int | None]]]
ItemAddedHook = Callable[["BankItem", "Bank"], Awaitable[Mapping[str, Any] | None]]


class BankError(Exception):
    code = "error"


class BankNotFoundError(BankError, LookupError):
    code = "not-found"


class ItemNotFoundError(BankError, LookupError):
    code = "not-found"


class BankExistsError(BankError):
    code = "conflict"


class BankConflictError(BankError):
    code = "conflict"


class ItemWithdrawnError(BankError):
    """The hash was withdrawn from this bank; it is not re-added behind anyone's back."""

    code = "withdrawn"


class WithdrawalRefusedError(BankError):
    code = "refused"


def withdrawal_secret_hash(secret: bytes) -> bytes:
    """What is stored for a survivor's withdrawal secret (a random value of >= 16 bytes).

    A fast hash is enough because the secret is random, not a password; the node never
    stores the secret itself.
    """
    return hashlib.sha256(SECRET_DOMAIN + check_secret(secret)).digest()


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
class AddResult:
    item: BankItem
    created: bool  # False: the same hash was already in the bank


@dataclass
class ImportReport:
    added: int = 0
    already_present: int = 0
    skipped: list[LineProblem] = field(default_factory=list)
    format: str = ""  # the format read (the detected one for "auto")
    unsupported: Counter[str] = field(default_factory=Counter)  # skipped lines by TE type


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


def _item_params(
    bank: Bank, item: ParsedItem, item_ref: bytes, source: str, now: int
) -> tuple[Any, ...]:
    return (
        bank.id,
        item.signal_type,
        item.hash,
        item.quality,
        item_ref,
        json.dumps(dict(item.provenance)),
        json.dumps(list(item.categories)),
        source,
        item.added_at if item.added_at is not None else now,
        item.expires_at,
        item.withdrawal_secret_hash,
    )


class BankService:
    """Bank and item operations over a migrated :class:`Database`.

    ``feed`` names the change feed shared-bank mutations are appended to (``None``: append
    nothing). ``on_item_added(item, bank)`` may return extra payload fields for an
    ``item-added`` entry (e.g. the blinded index keys); it runs inside the adding transaction,
    so if it raises, the item is not added.
    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        on_item_added: ItemAddedHook | None = None,
        *,
        feed: str | None = ITEMS_FEED,
        new_ref: Callable[[], bytes] = lambda: secrets.token_bytes(16),
    ) -> None:
        self._db = db
        self._clock = clock
        self._on_item_added = on_item_added
        self._feed_name = feed
        self._feed = FeedLog(db)
        self._new_ref = new_ref

    @property
    def db(self) -> Database:
        return self._db

    @property
    def clock(self) -> Clock:
        return self._clock

    # --- banks -----------------------------------------------------------------------------------

    async def create_bank(
        self,
        name: str,
        *,
        provenance: str,
        description: str = "",
        categories: Sequence[str] = (),
        distance_threshold: int = 31,
        enabled: bool = True,
        shared: bool = False,
    ) -> Bank:
        name = check_bank_name(name)
        provenance = check_provenance_class(provenance)
        description = check_description(description)
        labels = check_categories(categories)
        distance_threshold = check_distance_threshold(distance_threshold)
        check_flag(enabled, "enabled")
        check_flag(shared, "shared")
        now = self._clock.now()
        try:
            await self._db.execute(
                "INSERT INTO banks (name, description, provenance, categories,"
                " distance_threshold, enabled, shared, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                name,
                description,
                provenance,
                json.dumps(list(labels)),
                distance_threshold,
                int(enabled),
                int(shared),
                now,
                now,
            )
        except IntegrityError:
            raise BankExistsError(f"a bank named {name!r} already exists") from None
        return await self.get_bank(name)

    async def get_bank(self, name: str) -> Bank:
        check_bank_name(name)
        row = await self._db.fetch_one("SELECT * FROM banks WHERE name = ?", name)
        if row is None:
            raise BankNotFoundError(f"no bank named {name!r}")
        return _bank(row)

    async def list_banks(self) -> list[Bank]:
        return [_bank(r) for r in await self._db.fetch_all("SELECT * FROM banks ORDER BY name")]

    async def count_items(self, name: str) -> dict[str, int]:
        """Item counts of a bank: active, expired, withdrawn."""
        bank = await self.get_bank(name)
        now = self._clock.now()
        row = await self._db.fetch_one(
            "SELECT"
            " SUM(CASE WHEN withdrawn_at IS NULL AND (expires_at IS NULL OR expires_at > ?)"
            "     THEN 1 ELSE 0 END) AS active,"
            " SUM(CASE WHEN withdrawn_at IS NULL AND expires_at <= ? THEN 1 ELSE 0 END)"
            "     AS expired,"
            " SUM(CASE WHEN withdrawn_at IS NOT NULL THEN 1 ELSE 0 END) AS withdrawn"
            " FROM bank_items WHERE bank_id = ?",
            now,
            now,
            bank.id,
        )
        assert row is not None
        return {k: int(row[k] or 0) for k in ("active", "expired", "withdrawn")}

    async def update_bank(
        self,
        name: str,
        *,
        description: str | None = None,
        categories: Sequence[str] | None = None,
        distance_threshold: int | None = None,
        enabled: bool | None = None,
        shared: bool | None = None,
    ) -> Bank:
        """Change a bank's settings. Sharing publishes its live items to the feed; unsharing
        withdraws them from peers."""
        changes: dict[str, Any] = {}
        if description is not None:
            changes["description"] = check_description(description)
        if categories is not None:
            changes["categories"] = json.dumps(list(check_categories(categories)))
        if distance_threshold is not None:
            changes["distance_threshold"] = check_distance_threshold(distance_threshold)
        if enabled is not None:
            changes["enabled"] = int(check_flag(enabled, "enabled"))
        if shared is not None:
            changes["shared"] = int(check_flag(shared, "shared"))
        now = self._clock.now()
        async with self._db.transaction():
            before = await self.get_bank(name)
            if not changes:
                return before
            assignments = ", ".join(f"{column} = ?" for column in changes)
            await self._db.execute(
                f"UPDATE banks SET {assignments}, updated_at = ? WHERE id = ?",
                *changes.values(),
                now,
                before.id,
            )
            after = await self.get_bank(name)
            if after.shared and not before.shared:
                async for item in self._live_items_of(after, now):
                    await self._publish_added(item, after, now)
            elif before.shared and not after.shared:
                async for item in self._live_items_of(before, now):
                    await self._publish_withdrawn(item, before, "unshared", now)
            elif after.shared and (
                (after.enabled, after.distance_threshold, after.categories)
                != (before.enabled, before.distance_threshold, before.categories)
            ):
                await self._append(
                    "bank-updated",
                    {
                        "v": FEED_PAYLOAD_VERSION,
                        "bank": after.name,
                        "enabled": after.enabled,
                        "distance_threshold": after.distance_threshold,
                        "categories": list(after.categories),
                    },
                    now,
                )
        return after

    async def set_enabled(self, name: str, enabled: bool) -> Bank:
        return await self.update_bank(name, enabled=enabled)

    async def delete_bank(self, name: str) -> int:
        """Delete a bank and its items; return how many items went. Peers are told to drop the
        live items of a shared bank."""
        now = self._clock.now()
        async with self._db.transaction():
            bank = await self.get_bank(name)
            if bank.shared:
                async for item in self._live_items_of(bank, now):
                    await self._publish_withdrawn(item, bank, "bank-deleted", now)
            removed = await self._db.execute("DELETE FROM bank_items WHERE bank_id = ?", bank.id)
            await self._db.execute("DELETE FROM banks WHERE id = ?", bank.id)
        return removed

    # --- items -----------------------------------------------------------------------------------

    async def add_item(
        self,
        bank: str,
        signal_type: str,
        hash_value: bytes | str,
        *,
        quality: int | None = None,
        categories: Sequence[str] = (),
        expires_at: int | None = None,
        provenance: Mapping[str, Any] | None = None,
        source: str = "local",
        withdrawal_secret: bytes | None = None,
        min_quality: int | None = None,
    ) -> AddResult:
        """Add one hash (bytes, or hex text) to a bank.

        Adding a hash the bank already holds returns the existing item (``created=False``).
        A hash withdrawn from this bank raises :class:`ItemWithdrawnError`. With
        ``min_quality`` a perceptual hash of known lower quality is refused.
        """
        signal_type = check_signal_type(signal_type)
        frames = None
        if isinstance(hash_value, str):
            hash_bytes, frames = parse_signal_value(signal_type, hash_value)
        elif holds_frame_list(signal_type):
            raise BankValidationError(f"a {signal_type} item is a video: give its signal string")
        else:
            hash_bytes = check_hash_bytes(signal_type, hash_value)
        parsed = ParsedItem(
            line=0,
            signal_type=signal_type,
            hash=hash_bytes,
            frames=frames,
            quality=check_quality(quality),
            categories=check_categories(categories),
            expires_at=check_timestamp(expires_at, "expires_at"),
            provenance=check_provenance_details(provenance),
            withdrawal_secret_hash=None
            if withdrawal_secret is None
            else withdrawal_secret_hash(withdrawal_secret),
        )
        source = check_source(source)
        self._check_quality_gate(parsed, min_quality)
        now = self._clock.now()
        if parsed.expires_at is not None and parsed.expires_at <= now:
            raise BankValidationError("expires_at is not in the future")
        async with self._db.transaction():
            target = await self.get_bank(bank)
            return await self._insert(target, parsed, source, now)

    async def add_protected_source(
        self,
        bank: str,
        pdq_hash: bytes | str,
        *,
        quality: int,
        tiles: Sequence[SourceTile],
        categories: Sequence[str] = (),
        source: str = "local",
        withdrawal_secret: bytes | None = None,
        expires_at: int | None = None,
        scheme: str = "pdq-tiles-1",
    ) -> AddResult:
        """Add a protected source photo: its whole-photo PDQ hash as an ordinary item of a
        ``protected-source`` bank, and its tile hashes (specs/derivatives.md) under one fresh
        random group reference. The tiles have their own item references, are published and
        answered for only while the source item is active, and go with it when it is withdrawn
        or removed. Adding a photo the bank already holds returns the existing item and keeps
        its tiles (``created=False``), so a repeat submission changes nothing.
        """
        from blindmatch.protocol.derivative import DERIVATIVE_SCHEMES, Cell, cells_mask

        checked = check_source_tiles(list(tiles), scheme)
        tile_scheme = DERIVATIVE_SCHEMES[scheme]
        pdq = parse_hash_hex("pdq", pdq_hash) if isinstance(pdq_hash, str) else pdq_hash
        parsed = ParsedItem(
            line=0,
            signal_type="pdq",
            hash=check_hash_bytes("pdq", pdq),
            quality=check_quality(quality),
            categories=check_categories(categories),
            expires_at=check_timestamp(expires_at, "expires_at"),
            provenance={},
            withdrawal_secret_hash=None
            if withdrawal_secret is None
            else withdrawal_secret_hash(withdrawal_secret),
        )
        source = check_source(source)
        now = self._clock.now()
        if parsed.expires_at is not None and parsed.expires_at <= now:
            raise BankValidationError("expires_at is not in the future")
        async with self._db.transaction():
            target = await self.get_bank(bank)
            if target.provenance != "protected-source":
                raise BankValidationError(
                    f"bank {target.name!r} is not a protected-source bank"
                    f" (its provenance class is {target.provenance})"
                )
            result = await self._insert(target, parsed, source, now)
            if not result.created:
                return result
            mask = cells_mask(tile_scheme, (Cell.parse(t.cell) for t in checked if t.frame == 0))
            await self._db.execute(
                "INSERT INTO protected_sources (source_id, scheme, grp, source_cells)"
                " VALUES (?, ?, ?, ?)",
                result.item.id, scheme, secrets.token_bytes(8), mask,
            )  # fmt: skip
            for t in checked:
                await self._db.execute(
                    "INSERT INTO source_tiles (source_id, cell, frame, hash, quality, item_ref)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    result.item.id, t.cell, t.frame, t.hash, t.quality, self._new_ref(),
                )  # fmt: skip
            return result

    async def source_tiles(self, item_ref: bytes | str) -> list[SourceTile]:
        """The tiles stored for a protected source (empty for any other item)."""
        rows = await self._db.fetch_all(
            "SELECT t.cell, t.frame, t.hash, t.quality FROM source_tiles t"
            " JOIN bank_items i ON i.id = t.source_id WHERE i.item_ref = ? ORDER BY t.id",
            check_item_ref(item_ref),
        )
        return [
            SourceTile(r["cell"], int(r["frame"]), bytes(r["hash"]), int(r["quality"]))
            for r in rows
        ]

    async def add_media(
        self,
        bank: str,
        media: bytes,
        hasher: MediaHasher | Callable[[bytes], Awaitable[Iterable[tuple[str, bytes, int | None]]]],
        **options: Any,
    ) -> list[AddResult]:
        """Hash media with ``hasher`` (``bytes -> [(signal_type, hash, quality)]``) and add
        every hash it returns, all in one transaction. The media itself is not kept."""
        hashes = await self._hash_media(media, hasher)
        now = self._clock.now()
        source = check_source(options.pop("source", "local"))
        min_quality = options.pop("min_quality", None)
        secret = options.pop("withdrawal_secret", None)
        template = ParsedItem(
            line=0,
            signal_type="pdq",
            hash=b"",
            quality=None,
            categories=check_categories(options.pop("categories", ())),
            expires_at=check_timestamp(options.pop("expires_at", None), "expires_at"),
            provenance=check_provenance_details(options.pop("provenance", None)),
            withdrawal_secret_hash=None if secret is None else withdrawal_secret_hash(secret),
        )
        if options:
            raise TypeError(f"unexpected options: {', '.join(sorted(options))}")
        items = []
        for signal_type, hash_bytes, quality in hashes:
            signal_type = check_signal_type(signal_type)
            items.append(
                ParsedItem(
                    line=0,
                    signal_type=signal_type,
                    hash=check_hash_bytes(signal_type, hash_bytes),
                    quality=check_quality(quality),
                    categories=template.categories,
                    expires_at=template.expires_at,
                    provenance=template.provenance,
                    withdrawal_secret_hash=template.withdrawal_secret_hash,
                )
            )
        # Below-threshold perceptual hashes of a picture are left out rather than refusing
        # the picture: its exact (sha256) hash still goes in.
        items = [i for i in items if self._passes_quality_gate(i, min_quality)]
        if not items:
            raise BankValidationError("the media produced no hash good enough to bank")
        async with self._db.transaction():
            target = await self.get_bank(bank)
            return [await self._insert(target, item, source, now) for item in items]

    async def remove_item(self, bank: str, signal_type: str, hash_value: bytes | str) -> bool:
        """Delete one hash from a bank; True if it was there.

        Unlike :meth:`withdraw` this leaves no tombstone (deleting a withdrawn item's
        tombstone lets its hash be added again): an operator's correction, not a survivor's
        withdrawal. Peers are told to drop a live item of a shared bank either way.
        """
        signal_type = check_signal_type(signal_type)
        if isinstance(hash_value, str):
            hash_bytes = parse_hash_hex(signal_type, hash_value)
        else:
            hash_bytes = check_hash_bytes(signal_type, hash_value)
        now = self._clock.now()
        async with self._db.transaction():
            target = await self.get_bank(bank)
            row = await self._db.fetch_one(
                f"SELECT {_ITEM_COLUMNS} FROM bank_items i"
                " WHERE i.bank_id = ? AND i.signal_type = ? AND i.hash = ?",
                target.id,
                signal_type,
                hash_bytes,
            )
            if row is None:
                return False
            await self._delete(_item(row, target.name), target, now)
        return True

    async def remove_media(self, bank: str, media: bytes, hasher: MediaHasher) -> int:
        """Delete every hash the media yields from the bank; return how many were there."""
        hashes = await self._hash_media(media, hasher)
        removed = 0
        async with self._db.transaction():
            for signal_type, hash_bytes, _quality in hashes:
                removed += await self.remove_item(bank, signal_type, hash_bytes)
        return removed

    async def remove_by_ref(self, item_ref: bytes | str) -> bool:
        ref = check_item_ref(item_ref)
        now = self._clock.now()
        async with self._db.transaction():
            found = await self._find_by_ref(ref)
            if found is None:
                return False
            item, bank = found
            await self._delete(item, bank, now)
        return True

    async def get_item(self, item_ref: bytes | str) -> BankItem:
        found = await self._find_by_ref(check_item_ref(item_ref))
        if found is None:
            raise ItemNotFoundError("no item with that item_ref")
        return found[0]

    async def withdraw(self, item_ref: bytes | str, *, reason: str = "") -> BankItem:
        """Withdraw an item on an operator's authority (no secret needed). Idempotent."""
        return await self._withdraw(check_item_ref(item_ref), check_reason(reason), None)

    async def withdraw_with_secret(
        self, item_ref: bytes | str, secret: bytes, *, reason: str = ""
    ) -> BankItem:
        """A survivor's withdrawal: refused unless ``secret`` matches the one set at submission.

        The refusal is the same whether the item is missing, has no secret, or the secret is
        wrong, so the endpoint cannot be used to probe which references exist.
        """
        return await self._withdraw(
            check_item_ref(item_ref), check_reason(reason), withdrawal_secret_hash(secret)
        )

    async def list_items(
        self,
        bank: str,
        *,
        signal_type: str | None = None,
        include_inactive: bool = False,
        after_id: int = 0,
        limit: int = PAGE_SIZE,
    ) -> list[BankItem]:
        """Items of a bank in id order, a page at a time (pass the last id as ``after_id``)."""
        target = await self.get_bank(bank)
        if signal_type is not None:
            check_signal_type(signal_type)
        if not isinstance(limit, int) or not 1 <= limit <= 10 * PAGE_SIZE:
            raise BankValidationError(f"limit must be 1..{10 * PAGE_SIZE}")
        now = self._clock.now()
        sql = f"SELECT {_ITEM_COLUMNS} FROM bank_items i WHERE i.bank_id = ? AND i.id > ?"
        params: list[Any] = [target.id, int(after_id)]
        if signal_type is not None:
            sql += " AND i.signal_type = ?"
            params.append(signal_type)
        if not include_inactive:
            sql += " AND i.withdrawn_at IS NULL AND (i.expires_at IS NULL OR i.expires_at > ?)"
            params.append(now)
        sql += " ORDER BY i.id LIMIT ?"
        params.append(limit)
        return [_item(r, target.name) for r in await self._db.fetch_all(sql, *params)]

    async def active_items(
        self,
        signal_type: str,
        *,
        banks: Sequence[str] | None = None,
        after_id: int = 0,
        limit: int = PAGE_SIZE,
    ) -> list[ActiveItem]:
        """Live items of one signal type in enabled banks (or the named ones), by id, a page at
        a time: what the matcher indexes. Uses the ``bank_items_live`` index."""
        signal_type = check_signal_type(signal_type)
        now = self._clock.now()
        sql = (
            "SELECT b.name AS bank, b.distance_threshold, i.id, i.item_ref, i.hash, i.quality"
            " FROM bank_items i JOIN banks b ON b.id = i.bank_id"
            " WHERE i.signal_type = ? AND i.withdrawn_at IS NULL"
            " AND (i.expires_at IS NULL OR i.expires_at > ?) AND i.id > ?"
        )
        params: list[Any] = [signal_type, now, int(after_id)]
        if banks is None:
            sql += " AND b.enabled = 1"
        else:
            names = [check_bank_name(n) for n in banks]
            if not names:
                return []
            sql += f" AND b.name IN ({', '.join('?' for _ in names)})"
            params.extend(names)
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
            for r in await self._db.fetch_all(sql, *params)
        ]

    async def iter_active_items(
        self, signal_type: str, *, banks: Sequence[str] | None = None
    ) -> AsyncIterator[ActiveItem]:
        after = 0
        while page := await self.active_items(signal_type, banks=banks, after_id=after):
            for item in page:
                yield item
            after = page[-1].item_id

    # --- import / export -------------------------------------------------------------------------

    async def import_items(
        self,
        bank: str,
        source: LineSource,
        *,
        fmt: str = "jsonl",
        signal_type: str | None = None,
        origin: str = "import",
        min_quality: int | None = None,
        skip_unsupported: bool = False,
    ) -> ImportReport:
        """Import a hash list, all or nothing (see :mod:`blindmatch.node.banks.formats`).

        A bad line refuses the whole import with line-numbered errors. Hashes already in the
        bank are counted, not duplicated; hashes withdrawn from the bank, and perceptual hashes
        below ``min_quality``, are skipped and reported; with ``skip_unsupported``, lines of
        signal types we do not hold are counted in ``report.unsupported``.
        """
        origin = check_source(origin)
        if min_quality is not None:
            check_quality(min_quality)
        parsed = parse_hash_list(fmt, source, signal_type, skip_unsupported=skip_unsupported)
        report = ImportReport(
            skipped=list(parsed.skipped), format=parsed.format, unsupported=parsed.unsupported
        )
        now = self._clock.now()
        candidates: list[ParsedItem] = []
        for item in parsed.items:
            if item.expires_at is not None and item.expires_at <= now:
                report.skipped.append(LineProblem(item.line, "skipped: already expired"))
            elif not self._passes_quality_gate(item, min_quality):
                report.skipped.append(
                    LineProblem(item.line, f"skipped: quality {item.quality} < {min_quality}")
                )
            else:
                candidates.append(item)
        async with self._db.transaction():
            target = await self.get_bank(bank)
            withdrawn_by_key = await self._existing_items(target, candidates)
            fresh: dict[tuple[str, bytes], ParsedItem] = {}
            for item in candidates:
                key = (item.signal_type, item.hash)
                if withdrawn_by_key.get(key):
                    report.skipped.append(LineProblem(item.line, "skipped: withdrawn earlier"))
                elif key in withdrawn_by_key or key in fresh:
                    report.already_present += 1
                else:
                    fresh[key] = item
            problems = await self._item_ref_problems(list(fresh.values()))
            if problems:
                raise ImportFormatError(problems[:MAX_REPORTED_PROBLEMS], len(problems))
            report.added = await self._insert_many(target, list(fresh.values()), origin, now)
        report.skipped.sort(key=lambda p: p.line)
        return report

    async def export_items(
        self,
        bank: str,
        *,
        include_private: bool = False,
        fmt: str = "jsonl",
        untranslatable: Counter[str] | None = None,
    ) -> AsyncIterator[str]:
        """The bank's live items as lines (without newlines) of ``fmt``: ``jsonl``, or
        ``te-lines`` / ``hma-json`` under TE's signal names; items of a type TE has no name for
        are counted in ``untranslatable`` (by our type) instead."""
        if fmt not in EXPORT_FORMATS:
            raise BankValidationError(
                f"unknown export format {echo(fmt)} (one of {', '.join(EXPORT_FORMATS)})"
            )
        after = 0
        while page := await self.list_items(bank, after_id=after):
            # A video is exported as its frame list (ThreatExchange's vpdq signal string).
            strings = await signal_strings(
                self._db, [i.id for i in page if holds_frame_list(i.signal_type)]
            )
            for item in page:
                if fmt != "jsonl":
                    line = te_export_line(fmt, item.signal_type, item.hash, strings.get(item.id))
                    if line is not None:
                        yield line
                    elif untranslatable is not None:
                        untranslatable[item.signal_type] += 1
                    continue
                secret_hash = None
                if include_private and item.has_withdrawal_secret:
                    secret_hash = await self._db.fetch_value(
                        "SELECT withdrawal_secret_hash FROM bank_items WHERE id = ?", item.id
                    )
                yield export_record(
                    signal_type=item.signal_type,
                    hash_bytes=item.hash,
                    quality=item.quality,
                    categories=item.categories,
                    expires_at=item.expires_at,
                    added_at=item.added_at,
                    provenance=item.provenance,
                    item_ref=item.item_ref,
                    withdrawal_secret_hash=None if secret_hash is None else bytes(secret_hash),
                    include_private=include_private,
                    signal_str=strings.get(item.id),
                )
            after = page[-1].id

    # --- internals -------------------------------------------------------------------------------

    @staticmethod
    def _passes_quality_gate(item: ParsedItem, min_quality: int | None) -> bool:
        if min_quality is None or item.signal_type not in PERCEPTUAL_SIGNAL_TYPES:
            return True
        return item.quality is None or item.quality >= min_quality

    def _check_quality_gate(self, item: ParsedItem, min_quality: int | None) -> None:
        if min_quality is not None:
            check_quality(min_quality)
        if not self._passes_quality_gate(item, min_quality):
            raise BankValidationError(
                f"{item.signal_type} quality {item.quality} is below the minimum {min_quality}"
                f" (Meta recommends {PDQ_QUALITY_THRESHOLD})"
            )

    async def _hash_media(self, media: bytes, hasher: Any) -> list[tuple[str, bytes, int | None]]:
        if not isinstance(media, bytes | bytearray) or not media:
            raise BankValidationError("media must be non-empty bytes")
        if inspect.iscoroutinefunction(hasher):
            produced = await hasher(bytes(media))
        else:
            # Hashing decodes pixels; keep it off the event loop.
            produced = await asyncio.to_thread(hasher, bytes(media))
            if inspect.isawaitable(produced):
                produced = await produced
        hashes = list(produced)
        for entry in hashes:
            if not (isinstance(entry, tuple) and len(entry) == 3):
                raise BankValidationError("the hasher must return (signal_type, hash, quality)")
        return hashes

    async def insert_parsed(self, bank: Bank, item: ParsedItem, source: str, now: int) -> AddResult:
        """Insert one validated item in the caller's transaction; a signal type with tables of
        its own (videos) fills them in the same transaction."""
        return await self._insert(bank, item, source, now)

    async def _insert(self, bank: Bank, item: ParsedItem, source: str, now: int) -> AddResult:
        existing = await self._db.fetch_one(
            f"SELECT {_ITEM_COLUMNS} FROM bank_items i"
            " WHERE i.bank_id = ? AND i.signal_type = ? AND i.hash = ?",
            bank.id,
            item.signal_type,
            item.hash,
        )
        if existing is not None:
            found = _item(existing, bank.name)
            if found.withdrawn_at is not None:
                raise ItemWithdrawnError(
                    f"this {item.signal_type} hash was withdrawn from bank {bank.name!r}"
                )
            return AddResult(found, created=False)
        item_ref = item.item_ref if item.item_ref is not None else self._new_ref()
        if item.item_ref is not None and await self._db.fetch_value(
            "SELECT COUNT(*) FROM bank_items WHERE item_ref = ?", item_ref
        ):
            raise BankValidationError("item_ref is already used by another item")
        try:
            # A savepoint: a refused insert must not poison the caller's transaction.
            async with self._db.transaction():
                await self._db.execute(
                    _INSERT_ITEM_SQL, *_item_params(bank, item, item_ref, source, now)
                )
        except IntegrityError:
            # Another worker added the same hash (or drew the same item_ref) at the same time.
            raise BankConflictError("the item changed concurrently; retry") from None
        row = await self._db.fetch_one(
            f"SELECT {_ITEM_COLUMNS} FROM bank_items i WHERE i.item_ref = ?", item_ref
        )
        assert row is not None
        added = _item(row, bank.name)
        if item.frames is not None:
            await insert_video_rows(self._db, added.id, item.frames)
        if bank.shared and added.is_active(now):
            await self._publish_added(added, bank, now)
        return AddResult(added, created=True)

    async def _existing_items(
        self, bank: Bank, items: Sequence[ParsedItem]
    ) -> dict[tuple[str, bytes], bool]:
        """Which of these hashes the bank already holds: (signal_type, hash) -> withdrawn?"""
        found: dict[tuple[str, bytes], bool] = {}
        hashes = sorted({item.hash for item in items})
        for start in range(0, len(hashes), IN_CHUNK):
            chunk = hashes[start : start + IN_CHUNK]
            rows = await self._db.fetch_all(
                "SELECT signal_type, hash, withdrawn_at FROM bank_items"
                f" WHERE bank_id = ? AND hash IN ({', '.join('?' for _ in chunk)})",
                bank.id,
                *chunk,
            )
            for row in rows:
                found[(row["signal_type"], bytes(row["hash"]))] = row["withdrawn_at"] is not None
        return found

    async def _item_ref_problems(self, items: Sequence[ParsedItem]) -> list[LineProblem]:
        """Explicit item_refs (restored backups) that repeat, or that another item holds."""
        problems: list[LineProblem] = []
        first_line: dict[bytes, int] = {}
        for item in items:
            if item.item_ref is None:
                continue
            if item.item_ref in first_line:
                problems.append(
                    LineProblem(item.line, f"item_ref repeats line {first_line[item.item_ref]}")
                )
            else:
                first_line[item.item_ref] = item.line
        refs = sorted(first_line)
        for start in range(0, len(refs), IN_CHUNK):
            chunk = refs[start : start + IN_CHUNK]
            placeholders = ", ".join("?" for _ in chunk)
            rows = await self._db.fetch_all(
                f"SELECT item_ref FROM bank_items WHERE item_ref IN ({placeholders})", *chunk
            )
            for row in rows:
                problems.append(
                    LineProblem(
                        first_line[bytes(row["item_ref"])],
                        "item_ref is already used by another item",
                    )
                )
        problems.sort(key=lambda p: p.line)
        return problems

    async def _insert_many(
        self, bank: Bank, items: Sequence[ParsedItem], source: str, now: int
    ) -> int:
        """Insert new items in one batch; publish them if the bank is shared."""
        if not items:
            return 0
        refs = [item.item_ref if item.item_ref is not None else self._new_ref() for item in items]
        try:
            await self._db.execute_many(
                _INSERT_ITEM_SQL,
                [
                    _item_params(bank, item, ref, source, now)
                    for item, ref in zip(items, refs, strict=True)
                ],
            )
        except IntegrityError:
            raise BankConflictError("the bank changed during the import; retry") from None
        videos = [(item, ref) for item, ref in zip(items, refs, strict=True) if item.frames]
        for item, ref in videos:
            item_id = await self._db.fetch_value(
                "SELECT id FROM bank_items WHERE item_ref = ?", ref
            )
            assert item.frames is not None
            await insert_video_rows(self._db, int(item_id), item.frames)
        if bank.shared and self._feed_name is not None:
            entries = []
            for start in range(0, len(refs), IN_CHUNK):
                chunk = refs[start : start + IN_CHUNK]
                rows = await self._db.fetch_all(
                    f"SELECT {_ITEM_COLUMNS} FROM bank_items i"
                    f" WHERE i.item_ref IN ({', '.join('?' for _ in chunk)}) ORDER BY i.id",
                    *chunk,
                )
                for row in rows:
                    payload = await self._added_payload(_item(row, bank.name), bank)
                    entries.append((secrets.token_bytes(16), "item-added", _pack(payload)))
            await self._feed.append_many(self._feed_name, entries, now)
        return len(items)

    async def _find_by_ref(self, ref: bytes) -> tuple[BankItem, Bank] | None:
        row = await self._db.fetch_one(
            f"SELECT {_ITEM_COLUMNS}, i.bank_id FROM bank_items i WHERE i.item_ref = ?", ref
        )
        if row is None:
            return None
        bank_row = await self._db.fetch_one("SELECT * FROM banks WHERE id = ?", row["bank_id"])
        assert bank_row is not None
        bank = _bank(bank_row)
        return _item(row, bank.name), bank

    async def _delete(self, item: BankItem, bank: Bank, now: int) -> None:
        await self._db.execute("DELETE FROM bank_items WHERE id = ?", item.id)
        if bank.shared and item.withdrawn_at is None:
            await self._publish_withdrawn(item, bank, "removed", now)

    async def _withdraw(
        self, ref: bytes, reason: str, presented_secret_hash: bytes | None
    ) -> BankItem:
        now = self._clock.now()
        async with self._db.transaction():
            row = await self._db.fetch_one(
                "SELECT i.id, i.withdrawal_secret_hash FROM bank_items i WHERE i.item_ref = ?",
                ref,
            )
            if presented_secret_hash is not None:
                stored = b"" if row is None else bytes(row["withdrawal_secret_hash"] or b"")
                # Compare even when there is nothing to compare with, so timing says nothing.
                expected = stored or bytes(32)
                if not (hmac.compare_digest(expected, presented_secret_hash) and stored):
                    raise WithdrawalRefusedError("withdrawal refused: unknown item or wrong secret")
            if row is None:
                raise ItemNotFoundError("no item with that item_ref")
            found = await self._find_by_ref(ref)
            assert found is not None
            item, bank = found
            if item.withdrawn_at is not None:
                return item
            await self._db.execute(
                "UPDATE bank_items SET withdrawn_at = ?, withdrawal_reason = ? WHERE id = ?",
                now,
                reason,
                item.id,
            )
            if bank.shared:
                await self._publish_withdrawn(item, bank, "withdrawn", now)
            withdrawn = await self._find_by_ref(ref)
            assert withdrawn is not None
            return withdrawn[0]

    async def _live_items_of(self, bank: Bank, now: int) -> AsyncIterator[BankItem]:
        after = 0
        while True:
            rows = await self._db.fetch_all(
                f"SELECT {_ITEM_COLUMNS} FROM bank_items i WHERE i.bank_id = ? AND i.id > ?"
                " AND i.withdrawn_at IS NULL AND (i.expires_at IS NULL OR i.expires_at > ?)"
                " ORDER BY i.id LIMIT ?",
                bank.id,
                after,
                now,
                PAGE_SIZE,
            )
            if not rows:
                return
            for row in rows:
                yield _item(row, bank.name)
            after = int(rows[-1]["id"])

    async def _publish_added(self, item: BankItem, bank: Bank, now: int) -> None:
        await self._append("item-added", await self._added_payload(item, bank), now)

    async def _added_payload(self, item: BankItem, bank: Bank) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "v": FEED_PAYLOAD_VERSION,
            "bank": bank.name,
            "item_ref": item.item_ref,
            "signal_type": item.signal_type,
            "provenance": bank.provenance,
            "categories": sorted(set(bank.categories) | set(item.categories)),
            "distance_threshold": bank.distance_threshold,
            "expires_at": item.expires_at,
            # Filled by the on_item_added hook once the blinded index is wired in.
            "index_keys": None,
        }
        if self._on_item_added is not None:
            produced: Any = self._on_item_added(item, bank)
            extra: Mapping[str, Any] | None = (
                await produced if inspect.isawaitable(produced) else produced
            )
            if extra:
                clash = CORE_PAYLOAD_KEYS & set(extra)
                if clash:
                    raise ValueError(f"on_item_added may not set {sorted(clash)}")
                payload.update(extra)
        return payload

    async def _publish_withdrawn(self, item: BankItem, bank: Bank, reason: str, now: int) -> None:
        # Only a reason code travels; the free-text reason stays on this node.
        await self._append(
            "item-withdrawn",
            {
                "v": FEED_PAYLOAD_VERSION,
                "bank": bank.name,
                "item_ref": item.item_ref,
                "signal_type": item.signal_type,
                "reason": reason,
            },
            now,
        )

    async def _append(self, kind: str, payload: Mapping[str, Any], now: int) -> None:
        if self._feed_name is None:  # the caller publishes changes its own way
            return
        await self._feed.append(self._feed_name, secrets.token_bytes(16), kind, _pack(payload), now)


def _pack(payload: Mapping[str, Any]) -> bytes:
    return msgpack.packb(dict(payload), use_bin_type=True)
