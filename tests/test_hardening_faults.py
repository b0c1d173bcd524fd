"""The smaller faults of issue 15, each refused clearly: a long non-ASCII unknown message type
(a signed refusal, not an unsigned 500), crafted image files (one MediaError, 400 with a code,
a non-zero CLI exit), policy values that are not finite numbers in range, and float vectors a
float32 cannot hold (refused at the API and at submit, so no job can be poisoned by them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from blindmatch.node.api.client import ApiClientError, BlindmatchClient
from blindmatch.node.cases import policy
from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec
from blindmatch.node.federation.peer_client import CONTENT_TYPE, FEDERATION_PATH
from blindmatch.node.media import hashing
from blindmatch.node.node import NodeError
from blindmatch.protocol import canonical, envelope
from blindmatch.protocol.matching import QueryHash

MEDIA_FINDINGS = sorted((Path(__file__).parent / "data" / "fuzz" / "media").iterdir())


@pytest.fixture
async def fed(tmp_path: Path):
    federation = await LocalFederation(tmp_path, background=False).start(
        [NodeSpec("hub", ("hub",)), NodeSpec("platform", holds_index=False)]
    )
    yield federation
    await federation.stop()


@pytest.mark.parametrize("mtype", ["ü" * 600, "型" * 400, "x" * 5000, "\u202e" * 300])
async def test_a_long_unknown_message_type_gets_a_signed_refusal(fed, mtype: str) -> None:
    hub = fed["hub"].node
    raw = canonical.encode([1, mtype, "platform", hub.now() * 1000, os.urandom(16), {}, bytes(64)])
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            fed["hub"].endpoint + FEDERATION_PATH,
            data=raw,
            headers={"Content-Type": CONTENT_TYPE},
        ) as resp,
    ):
        status, body = resp.status, await resp.read()
    env = envelope.open_envelope(
        body, now_ms=hub.now() * 1000, sender_key=lambda sid: hub.keys.identity.public_key
    )
    assert (status, env.type, env.body["code"]) == (400, "error", "bad-envelope")
    assert len(env.body["message"].encode()) <= 512


async def test_a_deeply_nested_envelope_gets_a_signed_refusal(fed) -> None:
    """Found by bench fuzz: 400 bytes of nested arrays exhausted the stack in the canonical
    decoder's float check (RecursionError: an unsigned 500 at the federation port)."""
    hub = fed["hub"].node
    raw = b"\x97\x01" + b"\x91" * 500 + b"\x01" + b"\xc0" * 5  # 7 elements, one 500 deep
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            fed["hub"].endpoint + FEDERATION_PATH, data=raw, headers={"Content-Type": CONTENT_TYPE}
        ) as resp,
    ):
        status, body = resp.status, await resp.read()
    env = envelope.open_envelope(
        body, now_ms=hub.now() * 1000, sender_key=lambda sid: hub.keys.identity.public_key
    )
    assert (status, env.body["code"]) == (400, "bad-envelope")


@pytest.mark.parametrize("path", MEDIA_FINDINGS, ids=[p.name for p in MEDIA_FINDINGS])
def test_crafted_image_files_are_one_clear_error(path: Path) -> None:
    with pytest.raises(hashing.MediaError) as info:
        hashing.hash_image_bytes(path.read_bytes(), query_variants=True)
    assert info.value.code == "corrupt"


