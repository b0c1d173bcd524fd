"""Which bank items are live: the one definition every query of live items is built from.

A bank item is **live** while it is neither withdrawn nor expired. It is **published** (in the
node's blinded index, so peers can match it) while it is live, of the indexed signal type, and
its bank is enabled and shared. A protected source's tiles are published exactly while their
source item is. Each fragment below filters the rows of ``bank_items i`` (joined with
``banks b`` where it says so) and takes its bound values in the order written.
"""

from __future__ import annotations

# Not withdrawn: a withdrawn row stays as a tombstone and never matches again.
NOT_WITHDRAWN = "i.withdrawn_at IS NULL"
# Live: not withdrawn and not expired. One "?": now.
LIVE = NOT_WITHDRAWN + " AND (i.expires_at IS NULL OR i.expires_at > ?)"


def indexed_signal_sql() -> str:
    """The signal type whose items go into the blinded index (the signal registry will name
    it per entry; today only whole-picture PDQ is indexed)."""
    return "i.signal_type = 'pdq'"


def local_signal_sql(column: str = "signal_type") -> str:
    """The signal type a node matches its own banks on (PDQ)."""
    return f"{column} = 'pdq'"


# Published: live, indexed, in an enabled shared bank (bank_items i JOIN banks b). One "?": now.
PUBLISHED = " AND ".join((indexed_signal_sql(), LIVE, "b.enabled = 1 AND b.shared = 1"))
ITEMS_JOIN_BANKS = "bank_items i JOIN banks b ON b.id = i.bank_id"
# The tiles of published protected sources (source_tiles t). One "?": now.
PUBLISHED_TILES_FROM = (
    " FROM source_tiles t JOIN protected_sources s ON s.source_id = t.source_id"
    " JOIN bank_items i ON i.id = t.source_id JOIN banks b ON b.id = i.bank_id"
    " WHERE b.provenance = 'protected-source' AND " + PUBLISHED
)
PUBLISHED_ITEMS_FROM = " FROM " + ITEMS_JOIN_BANKS + " WHERE " + PUBLISHED


def published_frames_sql() -> str:
    """The indexed frames of published videos (signal type vpdq, specs/signals-and-lsh.md 7):
    in the index exactly while their video item is. One "?": now."""
    return (
        " FROM video_frames f JOIN videos v ON v.item_id = f.item_id"
        " JOIN bank_items i ON i.id = f.item_id JOIN banks b ON b.id = i.bank_id"
        " WHERE f.item_ref IS NOT NULL AND i.signal_type = 'vpdq' AND "
        + LIVE
        + " AND b.enabled = 1 AND b.shared = 1"
    )


PUBLISHED_FRAMES_FROM = published_frames_sql()
