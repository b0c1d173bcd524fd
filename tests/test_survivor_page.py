"""The survivor's page: its endpoints over HTTP, and the page itself in a real headless Chromium.

The browser tests load the page from a running hub (LocalFederation: a hub and a platform),
fingerprint the committed PNGs in ``tests/data/survivor/`` and check that the page's PDQ equals
``pdqhash``'s through ``blindmatch.node.media.hashing`` bit for bit, that nothing is requested while
photos are hashed, that submit and withdraw work end to end (the platform's next sync stops the
match), and that bad files get a clear message and send nothing.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import struct
import zlib
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from blindmatch.node.api.client import BlindmatchClient
from blindmatch.node.media import hashing
from blindmatch.node.survivor import CATEGORIES, RateLimiter, build_survivor_app
from blindmatch.node.survivor.routes import CSP, STATIC_FILES, _static

DATA = Path(__file__).parent / "data" / "survivor"
IMAGES = sorted(DATA.glob("*.png"))
H = [bytes([i]) * 32 for i in range(1, 6)]


def entry(value: bytes, quality: int = 90) -> dict:
    return {"signal_type": "pdq", "hash": value.hex(), "quality": quality}


# --- the endpoints, without a browser -------------------------------------------------------------


def test_committed_images_come_from_the_generator() -> None:
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, str(DATA / "make_images.py"), "--check"], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert sum(p.stat().st_size for p in IMAGES) < 300_000
    assert any(max(hashing.decode_image(p.read_bytes()).size) > 1024 for p in IMAGES)


def test_static_files_are_self_contained() -> None:
    for name in STATIC_FILES:
        text = _static(name).decode()
        # No third-party anything: no absolute URLs, no imports from elsewhere, no fonts.
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text), name
        assert "@import" not in text and "@font-face" not in text, name
    index = _static("index.html").decode()
    assert "Your photos stay on this device. Only a fingerprint is sent." in index
    assert 'http-equiv="Content-Security-Policy"' in index
    assert "default-src 'self'; img-src 'self' blob: data:; connect-src 'self'" in index
    page = _static("page.js").decode()
    for name in CATEGORIES:  # the page offers exactly the categories the hub accepts
        assert f'"{name}"' in page


async def test_page_is_served_with_a_strict_policy(client) -> None:
    response = await client.get("/survivor/")
    assert response.status == 200
    assert response.headers["Content-Security-Policy"] == CSP
    assert CSP.startswith("default-src 'self'; img-src 'self' blob: data:; connect-src 'self'")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "Set-Cookie" not in response.headers
    assert "Only a fingerprint is sent" in await response.text()
    for name, ctype in STATIC_FILES.items():
        r = await client.get("/survivor/" + name)
        assert r.status == 200 and r.content_type == ctype
    assert (await client.get("/survivor/../routes.py")).status == 404
    assert (await client.get("/survivor/routes.py")).status == 404
    r = await client.get("/survivor", allow_redirects=False)
    assert r.status == 302 and r.headers["Location"] == "/survivor/"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"hashes": [entry(H[0])], "category": "ncii", "consent": False}, "consent-required"),
        ({"hashes": [entry(H[0])], "category": "ncii"}, "consent-required"),
        ({"hashes": [entry(H[0])], "category": "other", "consent": True}, "bad-category"),
        ({"hashes": [], "category": "ncii", "consent": True}, "bad-hashes"),
        ({"hashes": "ab" * 32, "category": "ncii", "consent": True}, "bad-hashes"),
        ({"hashes": [entry(H[0])] * 101, "category": "ncii", "consent": True}, "too-many"),
        (
            {"hashes": [{**entry(H[0]), "hash": "zz" * 32}], "category": "ncii", "consent": True},
            "bad-hash",
        ),
        (
            {"hashes": [{**entry(H[0]), "hash": "ab" * 31}], "category": "ncii", "consent": True},
            "bad-hash",
        ),
        (
            {"hashes": [{**entry(H[0]), "signal_type": "md5"}], "category": "ncii", "consent": 1},
            "consent-required",
        ),
        (
            {
                "hashes": [{**entry(H[0]), "signal_type": "md5"}],
                "category": "ncii",
                "consent": True,
            },
            "bad-signal",
        ),
        ({"hashes": [entry(H[0], 101)], "category": "ncii", "consent": True}, "bad-quality"),
        ({"hashes": [entry(H[0], 10)], "category": "ncii", "consent": True}, "low-quality"),
        (
            {"hashes": [{**entry(H[0]), "image": "x"}], "category": "ncii", "consent": True},
            "bad-hashes",
        ),
        ({"hashes": [entry(H[0])], "category": "ncii", "consent": True, "x": 1}, "bad-request"),
        ([1, 2], "bad-request"),
    ],
)
async def test_bad_submissions_are_refused_and_change_nothing(client, hub, body, code) -> None:
    response = await client.post("/survivor/v1/submit", json=body)
    assert response.status == 400
    assert (await response.json())["error"] == code
    assert await hub["hub"].banks.list_banks() == []


async def test_transport_errors(client) -> None:
    r = await client.post("/survivor/v1/submit", data=b"{", headers={"Content-Type": "text/plain"})
    assert r.status == 415
    r = await client.post(
        "/survivor/v1/submit", data=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert r.status == 400 and (await r.json())["error"] == "bad-json"
    big = json.dumps({"hashes": [entry(H[0])] * 2000, "category": "ncii", "consent": True})
    r = await client.post(
        "/survivor/v1/submit", data=big, headers={"Content-Type": "application/json"}
    )
    assert r.status == 413


async def test_submit_then_withdraw(client, hub) -> None:
    node = hub["hub"]
    r = await client.post(
        "/survivor/v1/submit",
        json={
            "hashes": [entry(H[0]), entry(H[1]), entry(H[0])],
            "category": "ncii-synthetic",
            "consent": True,
        },
    )
    assert r.status == 201
    body = await r.json()
    assert set(body) == {"receipt", "secret"}
    assert len(body["receipt"]) == 2  # the duplicate within the request is merged
    assert re.fullmatch(r"[0-9a-f]{64}", body["secret"])
    bank = await node.banks.get_bank("survivor-submissions")
    assert bank.provenance == "survivor-submitted" and bank.shared
    items = await node.banks.list_items("survivor-submissions")
    assert {i.item_ref.hex() for i in items} == {e["item"] for e in body["receipt"]}
    assert all(i.has_withdrawal_secret and i.categories == ("ncii-synthetic",) for i in items)
    assert all(i.source == "survivor-page" for i in items)
    for _ in range(200):  # published just after the answer (the answer's timing says nothing)
        published = await node.node.db.fetch_value("SELECT COUNT(*) FROM index_publications")
        if published == 2:
            break
        await asyncio.sleep(0.05)
    assert published == 2
    refs = [e["item"] for e in body["receipt"]]

    # The wrong secret, and an unknown reference, are refused alike.
    r = await client.post(
        "/survivor/v1/withdraw", json={"items": [refs[0], "00" * 16], "secret": "11" * 32}
    )
    assert r.status == 200
    assert (await r.json())["results"] == [
        {"item": refs[0], "withdrawn": False},
        {"item": "00" * 16, "withdrawn": False},
    ]
    r = await client.post("/survivor/v1/withdraw", json={"items": refs, "secret": body["secret"]})
    assert (await r.json())["withdrawn"] == 2
    for ref in refs:
        assert (await node.banks.get_item(ref)).withdrawn_at is not None
    # answered for by nobody at once; nothing published about it (spec 8.7: an index.remove
    # of its entries would hand out its buckets, i.e. its hash): its entries stay, as decoys
    answered = await node.node.responder.holder_items([bytes.fromhex(r) for r in refs])
    assert set(answered.values()) == {None}
    await asyncio.sleep(0.2)  # the withdrawal's reconciliation, had it published anything
    assert await node.node.db.fetch_value("SELECT COUNT(*) FROM index_publications") == 2
    feed = await node.node.feeds.read("index", 0, 1000)
    assert {e.kind for e in feed} == {"index.add"}

    # Submitting a withdrawn hash again, or one the bank already holds, gives a receipt of the
    # same shape that names nothing: the response never says what the hub holds.
    await client.post(
        "/survivor/v1/submit", json={"hashes": [entry(H[2])], "category": "ncii", "consent": True}
    )
    r = await client.post(
        "/survivor/v1/submit",
        json={
            "hashes": [entry(H[0]), entry(H[2]), entry(H[3])],
            "category": "ncii",
            "consent": True,
        },
    )
    again = await r.json()
    assert r.status == 201 and len(again["receipt"]) == 3
    assert all(re.fullmatch(r"[0-9a-f]{32}", e["item"]) for e in again["receipt"])
    assert not {e["item"] for e in again["receipt"]} & set(refs)
    r = await client.post(
        "/survivor/v1/withdraw",
        json={"items": [e["item"] for e in again["receipt"]], "secret": again["secret"]},
    )
    assert [x["withdrawn"] for x in (await r.json())["results"]] == [False, False, True]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"items": [], "secret": "ab" * 32}, "bad-items"),
        ({"items": ["AB" * 16], "secret": "ab" * 32}, "bad-items"),
        ({"items": ["ab" * 16] * 101, "secret": "ab" * 32}, "too-many"),
        ({"items": ["ab" * 16], "secret": "ab"}, "bad-secret"),
        ({"items": ["ab" * 16], "secret": "xy" * 32}, "bad-secret"),
        ({"items": ["ab" * 16]}, "bad-secret"),
    ],
)
async def test_bad_withdrawals(client, body, code) -> None:
    r = await client.post("/survivor/v1/withdraw", json=body)
    assert r.status == 400 and (await r.json())["error"] == code


async def test_rate_limit_per_client(hub) -> None:
    limiter = RateLimiter(burst=2, per_seconds=60)
    app = build_survivor_app(hub["hub"].node, hub["hub"].banks, limiter=limiter)
    async with TestClient(TestServer(app)) as c:
        body = {"items": ["ab" * 16], "secret": "ab" * 32}
        assert (await c.post("/survivor/v1/withdraw", json=body)).status == 200
        assert (await c.post("/survivor/v1/withdraw", json=body)).status == 200
        r = await c.post("/survivor/v1/withdraw", json=body)
        assert r.status == 429 and int(r.headers["Retry-After"]) >= 1
        assert (await c.get("/survivor/")).status == 200  # the page itself is not limited


def test_token_bucket() -> None:
    now = [0.0]
    limiter = RateLimiter(burst=3, per_seconds=10, max_clients=2, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.take("a") == pytest.approx(10)
    now[0] = 10.0
    assert limiter.take("a") == 0
    assert limiter.take("b") == 0 and limiter.take("c") == 0
    assert len(limiter._buckets) == 2  # the least recent client is forgotten


async def test_mounts_on_an_existing_app(hub) -> None:
    from blindmatch.node.federation.http import build_app
    from blindmatch.node.survivor import build_survivor_routes

    app = build_app(hub["hub"].node)
    app.add_routes(build_survivor_routes(hub["hub"].node, hub["hub"].banks))
    async with TestClient(TestServer(app)) as c:
        assert (await c.get("/survivor/")).status == 200
        assert (await c.get("/healthz")).status == 200


# --- the page in Chromium -------------------------------------------------------------------------

from survivor_harness import (  # noqa: E402
    browser_missing,
    http_requests,
    network_requests,
    page_results,
    pick_files,
    wait_for,
)

browser = pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))


@pytest.mark.browser
@browser
def test_page_hashes_equal_pdqhash_bit_for_bit(page) -> None:
    pick_files(page, "files", IMAGES)
    during = http_requests(page)
    results = {r["file"]: r for r in page_results(page)}
    assert set(results) == {p.name for p in IMAGES}
    for path in IMAGES:
        reference = hashing.hash_image_bytes(path.read_bytes()).pdq
        shown = results[path.name]
        assert shown["state"] == "ok", shown
        assert shown["hash"] == reference.hex, path.name
        assert int(shown["quality"]) == reference.quality, path.name
    # No request at all while the photos were read and hashed.
    assert during == []


@pytest.mark.browser
@browser
def test_bad_files_get_a_clear_message_and_send_nothing(page, tmp_path) -> None:
    not_image = tmp_path / "holiday.jpg"
    not_image.write_text("these are my notes, not a picture\n" * 20)
    truncated = tmp_path / "cut.png"
    data = (DATA / "portrait.png").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    huge = tmp_path / "huge.png"
    huge.write_bytes(_flat_png(7000, 6000))  # 42 megapixels in ~50 KB
    heavy = tmp_path / "heavy.png"
    with heavy.open("wb") as f:
        f.write((DATA / "small.png").read_bytes())
        f.truncate(65 * 1024 * 1024)
    scrambled = tmp_path / "scrambled.png"  # complete, but the image data is garbled
    garbled = bytearray(data)
    for i in range(len(data) // 2, len(data) // 2 + 64):
        garbled[i] ^= 0x5A
    scrambled.write_bytes(bytes(garbled))
    cut_jpeg = tmp_path / "cut.jpg"
    buf = io.BytesIO()
    hashing.decode_image(data).save(buf, "JPEG", quality=90)
    cut_jpeg.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    tiny = tmp_path / "tiny.png"
    tiny.write_bytes(_flat_png(4, 4))
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    files = [not_image, truncated, scrambled, cut_jpeg, huge, heavy, tiny, empty]
    pick_files(page, "files", files)
    assert http_requests(page) == []
    results = {r["file"]: r for r in page_results(page)}
    expected = {
        "holiday.jpg": ("not_an_image", "not a photo this page can read"),
        "cut.png": ("corrupt", "damaged or incomplete"),
        "scrambled.png": ("corrupt", "damaged or incomplete"),
        "cut.jpg": ("corrupt", "damaged or incomplete"),
        "huge.png": ("too_many_pixels", "too big (7000 × 6000 pixels)"),
        "heavy.png": ("too_large", "too large (over 64 MB)"),
        "tiny.png": ("too_small", "too small (4 × 4 pixels)"),
        "empty.png": ("empty", "empty"),
    }
    for name, (code, words) in expected.items():
        assert results[name]["state"] == "error", results[name]
        assert results[name]["code"] == code, results[name]
        assert words in results[name]["text"], results[name]
    status = page.execute_script("return document.getElementById('status').textContent")
    assert "8 photos could not be used" in status
    assert page.execute_script("return document.getElementById('send').disabled") is True
    # The server agrees these are not hashable pictures.
    for path in (not_image, truncated, scrambled, cut_jpeg, huge, tiny):
        with pytest.raises(hashing.MediaError):
            hashing.hash_image_bytes(path.read_bytes())


def _flat_png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    compressor = zlib.compressobj(9)
    row = b"\x00" + b"\x80" * width
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.browser
@browser
def test_submit_and_withdraw_end_to_end(page, running) -> None:
    from selenium.webdriver.common.by import By

    fed = running.fed
    protected = [DATA / "portrait.png", DATA / "landscape.png"]
    pick_files(page, "files", protected)
    assert http_requests(page) == []
    page.find_element(By.CSS_SELECTOR, 'input[name="category"][value="ncii"]').click()
    # Sending without consent is refused by the page itself, with the reason, and sends nothing.
    page.find_element(By.ID, "send").click()
    assert "tick the box" in page.find_element(By.ID, "send-status").text
    assert page.execute_script("return document.activeElement.id") == "consent"
    assert http_requests(page) == []
    page.find_element(By.ID, "consent").click()
    page.find_element(By.ID, "send").click()
    wait_for(page, "return !document.getElementById('receipt-section').hidden")
    assert page.execute_script("return document.activeElement.id") == "receipt-title"
    receipt = json.loads(page.find_element(By.ID, "receipt").get_attribute("value"))
    sent = http_requests(page)
    # One request, to the hub's own endpoint, carrying only the hashes as JSON.
    assert [(r["method"], r["url"]) for r in sent] == [("POST", running.url + "v1/submit")]
    body = json.loads(sent[0]["post_data"])
    assert body == {
        "hashes": [
            {
                "signal_type": "pdq",
                "hash": hashing.hash_image_bytes(p.read_bytes()).pdq.hex,
                "quality": 100,
            }
            for p in protected
        ],
        "category": "ncii",
        "consent": True,
    }
    assert len(receipt["items"]) == 2

    hub, platform = fed["hub"], fed["platform"]
    items = running.loop.run(hub.banks.list_items("survivor-submissions"))
    assert {i.item_ref.hex() for i in items} >= set(receipt["items"])

    async def platform_matches(data: bytes) -> set[str]:
        await platform.node.sync.sync_all()
        async with BlindmatchClient(platform.api_url, platform.api_token) as bm:
            job = await bm.match_media(data, wait=30)
        assert job["complete"]
        return {m["item"] for m in job["matches"]}

    running.loop.run(hub.node.publisher.reconcile())  # published after the answer: done by now
    before = running.loop.run(platform_matches(protected[0].read_bytes()))
    assert before & set(receipt["items"])

    # Withdraw through the page.
    page.find_element(By.ID, "withdraw-text").send_keys(json.dumps(receipt))
    page.find_element(By.ID, "withdraw").click()
    wait_for(page, "return document.body.getAttribute('data-withdrawn') !== null")
    assert "2 fingerprints were taken back" in page.find_element(By.ID, "withdraw-status").text
    for ref in receipt["items"]:
        assert running.loop.run(hub.banks.get_item(ref)).withdrawn_at is not None
    after = running.loop.run(platform_matches(protected[0].read_bytes()))
    assert not after & set(receipt["items"])


@pytest.mark.browser
@browser
def test_page_is_labelled_for_keyboard_and_screen_readers(page) -> None:
    problems = page.execute_script(
        """const out = [];
        for (const el of document.querySelectorAll('input, textarea, button')) {
          const labelled = el.labels && el.labels.length || el.getAttribute('aria-label')
            || (el.tagName === 'BUTTON' && el.textContent.trim());
          if (!labelled) out.push(el.id || el.outerHTML);
          if (el.tabIndex < 0) out.push('not focusable: ' + el.id);
        }
        for (const id of ['status', 'send-status', 'withdraw-status'])
          if (document.getElementById(id).getAttribute('aria-live') !== 'polite') out.push(id);
        if (document.documentElement.lang !== 'en') out.push('lang');
        return out;"""
    )
    assert problems == []


@pytest.mark.browser
@browser
def test_saved_page_works_offline(driver, tmp_path) -> None:
    saved = tmp_path / "saved"
    saved.mkdir()
    for name in STATIC_FILES:
        (saved / name).write_bytes(_static(name))
    driver.get((saved / "index.html").as_uri())
    wait_for(driver, "return document.body.getAttribute('data-ready') === '1'")
    assert driver.execute_script("return !document.getElementById('offline-note').hidden")
    network_requests(driver)
    pick_files(driver, "files", [DATA / "grey.png"])
    assert http_requests(driver) == []
    (result,) = page_results(driver)
    assert result["hash"] == hashing.hash_image_bytes((DATA / "grey.png").read_bytes()).pdq.hex


@pytest.mark.browser
@browser
def test_exif_orientation_is_undone_like_the_server_ignores_it(page, tmp_path) -> None:
    # Chromium turns JPEG and PNG pictures upright by their EXIF orientation; Pillow (the hub,
    # every platform) hashes the stored pixels. The page turns them back, exactly.
    from PIL import Image

    source = Image.open(DATA / "portrait.png").convert("RGB")
    files = []
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        for fmt, ext, options in (
            ("JPEG", "jpg", {"quality": 95}),
            ("PNG", "png", {}),
            ("WEBP", "webp", {"lossless": True}),
        ):
            path = tmp_path / f"turned-{orientation}.{ext}"
            source.save(path, fmt, exif=exif.tobytes(), **options)
            files.append(path)
    pick_files(page, "files", files)
    assert http_requests(page) == []
    results = {r["file"]: r for r in page_results(page)}
    for path in files:
        expected = hashing.hash_image_bytes(path.read_bytes()).pdq.hex
        assert results[path.name]["hash"] == expected, path.name


def _encode_png(
    samples, ctype: int, depth: int, *, interlace: bool = False, palette=None, trns=None
) -> bytes:
    """A PNG writer for the cases Pillow cannot write (16-bit colour, Adam7), cycling through
    all five row filters so the page's unfiltering is exercised."""
    import numpy as np

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    def pack_rows(block) -> list[bytes]:
        rows = []
        for row in block:
            if depth == 16:
                rows.append(row.astype(">u2").tobytes())
            elif depth == 8:
                rows.append(row.astype(np.uint8).tobytes())
            else:
                bits = np.unpackbits(row.astype(np.uint8).reshape(-1, 1), axis=1)[:, 8 - depth :]
                rows.append(np.packbits(bits.reshape(-1)).tobytes())
        return rows

    def paeth(a: int, b: int, c: int) -> int:
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        return a if pa <= pb and pa <= pc else (b if pb <= pc else c)

    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[ctype]
    bpp = max(1, channels * depth // 8)
    height, width = samples.shape[:2]
    adam7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2)]
    adam7.append((0, 1, 1, 2))
    passes = adam7 if interlace else [(0, 0, 1, 1)]
    raw = bytearray()
    n = 0
    for xs, ys, dx, dy in passes:
        block = samples[ys::dy, xs::dx].reshape(-1, (width - xs + dx - 1) // dx * channels)
        if block.size == 0:
            continue
        prev = None
        for row in pack_rows(block):
            f = n % 5
            n += 1
            out = bytearray()
            for i, x in enumerate(row):
                a = row[i - bpp] if i >= bpp else 0
                b = prev[i] if prev is not None else 0
                c = prev[i - bpp] if prev is not None and i >= bpp else 0
                pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][f]
                out.append((x - pred) & 255)
            raw += bytes([f]) + out
            prev = row
    ihdr = struct.pack(">IIBBBBB", width, height, depth, ctype, 0, 0, int(interlace))
    body = chunk(b"IHDR", ihdr)
    if palette is not None:
        body += chunk(b"PLTE", bytes(palette))
    if trns is not None:
        body += chunk(b"tRNS", trns)
    return (
        b"\x89PNG\r\n\x1a\n"
        + body
        + chunk(b"IDAT", zlib.compress(bytes(raw)))
        + chunk(b"IEND", b"")
    )