@pytest.mark.parametrize("path", MEDIA_FINDINGS[:1], ids=[p.name for p in MEDIA_FINDINGS[:1]])
def test_the_cli_reports_a_crafted_file_in_one_line_and_exits_non_zero(path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "blindmatch", "hash", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [line["error"] for line in lines] == ["corrupt"]


async def test_the_api_answers_a_crafted_file_with_a_400_and_a_code(fed) -> None:
    platform = fed["platform"]
    async with BlindmatchClient(platform.api_url, platform.api_token) as bm:
        for path in MEDIA_FINDINGS:
            with pytest.raises(ApiClientError) as info:
                await bm.match_media(path.read_bytes())
            assert (info.value.status, info.value.code) == (400, "corrupt")


@pytest.mark.parametrize(
    "value", ["nan", "inf", "-inf", "0.5", "1e7", "true", '"10"', "1" + "0" * 400]
)
def test_quarantine_factor_must_be_a_finite_number_in_range(value: str) -> None:
    with pytest.raises(policy.PolicyError, match=r"quarantine\.factor"):
        policy.parse(_toml(f"[quarantine]\nfactor = {value}\n"))


@pytest.mark.parametrize(
    "text",
    [
        "auto_action = 3\n",
        "[review]\nband_priority = { 99999 = 1 }\n",
        "[review]\nband_priority = { -1 = 1 }\n",
        "[review]\nband_priority = 5\n",
    ],
)
def test_malformed_policy_sections_are_policy_errors(text: str) -> None:
    with pytest.raises(policy.PolicyError):
        policy.parse(_toml(text))


def test_a_finite_factor_in_range_is_kept() -> None:
    assert policy.parse(_toml("[quarantine]\nfactor = 2.5\n")).quarantine.factor == 2.5


def _toml(text: str):  # type: ignore[no-untyped-def]
    import tomllib

    return tomllib.loads(text)


BAD_VECTORS = [
    [1e39] + [0.0] * 255,  # beyond float32: it would be stored as inf
    [-1e39] + [0.0] * 255,
    [float("nan")] + [0.0] * 255,
    [float("inf")] + [0.0] * 255,
    [10**400] + [0.0] * 255,
]


async def test_float_vectors_a_float32_cannot_hold_never_make_a_job(fed) -> None:
    platform = fed["platform"]
    before = await platform.node.db.fetch_value("SELECT COUNT(*) FROM match_jobs")
    for vector in BAD_VECTORS:
        with pytest.raises(NodeError) as info:
            await platform.node.querier.submit([QueryHash(b"\x01" * 32, vector)])
        assert info.value.code == "bad-body"
    async with aiohttp.ClientSession() as s:
        for vector in BAD_VECTORS[:2]:  # JSON has no NaN or infinity
            async with s.post(
                platform.api_url + "/api/v1/match/hashes",
                json={"hashes": [{"hash": "ab" * 32, "float_vector": vector}]},
                headers={"Authorization": f"Bearer {platform.api_token}"},
            ) as resp:
                assert resp.status == 400
                assert (await resp.json())["error"] == "bad-request"
    assert await platform.node.db.fetch_value("SELECT COUNT(*) FROM match_jobs") == before
    # The largest float32 itself is a fine value.
    edge = [float(np.finfo(np.float32).max)] + [0.0] * 255
    await platform.node.querier.submit([QueryHash(b"\x01" * 32, edge)])


def test_only_a_hub_is_believed_about_protected_sources() -> None:
    """A non-hub holder's protected-source label (its group, its tiles) is not believed: the
    whole-picture match is an ordinary peer-sourced one; a hub's is judged as a source."""
    from blindmatch.node.cases.derivatives import PeerMatch, review_matches

    release = {"provenance": "protected-source", "signal": "pdq", "group": b"g" * 8,
               "source_cells": 1}  # fmt: skip
    tile = {"provenance": "protected-source", "signal": "pdq-tiles-1", "group": b"g" * 8,
            "source_cells": 1}  # fmt: skip
    results = [
        PeerMatch("platform-x", b"\x01" * 16, "identity", 8, release),
        PeerMatch("platform-x", b"\x02" * 16, "g3c0r0", 8, tile),
        PeerMatch("hub", b"\x03" * 16, "identity", 8, release),
    ]
    roles = {"hub": {"hub"}, "platform-x": {"platform"}}
    out = review_matches([QueryHash(b"\x00" * 32)], results, lambda peer, role: role in roles[peer])
    by_holder = {m.holder: m for m in out}
    assert by_holder["platform-x"].release["provenance"] == "peer-sourced"
    assert "group" not in by_holder["platform-x"].release
    assert [m.holder for m in out].count("platform-x") == 1  # its tile counted for nothing
    assert by_holder["hub"].release["provenance"] == "protected-source"
