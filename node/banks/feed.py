"""Publishing a shared bank's changes to its ``bank-items`` feed, in the caller's transaction.

Feed payloads are msgpack maps; an ``on_item_added`` hook supplies extra fields (the blinded
index keys) for each added item. Only a reason code travels with a withdrawal.
"""

from __future__ import annotations

import inspect
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from blindmatch.node.banks.model import (
    CORE_PAYLOAD_KEYS,
    FEED_PAYLOAD_VERSION,
    ItemAddedHook,
    pack_payload,
)
from blindmatch.node.storage import FeedLog
from blindmatch.node.storage.banks import Bank, BankItem


class BankFeed:
    """``feed`` names the change feed (``None``: publish nothing, the caller publishes changes
    its own way)."""

    def __init__(self, feeds: FeedLog, feed: str | None, on_item_added: ItemAddedHook | None):
        self._feeds = feeds
        self._feed_name = feed
        self._on_item_added = on_item_added

    async def added(self, item: BankItem, bank: Bank, now: int) -> None:
        await self._append("item-added", await self._added_payload(item, bank), now)

    async def added_many(self, items: Sequence[BankItem], bank: Bank, now: int) -> None:
        """Many added items, appended in one batch."""
        if self._feed_name is None:
            return
        entries = []
        for item in items:
            payload = await self._added_payload(item, bank)
            entries.append((secrets.token_bytes(16), "item-added", pack_payload(payload)))
        await self._feeds.append_many(self._feed_name, entries, now)

    async def updated(self, bank: Bank, now: int) -> None:
        await self._append(
            "bank-updated",
            {
                "v": FEED_PAYLOAD_VERSION,
                "bank": bank.name,
                "enabled": bank.enabled,
                "distance_threshold": bank.distance_threshold,
                "categories": list(bank.categories),
            },
            now,
        )

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

    async def withdrawn(self, item: BankItem, bank: Bank, reason: str, now: int) -> None:
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
        await self._feeds.append(
            self._feed_name, secrets.token_bytes(16), kind, pack_payload(payload), now
        )
