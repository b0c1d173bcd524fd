"""The rows of a video item (signal type ``vpdq``): its frame-list digest and its frames.

Used by the vpdq adapter (the bank service's imports and adds) and :mod:`.items` (single adds),
so a video enters a bank one way, whichever path brings it.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

from blindmatch.node.storage import Database
from blindmatch.protocol import canonical
from blindmatch.protocol.signal_types.vpdq import video
from blindmatch.protocol.signal_types.vpdq.frames import VpdqFrame

_DIGEST_DOMAIN = b"blindmatch/vpdq-item/v1\x00"


def frame_list_digest(frames: Sequence[VpdqFrame]) -> bytes:
    """The 32 bytes a video item is known by in its bank (its ``hash``; never sent anywhere)."""
    body = canonical.encode([[f.pdq, f.quality, round(f.timestamp * 1000)] for f in frames])
    return hashlib.sha256(_DIGEST_DOMAIN + body).digest()


async def insert_video_rows(db: Database, item_id: int, frames: Sequence[VpdqFrame]) -> int:
    """Store a new video item's frames; each indexed frame gets its own random reference.
    Returns the number of indexed frames (the caller checked there is at least one)."""
    indexed = {id(f) for f in video.indexed_frames(frames)}
    await db.execute(
        "INSERT INTO videos (item_id, grp, indexed_frames) VALUES (?, ?, ?)",
        item_id,
        secrets.token_bytes(video.RELEASE_GROUP_BYTES),
        len(indexed),
    )
    await db.execute_many(
        "INSERT INTO video_frames (item_id, position, hash, quality, timestamp_ms, item_ref)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [
            (
                item_id,
                position,
                f.pdq,
                f.quality,
                round(f.timestamp * 1000),
                secrets.token_bytes(16) if id(f) in indexed else None,
            )
            for position, f in enumerate(frames)
        ],
    )
    return len(indexed)


async def signal_strings(db: Database, item_ids: Sequence[int]) -> dict[int, str]:
    """Each video item's frame list as ThreatExchange's ``vpdq`` signal string."""
    out: dict[int, list[VpdqFrame]] = {}
    for item_id in item_ids:
        rows = await db.fetch_all(
            "SELECT position, hash, quality, timestamp_ms FROM video_frames WHERE item_id = ?"
            " ORDER BY position",
            item_id,
        )
        out[item_id] = [
            VpdqFrame(
                int(r["position"]),
                bytes(r["hash"]),
                int(r["quality"]),
                int(r["timestamp_ms"]) / 1000,
            )
            for r in rows
        ]
    return {k: video.format_signal_string(v) for k, v in out.items() if v}
