"""What every signal adapter provides, and the live-item filter they share."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from blindmatch.node.cases.matches import PeerMatch, ReviewMatch
from blindmatch.node.errors import BlindmatchError
from blindmatch.node.storage.database import Database, Migration
from blindmatch.node.storage.live_items import PUBLISHED
from blindmatch.protocol.matching import HolderItem, QueryHash
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
    # its bank's distance threshold: its answers show it (8.5), so batches are padded per
    # threshold (8.7)
    threshold: int = 31


def bands(release_bands: Sequence[int], threshold: int) -> tuple[int, ...]:
    """The distance bands a holder answers in: its policy's bands below the threshold, then
    the threshold."""
    return (*(b for b in release_bands if b < threshold), threshold)


def categories_of(row: Any) -> list[str]:
    """An item's categories, else its bank's (at most 8, as the release allows)."""
    cats = json.loads(row["item_categories"] or "[]") or json.loads(row["bank_categories"] or "[]")
    return [c for c in cats if isinstance(c, str)][:8]


@dataclass(frozen=True)
class DemoMedia:
    """What the federation demo banks and uploads for one signal type's step."""

    bank: str  # the hub's bank for it
    banked_value: str  # the bank value (a signal string) the hub banks
    banked_note: str  # a line saying what was banked
    uploads: tuple[tuple[str, Path, str], ...]  # (label, file, content_ref): "copy", "unrelated"


class SignalValueError(BlindmatchError):
    """A signal value (a bank line's, a request's, a file's) this type cannot hold."""

    code = "bad-request"
    status_hint = 400


