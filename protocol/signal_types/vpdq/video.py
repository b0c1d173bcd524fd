"""vPDQ video across the federation: signal type ``vpdq`` (specs/signals-and-lsh.md, section 7).

Pure: frames in, keys, query hashes, releases and verdicts out (decoding video is
``blindmatch.node`` work). In short:

* **Item.** A holder's video is ONE bank item with its frame list (vPDQ frames, e.g. imported
  from a ThreatExchange ``vpdq`` signal string). Its *indexed frames* are its distinct frames of
  quality >= 50 (:func:`indexed_frames`), at most :data:`MAX_INDEX_FRAMES`; each gets its own
  16-byte frame reference and the ``pdq-lsh-1`` index keys of its hash under the signal name
  ``vpdq``, so a frame bucket never meets a picture bucket.
* **Query.** A querier's video becomes one query hash per distinct quality frame, at most
  :data:`MAX_QUERY_FRAMES` (deduplicated, so a still scene costs one frame, not one per second);
  query hash ``i`` has the variant ``vframe/<i>`` and is probed under the ``vpdq`` keys with the
  scheme's probe budget. Each candidate frame is confirmed by the same private threshold test as
  a picture (threshold 31).
* **Release.** With a confirmed frame the holder releases the opaque 8-byte ``group`` of its
  video and ``frames``, the number of the video's indexed frames (never a hash, a timestamp or a
  frame number).
* **The rule** (vPDQ's, as Meta's vpdq and python-threatexchange define it), applied by the
  querier per group: query-match % = distinct query frames confirmed against the group / query
  frames; compared-match % = distinct frame references confirmed in the group / ``frames``. The
  videos match when the larger of the two is at least 80.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from blindmatch.protocol.lsh import PDQ_LSH_1, register_pdq_valued_signal
from blindmatch.protocol.matching import Confirmation, QueryHash
from blindmatch.protocol.signal_types.vpdq.frames import (
    VPDQ_FRAME_QUALITY_THRESHOLD,
    VPDQ_MATCH_PERCENT_THRESHOLD,
    VpdqFrame,
    distinct_good_frames,
)
from blindmatch.protocol.signals import (
    PDQ_MATCH_THRESHOLD,
    HashFormatError,
    pdq_from_hex,
)

SIGNAL = "vpdq"
# A frame is a PDQ hash bucketed under the type's own signal name, apart from pictures' (7).
BUCKET_SIGNAL = register_pdq_valued_signal(SIGNAL)
RELEASE_GROUP_BYTES = 8
MAX_QUERY_FRAMES = 120  # a querier's cost bound: 120 x 64 probes is 7,680 OPRF evaluations
MAX_INDEX_FRAMES = 4096  # a holder's per-video bound (68 minutes at one hash per second)
MAX_SIGNAL_FRAMES = 100_000  # the largest ThreatExchange vpdq string read
FRAME_THRESHOLD = PDQ_MATCH_THRESHOLD
_FRAME_VARIANT = re.compile(r"^vframe/(0|[1-9][0-9]{0,3})$")


class VideoError(ValueError):
    pass


# --- frames ------------------------------------------------------------------------------------


def frame_variant(index: int) -> str:
    if not 0 <= index < MAX_INDEX_FRAMES:
        raise VideoError(f"frame index must be in 0..{MAX_INDEX_FRAMES - 1}")
    return f"vframe/{index}"


def is_frame_variant(variant: str) -> bool:
    """Whether a query hash's variant names a video frame (``vframe/<i>``, canonical)."""
    return isinstance(variant, str) and _FRAME_VARIANT.match(variant) is not None


def frame_index(variant: str) -> int:
    m = _FRAME_VARIANT.match(variant) if isinstance(variant, str) else None
    if m is None:
        raise VideoError(f"not a frame variant: {variant!r}")
    return int(m.group(1))


def indexed_frames(frames: Sequence[VpdqFrame]) -> list[VpdqFrame]:
    """What a holder indexes of a video: its distinct frames of quality >= 50, in order."""
    out = distinct_good_frames(frames, VPDQ_FRAME_QUALITY_THRESHOLD)
    if len(out) > MAX_INDEX_FRAMES:
        raise VideoError(f"a video item indexes at most {MAX_INDEX_FRAMES} distinct frames")
    return out


