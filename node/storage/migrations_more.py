"""Schema migrations from version 11 on (``migrations.py`` holds 1-10 and the list of all)."""

from __future__ import annotations

from blindmatch.node.storage.database import Migration

# A banked picture's off-centre crops (specs/signals-and-lsh.md 3.5): hashes of the same item,
# each published under its own reference while the item is live, answered for as the item.
ITEM_CROPS_SCHEMA = Migration(
    11,
    "banked crops: off-centre crops of a pdq item, indexed as variants of the item",
    (
        """
        CREATE TABLE item_crops (
            id       {ID},
            item_id  BIGINT NOT NULL REFERENCES bank_items (id) ON DELETE CASCADE,
            crop     TEXT NOT NULL,
            hash     {BLOB} NOT NULL,
            quality  BIGINT NOT NULL CHECK (quality BETWEEN 0 AND 100),
            item_ref {BLOB} NOT NULL UNIQUE,
            UNIQUE (item_id, crop)
        )""",
    ),
)
