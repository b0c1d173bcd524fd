"""Derivatives of a protected photo across real nodes (issue 7's end-to-end test).

A survivor protects an ordinary photo at the hub (its whole-picture PDQ hash and its tile
hashes, `pdq-tiles-1`); a generator node banks an AI-edited version it produced; a platform
receives that edited version and a plain re-encoded copy. Over real HTTP on loopback, the
platform's node must find both privately and tell them apart: the edit becomes a high-priority
derivative case carrying the generator's provenance, the copy a low-priority copy case that is
never auto-actioned, and an unrelated photo nothing.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from federation_uploads import upload_media
from PIL import Image

from blindmatch.node.api.client import BlindmatchClient
from blindmatch.node.cases.policy import Policy
from blindmatch.node.clock import FixedClock
from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec
from blindmatch.node.media import hashing
from blindmatch.node.media import tiles as tile_hashing
from blindmatch.protocol import derivative as dv
from blindmatch.protocol.derivative import PDQ_TILES_1
from blindmatch.sim import edits

skimage_data = pytest.importorskip("skimage.data")


def _jpeg(rgb: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="module")
def pictures() -> dict[str, bytes]:
    source = np.ascontiguousarray(skimage_data.astronaut())
    edited = edits.edit(source, "telea", 0.30, np.random.default_rng(7))
    return {
        "source": _jpeg(source, 92),
        "derivative": _jpeg(edited, 90),
        "copy": _jpeg(source, 70),
        "unrelated": _jpeg(np.ascontiguousarray(skimage_data.coffee()), 90),
    }


@pytest.fixture
async def fed(tmp_path: Path, pictures: dict[str, bytes]):
    federation = await LocalFederation(
        tmp_path, clock=FixedClock(1_800_000_000), background=False, record_wire=True
    ).start(
        [
            NodeSpec("hub", ("hub",)),
            NodeSpec("generator", ("generator",)),
            NodeSpec("platform", holds_index=False),
        ]
    )
    hub, generator = federation["hub"], federation["generator"]
    await hub.banks.create_bank("survivor-sources", provenance="protected-source", shared=True)
    pdq, tiles = tile_hashing.protected_source(pictures["source"])
    added = await hub.banks.add_protected_source(
        "survivor-sources", pdq.hash32, quality=pdq.quality, tiles=tiles, categories=["ncii"]
    )
    federation.source_ref = added.item.item_ref  # type: ignore[attr-defined]
    await hub.node.publisher.reconcile()
    # The generator banks what it produced (its classifier said: a nudification), no review.
    await generator.banks.create_bank("generated", provenance="generator", shared=True)
    made = hashing.hash_image_bytes(pictures["derivative"]).pdq
    await generator.banks.add_item("generated", "pdq", made.hash32, quality=made.quality)
    await generator.node.publisher.reconcile()
    await federation["platform"].node.sync.sync_all()
    yield federation
    await federation.stop()


async def _upload(fed, data: bytes, content_ref: str) -> list[dict]:  # type: ignore[no-untyped-def]
    fed.last_job, cases = await upload_media(fed, data, content_ref)
    return cases


async def test_source_tiles_are_published_and_withdrawn_with_the_source(fed) -> None:
    hub = fed["hub"]
    tiles = await hub.banks.source_tiles(fed.source_ref)
    assert len(tiles) > 2 * PDQ_TILES_1.min_regions  # a textured photo: many quality tiles
    published = await hub.node.db.fetch_value("SELECT COUNT(*) FROM index_publications")
    assert published == 1 + len(tiles)
    head = (await hub.node.feeds.read("index", 0, 1000))[-1].seq
    await hub.banks.withdraw(fed.source_ref, reason="survivor withdrew")
    result = await hub.node.publisher.reconcile()
    # a withdrawal publishes nothing (spec 8.7): removing the source's and its tiles' entries
    # would hand out their buckets, i.e. their hashes; they stay, answered as decoys
    assert result == {"added": 0, "removed": 0}
    assert await hub.node.feeds.read("index", head, 1000) == []
    assert await hub.node.db.fetch_value("SELECT COUNT(*) FROM index_publications") == published
    rows = await hub.node.db.fetch_all(
        "SELECT t.item_ref FROM source_tiles t JOIN bank_items i ON i.id = t.source_id"
        " WHERE i.item_ref = ?",
        fed.source_ref,
    )
    refs = [fed.source_ref, *(bytes(r["item_ref"]) for r in rows)]
    assert len(refs) == published
    assert await hub.node.responder.holder_items(refs) == dict.fromkeys(refs)  # none answered


async def test_derivative_copy_and_generator_provenance_end_to_end(fed, pictures) -> None:
    derivative_cases = await _upload(fed, pictures["derivative"], "upload-derivative")
    # The platform's API reports the judged match, not the tile confirmations behind it.
    [judged] = fed.last_job["matches"]
    assert judged["kind"] == "derivative" and judged["peer"] == "hub"
    assert fed.last_job["tiles_confirmed"] >= len(judged["derivative"]["matched_regions"])
    copy_cases = await _upload(fed, pictures["copy"], "upload-copy")
    copy_job = fed.last_job
    unrelated_cases = await _upload(fed, pictures["unrelated"], "upload-unrelated")

    # The whole-picture hash of the edit is far from the source's: only the tiles find it.
    src = hashing.hash_image_bytes(pictures["source"]).pdq.hash32
    der = hashing.hash_image_bytes(pictures["derivative"]).pdq.hash32
    assert sum(bin(a ^ b).count("1") for a, b in zip(src, der, strict=True)) > 31

    assert unrelated_cases == []
    [derivative] = derivative_cases  # the generator's match is folded into this one
    [copy] = copy_cases
    base = Policy().review.base_priority

    assert derivative["holder"] == "hub" and derivative["kind"] == "derivative"
    evidence = derivative["release"]["derivative"]
    assert evidence["kind"] == "derivative" and not evidence["whole_image_match"]
    assert len(evidence["matched_regions"]) >= PDQ_TILES_1.min_regions
    assert evidence["unmatched_regions"], "a derivative names the regions that did not match"
    assert evidence["coverage"] < PDQ_TILES_1.copy_coverage
    assert derivative["release"]["generator"] == {"confirmed": True, "nodes": ["generator"]}
    assert derivative["state"] == "queued" and derivative["priority"] > base + 40

    assert copy["holder"] == "hub" and copy["kind"] == "copy"
    assert copy["release"]["derivative"]["whole_image_match"]
    # The whole picture decided it: no tile was asked about (specs/derivatives.md 6.5), so the
    # hub verified no tile's bit proofs for the copy.
    assert copy["release"]["derivative"]["matched_regions"] == []
    assert copy_job["tiles_confirmed"] == 0 and copy_job["matches"][0]["kind"] == "copy"
    assert "generator" not in copy["release"]
    assert copy["state"] == "queued" and copy["priority"] < base  # reviewed, last; never acted on
    assert derivative["priority"] > copy["priority"]

    # Both name the same protected source (one group) and never carry a hash.
    assert derivative["release"]["group"] == copy["release"]["group"]
    assert copy["item"] == fed.source_ref.hex()  # the whole-picture item anchors the copy
    platform_db = fed["platform"].node.db
    stored = await platform_db.fetch_all("SELECT release FROM match_results")
    blob = " ".join(r["release"] for r in stored)
    for tile in await fed["hub"].banks.source_tiles(fed.source_ref):
        assert tile.hash.hex() not in blob
    assert src.hex() not in blob

    # Every byte the nodes sent each other: no whole-picture or tile hash of the source or of
    # the uploads, in any form, and no tile's bucket key.
    from test_wire_privacy import forms

    wire = fed.wire_bytes()
    assert len(wire) > 100_000  # the exchanges really went over the relays
    secrets_: list[bytes] = [src, der]
    for t in await fed["hub"].banks.source_tiles(fed.source_ref):
        secrets_.append(t.hash)
        secrets_ += PDQ_TILES_1.index_keys(dv.Cell.parse(t.cell), t.hash)[:4]
    for name in ("derivative", "copy"):
        secrets_ += [q.hash for q in tile_hashing.picture_queries(pictures[name])]
    for value in secrets_:
        for form in forms(value):
            assert form not in wire


async def test_generator_claim_from_a_non_generator_is_not_believed(fed, pictures) -> None:
    hub = fed["hub"]
    await hub.banks.create_bank("claims", provenance="generator", shared=True)
    other = hashing.hash_image_bytes(pictures["unrelated"]).pdq
    await hub.banks.add_item("claims", "pdq", other.hash32, quality=other.quality)
    await hub.node.publisher.reconcile()
    await fed["platform"].node.sync.sync_all()
    [case] = await _upload(fed, pictures["unrelated"], "upload-claimed")
    assert case["holder"] == "hub"
    assert case["release"]["provenance"] == "peer-sourced"
    assert "generator" not in case["release"]


async def test_only_a_generator_node_may_create_a_generator_bank(fed) -> None:
    from blindmatch.node.api.client import ApiClientError

    for node_id, allowed in (("platform", False), ("generator", True)):
        local = fed[node_id]
        async with BlindmatchClient(local.api_url, local.api_token) as api:
            if allowed:
                await api.create_bank("made-here", "generator", shared=True)
                assert "made-here" in {b["name"] for b in await api.banks()}
            else:
                with pytest.raises(ApiClientError) as refused:
                    await api.create_bank("made-here", "generator", shared=True)
                assert refused.value.status == 400 and "generator" in str(refused.value)
                assert "made-here" not in {b["name"] for b in await api.banks()}
