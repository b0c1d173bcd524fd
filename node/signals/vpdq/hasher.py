"""A video's vPDQ frames through Meta's ``vpdq`` binding (:func:`hash_video`), and with each
sampled frame's PDQ float vector, for a private video query.

Meta's vpdq gives the frame list (one PDQ hash and quality per sampled frame) but not PDQ's float
vectors, which the querier needs to rank its multi-probe buckets (specs/signals-and-lsh.md 5.5).
FFmpeg decodes the same file to RGB frames (``node/media/ffmpeg.py``), and pdqhash's float
vector of frame ``n`` quantises to exactly vpdq's hash of frame ``n`` (measured on every frame of
the video evaluation: bench/results/video.md); a frame whose bits disagree anyway gets no float
vector and is probed under its base keys only, so a decoder difference can cost recall, never a
wrong match.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pdqhash

from blindmatch.node.media.ffmpeg import ffmpeg_available, frame_size, rgb_frames
from blindmatch.node.media.hashing import MediaError, read_media
from blindmatch.protocol.matching import QueryHash
from blindmatch.protocol.signal_types.vpdq import video
from blindmatch.protocol.signal_types.vpdq.frames import (
    VPDQ_FRAME_QUALITY_THRESHOLD,
    VpdqFrame,
    distinct_good_frames,
)
from blindmatch.protocol.signals import pdq_bits_from_float, pdq_from_bits, pdq_from_hex

__all__ = [
    "VideoHashes",
    "ffmpeg_available",
    "frame_float_vectors",
    "hash_video",
    "hash_video_for_query",
    "looks_like_video",
    "video_query_hashes",
    "vpdq_available",
]


def vpdq_available() -> bool:
    try:
        import vpdq  # noqa: F401
    except ImportError:
        return False
    return True


def hash_video(path: str | os.PathLike[str], *, seconds_per_hash: float = 1.0) -> list[VpdqFrame]:
    """vPDQ through Meta's binding: one PDQ hash (with quality) per sampled frame."""
    try:
        import vpdq
    except ImportError:
        raise MediaError(
            "video hashing needs the vpdq package: pip install 'blindmatch[video]'",
            code="video_unsupported",
        ) from None
    p = Path(path)
    read_media(p)  # existence, size and emptiness checks
    try:
        features = vpdq.computeHash(str(p), seconds_per_hash=seconds_per_hash)
    except Exception as exc:  # the binding raises plain exceptions for undecodable input
        raise MediaError(f"cannot decode video: {type(exc).__name__}", code="corrupt") from None
    if not features:
        raise MediaError("no decodable video frames", code="corrupt")
    return [
        VpdqFrame(
            frame_number=int(f.frame_number),
            pdq=pdq_from_hex(str(f.hex)),
            quality=int(f.quality),
            timestamp=float(f.timestamp),
        )
        for f in features
    ]


@dataclass(frozen=True)
class VideoHashes:
    frames: tuple[VpdqFrame, ...]
    float_vectors: dict[int, np.ndarray] = field(compare=False, repr=False)  # by frame number
    mismatched: int = 0  # query frames without a float vector (bits disagreed, or not decoded)

    def query_hashes(self, max_frames: int = video.MAX_QUERY_FRAMES) -> list[QueryHash]:
        """The video's query hashes (distinct quality frames, ``vframe/<i>``)."""
        return video.query_frames(self.frames, self.float_vectors, max_frames)


def frame_float_vectors(
    path: str | os.PathLike[str], frames: list[VpdqFrame] | tuple[VpdqFrame, ...]
) -> tuple[dict[int, np.ndarray], int]:
    """PDQ float vectors of the given frames (by frame number), and how many disagreed with the
    frame's hash (those are left out)."""
    if not ffmpeg_available():
        raise MediaError("video queries need the ffmpeg and ffprobe CLIs", code="video_unsupported")
    p = Path(path)
    width, height = frame_size(p)
    wanted = {f.frame_number: f for f in frames}
    out: dict[int, np.ndarray] = {}
    for n, rgb in enumerate(rgb_frames(p, width, height, max(wanted, default=-1))):
        frame = wanted.get(n)
        if frame is not None:
            vector, _ = pdqhash.compute_float(rgb)
            vector = np.asarray(vector, dtype=np.float64)
            if pdq_from_bits(pdq_bits_from_float(vector)) == frame.pdq:
                out[n] = vector
    return out, sum(1 for k in wanted if k not in out)


def hash_video_for_query(
    path: str | os.PathLike[str], *, seconds_per_hash: float = 1.0
) -> VideoHashes:
    """vpdq's frames of a video and their float vectors (see the module docstring)."""
    frames = hash_video(path, seconds_per_hash=seconds_per_hash)
    selected = distinct_good_frames(frames, VPDQ_FRAME_QUALITY_THRESHOLD)[: video.MAX_QUERY_FRAMES]
    vectors, mismatched = frame_float_vectors(path, selected)
    return VideoHashes(tuple(frames), vectors, mismatched)


# Container signatures (offset, bytes): ISO BMFF (MP4, MOV, 3GP), Matroska/WebM, AVI, MPEG-TS,
# MPEG-PS, FLV. Pictures never start with these.
_SIGNATURES: tuple[tuple[int, bytes], ...] = (
    (4, b"ftyp"),
    (0, b"\x1a\x45\xdf\xa3"),
    (8, b"AVI "),
    (0, b"\x00\x00\x01\xba"),
    (0, b"FLV"),
)


def looks_like_video(data: bytes) -> bool:
    """Whether bytes start like a video container (the media API routes them to vPDQ)."""
    if len(data) >= 189 and data[0] == 0x47 and data[188] == 0x47:  # MPEG-TS packets
        return True
    return any(data[o : o + len(sig)] == sig for o, sig in _SIGNATURES)


def video_query_hashes(data: bytes) -> list[QueryHash]:
    """The query hashes of a video given as bytes (written to a private temporary file for the
    decoders, removed afterwards). Raises MediaError when it has no frame of quality >= 50."""
    with tempfile.TemporaryDirectory(prefix="blindmatch-video-") as tmp:
        path = Path(tmp) / "upload"
        path.write_bytes(data)
        queries = hash_video_for_query(path).query_hashes()
    if not queries:
        raise MediaError("no frame of the video is textured enough to match", code="low_quality")
    return queries