@pytest.mark.browser
@browser
@pytest.mark.filterwarnings("ignore:Palette images with Transparency")
def test_transparent_and_16_bit_pngs_match_pillow(page, tmp_path) -> None:
    # The canvas loses the colour under transparent pixels and rounds 16-bit samples its own
    # way; the page decodes these PNGs itself, as Pillow does.
    import numpy as np
    from PIL import Image

    rgb = np.asarray(Image.open(DATA / "landscape.png").convert("RGB"))
    h, w = rgb.shape[:2]
    rng = np.random.default_rng(7)
    alpha = rng.integers(0, 256, (h, w), dtype=np.uint8)
    alpha[:20] = 0  # fully transparent rows keep their colour in Pillow's conversion
    wide = rgb.astype(np.uint16) * 257 + rng.integers(0, 257, rgb.shape).astype(np.uint16)
    grey16 = (rgb[..., 0].astype(np.uint16) * 3).astype(np.uint16)  # > 255 clips in Pillow
    index = rng.integers(0, 16, (h, w), dtype=np.uint8)
    palette = rng.integers(0, 256, 48, dtype=np.uint8).tolist()
    cases = {
        "rgba.png": Image.fromarray(np.dstack([rgb, alpha]), "RGBA"),
        "la.png": Image.fromarray(np.dstack([rgb[..., 1], alpha]), "LA"),
        "rgba16.png": _encode_png(np.dstack([wide, wide[..., :1]]), 6, 16),
        "rgb16-interlaced.png": _encode_png(wide, 2, 16, interlace=True),
        "grey16.png": _encode_png(grey16[..., None], 0, 16),
        "la16-interlaced.png": _encode_png(
            np.dstack([wide[..., :1], wide[..., 1:2]]), 4, 16, interlace=True
        ),
        "palette4-trns.png": _encode_png(
            index[..., None], 3, 4, palette=palette, trns=bytes([0, 128, 255])
        ),
        "grey2-trns-interlaced.png": _encode_png(
            (index % 4)[..., None], 0, 2, interlace=True, trns=b"\x00\x01"
        ),
        "rgb-trns.png": _encode_png(rgb, 2, 8, trns=b"\x00\x10\x00\x20\x00\x30"),
        "rgba-interlaced.png": _encode_png(np.dstack([rgb, alpha]), 6, 8, interlace=True),
    }
    files = []
    for name, value in cases.items():
        path = tmp_path / name
        if isinstance(value, bytes):
            path.write_bytes(value)
        else:
            value.save(path, "PNG")
        files.append(path)
    pick_files(page, "files", files)
    assert http_requests(page) == []
    results = {r["file"]: r for r in page_results(page)}
    for path in files:
        expected = hashing.hash_image_bytes(path.read_bytes()).pdq
        shown = results[path.name]
        assert shown["hash"] == expected.hex, (path.name, shown)
        assert int(shown["quality"]) == expected.quality, path.name


