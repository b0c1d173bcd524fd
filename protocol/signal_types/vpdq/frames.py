"""vPDQ's frame list and its plaintext rule (Meta's vpdq, python-threatexchange's matcher): the
signal's hash format, on which :mod:`.video` builds the private exchange. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from blindmatch.protocol.signals import (
    PDQ_MATCH_THRESHOLD,
    HashFormatError,
    as_hash_matrix,
    check_pdq_bytes,
    hamming_matrix,
)

VPDQ_FRAME_QUALITY_THRESHOLD = 50
VPDQ_MATCH_PERCENT_THRESHOLD = 80.0


@dataclass(frozen=True)
class VpdqFrame:
    """One frame of a vPDQ video hash."""

    frame_number: int
    pdq: bytes
    quality: int
    timestamp: float

    def __post_init__(self) -> None:
        check_pdq_bytes(self.pdq)
        if not 0 <= self.quality <= 100:
            raise HashFormatError("vPDQ frame quality is 0..100")
        if self.frame_number < 0:
            raise HashFormatError("vPDQ frame number is non-negative")


@dataclass(frozen=True)
class VpdqMatch:
    query_match_percent: float  # % of the query's distinct good frames found in the other video
    compared_match_percent: float  # % of the other video's distinct good frames found in the query

    def is_match(self, threshold: float = VPDQ_MATCH_PERCENT_THRESHOLD) -> bool:
        """python-threatexchange's rule: the larger of the two percentages reaches 80."""
        return max(self.query_match_percent, self.compared_match_percent) >= threshold


def distinct_good_frames(frames: Sequence[VpdqFrame], min_quality: int) -> list[VpdqFrame]:
    """vPDQ's frame selection: deduplicate by hash (first occurrence wins), then drop frames of
    quality below ``min_quality``; order kept."""
    seen: set[bytes] = set()
    out: list[VpdqFrame] = []
    for f in frames:
        if f.pdq in seen:
            continue
        seen.add(f.pdq)
        if f.quality >= min_quality:
            out.append(f)
    return out


def vpdq_match(
    query: Sequence[VpdqFrame],
    compared: Sequence[VpdqFrame],
    *,
    distance_threshold: int = PDQ_MATCH_THRESHOLD,
    min_quality: int = VPDQ_FRAME_QUALITY_THRESHOLD,
) -> VpdqMatch:
    """vPDQ's brute-force video comparison.

    Frames are deduplicated by hash (first occurrence wins), then frames below ``min_quality``
    are dropped. A frame of one video "matches" when some frame of the other is within
    ``distance_threshold``. Returns both percentages; a side with no usable frames scores 0.
    """
    q = [f.pdq for f in distinct_good_frames(query, min_quality)]
    c = [f.pdq for f in distinct_good_frames(compared, min_quality)]
    if not q or not c:
        return VpdqMatch(0.0, 0.0)
    d = hamming_matrix(as_hash_matrix(q), as_hash_matrix(c)) <= distance_threshold
    return VpdqMatch(
        100.0 * float(d.any(axis=1).sum()) / len(q),
        100.0 * float(d.any(axis=0).sum()) / len(c),
    )