class SignalAdapter:
    """The node's handling of one signal type. Subclasses set ``entry`` and override what
    their type stores, hashes and judges; the defaults publish, hash and judge nothing.

    A type whose published hashes are rows of one query sets ``published_from`` (``FROM ...
    WHERE <live>``, bound values: the type's name, now) and ``published_ref`` (the column of
    the published reference, with the hash beside it in ``published_hash``); the base then
    finds its unpublished and live references (:meth:`index_keys` gives a row's keys).
    """

    entry: ClassVar[SignalTypeEntry]
    # Only peers with this roster role are asked about this type's query hashes.
    asked_of_role: ClassVar[str | None] = None
    # The node publishes this type only if its own roles include this one (None: always).
    published_by_role: ClassVar[str | None] = None
    published_from: ClassVar[str | None] = None
    # Which batches its additions go out in (spec 8.7): the index's ("index"), or "tiles",
    # for a type of many key prefixes (each padded apart), on ``index_tile_batch_days``.
    batch_class: ClassVar[str] = "index"
    published_ref: ClassVar[str] = "i.item_ref"
    published_hash: ClassVar[str] = "i.hash"
    # The tables this type keeps beside bank_items, as migrations of the node's one schema
    # sequence (node/storage/signal_tables/; the storage layer applies them with its own).
    migrations: ClassVar[tuple[Migration, ...]] = ()
    # A bank item of this type is given as a signal string of parts (a video's frame list)
    # rather than as one hash in hex: :meth:`parse_bank_value`, :meth:`store_parts` and
    # :meth:`signal_strings` hold it.
    holds_parts: ClassVar[bool] = False
    item_noun: ClassVar[str] = "one hash"  # what one bank item of this type is
    # What one value of this type is, for help and API texts ("a video as ...").
    value_doc: ClassVar[str] = "hex"
    value_schema_doc: ClassVar[str] = "a hash in hex"  # the API schema's word on one value
    # Media this type hashes: a sentence for the API's description, and the ``bank add``
    # option that hashes such a file into a bank (None: the type hashes no media itself).
    media_doc: ClassVar[str | None] = None
    media_option: ClassVar[str | None] = None
    media_option_help: ClassVar[str] = ""

    # --- the published index ---------------------------------------------------------------

    def index_keys(self, hash_value: bytes) -> list[bytes]:
        """The bucket keys one of this type's published hashes goes under."""
        return []

    async def unpublished(self, db: Database, now: int, key_id: bytes) -> list[Publishable]:
        """Live hashes of this type not yet published under the VOPRF key ``key_id``."""
        if self.published_from is None:
            return []
        rows = await db.fetch_all(
            f"SELECT {self.published_ref} AS ref, {self.published_hash} AS hash,"
            " b.distance_threshold AS thr" + self.published_from
            + " AND NOT EXISTS (SELECT 1 FROM index_publications p"
            f" WHERE p.item_ref = {self.published_ref} AND p.key_id = ?)",
            *self.live_ref_params(now),
            key_id,
        )  # fmt: skip
        return [
            Publishable(bytes(r["ref"]), self.index_keys(bytes(r["hash"])), int(r["thr"]))
            for r in rows
        ]

    async def ballast(self, db: Database, refs: Sequence[bytes]) -> list[Publishable]:
        """Published hashes of this type among ``refs`` whatever their state (a withdrawn or
        expired item's tombstone): batched publication (spec 8.7) re-publishes them under a
        successor key as decoys, so two epochs' indexes differ by nothing."""
        if self.published_from is None or not refs:
            return []
        joins = self.published_from.split(" WHERE ", 1)[0]
        return await self._ballast_rows(
            db, refs, f"SELECT {self.published_ref} AS ref, {self.published_hash} AS hash"
            + joins + f" WHERE {self.published_ref} IN ",
        )  # fmt: skip

    async def _ballast_rows(
        self, db: Database, refs: Sequence[bytes], select: str
    ) -> list[Publishable]:
        out = []
        for start in range(0, len(refs), 500):
            part = list(refs[start : start + 500])
            rows = await db.fetch_all(select + "(" + ", ".join("?" * len(part)) + ")", *part)
            out += [Publishable(bytes(r["ref"]), self.index_keys(bytes(r["hash"]))) for r in rows]
        return out

    def live_ref_sql(self) -> str | None:
        """``SELECT 1 FROM ... WHERE <live> AND <ref column> = p.item_ref``: whether a published
        reference (of ``index_publications p``) is still a live item of this type; None when
        the type publishes nothing. Its bound values are :meth:`live_ref_params`."""
        if self.published_from is None:
            return None
        return f"SELECT 1{self.published_from} AND {self.published_ref} = p.item_ref"

    def live_ref_params(self, now: int) -> list[Any]:
        return [] if self.published_from is None else [self.entry.name, now]

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

    # --- bank items held as parts ----------------------------------------------------------

    def parse_bank_value(self, value: Any) -> tuple[bytes, tuple[Any, ...]]:
        """A signal string as a file or request gives it: the 32 bytes the item is known by in
        its bank and its parts. Raises :class:`SignalValueError`."""
        raise SignalValueError(f"a {self.entry.name} item is one hash in hex")

    async def store_parts(self, db: Database, item_id: int, parts: Sequence[Any]) -> None:
        """Store a new item's parts, in the caller's transaction."""

    async def signal_strings(self, db: Database, item_ids: Sequence[int]) -> dict[int, str]:
        """Each item's parts as its signal string (what exports write), by item id."""
        return {}

    # --- media -----------------------------------------------------------------------------

    def accepts(self, data: bytes) -> bool:
        """Whether media bytes are this type's to hash (sniffed from their first bytes)."""
        return False

    def accepts_path(self, path: str | os.PathLike[str]) -> bool:
        """Whether a file, by its name, is this type's to hash."""
        return False

    def media_queries(self, data: bytes) -> list[QueryHash]:
        """The query hashes of media this type accepts (may block: run it in a thread)."""
        raise SignalValueError(f"{self.entry.name} hashes no media")

    def bank_value_of_file(self, path: str | os.PathLike[str]) -> str:
        """The bank value (for :meth:`parse_bank_value`) of a media file."""
        raise SignalValueError(f"{self.entry.name} hashes no media")

    def media_available(self) -> bool:
        """Whether this machine has what hashing this type's media needs."""
        return False

    # --- pictures (a picture is PDQ's media; a type may derive hashes of its own from it) ----

    def picture_queries(self, data: bytes, cfg: Any) -> list[QueryHash]:
        """Query hashes of this type a picture upload adds beside its PDQ hashes and tiles,
        under the node's configuration ``cfg`` (none by default). May block: run it in a
        thread."""
        return []

    def picture_bank_value(self, data: bytes, cfg: Any) -> str | None:
        """The bank value of this type that a picture banked from its media adds beside its
        PDQ hash (None by default). May block."""
        return None

    # --- blindmatch hash ----------------------------------------------------------------------

    # What ``blindmatch hash`` prints for this type's media, for its help ("" if it hashes none).
    hash_doc: ClassVar[str] = ""

    def add_hash_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Options of ``blindmatch hash`` for this type's media."""

    def hashes_file(self, path: Path, args: argparse.Namespace) -> bool:
        """Whether ``blindmatch hash`` hashes this file as this type's media."""
        return self.accepts_path(path)

    def hash_lines(self, path: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
        """``blindmatch hash``'s lines for such a file (without its ``file`` field)."""
        return []

    # --- the federation demo ---------------------------------------------------------------

    # A step of its own in ``blindmatch demo`` (None: none); its result keys are
    # ``<demo_key>_found`` and ``<demo_key>_unrelated_clean``.
    demo_key: ClassVar[str | None] = None
    demo_intro: ClassVar[str] = ""
    demo_step_name: ClassVar[str] = ""
    demo_unavailable: ClassVar[str] = ""

    def demo_media(self, tmp: Path, photos: dict[str, Any]) -> DemoMedia:
        """Make the step's media in ``tmp`` from the demo's photos (PIL images)."""
        raise SignalValueError(f"{self.entry.name} has no demo step")

    def demo_describe(self, hit: dict[str, Any]) -> str:
        """One line on a match the step found (an API match result)."""
        return f"MATCH at {hit['peer']}"

    # --- cases -----------------------------------------------------------------------------

    def review(
        self, queries: Sequence[QueryHash], results: Sequence[PeerMatch]
    ) -> tuple[list[ReviewMatch], list[PeerMatch]]:
        """The review matches this type makes of one job's confirmed results, and the results
        it leaves to the others (a type judged per item, like a video by its frames, takes
        its own)."""
        return [], list(results)
