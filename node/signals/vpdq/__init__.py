"""``vpdq``: a video, one bank item with its frame list (:mod:`.rows`, tables in
``node/storage/signal_tables/vpdq.py``); each indexed frame is published under the ``vpdq``
buckets with its own reference and answered for while the video item is live
(specs/signals-and-lsh.md 7). Media: a video container's bytes, hashed by Meta's vpdq with
FFmpeg's float vectors (:mod:`.hasher`); cases: vPDQ's rule per video (:mod:`.cases`).
Single adds of a video to a bank: :mod:`.items`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from blindmatch.node.cases.matches import PeerMatch, ReviewMatch
from blindmatch.node.signals.base import (
    PUBLISHED_ITEM,
    DemoMedia,
    Publishable,
    SignalAdapter,
    SignalValueError,
    bands,
    categories_of,
)
from blindmatch.node.signals.vpdq import cases, rows
from blindmatch.node.storage import Database
from blindmatch.node.storage.signal_tables import vpdq as tables
from blindmatch.protocol.matching import HolderItem, QueryHash
from blindmatch.protocol.signal_types.vpdq import VPDQ, video


class VpdqAdapter(SignalAdapter):
    entry = VPDQ
    published_from = (
        " FROM video_frames f JOIN videos v ON v.item_id = f.item_id"
        " JOIN bank_items i ON i.id = f.item_id JOIN banks b ON b.id = i.bank_id"
        " WHERE f.item_ref IS NOT NULL AND " + PUBLISHED_ITEM
    )
    published_ref = "f.item_ref"
    published_hash = "f.hash"
    migrations = tables.MIGRATIONS
    holds_parts = True
    item_noun = "a video"
    value_doc = "a video as ThreatExchange's vpdq signal string (its frame list)"
    value_schema_doc = "a JSON list of 'hex,quality,timestamp' frames"
    media_doc = (
        "a video (vPDQ: its distinct quality frames, judged by vPDQ's rule; a video match has"
        " signal vpdq and its query/compared-match percentages)"
    )
    media_option = "--video"
    media_option_help = "hash a video (vPDQ)"
    hash_doc = "videos (by file suffix, or --video) are vpdq frames and sha256"

    def index_keys(self, hash_value: bytes) -> list[bytes]:
        return video.index_keys(hash_value)

    # A video publishes one entry per bucket: a frame's key is left out where an earlier frame
    # of the same video has that bucket (signals-and-lsh.md 7, protocol.md 8.7), under every
    # key alike (a successor re-derives the same from the frame list).

    async def unpublished(self, db: Database, now: int, key_id: bytes) -> list[Publishable]:
        return await self._per_video(db, await super().unpublished(db, now, key_id))

    async def ballast(self, db: Database, refs: Sequence[bytes]) -> list[Publishable]:
        return await self._per_video(db, await super().ballast(db, refs))

    async def _per_video(self, db: Database, frames: list[Publishable]) -> list[Publishable]:
        keys: dict[bytes, list[bytes]] = {}
        refs = [p.item_ref for p in frames]
        for start in range(0, len(refs), 500):
            part = refs[start : start + 500]
            rows = await db.fetch_all(
                "SELECT g.item_id, g.item_ref, g.hash FROM video_frames g"
                " WHERE g.item_ref IS NOT NULL AND g.item_id IN (SELECT f.item_id"
                " FROM video_frames f WHERE f.item_ref IN (" + ", ".join("?" * len(part)) + "))"
                " ORDER BY g.item_id, g.position",
                *part,
            )  # fmt: skip
            videos: dict[int, list[tuple[bytes, bytes]]] = {}
            for r in rows:
                videos.setdefault(int(r["item_id"]), []).append(
                    (bytes(r["item_ref"]), bytes(r["hash"]))
                )
            for video_frames in videos.values():
                published = video.video_index_keys([h for _, h in video_frames])
                keys.update(zip([ref for ref, _ in video_frames], published, strict=True))
        return [Publishable(p.item_ref, keys[p.item_ref], p.threshold) for p in frames]

    async def holder_item(
        self, db: Database, ref: bytes, now: int, release_bands: Sequence[int]
    ) -> HolderItem | None:
        row = await db.fetch_one(
            "SELECT f.hash, v.grp, v.indexed_frames, i.categories AS item_categories,"
            " b.categories AS bank_categories, b.provenance AS bank_provenance,"
            " b.distance_threshold" + (self.published_from or "") + " AND f.item_ref = ?",
            self.entry.name,
            now,
            ref,
        )
        if row is None:
            return None
        return HolderItem(
            item_ref=ref,
            hash=bytes(row["hash"]),
            bands=bands(release_bands, int(row["distance_threshold"])),
            release=video.release_for_frame(
                bytes(row["grp"]),
                int(row["indexed_frames"]),
                row["bank_provenance"],
                categories_of(row),
            ),
        )

    async def part_refs(self, db: Database, item_ref: bytes) -> list[bytes]:
        found = await db.fetch_all(
            "SELECT f.item_ref FROM video_frames f JOIN bank_items i ON i.id = f.item_id"
            " WHERE i.item_ref = ? AND f.item_ref IS NOT NULL ORDER BY f.position",
            item_ref,
        )
        return [bytes(r["item_ref"]) for r in found]

    async def owner_of(self, db: Database, part_ref: bytes) -> bytes | None:
        value = await db.fetch_value(
            "SELECT i.item_ref FROM video_frames f JOIN bank_items i ON i.id = f.item_id"
            " WHERE f.item_ref = ?",
            part_ref,
        )
        return None if value is None else bytes(value)

    # --- bank items: a frame list --------------------------------------------------------

    def parse_bank_value(self, value: Any) -> tuple[bytes, tuple[Any, ...]]:
        name = self.entry.name
        if not isinstance(value, str):
            raise SignalValueError(f"a {name} signal is a string (a JSON list of frames)")
        try:
            frames = video.parse_signal_string(value)
            indexed = video.indexed_frames(frames)
        except video.VideoError as exc:
            raise SignalValueError(f"{name} signal: {exc}") from None
        if not indexed:
            raise SignalValueError(f"{name} signal: no frame reaches quality 50")
        return rows.frame_list_digest(frames), tuple(frames)

    async def store_parts(self, db: Database, item_id: int, parts: Sequence[Any]) -> None:
        await rows.insert_video_rows(db, item_id, parts)

    async def signal_strings(self, db: Database, item_ids: Sequence[int]) -> dict[int, str]:
        return await rows.signal_strings(db, item_ids)

    # --- media ---------------------------------------------------------------------------

    def accepts(self, data: bytes) -> bool:
        from blindmatch.node.signals.vpdq import hasher

        return hasher.looks_like_video(data)

    def accepts_path(self, path: str | os.PathLike[str]) -> bool:
        from blindmatch.node.media.hashing import VIDEO_SUFFIXES

        return Path(path).suffix.lower() in VIDEO_SUFFIXES

    def media_queries(self, data: bytes) -> list[QueryHash]:
        from blindmatch.node.signals.vpdq import hasher

        return hasher.video_query_hashes(data)

    def bank_value_of_file(self, path: str | os.PathLike[str]) -> str:
        from blindmatch.node.signals.vpdq import hasher

        return video.format_signal_string(hasher.hash_video(path))

    def media_available(self) -> bool:
        from blindmatch.node.signals.vpdq import hasher

        return hasher.ffmpeg_available() and hasher.vpdq_available()

    # --- blindmatch hash ------------------------------------------------------------------

    def add_hash_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--video", action="store_true", help="treat every file as a video")
        parser.add_argument(
            "--seconds-per-hash", type=float, default=1.0, help="vPDQ frame sampling (default 1)"
        )

    def hashes_file(self, path: Path, args: argparse.Namespace) -> bool:
        return bool(args.video) or self.accepts_path(path)

    def hash_lines(self, path: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
        from blindmatch.node.signals.vpdq import hasher

        frames = hasher.hash_video(path, seconds_per_hash=args.seconds_per_hash)
        return [
            {
                "signal_type": self.entry.name,
                "threatexchange_signal_type": self.entry.threatexchange_name,
                "hex": f.pdq.hex(),
                "quality": f.quality,
                "frame_number": f.frame_number,
                "timestamp": round(f.timestamp, 3),
            }
            for f in frames
        ]

    # --- the federation demo -------------------------------------------------------------

    demo_key = "video"
    demo_intro = (
        "the hub banks a video (a ThreatExchange vpdq frame list); platform-a receives a"
        " trimmed,\n   downscaled, re-encoded copy of it and an unrelated clip:"
    )
    demo_step_name = "bank a video, match a copy and a clip"
    demo_unavailable = "this machine has no ffmpeg or vpdq to decode video"

    def demo_media(self, tmp: Path, photos: dict[str, Any]) -> DemoMedia:
        from blindmatch.node.signals.vpdq import demo

        return demo.demo_media(tmp, photos)

    def demo_describe(self, hit: dict[str, Any]) -> str:
        from blindmatch.node.signals.vpdq import demo

        return demo.describe(hit)

    # --- cases ---------------------------------------------------------------------------

    def review(
        self, queries: Sequence[QueryHash], results: Sequence[PeerMatch]
    ) -> tuple[list[ReviewMatch], list[PeerMatch]]:
        # A video's frames are judged per video by vPDQ's rule.
        return (
            cases.review_video_matches(queries, results),
            [r for r in results if not cases.is_frame_result(r)],
        )
