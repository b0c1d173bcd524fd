"""An HMA deployment uses blindmatch through the adapter: lookups in HMA's API shape, hashed
with python-threatexchange as HMA hashes, over real HTTP on loopback; opinions come back through
python-threatexchange's SignalExchangeAPI and become the node's decisions and feedback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from blindmatch.node.api.client import BlindmatchClient
from blindmatch.node.cases.decisions import FEEDBACK_KIND
from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec
from blindmatch.node.interop.hma_adapter import adapter_key, content_ref, serve

pytest.importorskip("threatexchange")
requests = pytest.importorskip("requests")

from threatexchange.exchanges.fetch_state import (  # noqa: E402
    SignalOpinion,
    SignalOpinionCategory,
)
from threatexchange.signal_type.pdq.signal import PdqSignal  # noqa: E402

from blindmatch.node.interop.te_exchange import (  # noqa: E402
    BlindmatchCollabConfig,
    BlindmatchSignalExchangeAPI,
)

DATA = Path(__file__).parent / "data" / "survivor"
BANKED = DATA / "landscape.png"
OTHER = DATA / "portrait.png"


@pytest.fixture
async def adapter(tmp_path: Path):  # type: ignore[no-untyped-def]
    fed = await LocalFederation(tmp_path, background=True, sync_interval_s=0.2).start(
        [NodeSpec("hub", ("hub",)), NodeSpec("platform-b", holds_index=False)]
    )
    hub, platform = fed["hub"], fed["platform-b"]
    async with BlindmatchClient(hub.api_url, hub.api_token) as bm:
        await bm.create_bank("ncii", "survivor-submitted", shared=True, categories=["ncii"])
        await bm.add_hashes("ncii", [PdqSignal.hash_from_file(BANKED)])
    await platform.node.sync.sync_all()
    client = BlindmatchClient(platform.api_url, platform.api_token)
    await client.__aenter__()
    key = adapter_key(tmp_path)
    runner = await serve(client, key, "127.0.0.1", 0, wait=60)
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", key, client, platform
    await runner.cleanup()
    await client.__aexit__(None, None, None)
    await fed.stop()


def _get(url: str, **params: str) -> requests.Response:
    return requests.get(url, params=params, timeout=120)


async def test_hma_looks_up_a_matching_and_a_non_matching_image(adapter) -> None:  # type: ignore[no-untyped-def]
    url, key, client, platform = adapter
    # HMA hashes with python-threatexchange's PdqSignal, then asks /m/lookup.
    banked, other = (PdqSignal.hash_from_file(p) for p in (BANKED, OTHER))
    assert PdqSignal.compare_hash(banked, other).match is False
    hit = await asyncio.to_thread(_get, url + "/m/lookup", signal_type="pdq", signal=banked)
    assert (hit.status_code, hit.json()) == (200, ["BLINDMATCH_HUB"])
    miss = await asyncio.to_thread(_get, url + "/m/lookup", signal_type="pdq", signal=other)
    assert (miss.status_code, miss.json()) == (200, [])
    # The upload form, as HMA's POST /m/lookup takes it: the field is the content type.
    upload = await asyncio.to_thread(
        requests.post, url + "/m/lookup", files={"photo": BANKED.read_bytes()}, timeout=120
    )
    assert (upload.status_code, upload.json()) == (200, {"pdq": ["BLINDMATCH_HUB"]})
    # HMA's errors: a bad signal or type is a 400 with a message, nothing is submitted.
    jobs = await platform.node.db.fetch_value("SELECT COUNT(*) FROM match_jobs")
    for params in ({"signal_type": "pdq", "signal": "zz"}, {"signal_type": "video_md5",
                   "signal": "0" * 32}, {"signal_type": "pdq"}):  # fmt: skip
        bad = await asyncio.to_thread(_get, url + "/m/lookup", **params)
        assert bad.status_code == 400 and bad.json()["message"]
    assert await platform.node.db.fetch_value("SELECT COUNT(*) FROM match_jobs") == jobs

    # The lookup opened a review case for the content, named without the hash.
    ref = content_ref(key, "pdq", banked)
    assert banked not in ref
    (case,) = await client.cases_for_content(ref)
    assert case["holder"] == "hub" and case["state"] == "queued"
    assert await client.cases_for_content(content_ref(key, "pdq", other)) == []


async def test_hma_opinions_become_decisions_and_feedback(adapter) -> None:  # type: ignore[no-untyped-def]
    url, key, client, platform = adapter
    banked = PdqSignal.hash_from_file(BANKED)
    assert (await asyncio.to_thread(_get, url + "/m/lookup", signal_type="pdq", signal=banked)).ok
    exchange = BlindmatchSignalExchangeAPI.for_collab(
        BlindmatchCollabConfig(name="BLINDMATCH", api="blindmatch", enabled=True, adapter_url=url)
    )
    assert [d.updates for d in exchange.fetch_iter([PdqSignal], None)] == [{}]  # never hashes
    opinion = SignalOpinion(True, SignalOpinionCategory.POSITIVE_CLASS, {"ncii"})
    await asyncio.to_thread(exchange.report_opinion, PdqSignal, banked, opinion)
    (case,) = await client.cases_for_content(content_ref(key, "pdq", banked))
    assert case["state"] == "actioned" and case["decided_by"] == "api:hma"
    assert case["reason"] == "HMA opinion POSITIVE_CLASS (ncii)"
    # the holder is told: a confirm record is queued (or already delivered) to the hub
    sent = await platform.node.db.fetch_value(
        "SELECT COUNT(*) FROM outbox WHERE peer_id = ? AND kind = ?", "hub", FEEDBACK_KIND
    )
    assert sent == 1
    bad = await asyncio.to_thread(
        requests.post,
        url + "/blindmatch/opinion",
        json={"signal_type": "pdq", "signal": banked, "category": "MAYBE"},
        timeout=30,
    )
    assert bad.status_code == 400 and "category" in bad.json()["message"]
