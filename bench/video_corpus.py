"""Build the video evaluation corpus: clips made from the bench corpus's real photographs.

    ./dev bench video_corpus            # build (or reuse) the clips
    ./dev bench video_corpus --rebuild  # start over

Every clip is 8 s at 25 frames/s, 640x360, H.264 (FFmpeg's libx264, CRF 20), made from whole
photographs of ``bench/corpus.py`` (each photograph used in at most one clip):

* ``pan``: a 640x360 window moving diagonally across the photo (scaled to cover 800x450);
* ``zoom``: a zoom from 1x to 1.5x into the photo's centre;
* ``crossfade``: one photo, a two-second fade, another photo.

Half the clips are *banked* (a holder indexes them), the other half are *unrelated* (never
banked: any match of theirs is a false positive). Each banked clip is also transformed with
FFmpeg: ``reencode`` (CRF 32), ``resize`` (to 320 px wide), ``trim`` (the 4 s from 2 s on),
``crop`` (the centred 90%), ``fps`` (25 -> 12 frames/s).

The cache lives outside git, under ``${XDG_CACHE_HOME:-~/.cache}/blindmatch/video``:
``clips/*.mp4`` and ``manifest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import corpus

KINDS = ("pan", "zoom", "crossfade")
TRANSFORMS: dict[str, list[str]] = {
    "reencode": ["-c:v", "libx264", "-preset", "veryfast", "-crf", "32"],
    "resize": ["-vf", "scale=320:-2", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23"],
    "trim": ["-ss", "2", "-t", "4", "-c:v", "libx264", "-preset", "veryfast", "-crf", "20"],
    "crop": [
        "-vf",
        "crop=trunc(iw*0.9/2)*2:trunc(ih*0.9/2)*2",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "20",
    ],
    "fps": ["-r", "12", "-c:v", "libx264", "-preset", "veryfast", "-crf", "20"],
}
SECONDS, FPS, WIDTH, HEIGHT = 8, 25, 640, 360
MANIFEST_VERSION = 1
_ENCODE = ["-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "veryfast", "-crf", "20"]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "blindmatch" / "video"


@dataclass(frozen=True)
class Clip:
    id: str
    file: str
    kind: str  # pan, zoom, crossfade
    role: str  # "banked", "unrelated" or "query"
    photos: tuple[str, ...]  # corpus image ids it was made from
    source: str | None = None  # for a query: the banked clip it was made from
    transform: str | None = None


def ffmpeg_path() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        raise SystemExit("bench video: the ffmpeg CLI is missing (apt-get install -y ffmpeg)")
    return path


def _run(args: list[str]) -> None:
    subprocess.run([ffmpeg_path(), "-v", "error", "-y", *args], check=True)


def _cover(width: int, height: int) -> str:
    return (
        f"scale={width}:{height}:force_original_aspect_ratio=increase,"
        f"crop={width}:{height},setsar=1"
    )


def make_clip(kind: str, photos: list[Path], out: Path) -> None:
    n = SECONDS * FPS
    if kind == "pan":
        vf = (
            f"{_cover(800, 450)},crop={WIDTH}:{HEIGHT}:'160*t/{SECONDS}':'90*t/{SECONDS}',fps={FPS}"
        )
        _run(
            ["-loop", "1", "-i", str(photos[0]), "-vf", vf, "-t", str(SECONDS), *_ENCODE, str(out)]
        )
    elif kind == "zoom":
        vf = (
            f"{_cover(1280, 720)},zoompan=z='1+0.5*on/{n}':x='iw/2-iw/zoom/2':"
            f"y='ih/2-ih/zoom/2':d={n}:s={WIDTH}x{HEIGHT}:fps={FPS}"
        )
        _run(["-i", str(photos[0]), "-vf", vf, "-frames:v", str(n), *_ENCODE, str(out)])
    elif kind == "crossfade":
        half = SECONDS // 2 + 1
        graph = (
            f"[0]{_cover(WIDTH, HEIGHT)},fps={FPS},format=yuv420p[a];"
            f"[1]{_cover(WIDTH, HEIGHT)},fps={FPS},format=yuv420p[b];"
            f"[a][b]xfade=transition=fade:duration=2:offset={SECONDS // 2 - 1}"
        )
        inputs = ["-loop", "1", "-t", str(half), "-i", str(photos[0])]
        inputs += ["-loop", "1", "-t", str(half), "-i", str(photos[1])]
        _run([*inputs, "-filter_complex", graph, "-t", str(SECONDS), *_ENCODE, str(out)])
    else:
        raise ValueError(kind)


def build(per_kind: int = 4, rebuild: bool = False) -> list[Clip]:
    """``per_kind`` banked and ``per_kind`` unrelated clips of each kind, and the transforms of
    every banked clip."""
    root = cache_dir()
    manifest_path = root / "manifest.json"
    if rebuild and root.exists():
        shutil.rmtree(root)
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("version") == MANIFEST_VERSION and manifest.get("per_kind") == per_kind:
            return [Clip(**{**c, "photos": tuple(c["photos"])}) for c in manifest["clips"]]
    (root / "clips").mkdir(parents=True, exist_ok=True)
    photos = [i for i in corpus.build() if i.tile == "whole" and min(i.width, i.height) >= 360]
    photos.sort(key=lambda i: i.id)
    needed = 2 * per_kind * (len(KINDS) + 1)  # a crossfade takes two photos
    if len(photos) < needed:
        raise SystemExit(f"bench video: the corpus has {len(photos)} whole photos, {needed} needed")
    next_photo = iter(photos)
    clips: list[Clip] = []
    for role in ("banked", "unrelated"):
        for kind in KINDS:
            for k in range(per_kind):
                used = [next(next_photo) for _ in range(2 if kind == "crossfade" else 1)]
                cid = f"{role[0]}-{kind}-{k}"
                out = root / "clips" / f"{cid}.mp4"
                make_clip(kind, [corpus.cache_dir() / p.file for p in used], out)
                clips.append(Clip(cid, f"clips/{cid}.mp4", kind, role, tuple(p.id for p in used)))
                print(f"video corpus: {cid}", file=sys.stderr)
    for clip in [c for c in clips if c.role == "banked"]:
        for name, args in TRANSFORMS.items():
            qid = f"{clip.id}.{name}"
            out = root / "clips" / f"{qid}.mp4"
            _run(["-i", str(root / clip.file), *args, "-pix_fmt", "yuv420p", "-an", str(out)])
            clips.append(
                Clip(qid, f"clips/{qid}.mp4", clip.kind, "query", clip.photos, clip.id, name)
            )
    manifest_path.write_text(
        json.dumps(
            {
                "version": MANIFEST_VERSION,
                "per_kind": per_kind,
                "clips": [asdict(c) for c in clips],
            },
            indent=1,
        )
    )
    return clips


def path_of(clip: Clip) -> Path:
    return cache_dir() / clip.file


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench video_corpus", description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=4, help="banked clips per kind (4)")
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args(argv)
    clips = build(args.per_kind, args.rebuild)
    roles = {r: sum(1 for c in clips if c.role == r) for r in ("banked", "unrelated", "query")}
    print(f"video corpus: {roles} in {cache_dir()}")
    return 0
