"""FFmpeg as a frame source: a video file's size and its frames as RGB arrays, streamed one at
a time (memory stays one frame, whatever the length). Shared by whatever hashes video frames."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from blindmatch.node.media.hashing import MediaError

MAX_SIDE = 8192  # a frame larger than this is refused rather than decoded
PROBE_TIMEOUT_S = 30
DECODE_TIMEOUT_S = 600


def ffmpeg_available() -> bool:
    return shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None


def frame_size(path: Path) -> tuple[int, int]:
    """The width and height of a video's first stream; refused above :data:`MAX_SIDE`."""
    try:
        out = subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-select_streams",
                "v:0",
                "-show_entries",
                "stream=width,height",
                "-of",
                "csv=p=0",
                str(path),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=PROBE_TIMEOUT_S,
        ).stdout
        width, height = (int(x) for x in out.strip().split(",")[:2])
    except (subprocess.SubprocessError, ValueError, OSError):
        raise MediaError("cannot read the video's frame size", code="corrupt") from None
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise MediaError(f"frames larger than {MAX_SIDE} pixels a side", code="too_large")
    return width, height


def rgb_frames(path: Path, width: int, height: int, last: int) -> Iterator[np.ndarray]:
    """Frames 0..``last`` of the video as ``height x width x 3`` arrays, in order, every decoded
    frame (no frame-rate conversion); fewer when the video is shorter."""
    frame_bytes = width * height * 3
    with subprocess.Popen(
        [
            "ffmpeg",
            "-v",
            "error",
            "-nostdin",
            "-i",
            str(path),
            "-map",
            "0:v:0",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-vsync",
            "passthrough",
            "-",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as proc:
        assert proc.stdout is not None
        try:
            n = 0
            while n <= last:
                buf = proc.stdout.read(frame_bytes)
                if len(buf) < frame_bytes:
                    break
                yield np.frombuffer(buf, np.uint8).reshape(height, width, 3)
                n += 1
        finally:
            proc.kill()
            proc.wait(timeout=DECODE_TIMEOUT_S)
