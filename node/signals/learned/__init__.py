"""``learned-lsh-1``: a picture's learned embedding as a 256-bit code (specs/signals-and-lsh.md
1.6), one bank item each with the digest of the model that made it (table ``learned_codes``,
``node/storage/signal_tables/learned.py``); published under its model's buckets and answered
for with the private threshold test like a PDQ hash. A picture upload adds its code as one more
query hash when the node's configuration turns it on (``[signals."learned-lsh-1"]``,
``enabled = true``); the model (:mod:`.model`) is the project's own or the operator's
(``model = "file.onnx"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from blindmatch.node.signals.base import (
    PUBLISHED_ITEM,
    Publishable,
    SignalAdapter,
    SignalValueError,
    bands,
    categories_of,
)
from blindmatch.node.storage import Database
from blindmatch.node.storage.signal_tables import learned as tables
from blindmatch.protocol.matching import HolderItem, QueryHash
from blindmatch.protocol.signal_types import learned

_FROM = (
    " FROM bank_items i JOIN banks b ON b.id = i.bank_id"
    " JOIN learned_codes l ON l.item_id = i.id WHERE " + PUBLISHED_ITEM
)


def parse_value(value: Any) -> tuple[bytes, bytes]:
    """A learned item's bank value ``<model digest hex>:<code hex>`` as (model digest, code)."""
    name = learned.NAME
    if not isinstance(value, str) or len(value) != 129 or value[64] != ":":
        raise SignalValueError(f"a {name} value is '<model sha256 hex>:<code hex>' (64:64)")
    try:
        digest, code = bytes.fromhex(value[:64]), bytes.fromhex(value[65:])
    except ValueError:
        raise SignalValueError(f"a {name} value is hex digits") from None
    return digest, code


def format_value(model_digest: bytes, code: bytes) -> str:
    return model_digest.hex() + ":" + code.hex()


def options(cfg: Any) -> dict[str, Any]:
    """The node's settings for this type: ``[signals."learned-lsh-1"]`` with ``enabled``
    (default false) and ``model`` (an ONNX file, relative to the configuration file; default:
    the project's own model)."""
    table = getattr(cfg, "signal_options", {}) if cfg is not None else {}
    return dict(table.get(learned.NAME, {}))


def enabled(cfg: Any) -> bool:
    return options(cfg).get("enabled", False) is True


def model_for(cfg: Any) -> Any:
    """The node's embedding model (loaded once per process and path)."""
    from blindmatch.node.signals.learned import model

    path = options(cfg).get("model")
    if path is None:
        return model.load(None)
    if not isinstance(path, str):
        raise SignalValueError(f"signals.{learned.NAME}.model: a file name")
    file = Path(path)
    source = getattr(cfg, "source_path", None)
    if not file.is_absolute() and source is not None:
        file = Path(source).parent / file
    return model.load(str(file))


class LearnedAdapter(SignalAdapter):
    entry = learned.LEARNED
    published_from = _FROM
    migrations = tables.MIGRATIONS
    holds_parts = True
    item_noun = "a learned code with its model's digest"
    value_doc = "a learned code as '<model sha256 hex>:<code hex>'"
    value_schema_doc = "'<model sha256 hex>:<code hex>'"

    async def unpublished(self, db: Database, now: int, key_id: bytes) -> list[Publishable]:
        rows = await db.fetch_all(
            "SELECT i.item_ref, i.hash, l.model" + _FROM + " AND NOT EXISTS (SELECT 1 FROM"
            " index_publications p WHERE p.item_ref = i.item_ref AND p.key_id = ?)",
            self.entry.name,
            now,
            key_id,
        )
        return [
            Publishable(
                bytes(r["item_ref"]),
                learned.index_keys(bytes(r["hash"]), bytes(r["model"])),
                # answered with the code's own threshold (holder_item), so its decoys are too
                self.entry.distance_threshold,
            )
            for r in rows
        ]

    async def holder_item(
        self, db: Database, ref: bytes, now: int, release_bands: Sequence[int]
    ) -> HolderItem | None:
        row = await db.fetch_one(
            "SELECT i.hash, i.categories AS item_categories, b.categories AS bank_categories,"
            " b.provenance AS bank_provenance" + _FROM + " AND i.item_ref = ?",
            self.entry.name,
            now,
            ref,
        )
        if row is None:
            return None
        return HolderItem(
            item_ref=ref,
            hash=bytes(row["hash"]),
            # The code's own threshold (1.6), not the bank's PDQ one.
            bands=bands(release_bands, self.entry.distance_threshold),
            release={
                "categories": categories_of(row),
                "provenance": row["bank_provenance"],
                "signal": self.entry.release_signal,
            },
        )

    # --- bank items: a code and its model ---------------------------------------------------

    def parse_bank_value(self, value: Any) -> tuple[bytes, tuple[Any, ...]]:
        digest, code = parse_value(value)
        if len(code) != learned.CODE_BITS // 8:
            raise SignalValueError(f"a {self.entry.name} code is {learned.CODE_BITS // 8} bytes")
        return code, (digest,)

    async def store_parts(self, db: Database, item_id: int, parts: Sequence[Any]) -> None:
        await db.execute(
            "INSERT INTO learned_codes (item_id, model) VALUES (?, ?)", item_id, bytes(parts[0])
        )

    async def signal_strings(self, db: Database, item_ids: Sequence[int]) -> dict[int, str]:
        out = {}
        for item_id in item_ids:
            row = await db.fetch_one(
                "SELECT i.hash, l.model FROM bank_items i JOIN learned_codes l"
                " ON l.item_id = i.id WHERE i.id = ?",
                item_id,
            )
            if row is not None:
                out[item_id] = format_value(bytes(row["model"]), bytes(row["hash"]))
        return out

    # --- pictures ---------------------------------------------------------------------------

    def picture_queries(self, data: bytes, cfg: Any) -> list[QueryHash]:
        if not enabled(cfg):
            return []
        m = model_for(cfg)
        return [learned.query_hash(m.embed_bytes(data), m.digest)]

    def picture_bank_value(self, data: bytes, cfg: Any) -> str | None:
        if not enabled(cfg):
            return None
        m = model_for(cfg)
        return format_value(m.digest, learned.code_of(m.embed_bytes(data), m.digest))
