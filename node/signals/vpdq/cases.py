"""From one video query's confirmed frames to the video matches a platform reviews.

A frame confirmation means nothing alone: per holder and per video (the ``group`` its frames
release), vPDQ's rule (``vpdq.video.judge``) decides whether the query video matches, and a
matching video becomes ONE review match carrying its evidence (query-match % and
compared-match %, frame counts). Frames of videos that do not reach the rule are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from blindmatch.node.cases.matches import PeerMatch, ReviewMatch
from blindmatch.protocol.matching import Confirmation, QueryHash
from blindmatch.protocol.signal_types.vpdq import video

VIDEO_VARIANT = "video"  # the variant a video match reports


def _wire_release(release: dict[str, Any]) -> dict[str, Any]:
    """A stored release (bytes as hex) as the holder sent it, for the rule."""
    out = dict(release)
    group = out.get("group")
    if isinstance(group, str):
        try:
            out["group"] = bytes.fromhex(group)
        except ValueError:
            out.pop("group")
    return out


def is_frame_result(result: PeerMatch) -> bool:
    return video.is_frame_variant(result.variant)


def review_video_matches(
    queries: Sequence[QueryHash], results: Sequence[PeerMatch]
) -> list[ReviewMatch]:
    """One review match per (holder, video) that vPDQ's rule accepts."""
    frames = [r for r in results if is_frame_result(r) and r.release.get("signal") == video.SIGNAL]
    confirmations = [
        Confirmation(r.peer, r.item_ref, 0, r.variant, r.band, _wire_release(r.release))
        for r in frames
    ]
    out = []
    for verdict in video.judge(queries, confirmations):
        if not verdict.is_match:
            continue
        mine = [
            r
            for r in frames
            if r.peer == verdict.peer and _wire_release(r.release).get("group") == verdict.group
        ]
        anchor = min(mine, key=lambda r: (r.band, r.item_ref))
        release: dict[str, Any] = {
            "signal": video.SIGNAL,
            "group": verdict.group.hex(),
            "video": verdict.as_result(),
        }
        for key in ("provenance", "categories"):
            if key in anchor.release:
                release[key] = anchor.release[key]
        out.append(
            ReviewMatch(
                holder=verdict.peer,
                item_ref=anchor.item_ref,
                band=verdict.best_band,
                variant=VIDEO_VARIANT,
                release=release,
            )
        )
    return out
