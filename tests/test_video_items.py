"""Video bank items on both backends: one item per video with its frame list, indexed frames
with their own references, ThreatExchange vpdq strings in and out, and refusals."""

from __future__ import annotations

import json

import pytest

from blindmatch.node.banks.service import BankService
from blindmatch.node.banks.validation import BankValidationError
from blindmatch.node.clock import FixedClock
from blindmatch.node.signals.vpdq.items import VideoItems
from blindmatch.node.storage import Database
from blindmatch.protocol.signal_types.vpdq import video
from blindmatch.protocol.signal_types.vpdq.frames import VpdqFrame


def _frames(n: int, quality: int = 90) -> list[VpdqFrame]:
    return [VpdqFrame(k, bytes([k + 1]) * 32, quality, float(k)) for k in range(n)]


@pytest.fixture
def videos(db: Database, clock: FixedClock) -> VideoItems:
    return VideoItems(BankService(db, clock))


async def test_a_video_is_one_item_with_its_indexed_frames(videos: VideoItems) -> None:
    await videos._banks.create_bank("clips", provenance="survivor-submitted")
    frames = [
        *_frames(4),
        VpdqFrame(4, bytes([1]) * 32, 90, 4.0),
        VpdqFrame(5, b"\x09" * 32, 10, 5.0),
    ]
    added = await videos.add_video("clips", frames, categories=["ncii"])
    assert added.created and added.item.signal_type == "vpdq"
    assert await videos._db.fetch_value("SELECT COUNT(*) FROM bank_items") == 1
    rows = await videos.frames(added.item.item_ref)
    assert [r.frame for r in rows] == frames
    # Indexed: distinct and quality >= 50, each with its own reference.
    indexed = [r for r in rows if r.item_ref is not None]
    assert [r.position for r in indexed] == [0, 1, 2, 3]
    assert len({r.item_ref for r in indexed}) == 4
    again = await videos.add_video("clips", frames)
    assert not again.created and again.item.item_ref == added.item.item_ref


async def test_threatexchange_signal_strings_in_and_out(videos: VideoItems) -> None:
    await videos._banks.create_bank("clips", provenance="moderator-confirmed")
    text = json.dumps([f"{'ab' * 32},100,0.0", f"{'cd' * 32},80,1.0", f"{'ef' * 32},70,2.5"])
    added = await videos.add_signal_string("clips", text)
    out = await videos.signal_string(added.item.item_ref)
    assert video.parse_signal_string(out) == video.parse_signal_string(text)


@pytest.mark.parametrize(
    "frames",
    [[], _frames(3, quality=20)],
)
async def test_a_video_that_could_never_match_is_refused(
    videos: VideoItems, db: Database, frames: list[VpdqFrame]
) -> None:
    await videos._banks.create_bank("clips", provenance="survivor-submitted")
    with pytest.raises(BankValidationError):
        await videos.add_video("clips", frames)
    assert await db.fetch_value("SELECT COUNT(*) FROM video_frames") == 0
    assert await db.fetch_value("SELECT COUNT(*) FROM bank_items") == 0
    with pytest.raises(BankValidationError):
        await videos.add_signal_string("clips", '["nonsense"]')
