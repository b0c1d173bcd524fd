"""The pdq adapter's tables (node/signals/pdq): a banked picture's crops.

A picture banked from its media is also banked as its corner and centred crops
(specs/signals-and-lsh.md 3.5): hashes of the same item, each published under its own
reference while the item is live and answered for as the item; they go with it.
"""

from __future__ import annotations

from blindmatch.node.storage.database import Migration

ITEM_CROPS_SCHEMA = Migration(
    12,
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

MIGRATIONS = (ITEM_CROPS_SCHEMA,)
