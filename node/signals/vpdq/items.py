"""Video bank items: a vPDQ video as ONE item of signal type ``vpdq`` with its frame list.

The item's ``hash`` column holds a digest of its frame list (so the same video is banked once);
its frames live in ``video_frames`` in order, and each *indexed* frame (distinct, quality >= 50:
``vpdq.video.indexed_frames``) has its own random item reference, which is what the blinded
index and a querier's candidates name. Frames are published and answered for exactly while the
video item is active, and withdrawing or removing the video takes them all out with it.

ThreatExchange's ``vpdq`` signal string (a JSON list of ``"hex,quality,timestamp"``) is read
and written here, so a video list moves between blindmatch, HMA and ThreatExchange unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from blindmatch.node.banks.formats import ParsedItem
from blindmatch.node.banks.service import AddResult, BankService, withdrawal_secret_hash
from blindmatch.node.banks.validation import (
    BankValidationError,
    check_categories,
    check_source,
    check_timestamp,
)
from blindmatch.node.signals.vpdq.rows import frame_list_digest, insert_video_rows
from blindmatch.protocol.signal_types.vpdq import video
from blindmatch.protocol.signal_types.vpdq.frames import VpdqFrame

SIGNAL = video.SIGNAL


@dataclass(frozen=True)
class VideoFrameRow:
    position: int
    frame: VpdqFrame
    item_ref: bytes | None  # set for indexed frames


class VideoItems:
    """Video items of a node's banks (uses the bank service for the item row itself)."""

    def __init__(self, banks: BankService) -> None:
        self._banks = banks
        self._db = banks.db

    async def add_video(
        self,
        bank: str,
        frames: Sequence[VpdqFrame],
        *,
        categories: Sequence[str] = (),
        source: str = "local",
        expires_at: int | None = None,
        withdrawal_secret: bytes | None = None,
    ) -> AddResult:
        """Bank a video. Adding a frame list the bank already holds returns the existing item
        (``created=False``); a video with no frame of quality >= 50 is refused (it could never
        match)."""
        frames = list(frames)
        if not frames:
            raise BankValidationError("a video has at least one frame")
        try:
            indexed = video.indexed_frames(frames)
        except video.VideoError as exc:
            raise BankValidationError(str(exc)) from None
        if not indexed:
            raise BankValidationError("no frame of the video reaches quality 50")
        parsed = ParsedItem(
            line=0,
            signal_type=SIGNAL,
            hash=frame_list_digest(frames),
            quality=None,
            categories=check_categories(categories),
            expires_at=check_timestamp(expires_at, "expires_at"),
            provenance={},
            withdrawal_secret_hash=None
            if withdrawal_secret is None
            else withdrawal_secret_hash(withdrawal_secret),
        )
        source = check_source(source)
        now = self._banks.clock.now()
        if parsed.expires_at is not None and parsed.expires_at <= now:
            raise BankValidationError("expires_at is not in the future")
        async with self._db.transaction():
            target = await self._banks.get_bank(bank)
            result = await self._banks.insert_parsed(target, parsed, source, now)
            if not result.created:
                return result
            await insert_video_rows(self._db, result.item.id, frames)
            return result

    async def add_signal_string(self, bank: str, text: str, **kwargs: object) -> AddResult:
        """Bank a video given as ThreatExchange's ``vpdq`` signal string."""
        try:
            frames = video.parse_signal_string(text)
        except video.VideoError as exc:
            raise BankValidationError(f"vpdq signal: {exc}") from None
        return await self.add_video(bank, frames, **kwargs)  # type: ignore[arg-type]

    async def frames(self, item_ref: bytes) -> list[VideoFrameRow]:
        rows = await self._db.fetch_all(
            "SELECT f.position, f.hash, f.quality, f.timestamp_ms, f.item_ref FROM video_frames f"
            " JOIN bank_items i ON i.id = f.item_id WHERE i.item_ref = ? ORDER BY f.position",
            item_ref,
        )
        return [
            VideoFrameRow(
                int(r["position"]),
                VpdqFrame(
                    int(r["position"]),
                    bytes(r["hash"]),
                    int(r["quality"]),
                    int(r["timestamp_ms"]) / 1000,
                ),
                None if r["item_ref"] is None else bytes(r["item_ref"]),
            )
            for r in rows
        ]

    async def signal_string(self, item_ref: bytes) -> str:
        """The video's frame list as ThreatExchange's ``vpdq`` signal string."""
        rows = await self.frames(item_ref)
        if not rows:
            raise BankValidationError("no video item with this reference")
        return video.format_signal_string([r.frame for r in rows])
