"""Banking a picture or a file from its media: the service hashes it and banks every hash,
a picture with its banked crops (specs/signals-and-lsh.md 3.5)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from blindmatch.node.banks.formats import ParsedItem
from blindmatch.node.banks.model import (
    AddResult,
    MediaHasher,
    passes_quality_gate,
    withdrawal_secret_hash,
)
from blindmatch.node.banks.validation import (
    BankedCrop,
    BankValidationError,
    check_banked_crops,
    check_categories,
    check_hash_bytes,
    check_item_ref,
    check_provenance_details,
    check_quality,
    check_signal_type,
    check_source,
    check_timestamp,
)
from blindmatch.node.clock import Clock
from blindmatch.node.storage import Database
from blindmatch.node.storage.banks import Bank, BankStore


class BankMedia:
    """The media half of :class:`~.service.BankService` (a mixin on the service's store)."""

    _db: Database
    _store: BankStore
    _clock: Clock
    _new_ref: Callable[[], bytes]

    if TYPE_CHECKING:

        async def get_bank(self, name: str) -> Bank: ...

        async def _insert(
            self, bank: Bank, item: ParsedItem, source: str, now: int
        ) -> AddResult: ...

        async def remove_item(
            self, bank: str, signal_type: str, hash_value: bytes | str
        ) -> bool: ...

    async def item_crops(self, item_ref: bytes | str) -> list[BankedCrop]:
        """The off-centre crops banked with a picture's item (empty for any other item)."""
        return [BankedCrop(*r) for r in await self._store.item_crops(check_item_ref(item_ref))]

    async def add_media(
        self,
        bank: str,
        media: bytes,
        hasher: MediaHasher | Callable[[bytes], Awaitable[Iterable[tuple[str, bytes, int | None]]]],
        **options: Any,
    ) -> list[AddResult]:
        """Hash media with ``hasher`` (``bytes -> [(signal_type, hash, quality)]``, a ``pdq``
        entry optionally with a fourth element: the picture's crops, :class:`BankedCrop`) and
        add every hash it returns, all in one transaction. The media itself is not kept."""
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
        item_crops: dict[int, tuple[BankedCrop, ...]] = {}
        for entry in hashes:
            signal_type, hash_bytes, quality = entry[:3]
            signal_type = check_signal_type(signal_type)
            if len(entry) == 4:
                item_crops[len(items)] = check_banked_crops(entry[3], signal_type)
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
        kept = [(n, i) for n, i in enumerate(items) if passes_quality_gate(i, min_quality)]
        if not kept:
            raise BankValidationError("the media produced no hash good enough to bank")
        async with self._db.transaction():
            target = await self.get_bank(bank)
            results = []
            for n, item in kept:
                result = await self._insert(target, item, source, now)
                crops = item_crops.get(n, ())
                results.append(await self._store.add_item_crops(result, crops, self._new_ref))
            return results

    async def remove_media(self, bank: str, media: bytes, hasher: MediaHasher) -> int:
        """Delete every hash the media yields from the bank; return how many were there."""
        hashes = await self._hash_media(media, hasher)
        removed = 0
        async with self._db.transaction():
            for signal_type, hash_bytes, _quality in hashes:
                removed += await self.remove_item(bank, signal_type, hash_bytes)
        return removed

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
            if not (isinstance(entry, tuple) and len(entry) in (3, 4)):
                raise BankValidationError("the hasher must return (type, hash, quality[, crops])")
        return hashes
