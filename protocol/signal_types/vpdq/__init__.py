"""``vpdq``: a video as its frames, matched across the federation (specs/signals-and-lsh.md 7).

The entry, with the type's pure parts beside it: :mod:`.video` (frames, keys, releases, vPDQ's
match rule, ThreatExchange's signal string) and :mod:`.ops` (its conformance operations).
"""

from __future__ import annotations

from blindmatch.protocol.lsh import PDQ_LSH_1
from blindmatch.protocol.schema import Field, integer
from blindmatch.protocol.signal_types.base import GROUP, Exchange, SignalTypeEntry, register
from blindmatch.protocol.signal_types.vpdq import ops, video
from blindmatch.protocol.signals import PDQ_BYTES

VPDQ = register(
    SignalTypeEntry(
        name=video.SIGNAL,
        hash_bytes=PDQ_BYTES,
        exchange=Exchange.FRAMES,
        lsh=PDQ_LSH_1.name,
        bucket_signal=video.BUCKET_SIGNAL,
        distance_threshold=video.FRAME_THRESHOLD,
        match_rule=(
            "vPDQ's: the larger of query-match % and compared-match % of distinct quality "
            "frames confirmed (<= 31) is at least 80"
        ),
        release_fields={
            "group": GROUP,
            "frames": Field(integer(1, video.MAX_INDEX_FRAMES), required=False),
        },
        release_signal=video.SIGNAL,
        spec="specs/signals-and-lsh.md#7-vpdq-video-across-the-federation",
        vectors=("video.json",),
        bank_item=True,
        perceptual=True,
        threatexchange_name="vpdq",
        threatexchange_indicator="HASH_VIDEO_VPDQ",
        owns_variant=video.is_frame_variant,
        probe_keys=video.probe_keys,
        # Video is served by choice (specs/protocol.md 9.3): optional in the node profile.
        conformance_ops=ops.OPS,
        conformance_errors={
            "vpdq:bad-signal": "a vPDQ signal that does not parse (chapter 11)",
            "vpdq:bad-request": "vPDQ op inputs out of range (chapter 11)",
            "vpdq:too-many-frames": "a video with more distinct frames than a holder indexes (11)",
        },
    )
)

__all__ = ["VPDQ", "ops", "video"]
