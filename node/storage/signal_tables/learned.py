"""The learned-lsh-1 adapter's table (node/signals/learned): which model made an item's code.

A learned item's hash (bank_items.hash) is its 256-bit code; the code means something only under
the model that made it (specs/signals-and-lsh.md 1.6), so the model's digest is kept beside it
and bound into the item's bucket keys.
"""

from __future__ import annotations

from blindmatch.node.storage.database import Migration

LEARNED_CODES_SCHEMA = Migration(
    13,
    "learned codes: the model digest of each learned-lsh-1 item",
    (
        """
        CREATE TABLE learned_codes (
            item_id BIGINT PRIMARY KEY REFERENCES bank_items (id) ON DELETE CASCADE,
            model   {BLOB} NOT NULL
        )""",
    ),
)

MIGRATIONS: tuple[Migration, ...] = (LEARNED_CODES_SCHEMA,)
