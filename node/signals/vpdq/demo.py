"""The video step of ``blindmatch demo``: clips made with FFmpeg from the demo's photos."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from blindmatch.node.signals.base import DemoMedia
from blindmatch.node.signals.vpdq.hasher import hash_video
from blindmatch.protocol.signal_types.vpdq import video


def _clip(photo: Any, out: Path, vf: str, seconds: int, extra: tuple[str, ...] = ()) -> None:
    """An H.264 clip of a slow pan across ``photo`` (FFmpeg), then ``vf`` applied."""
    still = out.with_suffix(".png")
    photo.convert("RGB").resize((640, 480)).save(still)
    pan = f"crop=480:360:'20*t':'10*t',fps=10,{vf}format=yuv420p"
    command = ["ffmpeg", "-v", "error", "-y", "-loop", "1", "-i", str(still), "-vf", pan]
    command += ["-t", str(seconds), *extra, "-c:v", "libx264", "-preset", "veryfast", str(out)]
    subprocess.run(command, check=True)


def demo_media(tmp: Path, photos: dict[str, Any]) -> DemoMedia:
    _clip(photos["coffee"], tmp / "reported.mp4", "", 8)
    # The platform's upload: seconds 2-6 of it, downscaled, recompressed.
    upload_edit = ("-ss", "2", "-t", "4", "-crf", "30")
    _clip(photos["coffee"], tmp / "upload.mp4", "scale=320:-2,", 8, upload_edit)
    _clip(photos["camera"], tmp / "other.mp4", "", 6)
    reported = hash_video(tmp / "reported.mp4")
    return DemoMedia(
        bank="survivor-videos",
        banked_value=video.format_signal_string(reported),
        banked_note=f"   hub banked 1 video item: {len(reported)} frames, "
        f"{len(video.indexed_frames(reported))} distinct ones indexed",
        uploads=(
            ("copy", tmp / "upload.mp4", "demo-video"),
            ("unrelated", tmp / "other.mp4", "demo-other"),
        ),
    )


def describe(hit: dict[str, Any]) -> str:
    ev = hit["video"]
    return (
        f"VIDEO MATCH at {hit['peer']}:"
        f" {ev['query_match_percent']:.0f}% of its {ev['query_frames']} frames,"
        f" {ev['compared_match_percent']:.0f}% of the banked video's"
        f" {ev['compared_frames']}"
    )
