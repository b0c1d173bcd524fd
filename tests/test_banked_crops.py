"""Banked crops (specs/signals-and-lsh.md 3.5): a picture banked from its media is also banked
as its corner crops, indexed as variants of the same item, so a copy cut from one corner is
found with the copy's own query hashes. Checked here: the crops' geometry and hashes, strict
validation (nothing stored on any error, both backends), crops that live and die with their
item, and across real nodes: a corner-cropped copy matches the picture's item through a crop,
the case says so, and the crops leave the index with the item."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import pdqhash
import pytest
from federation_uploads import upload_media
from PIL import Image

from blindmatch.node.banks.service import BankService
from blindmatch.node.banks.validation import BankedCrop, BankValidationError
from blindmatch.node.cli.bank import _image_hashes
from blindmatch.node.clock import FixedClock
from blindmatch.node.console.text import match_text
from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec
from blindmatch.node.media import crops as crop_media
from blindmatch.node.media import hashing
from blindmatch.node.storage import Database
from blindmatch.protocol.matching import QueryHash

skimage_data = pytest.importorskip("skimage.data")


def _jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.ascontiguousarray(skimage_data.astronaut())


def _distance(a: bytes, b: bytes) -> int:
    return sum(bin(x ^ y).count("1") for x, y in zip(a, b, strict=True))


def test_crop_boxes_keep_their_corner() -> None:
    assert crop_media.crop_box(200, 100, "tl", 0.10) == (0, 0, 180, 90)
    assert crop_media.crop_box(200, 100, "tr", 0.10) == (20, 0, 200, 90)
    assert crop_media.crop_box(200, 100, "bl", 0.10) == (0, 10, 180, 100)
    assert crop_media.crop_box(200, 100, "br", 0.10) == (20, 10, 200, 100)
    assert crop_media.crop_box(201, 101, "c", 0.05) == (5, 2, 196, 98)  # derivatives.md 2.1


def test_banked_crops_are_the_reference_hashes_of_the_corner_crops(photo: np.ndarray) -> None:
    crops = crop_media.picture_crops(Image.fromarray(photo))
    names = [c.name for c in crops]
    expected = [
        f"crop/{c}/{round(f * 100)}"
        for f in crop_media.BANKED_CROP_FRACTIONS
        for c in crop_media.BANKED_CROP_CORNERS
    ] + [f"crop/c/{round(f * 100)}" for f in crop_media.BANKED_CENTRED_FRACTIONS]
    assert names == expected  # a textured photo: every crop passes the quality gate
    h, w = photo.shape[:2]
    for crop in crops[:3]:
        _, corner, percent = crop.name.split("/")
        left, top, right, bottom = crop_media.crop_box(w, h, corner, int(percent) / 100)
        bits, quality = pdqhash.compute(np.ascontiguousarray(photo[top:bottom, left:right]))
        assert crop.pdq.hash32 == np.packbits(bits).tobytes() and crop.pdq.quality == quality
    assert crop_media.picture_crops(_jpeg(photo, 95))[0].name == "crop/tl/1"  # from a file too


def test_a_corner_crop_meets_a_banked_crop_and_its_mirror_the_mirrored_query(
    photo: np.ndarray,
) -> None:
    banked = hashing.hash_image(Image.fromarray(photo))
    banked_crops = crop_media.picture_crops(Image.fromarray(photo))
    h, w = photo.shape[:2]
    cut = photo[: h - round(h * 0.06), round(w * 0.06) :]  # 6% off the left and bottom
    for copy in (cut, cut[:, ::-1]):
        query = hashing.hash_image_bytes(_jpeg(np.ascontiguousarray(copy)), query_variants=True)
        assert min(_distance(v.pdq.hash32, banked.pdq.hash32) for v in query.variants) > 31
        best = min(
            (_distance(v.pdq.hash32, c.pdq.hash32), c.name)
            for v in query.variants
            for c in banked_crops
        )
        assert best[0] <= 31 and best[1] == "crop/tr/6"


# --- the holder's bank ---------------------------------------------------------------------------


@pytest.fixture
async def banks(db: Database, clock: FixedClock) -> BankService:
    service = BankService(db, clock)
    await service.create_bank("ncii", provenance="survivor-submitted", shared=True)
    return service


def crop(name: str = "crop/tl/3", quality: int = 80, h: bytes | None = None) -> BankedCrop:
    return BankedCrop(name, h if h is not None else os.urandom(32), quality)


async def rows(db: Database) -> dict[str, list[dict[str, Any]]]:
    return {t: await db.fetch_all(f"SELECT * FROM {t}") for t in ("bank_items", "item_crops")}


async def test_crops_are_stored_once_and_go_with_their_item(
    banks: BankService, db: Database
) -> None:
    whole = os.urandom(32)
    crops = [crop("crop/tl/3"), crop("crop/br/14")]
    first = await banks.add_item("ncii", "pdq", whole, quality=90, crops=crops)
    again = await banks.add_item("ncii", "pdq", whole, quality=90, crops=[crop("crop/c/6")])
    assert first.created and not again.created
    assert await banks.item_crops(first.item.item_ref) == crops  # the repeat added nothing
    refs = {bytes(r["item_ref"]) for r in await db.fetch_all("SELECT item_ref FROM item_crops")}
    assert len(refs) == 2 and first.item.item_ref not in refs
    await banks.remove_by_ref(first.item.item_ref)
    assert await rows(db) == {"bank_items": [], "item_crops": []}
    # A picture first imported as a bare hash gains its crops when banked from its media.
    bare = await banks.add_item("ncii", "pdq", whole, quality=90)
    later = await banks.add_item("ncii", "pdq", whole, quality=90, crops=crops)
    assert not later.created and await banks.item_crops(bare.item.item_ref) == crops


async def test_media_banks_the_picture_with_its_crops(
    banks: BankService, photo: np.ndarray
) -> None:
    [pdq, sha] = await banks.add_media("ncii", _jpeg(photo), _image_hashes)
    assert pdq.item.signal_type == "pdq" and sha.item.signal_type == "sha256"
    stored = await banks.item_crops(pdq.item.item_ref)
    assert [c.crop for c in stored] == [c.name for c in crop_media.picture_crops(_jpeg(photo))]
    assert await banks.item_crops(sha.item.item_ref) == []


BAD_CROPS: list[tuple[list[Any], str, str]] = [
    ([crop("crop/tx/3")], "pdq", "not a crop name"),
    ([crop("crop/tl/0")], "pdq", "not a crop name"),
    ([crop("uncrop/5")], "pdq", "not a crop name"),
    ([crop(quality=49)], "pdq", "below the quality gate"),
    ([crop(h=b"\x00" * 31)], "pdq", "must be 32 bytes"),
    ([crop(), crop()], "pdq", "repeats crop/tl/3"),
    ([crop(f"crop/tl/{i}") for i in range(1, 66)], "pdq", "at most 64 crops"),
    ([("crop/tl/3", b"\x00" * 32, 80)], "pdq", "must be a BankedCrop"),
    ([crop()], "sha256", "only a pdq item"),
]


async def test_bad_crops_are_refused_and_store_nothing(banks: BankService, db: Database) -> None:
    before = await rows(db)
    for crops, signal, message in BAD_CROPS:
        with pytest.raises(BankValidationError, match=message):
            await banks.add_item("ncii", signal, os.urandom(32), quality=90, crops=crops)
        assert await rows(db) == before


def test_the_case_says_which_crop_matched() -> None:
    text = match_text("flip_h", {"banked_crop": "crop/tr/6"})
    assert "off-centre crop of the banked picture" in text and "top right" in text
    assert match_text("identity", {"banked_crop": "nonsense"}) == match_text("identity")


# --- across real nodes ---------------------------------------------------------------------------


@pytest.fixture
async def fed(tmp_path: Path, photo: np.ndarray):
    federation = await LocalFederation(
        tmp_path, clock=FixedClock(1_800_000_000), background=False
    ).start([NodeSpec("holder"), NodeSpec("platform", holds_index=False)])
    holder = federation["holder"]
    await holder.banks.create_bank("ncii", provenance="survivor-submitted", shared=True)
    [item, _sha] = await holder.banks.add_media("ncii", _jpeg(photo, 92), _image_hashes)
    federation.item_ref = item.item.item_ref  # type: ignore[attr-defined]
    await holder.node.publisher.reconcile()
    await federation["platform"].node.sync.sync_all()
    yield federation
    await federation.stop()


async def _cases(fed, data: bytes, content_ref: str) -> list[dict]:  # type: ignore[no-untyped-def]
    _, cases = await upload_media(fed, data, content_ref)
    return cases


async def test_a_corner_cropped_copy_matches_the_item_through_a_banked_crop(
    fed, photo: np.ndarray
) -> None:
    holder = fed["holder"]
    crops = await holder.banks.item_crops(fed.item_ref)
    published = await holder.node.db.fetch_value("SELECT COUNT(*) FROM index_publications")
    assert published == 1 + len(crops)  # the picture's hash and its crops

    h, w = photo.shape[:2]
    cut = np.ascontiguousarray(photo[round(h * 0.05) :, : w - round(w * 0.05)][:, ::-1])
    upload = _jpeg(cut, 85)  # mirrored, 5% off a corner
    # The holder's own matching against its banks meets the crops too: one match, the item's.
    variants = hashing.hash_image_bytes(upload, query_variants=True).variants
    queries = [QueryHash(v.pdq.hash32, None, v.name) for v in variants]
    [(_bank, ref, _band, _variant, release, _allow)] = await holder.node.decisions.local_matches(
        queries
    )
    assert ref == fed.item_ref and release["banked_crop"].startswith("crop/")
    [case] = await _cases(fed, upload, "upload-corner-crop")
    assert case["item"] == fed.item_ref.hex()  # the picture's item: one case, its reference
    assert case["release"]["banked_crop"].startswith("crop/")

    head = (await holder.node.feeds.read("index", 0, 1000))[-1].seq
    await holder.banks.withdraw(fed.item_ref, reason="withdrawn")
    result = await holder.node.publisher.reconcile()
    # nothing is published (spec 8.7: a removal would hand out the picture's and its crops'
    # buckets); their entries stay, and neither the picture nor a crop is answered for
    assert result == {"added": 0, "removed": 0}
    assert await holder.node.feeds.read("index", head, 1000) == []
    refs = [r for r in await holder.node.publisher.store.refs(holder.node.keys.voprf_key_id)]
    assert len(refs) == 1 + len(crops)
    assert await holder.node.responder.holder_items(refs) == dict.fromkeys(refs)
