"""A hub and a platform with one queued case whose upload is stored, and the platform's reviewer
console served on a real loopback port (shared by the console's HTTP and browser tests)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import numpy as np
from aiohttp import web
from PIL import Image

from blindmatch.node.cases.decisions import Case
from blindmatch.node.clock import FixedClock
from blindmatch.node.console import build_console
from blindmatch.node.console.accounts import hash_password
from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec
from blindmatch.node.media import hashing
from blindmatch.node.storage.reviewers import ReviewerStore

PASSWORDS = {
    "rev-1": "correct horse battery",
    "admin-1": "admin password ok",
    "aud-1": "auditor password ok",
}
ROLES = {"rev-1": "reviewer", "admin-1": "admin", "aud-1": "auditor"}
# Each account's stored password hash, made once per test session: a hash at the production
# parameters (scrypt n=2**17) costs about half a second of CPU and 128 MiB, and every scenario
# needs the same three. Salted and verified like any other (the console checks them at every
# login at full cost); Accounts.create itself is tested in test_console.py.
_STORED_HASHES: dict[str, str] = {}


def stored_hash(reviewer_id: str) -> str:
    if reviewer_id not in _STORED_HASHES:
        _STORED_HASHES[reviewer_id] = hash_password(PASSWORDS[reviewer_id])
    return _STORED_HASHES[reviewer_id]


def photo(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A synthetic picture with structure at several scales and fine grain (PDQ quality high)."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.zeros((h, w, 3))
    for c in range(3):
        for _ in range(6):
            fx, fy, ph = [*rng.uniform(1, 12, 2).tolist(), rng.uniform(0, 6.3)]
            img[..., c] += np.sin(2 * np.pi * (fx * x + fy * y) + ph)
    img += rng.normal(0, 0.3, img.shape)
    img = (img - img.min()) / (img.max() - img.min()) * 255
    return Image.fromarray(img.astype(np.uint8))


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def high_frequency_energy(data: bytes) -> float:
    """Mean absolute difference between neighbouring pixels of the grayscale picture."""
    g = np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.float64)
    return float(np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean())


@dataclass
class Scenario:
    fed: LocalFederation
    clock: FixedClock
    console_url: str
    case: Case
    held_hex: str  # the hub's hash of the protected picture (must never appear in a page)
    upload: bytes
    runner: web.AppRunner

    @property
    def platform(self):  # type: ignore[no-untyped-def]
        return self.fed["platform"].node

    @property
    def hub(self):  # type: ignore[no-untyped-def]
        return self.fed["hub"].node


async def drain(*nodes) -> None:  # type: ignore[no-untyped-def]
    for _ in range(6):
        busy = 0
        for n in nodes:
            busy += await n.delivery.process_due()
        if not busy:
            return


async def start_scenario(tmp_path: Path) -> Scenario:
    clock = FixedClock(1_800_000_000)
    fed = await LocalFederation(tmp_path, clock=clock, background=False).start(
        [NodeSpec("hub", ("hub",)), NodeSpec("platform", holds_index=False)]
    )
    hub, platform = fed["hub"], fed["platform"]
    original = photo(7)
    held = hashing.hash_image_bytes(jpeg(original)).pdq
    await hub.banks.create_bank(
        "reports", provenance="survivor-submitted", shared=True, categories=["ncii"]
    )
    await hub.banks.add_item("reports", "pdq", held.hash32)
    await hub.node.publisher.reconcile()
    await platform.node.sync.sync_all()
    # The platform uploads a re-encoded copy through its local API, naming its content.
    upload = jpeg(original, 75)
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            platform.api_url + "/api/v1/match/media",
            params={"content_ref": "upload-42"},
            data=upload,
            headers={
                "Authorization": f"Bearer {platform.api_token}",
                "Content-Type": "application/octet-stream",
            },
        ) as r,
    ):
        assert r.status in (200, 202), await r.text()
    await drain(platform.node)
    (case,) = await platform.node.decisions.cases_for_content("upload-42")
    assert case.state == "queued", case
    reviewers = ReviewerStore(platform.node.db)
    for rid, role in ROLES.items():
        assert await reviewers.insert(rid, role, stored_hash(rid), platform.node.now())
    root = web.Application()
    root.add_subapp("/console/", build_console(platform.node))
    runner = web.AppRunner(root, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return Scenario(fed, clock, f"http://127.0.0.1:{port}/console", case, held.hex, upload, runner)


async def stop_scenario(sc: Scenario) -> None:
    await sc.runner.cleanup()
    await sc.fed.stop()
