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

import hmac
import json
import secrets
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from blindmatch.node import signals
from blindmatch.node.banks.feed import BankFeed
from blindmatch.node.banks.formats import (
    ParsedItem,
)
from blindmatch.node.banks.media_items import BankMedia
from blindmatch.node.banks.model import (
    ITEMS_FEED,
    PAGE_SIZE,
    AddResult,
    BankConflictError,
    BankError,
    BankExistsError,
    BankNotFoundError,
    ImportReport,
    ItemAddedHook,
    ItemNotFoundError,
    ItemWithdrawnError,
    WithdrawalRefusedError,
    _new_item,
    check_quality_gate,
    withdrawal_secret_hash,
)
from blindmatch.node.banks.transfers import BankTransfers
from blindmatch.node.banks.validation import (
    BankedCrop,
    BankValidationError,
    SourceTile,
    check_bank_name,
    check_banked_crops,
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
    check_signal_type,
    check_source,
    check_source_tiles,
    check_timestamp,
    holds_frame_list,
    parse_hash_hex,
    parse_signal_value,
)
from blindmatch.node.clock import Clock
from blindmatch.node.storage import Database, FeedLog, IntegrityError
from blindmatch.node.storage.banks import ActiveItem, Bank, BankItem, BankStore

__all__ = [
    "ITEMS_FEED",
    "ActiveItem",
    "AddResult",
    "Bank",
    "BankError",
    "BankExistsError",
    "BankItem",
    "BankNotFoundError",
    "BankService",
    "ImportReport",
    "ItemNotFoundError",
    "ItemWithdrawnError",
    "WithdrawalRefusedError",
    "withdrawal_secret_hash",
]


