"""The platform's local API over real HTTP, through the Python client."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from console_fixtures import jpeg, photo
from PIL import Image

from blindmatch.node.api.client import ApiClientError, BlindmatchClient
from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec
from blindmatch.node.media import hashing
from blindmatch.node.signals.vpdq import hasher


@pytest.fixture
async def fed(tmp_path: Path):
    federation = await LocalFederation(tmp_path, background=True, sync_interval_s=0.2).start(
        [NodeSpec("hub", ("hub",)), NodeSpec("platform", holds_index=False)]
    )
    yield federation
    await federation.stop()


async def test_media_match_through_the_api(fed) -> None:
    hub, platform = fed["hub"], fed["platform"]
    originals = [photo(s) for s in range(3)]
    async with BlindmatchClient(hub.api_url, hub.api_token) as bm:
        await bm.create_bank("ncii", "survivor-submitted", shared=True, categories=["ncii"])
        held = [hashing.hash_image_bytes(jpeg(o)).pdq.hex for o in originals]
        added = await bm.add_hashes("ncii", held)
        assert added["added"] == 3
        banks = await bm.banks()
        assert banks[0]["name"] == "ncii" and "items" in banks[0]
    await platform.node.sync.sync_all()
    mirrored = originals[1].transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    async with BlindmatchClient(platform.api_url, platform.api_token) as bm:
        job = await bm.match_media(jpeg(mirrored, 60), wait=30)
        assert job["complete"]
        assert {m["peer"] for m in job["matches"]} == {"hub"}
        assert any(m["variant"] == "flip_h" for m in job["matches"])
        assert all(m["provenance"] == "survivor-submitted" for m in job["matches"])
        unrelated = await bm.match_media(jpeg(photo(99)), wait=30)
        assert unrelated["complete"] and unrelated["matches"] == []
        again = await bm.job(job["job"])
        assert again["matches"] == job["matches"]
        # The response names the holder's item by reference only.
        assert all(len(m["item"]) == 32 for m in job["matches"])
        assert not any(h in str(job) for h in held)


async def test_auth_and_bad_input_are_refused(fed) -> None:
    platform = fed["platform"]
    async with BlindmatchClient(platform.api_url, "wrong-token") as bm:
        with pytest.raises(ApiClientError) as info:
            await bm.status()
        assert info.value.status == 401
    async with BlindmatchClient(platform.api_url, platform.api_token) as bm:
        bad = [
            (["zz" * 32], "bad-hash"),
            (["ab" * 31], "bad-hash"),
            ([{"hash": "ab" * 32, "float_vector": [1.0] * 3}], "bad-request"),
            ([{"hash": "ab" * 32, "signal_type": "vpdq"}], "unsupported"),
            ([{"hash": "ab" * 32, "extra": 1}], "bad-request"),
        ]
        for hashes, code in bad:
            with pytest.raises(ApiClientError) as info:
                await bm.match_hashes(hashes)
            assert (info.value.status, info.value.code) == (400, code)
        for media, code in ((b"", "empty"), (b"not an image", None), (jpeg(photo(1))[:200], None)):
            with pytest.raises(ApiClientError) as info:
                await bm.match_media(media)
            assert info.value.status == 400 and (code is None or code in info.value.code)
        with pytest.raises(ApiClientError) as info:
            await bm.job("00" * 16)
        assert info.value.status == 404
        jobs = await platform.node.db.fetch_value("SELECT COUNT(*) FROM match_jobs")
        assert jobs == 0  # no refused request created a job


async def test_openapi_metrics_and_health_are_served(fed) -> None:
    platform = fed["platform"]
    async with aiohttp.ClientSession() as s:
        async with s.get(platform.api_url + "/api/v1/openapi.json") as r:
            doc = await r.json()
        assert doc["openapi"].startswith("3.") and "/api/v1/match/media" in doc["paths"]
        async with s.get(platform.api_url + "/metrics") as r:
            text = await r.text()
        assert r.status == 200 and "blindmatch_" in text
        async with s.get(platform.api_url + "/healthz") as r:
            assert (await r.json())["ok"] is True


async def test_hub_serves_the_survivor_page_and_nodes_serve_the_console(fed) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(fed["hub"].endpoint + "/survivor/") as r:
            page = await r.text()
            assert r.status == 200 and "Content-Security-Policy" in r.headers
            assert "<html" in page.lower()
        # A platform is not a hub: no survivor page on its federation endpoint.
        async with s.get(fed["platform"].endpoint + "/survivor/") as r:
            assert r.status == 404
        # The console is on the API address, behind its own login (not the API token).
        async with s.get(fed["platform"].api_url + "/console/", allow_redirects=False) as r:
            assert r.status in (302, 303) and "login" in r.headers["Location"]


async def test_video_bank_items_and_a_video_query_through_the_api(fed, tmp_path: Path) -> None:
    import subprocess

    from blindmatch.node.media.ffmpeg import ffmpeg_available
    from blindmatch.protocol.signal_types.vpdq import video

    if not (ffmpeg_available() and hasher.vpdq_available()):
        pytest.skip("needs ffmpeg and vpdq")
    data = pytest.importorskip("skimage.data")
    Image.fromarray(data.astronaut()).save(tmp_path / "a.png")

    def clip(name: str, vf: str) -> Path:
        out = tmp_path / name
        subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-y",
                "-loop",
                "1",
                "-i",
                str(tmp_path / "a.png"),
                "-vf",
                f"{vf},fps=10,format=yuv420p",
                "-t",
                "4",
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                str(out),
            ],
            check=True,
        )
        return out

    banked = clip("banked.mp4", "crop=384:288:'30*t':'20*t'")
    upload = clip("upload.mp4", "crop=384:288:'30*t':'20*t',scale=256:-2")
    signal = video.format_signal_string(hasher.hash_video(banked))
    hub, platform = fed["hub"], fed["platform"]
    async with BlindmatchClient(hub.api_url, hub.api_token) as bm:
        await bm.create_bank("clips", "survivor-submitted", shared=True, categories=["ncii"])
        added = await bm.add_hashes("clips", [signal], signal_type="vpdq")
        assert added == {"added": 1, "already_present": 0}
        again = await bm.add_hashes("clips", [signal], signal_type="vpdq")
        assert again == {"added": 0, "already_present": 1}
        with pytest.raises(ApiClientError) as info:
            await bm.add_hashes("clips", ["not a signal string"], signal_type="vpdq")
        assert info.value.status == 400
    await platform.node.sync.sync_all()
    async with BlindmatchClient(platform.api_url, platform.api_token) as bm:
        job = await bm.match_media(upload.read_bytes(), wait=60, content_ref="upload-1")
        assert job["complete"]
        [case] = await bm.cases_for_content("upload-1")  # one case for the video
        assert case["state"] != "closed"
        [match] = job["matches"]
        assert (match["peer"], match["signal"], match["variant"]) == ("hub", "vpdq", "video")
        assert (
            max(match["video"]["query_match_percent"], match["video"]["compared_match_percent"])
            >= 80
        )
        assert match["categories"] == ["ncii"]
        with pytest.raises(ApiClientError) as info:
            await bm.match_media(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200)
        assert info.value.status == 400
    # The survivor withdraws the video at the hub: after one sync the platform's case closes
    # (the withdrawal names the video's frames, which the case was opened on).
    [item] = await hub.banks.list_items("clips")
    async with BlindmatchClient(hub.api_url, hub.api_token) as bm:
        await bm.withdraw(item.item_ref.hex(), reason="survivor withdrew")
    await platform.node.sync.sync_all()
    # The background sync may be applying the pulled records as this sync returns: wait for it.
    async with BlindmatchClient(platform.api_url, platform.api_token) as bm:
        for _ in range(100):
            [case] = await bm.cases_for_content("upload-1")
            if case["state"] == "closed":
                break
            await asyncio.sleep(0.1)
        assert case["state"] == "closed"