def query_frames(
    frames: Sequence[VpdqFrame],
    float_vectors: Mapping[int, Any] | None = None,
    max_frames: int = MAX_QUERY_FRAMES,
) -> list[QueryHash]:
    """The query hashes of a video: its distinct quality frames, first ``max_frames`` of them.

    ``float_vectors`` maps a frame number to PDQ's float vector of that frame (for multi-probe;
    without one a frame is probed under its base keys only).
    """
    if not 1 <= max_frames <= MAX_INDEX_FRAMES:
        raise VideoError(f"max_frames must be in 1..{MAX_INDEX_FRAMES}")
    good = distinct_good_frames(frames, VPDQ_FRAME_QUALITY_THRESHOLD)[:max_frames]
    vectors = float_vectors or {}
    return [
        QueryHash(f.pdq, vectors.get(f.frame_number), frame_variant(i)) for i, f in enumerate(good)
    ]


def index_keys(frame_hash: bytes) -> list[bytes]:
    """The bucket keys a holder publishes for one indexed frame."""
    return PDQ_LSH_1.index_keys(frame_hash, signal=BUCKET_SIGNAL)


def video_index_keys(frame_hashes: Sequence[bytes]) -> list[list[bytes]]:
    """The bucket keys a holder publishes for each indexed frame of one video, in order: a
    frame's key is left out where an earlier frame of the same video has the very same bucket
    (signals-and-lsh.md 7). Near-identical frames share buckets, and several new entries in one
    bucket, which random decoys almost never show, would pick the video out of its batch
    (protocol.md 8.7); one entry per bucket per video hides it among them."""
    seen: set[bytes] = set()
    out = []
    for h in frame_hashes:
        keys = index_keys(h)
        out.append([k for k in keys if k not in seen])
        seen.update(keys)
    return out


def probe_keys(query: QueryHash, budget: int | None = None) -> list[bytes]:
    return PDQ_LSH_1.probe_keys(query.hash, query.float_vector, budget, signal=BUCKET_SIGNAL)


def release_for_frame(
    group: bytes, frames: int, provenance: str, categories: Sequence[str] = ()
) -> dict[str, Any]:
    """What a holder releases with a confirmed frame of a video item."""
    if len(group) != RELEASE_GROUP_BYTES:
        raise VideoError(f"a group reference is {RELEASE_GROUP_BYTES} bytes")
    if not 1 <= frames <= MAX_INDEX_FRAMES:
        raise VideoError(f"frames must be in 1..{MAX_INDEX_FRAMES}")
    release: dict[str, Any] = {
        "signal": SIGNAL,
        "provenance": provenance,
        "group": group,
        "frames": frames,
    }
    if categories:
        release["categories"] = list(categories)[:8]
    return release


# --- the rule ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoVerdict:
    """The querier's conclusion about its video against one of a holder's videos."""

    peer: str
    group: bytes
    query_frames: int  # the query's distinct quality frames (the query-match denominator)
    compared_frames: int  # the holder's indexed frames, as released
    query_matched: int
    compared_matched: int
    best_band: int
    release: Mapping[str, Any]

    @property
    def query_match_percent(self) -> float:
        return 100.0 * self.query_matched / self.query_frames if self.query_frames else 0.0

    @property
    def compared_match_percent(self) -> float:
        if not self.compared_frames:
            return 0.0
        return 100.0 * min(self.compared_matched, self.compared_frames) / self.compared_frames

    @property
    def is_match(self) -> bool:
        return (
            max(self.query_match_percent, self.compared_match_percent)
            >= VPDQ_MATCH_PERCENT_THRESHOLD
        )

    def as_result(self) -> dict[str, Any]:
        """The fields a video match result carries."""
        return {
            "signal": SIGNAL,
            "query_match_percent": round(self.query_match_percent, 1),
            "compared_match_percent": round(self.compared_match_percent, 1),
            "query_frames": self.query_frames,
            "compared_frames": self.compared_frames,
        }