@pytest.mark.browser
@browser
def test_whole_flow_works_from_the_keyboard(page) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    pick_files(page, "files", [DATA / "small.png"])
    page.execute_script("document.getElementById('files').focus()")

    def press(*keys: str) -> str:
        ActionChains(page).send_keys(*keys).perform()
        return page.execute_script(
            "const e = document.activeElement; return e.id || e.name || e.tagName"
        )

    assert press(Keys.TAB) == "SUMMARY"  # "Show the fingerprint code" (hidden by default)
    assert press(Keys.TAB) == "clear"
    assert press(Keys.TAB) == "category-0"
    press(Keys.SPACE)
    assert press(Keys.TAB) == "consent"
    press(Keys.SPACE)
    assert press(Keys.TAB) == "send"
    press(Keys.ENTER)
    # When the hub answers, focus moves to the receipt, so a screen reader reads it next.
    wait_for(page, "return document.activeElement.id === 'receipt-title'")
    receipt = json.loads(page.execute_script("return document.getElementById('receipt').value"))
    assert len(receipt["items"]) == 1 and len(receipt["secret"]) == 64
    live = page.execute_script("return document.getElementById('send-status').textContent")
    assert "Save your receipt" in live


def test_page_names_the_hub_its_contact_and_the_privacy_notice() -> None:
    from types import SimpleNamespace

    from blindmatch.node.survivor.routes import render_index

    page = render_index(
        SimpleNamespace(
            node_id="hub",
            hub_name="Support <Line>",
            hub_contact="help@x.example",
            privacy_url="https://x.example/privacy",
        )
    ).decode()
    assert "Support &lt;Line&gt;" in page and "<Line>" not in page  # escaped
    assert "help@x.example" in page and 'href="https://x.example/privacy"' in page
    assert 'id="privacy"' in page and "Privacy notice" in page
    assert "{{" not in page and "{%" not in page
    bare = render_index(SimpleNamespace(node_id="hub-1", hub_name=None, hub_contact=None,
                                        privacy_url=None)).decode()  # fmt: skip
    assert '<strong id="hub-name">hub-1</strong>' in bare and "Ask the" in bare
