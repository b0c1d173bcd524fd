"""What the bank service works with: its errors, its results, and its checks on an item.

Raw hashes never appear in messages or logs; ``BankItem``'s repr omits them.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack

from blindmatch.node.banks.formats import (
    LineProblem,
    ParsedItem,
)
from blindmatch.node.banks.validation import (
    PDQ_QUALITY_THRESHOLD,
    PERCEPTUAL_SIGNAL_TYPES,
    BankValidationError,
    check_quality,
    check_secret,
)
from blindmatch.node.errors import BlindmatchError
from blindmatch.node.storage.banks import Bank, BankItem, NewItem

ITEMS_FEED = "bank-items"
FEED_PAYLOAD_VERSION = 1
# Feed payload keys the service owns; a hook may add others but not replace these.
CORE_PAYLOAD_KEYS = frozenset({"v", "bank", "item_ref", "signal_type", "reason"})
SECRET_DOMAIN = b"blindmatch/withdrawal-secret/v1\x00"
PAGE_SIZE = 1000

MediaHasher = Callable[[bytes], Iterable[tuple[str, bytes, int | None]]]
ItemAddedHook = Callable[["BankItem", "Bank"], Awaitable[Mapping[str, Any] | None]]


class BankError(BlindmatchError):
    """A bank operation refused. Its code on the wire is its class's name (the API has always
    answered so); a missing bank or item answers 404, any other refusal 409."""

    code = "BankError"
    status_hint = 409


class BankNotFoundError(BankError, LookupError):
    code = "BankNotFoundError"
    status_hint = 404


class ItemNotFoundError(BankError, LookupError):
    code = "ItemNotFoundError"
    status_hint = 404


class BankExistsError(BankError):
    code = "BankExistsError"


class BankConflictError(BankError):
    code = "BankConflictError"


class ItemWithdrawnError(BankError):
    """The hash was withdrawn from this bank; it is not re-added behind anyone's back."""

    code = "ItemWithdrawnError"


class WithdrawalRefusedError(BankError):
    code = "WithdrawalRefusedError"


def withdrawal_secret_hash(secret: bytes) -> bytes:
    """What is stored for a survivor's withdrawal secret (a random value of >= 16 bytes).

    A fast hash is enough because the secret is random, not a password; the node never
    stores the secret itself.
    """
    return hashlib.sha256(SECRET_DOMAIN + check_secret(secret)).digest()


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


def passes_quality_gate(item: ParsedItem, min_quality: int | None) -> bool:
    """Whether a perceptual hash of known quality meets ``min_quality`` (others always do)."""
    if min_quality is None or item.signal_type not in PERCEPTUAL_SIGNAL_TYPES:
        return True
    return item.quality is None or item.quality >= min_quality


def check_quality_gate(item: ParsedItem, min_quality: int | None) -> None:
    if min_quality is not None:
        check_quality(min_quality)
    if not passes_quality_gate(item, min_quality):
        raise BankValidationError(
            f"{item.signal_type} quality {item.quality} is below the minimum {min_quality}"
            f" (Meta recommends {PDQ_QUALITY_THRESHOLD})"
        )


def _new_item(item: ParsedItem, item_ref: bytes, source: str, now: int) -> NewItem:
    return NewItem(
        signal_type=item.signal_type,
        hash=item.hash,
        quality=item.quality,
        item_ref=item_ref,
        provenance=item.provenance,
        categories=item.categories,
        source=source,
        added_at=item.added_at if item.added_at is not None else now,
        expires_at=item.expires_at,
        withdrawal_secret_hash=item.withdrawal_secret_hash,
    )


def pack_payload(payload: Mapping[str, Any]) -> bytes:
    return msgpack.packb(dict(payload), use_bin_type=True)