def judge(
    queries: Sequence[QueryHash], confirmations: Iterable[Confirmation]
) -> list[VideoVerdict]:
    """Apply vPDQ's rule to the frames a querier confirmed; one verdict per (peer, group) with
    at least one confirmed frame, matches first, then by the larger percentage.

    ``queries`` are the exchange's query hashes (only ``vframe/<i>`` ones count as frames);
    confirmations of other variants or without a well-formed ``group``/``frames`` release are
    ignored. A holder that released different frame counts for one group gets the largest (the
    conservative denominator for compared-match %).
    """
    n_query = sum(1 for q in queries if is_frame_variant(q.variant))
    per_group: dict[tuple[str, bytes], dict[str, Any]] = {}
    for c in confirmations:
        if not is_frame_variant(c.variant):
            continue
        group, frames = c.release.get("group"), c.release.get("frames")
        if not (isinstance(group, bytes) and len(group) == RELEASE_GROUP_BYTES):
            continue
        if not (isinstance(frames, int) and not isinstance(frames, bool) and frames >= 1):
            continue
        g = per_group.setdefault(
            (c.peer, group),
            {"q": set(), "c": set(), "frames": 0, "band": c.band, "release": c.release},
        )
        g["q"].add(frame_index(c.variant))
        g["c"].add(c.item_ref)
        g["frames"] = max(g["frames"], frames)
        g["band"] = min(g["band"], c.band)
    verdicts = [
        VideoVerdict(
            peer=peer,
            group=group,
            query_frames=n_query,
            compared_frames=g["frames"],
            query_matched=len(g["q"]),
            compared_matched=len(g["c"]),
            best_band=g["band"],
            release=g["release"],
        )
        for (peer, group), g in per_group.items()
    ]
    verdicts.sort(
        key=lambda v: (
            not v.is_match,
            -max(v.query_match_percent, v.compared_match_percent),
            v.peer,
            v.group,
        )
    )
    return verdicts


# --- ThreatExchange's vpdq signal string -------------------------------------------------------


def parse_signal_string(text: str) -> list[VpdqFrame]:
    """Read ThreatExchange's ``vpdq`` signal string: a JSON list of ``"<64 hex>,<quality>,
    <timestamp>"`` strings, one per sampled frame in order (frame number = position)."""
    if not isinstance(text, str):
        raise VideoError("a vpdq signal string is a string")
    try:
        items = json.loads(text or "[]")
    except ValueError as exc:
        raise VideoError("a vpdq signal string is a JSON list") from exc
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        raise VideoError("a vpdq signal string is a JSON list of strings")
    if not items:
        raise VideoError("a vpdq signal string has at least one frame")
    if len(items) > MAX_SIGNAL_FRAMES:
        raise VideoError(f"a vpdq signal string has at most {MAX_SIGNAL_FRAMES} frames")
    frames = []
    last_ts = -1.0
    for n, item in enumerate(items):
        parts = item.split(",")
        if len(parts) != 3:
            raise VideoError(f"frame {n}: expected 'hash,quality,timestamp'")
        try:
            pdq = pdq_from_hex(parts[0])
            quality = int(parts[1])
            timestamp = float(parts[2])
        except (HashFormatError, ValueError) as exc:
            raise VideoError(f"frame {n}: {exc}") from exc
        if not (timestamp >= 0.0 and timestamp < 1e7) or timestamp < last_ts:
            raise VideoError(f"frame {n}: timestamps are non-negative and non-decreasing")
        last_ts = timestamp
        try:
            frames.append(VpdqFrame(n, pdq, quality, timestamp))
        except HashFormatError as exc:
            raise VideoError(f"frame {n}: {exc}") from exc
    return frames


def format_signal_string(frames: Sequence[VpdqFrame]) -> str:
    """The ThreatExchange ``vpdq`` signal string of a frame list (timestamps to 3 decimals)."""
    if not frames:
        raise VideoError("a vpdq signal string has at least one frame")
    return json.dumps(
        [f"{f.pdq.hex()},{f.quality},{f.timestamp:.3f}" for f in frames], separators=(",", ":")
    )
