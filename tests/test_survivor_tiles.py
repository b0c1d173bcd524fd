"""The survivor page's third category, ``protected-source``: the derivative signal
``pdq-tiles-1`` computed in the browser, bit for bit as ``blindmatch.node.media.tiles``, and
its submission, validation, storage and withdrawal.

The browser tests run Debian's Chromium headless against a running hub (LocalFederation) and
fingerprint the committed PNGs in ``tests/data/survivor/`` (plus a few generated pictures);
the endpoint tests use a plain aiohttp client.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from media_samples import textured_image
from PIL import Image

from blindmatch.node.media import hashing
from blindmatch.node.media import tiles as tile_hashing
from blindmatch.node.survivor.routes import (
    MAX_BODY_BYTES,
    MAX_PROTECTED_BODY_BYTES,
    MAX_PROTECTED_ITEMS,
    MAX_TILES,
    PROTECTED_BANK,
    PROTECTED_CATEGORY,
    SurvivorError,
    parse_submission,
)
from blindmatch.protocol.derivative import PDQ_TILES_1

DATA = Path(__file__).parent / "data" / "survivor"
IMAGES = sorted(DATA.glob("*.png"))
H = [bytes([i]) * 32 for i in range(1, 6)]


def python_tiles(path: Path) -> list[dict[str, Any]]:
    """What the page must compute for a protected photo: index_tiles of the decoded picture."""
    picture = hashing.decode_image(path.read_bytes())
    return [
        {"cell": t.cell.label, "frame": t.tile.frame, "hash": t.pdq.hex, "quality": t.pdq.quality}
        for t in tile_hashing.index_tiles(picture)
    ]


def tile(cell: str = "g4c0r0", frame: int = 0, value: bytes = H[1], quality: int = 80) -> dict:
    return {"cell": cell, "frame": frame, "hash": value.hex(), "quality": quality}


def photo(value: bytes = H[0], tiles: list | None = None, quality: int = 90) -> dict:
    return {
        "signal_type": "pdq",
        "hash": value.hex(),
        "quality": quality,
        "tiles": [tile()] if tiles is None else tiles,
    }


def protected(*photos: dict) -> dict:
    return {"hashes": list(photos), "category": PROTECTED_CATEGORY, "consent": True}


def all_tiles(seed: int) -> list[dict]:
    return [
        tile(t.cell.label, t.frame, bytes([seed, n % 256]) * 16, 30 + n % 71)
        for n, t in enumerate(PDQ_TILES_1.index_tiles(1024, 768))
    ]


# --- validation and limits, without a browser ---------------------------------------------------


def test_caps_follow_the_scheme() -> None:
    assert MAX_TILES == 123 == 41 * 3
    # 20 photos with every tile, hashes and qualities at their longest, fit the body limit.
    body = json.dumps(protected(*(photo(bytes([n]) * 32, all_tiles(n)) for n in range(20))))
    assert MAX_BODY_BYTES < len(body) < MAX_PROTECTED_BODY_BYTES
    hashes, category = parse_submission(json.loads(body))
    assert category == PROTECTED_CATEGORY and len(hashes) == MAX_PROTECTED_ITEMS
    assert all(len(h.tiles) == MAX_TILES for h in hashes)
    first = hashes[0].tiles[0]
    assert (first.cell, first.frame, first.quality) == ("g4c0r0", 0, 30)
    assert first.hash == bytes([0, 0]) * 16


def test_an_empty_tile_list_is_a_source_without_tiles() -> None:
    (entry,), _ = parse_submission(protected(photo(tiles=[])))
    assert entry.tiles == () and entry.hash == H[0]


BAD_TILES = [
    # (name, body, error code, words in the message)
    (
        "tiles on a non-protected category",
        {**protected(photo()), "category": "ncii"},
        "tiles-not-allowed",
        "only accepted with category protected-source",
    ),
    (
        "tiles on ncii-synthetic, empty",
        {**protected(photo(tiles=[])), "category": "ncii-synthetic"},
        "tiles-not-allowed",
        "hashes[0].tiles",
    ),
    ("tiles null", protected({**photo(), "tiles": None}), "bad-tiles", "must be a list"),
    (
        "tiles missing",
        protected({k: v for k, v in photo().items() if k != "tiles"}),
        "tiles-required",
        "required",
    ),
    ("tiles not a list", protected(photo(tiles={"g4c0r0": 1})), "bad-tiles", "must be a list"),
    ("bad cell label", protected(photo(tiles=[tile("g4c0r0x")])), "bad-tile-cell", "cell"),
    ("cell of another grid", protected(photo(tiles=[tile("g3c0r0")])), "bad-tile-cell", "g5c4r4"),
    ("cell outside its grid", protected(photo(tiles=[tile("g4c4r0")])), "bad-tile-cell", "cell"),
    (
        "cell with a leading zero",
        protected(photo(tiles=[tile("g4c01r0")])),
        "bad-tile-cell",
        "cell",
    ),
    ("cell not a string", protected(photo(tiles=[tile(7)])), "bad-tile-cell", "cell"),  # type: ignore[arg-type]
    ("frame out of range", protected(photo(tiles=[tile(frame=3)])), "bad-tile-frame", "0..2"),
    ("negative frame", protected(photo(tiles=[tile(frame=-1)])), "bad-tile-frame", "0..2"),
    ("frame a boolean", protected(photo(tiles=[tile(frame=True)])), "bad-tile-frame", "0..2"),  # type: ignore[arg-type]
    ("frame a string", protected(photo(tiles=[tile(frame="0")])), "bad-tile-frame", "0..2"),  # type: ignore[arg-type]
    (
        "duplicate cell and frame",
        protected(photo(tiles=[tile(), tile(value=H[2])])),
        "duplicate-tile",
        "repeats cell g4c0r0 of frame 0",
    ),
    (
        "low-quality tile",
        protected(photo(tiles=[tile(quality=29)])),
        "low-quality-tile",
        "quality 29 < 30",
    ),
    (
        "tile quality > 100",
        protected(photo(tiles=[tile(quality=101)])),
        "bad-tile-quality",
        "0..100",
    ),
    (
        "tile quality a float",
        protected(photo(tiles=[tile(quality=80.0)])),
        "bad-tile-quality",
        "0..100",
    ),  # type: ignore[arg-type]
    (
        "extra field",
        protected(photo(tiles=[{**tile(), "box": [0, 0, 8, 8]}])),
        "bad-tile",
        "exactly the fields cell, frame, hash, quality",
    ),
    (
        "missing field",
        protected(photo(tiles=[{k: v for k, v in tile().items() if k != "quality"}])),
        "bad-tile",
        "exactly the fields",
    ),
    ("tile not an object", protected(photo(tiles=["g4c0r0"])), "bad-tile", "must be an object"),
    (
        "too many tiles",
        protected(photo(tiles=[*all_tiles(1), tile("g4c0r0", 0)])),
        "too-many-tiles",
        "at most 123",
    ),
    ("bad hex", protected(photo(tiles=[tile() | {"hash": "zz" * 32}])), "bad-tile-hash", "64 hex"),
    (
        "short hash",
        protected(photo(tiles=[tile() | {"hash": "ab" * 31}])),
        "bad-tile-hash",
        "64 hex",
    ),
    (
        "too many protected photos",
        protected(*(photo(bytes([n]) * 32) for n in range(1, MAX_PROTECTED_ITEMS + 2))),
        "too-many",
        f"at most {MAX_PROTECTED_ITEMS} photos",
    ),
    (
        "a bad tile after a good photo",
        protected(photo(H[0]), photo(H[1], tiles=[tile(frame=9)])),
        "bad-tile-frame",
        "hashes[1].tiles[0].frame",
    ),
]


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [case[1:] for case in BAD_TILES],
    ids=[case[0] for case in BAD_TILES],
)
async def test_bad_tiles_are_refused_clearly_and_store_nothing(client, hub, body, code, words):
    response = await client.post("/survivor/v1/submit", json=body)
    assert response.status == 400
    answer = await response.json()
    assert answer["error"] == code, answer
    assert words in answer["message"], answer
    assert await hub["hub"].banks.list_banks() == []


async def test_body_limits(client, hub) -> None:
    # An ordinary submission keeps the small limit; a protected one may be larger, up to a cap.
    padded = json.dumps(
        {"hashes": [photo(tiles=[])] * 1, "category": "ncii", "consent": True, "x": "y"}
    )
    big_ordinary = padded[:-1] + " " * MAX_BODY_BYTES + "}"
    r = await client.post(
        "/survivor/v1/submit", data=big_ordinary, headers={"Content-Type": "application/json"}
    )
    assert r.status == 413 and str(MAX_BODY_BYTES) in (await r.json())["message"]
    huge = json.dumps(protected(photo())) + " " * MAX_PROTECTED_BODY_BYTES
    r = await client.post(
        "/survivor/v1/submit", data=huge, headers={"Content-Type": "application/json"}
    )
    assert r.status == 413 and str(MAX_PROTECTED_BODY_BYTES) in (await r.json())["message"]
    # The withdrawal endpoint keeps the small limit.
    r = await client.post(
        "/survivor/v1/withdraw",
        data=json.dumps({"items": ["ab" * 16], "secret": "ab" * 32}) + " " * MAX_BODY_BYTES,
        headers={"Content-Type": "application/json"},
    )
    assert r.status == 413
    assert await hub["hub"].banks.list_banks() == []


def test_parse_errors_name_the_place() -> None:
    with pytest.raises(SurvivorError) as err:
        parse_submission(
            protected(photo(), photo(H[1], tiles=[tile(), tile("g5c4r4", 2, H[3], 2)]))
        )
    assert err.value.code == "low-quality-tile"
    assert err.value.message.startswith("hashes[1].tiles[1]")


# --- storage (the bank API for protected sources) ------------------------------------------------


async def _stored_tiles(banks: Any, ref: str) -> list[dict[str, Any]]:
    """The tiles the bank holds for a protected source, as the page sends them."""
    return [
        {"cell": t.cell, "frame": t.frame, "hash": t.hash.hex(), "quality": t.quality}
        for t in await banks.source_tiles(ref)
    ]


async def _source(banks: Any, ref: str) -> Any:
    item = await banks.get_item(ref)
    assert item.bank == PROTECTED_BANK, item
    return item


async def test_protected_submit_stores_sources_with_tiles_and_withdraws_them(client, hub):
    banks = hub["hub"].banks
    tiles0 = all_tiles(7)
    body = protected(photo(H[0], tiles0), photo(H[1], tiles=[]), photo(H[0], tiles=[tile()]))
    r = await client.post("/survivor/v1/submit", json=body)
    assert r.status == 201, await r.text()
    answer = await r.json()
    assert len(answer["receipt"]) == 2  # the repeated photo is merged (first one's tiles kept)
    bank = await banks.get_bank(PROTECTED_BANK)
    assert bank.provenance == "protected-source" and bank.shared
    refs = [e["item"] for e in answer["receipt"]]
    first = await _source(banks, refs[0])
    assert first.hash == H[0] and first.categories == (PROTECTED_CATEGORY,)
    assert first.has_withdrawal_secret and first.source == "survivor-page"
    assert await _stored_tiles(banks, refs[0]) == tiles0
    await _source(banks, refs[1])
    assert await _stored_tiles(banks, refs[1]) == []
    # Nothing went to the ordinary bank.
    assert [b.name for b in await banks.list_banks()] == [PROTECTED_BANK]

    # The same photo again (even as another category's tiles-free submission elsewhere) gets a
    # receipt entry shaped like any other that names nothing.
    r = await client.post("/survivor/v1/submit", json=protected(photo(H[0], tiles=[])))
    again = await r.json()
    assert r.status == 201 and re.fullmatch(r"[0-9a-f]{32}", again["receipt"][0]["item"])
    assert again["receipt"][0]["item"] not in refs

    r = await client.post("/survivor/v1/withdraw", json={"items": refs, "secret": "11" * 32})
    assert (await r.json())["withdrawn"] == 0
    r = await client.post("/survivor/v1/withdraw", json={"items": refs, "secret": answer["secret"]})
    assert (await r.json())["withdrawn"] == 2
    for ref in refs:
        assert (await banks.get_item(ref)).withdrawn_at is not None
    # A withdrawn source sent again stays withdrawn; the receipt still names nothing.
    r = await client.post("/survivor/v1/submit", json=protected(photo(H[1], tiles=[])))
    assert r.status == 201
    assert (await r.json())["receipt"][0]["item"] not in refs


# --- the page in Chromium -------------------------------------------------------------------------

from survivor_harness import (  # noqa: E402
    browser_missing,
    http_requests,
    page_results,
    pick_files,
    wait_for,
)

browser = pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))

TILES_READY = (
    "return document.body.getAttribute('data-extras') === 'idle'"
    " && Array.from(document.querySelectorAll('#results li[data-state=\"ok\"]'))"
    ".every(li => li.hasAttribute('data-tiles'))"
)


def choose_protected(driver) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(
        By.CSS_SELECTOR, f'input[name="category"][value="{PROTECTED_CATEGORY}"]'
    ).click()


def page_tiles(driver) -> dict[str, dict[str, Any]]:
    return {
        r["file"]: r
        for r in driver.execute_script(
            """return Array.from(document.querySelectorAll('#results li')).map(li => ({
                file: li.getAttribute('data-file'), state: li.getAttribute('data-state'),
                hash: li.getAttribute('data-hash'),
                tiles: li.hasAttribute('data-tiles')
                  ? JSON.parse(li.getAttribute('data-tiles')) : null,
                ms: Number(li.getAttribute('data-extras-ms'))}));"""
        )
    }


@pytest.mark.browser
@browser
def test_tile_boxes_equal_the_scheme(page) -> None:
    # Sizes whose 5% and 10% crops round half to even (30 * .05 = 1.5, 50 * .05 = 2.5, 45 * .1 =
    # 4.5), odd sizes, the smallest hashable and the largest after the downscale.
    sizes = [(30, 50), (50, 45), (45, 30), (8, 8), (9, 1024), (1024, 71), (1023, 767), (250, 333)]
    sizes += [(w, h) for w in (10, 15, 25, 35, 70, 90, 110) for h in (21, 150)]
    js = page.execute_script(
        "return arguments[0].map(s => BlindmatchTiles.indexTiles(s[0], s[1]));", sizes
    )
    for (w, h), got in zip(sizes, js, strict=True):
        expected = [
            {"cell": t.cell.label, "frame": t.frame, "box": list(t.box)}
            for t in PDQ_TILES_1.index_tiles(w, h)
        ]
        assert got == expected, (w, h)
    scheme = page.execute_script("return BlindmatchTiles.SCHEME")
    assert scheme == {
        "name": PDQ_TILES_1.name,
        "grids": list(PDQ_TILES_1.query_grids),
        "frames": list(PDQ_TILES_1.index_frames),
        "minQuality": PDQ_TILES_1.min_quality,
        "minSide": 8,
    }


def busy_picture(seed: int, width: int, height: int) -> Image.Image:
    """Random colours smoothly enlarged: detail everywhere, so every tile passes the gate."""
    rng = np.random.default_rng(seed)
    small = (rng.random((max(2, height // 16), max(2, width // 16), 3)) * 255).astype(np.uint8)
    return Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)


def _extra_pictures(tmp_path: Path) -> list[Path]:
    """A photo-sized busy picture (every tile passes the gate), a JPEG turned by EXIF
    orientation 6 (the page turns the pixels back before cutting tiles), and a picture above
    1024 px (tiles are cut after the downscale)."""
    big = tmp_path / "busy-1024x768.png"
    busy_picture(11, 1024, 768).save(big)
    exif = Image.Exif()
    exif[0x0112] = 6
    turned = tmp_path / "turned-6.jpg"
    busy_picture(12, 450, 600).save(turned, "JPEG", quality=92, exif=exif)
    huge = tmp_path / "busy-2000x1400.png"
    busy_picture(13, 2000, 1400).save(huge, compress_level=1)
    plain = tmp_path / "sinusoids.png"  # smooth: most tiles fall under the gate
    Image.fromarray(textured_image(14, 600, 800)).save(plain)
    return [big, turned, huge, plain]


@pytest.mark.browser
@browser
def test_page_tiles_equal_tile_hashing_bit_for_bit(page, tmp_path) -> None:
    files = IMAGES + _extra_pictures(tmp_path)
    pick_files(page, "files", files)
    choose_protected(page)
    wait_for(page, TILES_READY, 300)
    # Choosing the category and cutting tiles made no request at all.
    assert http_requests(page) == []
    shown = page_tiles(page)
    total = 0
    for path in files:
        expected = python_tiles(path)
        got = shown[path.name]
        if got["state"] != "ok":  # too plain for a whole-picture fingerprint: never tiled
            assert hashing.hash_image_bytes(path.read_bytes()).pdq.quality < 50, path.name
            continue
        assert got["tiles"] == expected, path.name
        total += len(expected)
    assert total > 300
    # A photo-sized picture's 123 tiles take a few seconds at most in headless Chromium.
    timing = shown["busy-1024x768.png"]
    assert len(timing["tiles"]) == MAX_TILES
    assert 0 < timing["ms"] < 8000, timing["ms"]
    status = page.execute_script("return document.getElementById('send-status').textContent")
    assert "ready to send for protection" in status


@pytest.mark.browser
@browser
def test_protected_photo_end_to_end(page, running) -> None:
    from selenium.webdriver.common.by import By

    photos = [DATA / "grey.png", DATA / "palette.png"]
    pick_files(page, "files", photos)
    choose_protected(page)
    page.find_element(By.ID, "consent").click()
    # Sending right away waits for the region fingerprints, then sends once.
    page.find_element(By.ID, "send").click()
    wait_for(page, "return !document.getElementById('receipt-section').hidden", 120)
    sent = http_requests(page)
    assert [(r["method"], r["url"]) for r in sent] == [("POST", running.url + "v1/submit")]
    body = json.loads(sent[0]["post_data"])
    expected_hashes = []
    for p in photos:
        pdq = hashing.hash_image_bytes(p.read_bytes()).pdq
        expected_hashes.append(
            {
                "signal_type": "pdq",
                "hash": pdq.hex,
                "quality": pdq.quality,
                "tiles": python_tiles(p),
            }
        )
    assert body == {"hashes": expected_hashes, "category": PROTECTED_CATEGORY, "consent": True}
    # Only fingerprints: the request is a few kilobytes of JSON, nothing like the pictures.
    assert len(sent[0]["post_data"]) < 40_000
    receipt = json.loads(page.find_element(By.ID, "receipt").get_attribute("value"))
    assert len(receipt["items"]) == 2

    banks = running.fed["hub"].banks
    for ref, expected in zip(receipt["items"], expected_hashes, strict=True):
        item = running.loop.run(banks.get_item(ref))
        assert item.bank == PROTECTED_BANK and item.hash.hex() == expected["hash"]
        assert running.loop.run(_stored_tiles(banks, ref)) == expected["tiles"]

    page.find_element(By.ID, "withdraw-text").send_keys(json.dumps(receipt))
    page.find_element(By.ID, "withdraw").click()
    wait_for(page, "return document.body.getAttribute('data-withdrawn') !== null")
    assert "2 fingerprints were taken back" in page.find_element(By.ID, "withdraw-status").text
    for ref in receipt["items"]:
        assert running.loop.run(banks.get_item(ref)).withdrawn_at is not None


@pytest.mark.browser
@browser
def test_new_choice_works_from_the_keyboard_and_is_announced(page) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    pick_files(page, "files", [DATA / "grey.png"])
    problems = page.execute_script(
        """const out = [];
        const radio = document.querySelector('input[name="category"][value="protected-source"]');
        if (!radio) return ['no radio'];
        const label = radio.labels && radio.labels[0];
        if (!label || !/ordinary photo of me/i.test(label.textContent)) out.push('label');
        const fieldset = radio.closest('fieldset');
        if (!fieldset || !fieldset.querySelector('legend')) out.push('fieldset/legend');
        const help = document.getElementById(radio.getAttribute('aria-describedby') || '-');
        if (!help || !/parts of the photo/.test(help.textContent)) out.push('description');
        const live = document.getElementById('send-status');
        if (live.getAttribute('aria-live') !== 'polite' || live.getAttribute('role') !== 'status')
          out.push('live region');
        return out;"""
    )
    assert problems == []
    page.execute_script("document.getElementById('category-0').focus()")

    def press(*keys: str) -> str:
        ActionChains(page).send_keys(*keys).perform()
        return page.execute_script(
            "const e = document.activeElement; return e.id || e.name || e.tagName"
        )

    # Arrow keys move within the radio group, as for any radio group.
    assert press(Keys.ARROW_DOWN) == "category-1"
    assert press(Keys.ARROW_DOWN) == "category-2"
    assert page.execute_script("return document.getElementById('category-2').checked")
    wait_for(page, TILES_READY, 60)
    live = page.execute_script("return document.getElementById('send-status').textContent")
    assert "ready to send for protection" in live
    text = page.execute_script("return document.querySelector('#results li').textContent")
    assert re.search(r"Fingerprints of \d+ parts of the photo ready", text)
    assert press(Keys.TAB) == "consent"
    press(Keys.SPACE)
    assert press(Keys.TAB) == "send"
    press(Keys.ENTER)
    wait_for(page, "return document.activeElement.id === 'receipt-title'", 60)


@pytest.mark.browser
@browser
def test_too_many_photos_to_protect_are_refused_by_the_page(page, tmp_path) -> None:
    from selenium.webdriver.common.by import By

    files = []
    for n in range(MAX_PROTECTED_ITEMS + 1):
        path = tmp_path / f"p{n:02d}.png"
        Image.fromarray(textured_image(100 + n, 24, 32)).save(path)
        files.append(path)
    pick_files(page, "files", files)
    choose_protected(page)
    page.find_element(By.ID, "consent").click()
    page.find_element(By.ID, "send").click()
    status = page.find_element(By.ID, "send-status").text
    assert f"At most {MAX_PROTECTED_ITEMS} ordinary photos" in status
    assert http_requests(page) == []
    assert len([r for r in page_results(page) if r["state"] == "ok"]) == MAX_PROTECTED_ITEMS + 1
