"""A video query's hashes: vpdq's frames, each with PDQ's float vector from FFmpeg's decode of
the same frame (bit-exact with vpdq's hash), so frames get multi-probe like pictures."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from blindmatch.node.media.hashing import MediaError
from blindmatch.node.signals.vpdq.hasher import (
    ffmpeg_available,
    hash_video_for_query,
    vpdq_available,
)
from blindmatch.protocol.signal_types.vpdq import video
from blindmatch.protocol.signals import pdq_bits_from_float, pdq_from_bits

pytestmark = pytest.mark.skipif(
    not (ffmpeg_available() and vpdq_available()), reason="needs ffmpeg and vpdq"
)


def _clip(tmp_path: Path, seconds: int = 4) -> Path:
    """A pan across a textured picture, H.264 at 10 fps."""
    from PIL import Image

    picture = tmp_path / "p.png"
    Image.fromarray(pytest.importorskip("skimage.data").chelsea()).save(picture)
    out = tmp_path / "pan.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-loop",
            "1",
            "-i",
            str(picture),
            "-vf",
            f"crop=320:240:'180*t/{seconds}':'60*t/{seconds}',fps=10,format=yuv420p",
            "-t",
            str(seconds),
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            str(out),
        ],
        check=True,
    )
    return out


def test_every_query_frame_gets_the_float_vector_of_its_own_hash(tmp_path: Path) -> None:
    hashes = hash_video_for_query(_clip(tmp_path))
    queries = hashes.query_hashes()
    assert len(hashes.frames) == 4 and hashes.mismatched == 0
    assert len(queries) >= 3  # a pan: its frames differ
    assert [q.variant for q in queries] == [video.frame_variant(i) for i in range(len(queries))]
    for q in queries:
        assert q.float_vector is not None
        assert pdq_from_bits(pdq_bits_from_float(np.asarray(q.float_vector))) == q.hash
    assert len(hashes.query_hashes(max_frames=2)) == 2


def test_a_broken_video_is_a_media_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    with pytest.raises(MediaError):
        hash_video_for_query(bad)
