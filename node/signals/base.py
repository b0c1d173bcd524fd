"""What every signal adapter provides, and the live-item filter they share."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from blindmatch.node.storage import Database
from blindmatch.node.storage.live_items import PUBLISHED
from blindmatch.protocol.matching import HolderItem
from blindmatch.protocol.signal_types import SignalTypeEntry

# A bank item is live while neither withdrawn nor expired, and published while live in an
# enabled, shared bank (bank_items i JOIN banks b). Bound values, in order: the item's signal
# type, now.
PUBLISHED_ITEM = PUBLISHED  # storage/live_items.py: the one definition


@dataclass(frozen=True)
class Publishable:
    """One indexed hash: its reference and the bucket keys it goes under."""

    item_ref: bytes
    keys: list[bytes]


def bands(release_bands: Sequence[int], threshold: int) -> tuple[int, ...]:
    """The distance bands a holder answers in: its policy's bands below the threshold, then
    the threshold."""
    return (*(b for b in release_bands if b < threshold), threshold)


def categories_of(row: Any) -> list[str]:
    """An item's categories, else its bank's (at most 8, as the release allows)."""
    cats = json.loads(row["item_categories"] or "[]") or json.loads(row["bank_categories"] or "[]")
    return [c for c in cats if isinstance(c, str)][:8]


class SignalAdapter:
    """The node's handling of one signal type. Subclasses set ``entry`` and override what
    their type stores; the defaults publish and answer nothing."""

    entry: ClassVar[SignalTypeEntry]
    # Only peers with this roster role are asked about this type's query hashes.
    asked_of_role: ClassVar[str | None] = None
    # The node publishes this type only if its own roles include this one (None: always).
    published_by_role: ClassVar[str | None] = None

    async def unpublished(self, db: Database, now: int, key_id: bytes) -> list[Publishable]:
        """Live hashes of this type not yet published under the VOPRF key ``key_id``."""
        return []

    def live_ref_sql(self) -> str | None:
        """``SELECT 1 FROM ... WHERE <live> AND <ref column> = p.item_ref``: whether a published
        reference (of ``index_publications p``) is still a live item of this type; None when
        the type publishes nothing. Its bound values are :meth:`live_ref_params`."""
        return None

    def live_ref_params(self, now: int) -> list[Any]:
        return []

    async def holder_item(
        self, db: Database, ref: bytes, now: int, release_bands: Sequence[int]
    ) -> HolderItem | None:
        """The live item of this type with reference ``ref``, as the holder answers for it."""
        return None

    async def part_refs(self, db: Database, item_ref: bytes) -> list[bytes]:
        """References a querier may know one of this type's bank items by (a video's frames):
        a withdrawal names them too, so a case opened on a part closes with the item."""
        return []

    async def owner_of(self, db: Database, part_ref: bytes) -> bytes | None:
        """The bank item a part reference belongs to (None if it is no part of this type)."""
        return None