class BankService(BankTransfers, BankMedia):
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
        self._store = BankStore(db)
        self._clock = clock
        self._feed = BankFeed(FeedLog(db), feed, on_item_added)
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
            await self._store.insert_bank(
                name, description, provenance, labels, distance_threshold, enabled, shared, now
            )
        except IntegrityError:
            raise BankExistsError(f"a bank named {name!r} already exists") from None
        return await self.get_bank(name)

    async def get_bank(self, name: str) -> Bank:
        check_bank_name(name)
        bank = await self._store.bank(name)
        if bank is None:
            raise BankNotFoundError(f"no bank named {name!r}")
        return bank

    async def list_banks(self) -> list[Bank]:
        return await self._store.banks()

    async def count_items(self, name: str) -> dict[str, int]:
        """Item counts of a bank: active, expired, withdrawn."""
        bank = await self.get_bank(name)
        return await self._store.count_items(bank.id, self._clock.now())

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
            await self._store.update_bank(before.id, changes, now)
            after = await self.get_bank(name)
            if after.shared and not before.shared:
                async for item in self._live_items_of(after, now):
                    await self._feed.added(item, after, now)
            elif before.shared and not after.shared:
                async for item in self._live_items_of(before, now):
                    await self._feed.withdrawn(item, before, "unshared", now)
            elif after.shared and (
                (after.enabled, after.distance_threshold, after.categories)
                != (before.enabled, before.distance_threshold, before.categories)
            ):
                await self._feed.updated(after, now)
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
                    await self._feed.withdrawn(item, bank, "bank-deleted", now)
            return await self._store.delete_bank(bank.id)

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
        crops: Sequence[BankedCrop] = (),
    ) -> AddResult:
        """Add one hash (bytes, or hex text) to a bank.

        Adding a hash the bank already holds returns the existing item (``created=False``).
        A hash withdrawn from this bank raises :class:`ItemWithdrawnError`. With
        ``min_quality`` a perceptual hash of known lower quality is refused. ``crops``: a
        picture's banked crops (specs/signals-and-lsh.md 3.5).
        """
        signal_type = check_signal_type(signal_type)
        checked_crops = check_banked_crops(crops, signal_type)
        frames = None
        if isinstance(hash_value, str):
            hash_bytes, frames = parse_signal_value(signal_type, hash_value)
        elif holds_frame_list(signal_type):
            noun = signals.adapter(signal_type).item_noun
            raise BankValidationError(f"a {signal_type} item is {noun}: give its signal string")
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
        check_quality_gate(parsed, min_quality)
        now = self._clock.now()
        if parsed.expires_at is not None and parsed.expires_at <= now:
            raise BankValidationError("expires_at is not in the future")
        async with self._db.transaction():
            target = await self.get_bank(bank)
            result = await self._insert(target, parsed, source, now)
            return await self._store.add_item_crops(result, checked_crops, self._new_ref)

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
        crops: Sequence[BankedCrop] = (),
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
        checked_crops = check_banked_crops(crops)
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
            await self._store.add_item_crops(result, checked_crops, self._new_ref)
            if not result.created:
                return result
            mask = cells_mask(tile_scheme, (Cell.parse(t.cell) for t in checked if t.frame == 0))
            await self._store.add_source_tiles(
                result.item.id, scheme, secrets.token_bytes(8), mask,
                [(t.cell, t.frame, t.hash, t.quality, self._new_ref()) for t in checked],
            )  # fmt: skip
            return result

    async def source_tiles(self, item_ref: bytes | str) -> list[SourceTile]:
        """The tiles stored for a protected source (empty for any other item)."""
        rows = await self._store.source_tiles(check_item_ref(item_ref))
        return [SourceTile(*r) for r in rows]

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
            item = await self._store.item_by_hash(target, signal_type, hash_bytes)
            if item is None:
                return False
            await self._delete(item, target, now)
        return True

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
        return await self._store.items_page(
            target,
            after_id=after_id,
            limit=limit,
            signal_type=signal_type,
            live_at=None if include_inactive else self._clock.now(),
        )

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
        names = None
        if banks is not None:
            names = [check_bank_name(n) for n in banks]
            if not names:
                return []
        return await self._store.active_items_page(
            signal_type, self._clock.now(), after_id=after_id, limit=limit, bank_names=names
        )

    async def iter_active_items(
        self, signal_type: str, *, banks: Sequence[str] | None = None
    ) -> AsyncIterator[ActiveItem]:
        after = 0
        while page := await self.active_items(signal_type, banks=banks, after_id=after):
            for item in page:
                yield item
            after = page[-1].item_id

    # --- internals -------------------------------------------------------------------------------

    async def insert_parsed(self, bank: Bank, item: ParsedItem, source: str, now: int) -> AddResult:
        """Insert one validated item in the caller's transaction; a signal type with tables of
        its own (node/signals) fills them in the same transaction."""
        return await self._insert(bank, item, source, now)

    async def _insert(self, bank: Bank, item: ParsedItem, source: str, now: int) -> AddResult:
        found = await self._store.item_by_hash(bank, item.signal_type, item.hash)
        if found is not None:
            if found.withdrawn_at is not None:
                raise ItemWithdrawnError(
                    f"this {item.signal_type} hash was withdrawn from bank {bank.name!r}"
                )
            return AddResult(found, created=False)
        item_ref = item.item_ref if item.item_ref is not None else self._new_ref()
        if item.item_ref is not None and await self._store.ref_taken(item_ref):
            raise BankValidationError("item_ref is already used by another item")
        try:
            # A savepoint: a refused insert must not poison the caller's transaction.
            async with self._db.transaction():
                added = await self._store.insert_item(bank, _new_item(item, item_ref, source, now))
        except IntegrityError:
            # Another worker added the same hash (or drew the same item_ref) at the same time.
            raise BankConflictError("the item changed concurrently; retry") from None
        if item.frames is not None:
            await signals.adapter(item.signal_type).store_parts(self._db, added.id, item.frames)
        if bank.shared and added.is_active(now):
            await self._feed.added(added, bank, now)
        return AddResult(added, created=True)

    async def _find_by_ref(self, ref: bytes) -> tuple[BankItem, Bank] | None:
        return await self._store.item_by_ref(ref)

    async def _delete(self, item: BankItem, bank: Bank, now: int) -> None:
        await self._store.delete_item(item.id)
        if bank.shared and item.withdrawn_at is None:
            await self._feed.withdrawn(item, bank, "removed", now)

    async def _withdraw(
        self, ref: bytes, reason: str, presented_secret_hash: bytes | None
    ) -> BankItem:
        now = self._clock.now()
        async with self._db.transaction():
            exists, stored = await self._store.stored_secret_hash(ref)
            if presented_secret_hash is not None:
                # Compare even when there is nothing to compare with, so timing says nothing.
                expected = stored or bytes(32)
                if not (hmac.compare_digest(expected, presented_secret_hash) and stored):
                    raise WithdrawalRefusedError("withdrawal refused: unknown item or wrong secret")
            if not exists:
                raise ItemNotFoundError("no item with that item_ref")
            found = await self._find_by_ref(ref)
            assert found is not None
            item, bank = found
            if item.withdrawn_at is not None:
                return item
            await self._store.mark_withdrawn(item.id, reason, now)
            if bank.shared:
                await self._feed.withdrawn(item, bank, "withdrawn", now)
            withdrawn = await self._find_by_ref(ref)
            assert withdrawn is not None
            return withdrawn[0]

    async def _live_items_of(self, bank: Bank, now: int) -> AsyncIterator[BankItem]:
        after = 0
        while page := await self._store.items_page(
            bank, after_id=after, limit=PAGE_SIZE, live_at=now
        ):
            for item in page:
                yield item
            after = page[-1].id
