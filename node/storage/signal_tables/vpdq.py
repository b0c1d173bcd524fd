"""The vpdq adapter's tables (node/signals/vpdq): a video item's frame list.

Video items (signal type vpdq, specs/signals-and-lsh.md 7): a video is one bank item whose
frame list hangs off it; each indexed frame (distinct, quality >= 50) has its own item_ref,
published and answered for only while the video item is, like a protected source's tiles.
Version 7 of the node's schema, as databases have recorded it since it shipped.
"""

from __future__ import annotations

from blindmatch.node.storage.database import Migration

VIDEOS_SCHEMA = Migration(
    7,
    "video items: a vPDQ video's frame list, indexed frames with their own references",
    (
        # grp is released to queriers with every frame (8 random bytes, never derived from a
        # hash); indexed_frames is released too (vPDQ's compared-match denominator).
        """
        CREATE TABLE videos (
            item_id        BIGINT PRIMARY KEY REFERENCES bank_items (id) ON DELETE CASCADE,
            grp            {BLOB} NOT NULL UNIQUE,
            indexed_frames BIGINT NOT NULL CHECK (indexed_frames >= 0)
        )""",
        # Every frame of the list, in order (exported as ThreatExchange's signal string);
        # item_ref is set for indexed frames only.
        """
        CREATE TABLE video_frames (
            id           {ID},
            item_id      BIGINT NOT NULL REFERENCES videos (item_id) ON DELETE CASCADE,
            position     BIGINT NOT NULL,
            hash         {BLOB} NOT NULL,
            quality      BIGINT NOT NULL CHECK (quality BETWEEN 0 AND 100),
            timestamp_ms BIGINT NOT NULL CHECK (timestamp_ms >= 0),
            item_ref     {BLOB} UNIQUE,
            UNIQUE (item_id, position)
        )""",
        "CREATE INDEX video_frames_item ON video_frames (item_id)",
    ),
)

MIGRATIONS: tuple[Migration, ...] = (VIDEOS_SCHEMA,)
