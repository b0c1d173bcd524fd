"""Later rounds name the encrypted query by digest (spec 7.3): the holder keeps verified queries
per peer, bounded in entries, bytes and time; a reference that names nothing of the sender's is
refused ``unknown-query`` with no state change, and the querier then sends the query whole; a
holder of an older version (refusing ``confirmed`` / ``query_ref`` with ``bad-body``) is asked
the older way, and the match is found all the same."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from blindmatch.crypto import release, signing
from blindmatch.crypto import threshold as th
from blindmatch.node.clock import FixedClock
from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec
from blindmatch.node.errors import NodeError
from blindmatch.node.federation.peer_client import CONTENT_TYPE, FEDERATION_PATH, PeerError
from blindmatch.node.federation.query_cache import VerifiedQueryCache
from blindmatch.protocol import canonical, envelope, matching
from blindmatch.protocol.matching import QueryHash

# --- the cache on its own --------------------------------------------------------------------


def _v(n: int) -> Any:
    return f"verified-{n}"  # the cache stores what it is given


def test_a_kept_query_is_the_senders_own_and_expires() -> None:
    c = VerifiedQueryCache(ttl_s=100)
    c.put("a", b"d1", _v(1), now=0)
    assert c.get("a", b"d1", now=99) == _v(1)
    assert c.get("b", b"d1", now=1) is None  # another peer's digest names nothing of b's
    assert c.get("a", b"d2", now=1) is None
    assert c.get("a", b"d1", now=100) is None  # expired, and dropped
    assert len(c) == 0 and c.bytes_kept() == 0


def test_bytes_are_capped_per_peer_then_in_all() -> None:
    c = VerifiedQueryCache(ttl_s=1000, entry_bytes=10, peer_bytes=30, total_bytes=50)
    for i in range(4):
        c.put("a", bytes([i]), _v(i), now=i)
    # a's least recent query made room for its fourth; nobody else lost anything
    assert c.get("a", bytes([0]), now=5) is None and c.bytes_kept("a") == 30
    c.get("a", bytes([1]), now=5)  # used again: now a's most recent
    for i in range(3):
        c.put("b", bytes([i]), _v(10 + i), now=6)
    # in all at most 5 entries: the least recent ones, whoever sent them, went first
    assert c.bytes_kept() == 50 and c.bytes_kept("b") == 30
    assert c.get("a", bytes([2]), now=7) is None and c.get("a", bytes([1]), now=7) == _v(1)
    with pytest.raises(ValueError):
        VerifiedQueryCache(ttl_s=0)


def test_exchange_names_a_query_the_holder_answered_and_falls_back() -> None:
    enc = matching.EncryptionCache(os.urandom)
    ex = matching.PeerExchange("hub", b"k" * 32, None, [QueryHash(os.urandom(32))])
    ex.refer_by_digest = True
    ex.candidates = {0: [os.urandom(24) for _ in range(3)]}
    (first,) = ex.next_threshold_requests(enc)
    _, encrypted, wire = enc.get(ex.queries[0].hash)
    assert first["query"] == wire and "query_ref" not in first
    ex.on_answer(first, {"query_id": encrypted.query_id, "answers": _far(first)}, enc)
    (second,) = ex.next_threshold_requests(enc)
    assert second["query_ref"] == hashlib.sha256(wire).digest() and "query" not in second
    again = ex.on_refused(second, "unknown-query", enc)
    assert again is not None and again["query"] == wire and "query_ref" not in again
    assert ex.on_refused(again, "unknown-query", enc) is None  # sent whole: the refusal stands
    assert ex.on_refused(second, "budget-exhausted", enc) is None
    older = ex.on_refused(second, "bad-body", enc)
    assert older == {"query": wire, "items": second["items"]} and ex.legacy_holder


def _far(req: dict[str, Any]) -> list[dict[str, Any]]:
    """Answers that match nothing (a decoy's shape)."""
    out = []
    for c in req["items"]:
        verified = th.verify_query(th.EncryptedQuery.from_bytes(req["query"]))
        sealed = release.seal(verified, os.urandom(32), (31,), c, b"")
        out.append({"item": c, "response": sealed.response.to_bytes(), "sealed": sealed.sealed})
    return out


# --- loopback nodes ----------------------------------------------------------------------------


@pytest.fixture
async def fed(tmp_path: Path):
    federation = await LocalFederation(
        tmp_path, clock=FixedClock(1_800_000_000), background=False
    ).start(
        [
            NodeSpec("hub", ("hub",)),
            NodeSpec("platform", holds_index=False),
            NodeSpec("other", holds_index=False),
        ]
    )
    hub = federation["hub"]
    await hub.banks.create_bank("b", provenance="survivor-submitted", shared=True)
    federation.held = os.urandom(32)  # type: ignore[attr-defined]
    await hub.banks.add_item("b", "pdq", federation.held)  # type: ignore[attr-defined]
    await hub.node.publisher.reconcile()
    for name in ("platform", "other"):
        await federation[name].node.sync.sync_all()
    yield federation
    await federation.stop()


def _spy(fed, monkeypatch, older: bool = False, forget: bool = False) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Record every threshold.query body the hub handles. ``older``: refuse the fields of the
    rounds as the previous version's schema did (``bad-body``, before any charge); ``forget``:
    drop the kept queries before each request (as an eviction or a restart would)."""
    responder = fed["hub"].node.responder
    real = responder.threshold
    seen: list[dict[str, Any]] = []

    async def threshold(peer, body, pending=None):  # type: ignore[no-untyped-def]
        seen.append(dict(body))
        if older and ({"confirmed", "query_ref"} & set(body)):
            raise NodeError("body: unexpected field(s)", code="bad-body")
        if forget:
            responder.queries = VerifiedQueryCache()
        return await real(peer, body, pending)

    monkeypatch.setattr(responder, "threshold", threshold)
    return seen


async def _match(fed) -> list[Any]:  # type: ignore[no-untyped-def]
    platform = fed["platform"].node
    job = await platform.querier.submit([QueryHash(fed.held)])
    while await platform.delivery.process_due():
        pass
    status = await platform.querier.job_status(job)
    assert status.complete
    return status.results


async def test_the_second_round_names_the_query_and_is_not_verified_again(fed, monkeypatch):  # type: ignore[no-untyped-def]
    verified = []
    real = matching.verify_threshold_query
    monkeypatch.setattr(
        matching, "verify_threshold_query", lambda body: verified.append(1) or real(body)
    )
    seen = _spy(fed, monkeypatch)
    results = await _match(fed)
    assert [r.peer for r in results] == ["hub"]
    assert len(seen) == 2 and "query" in seen[0] and "confirmed" not in seen[0]
    assert set(seen[1]) == {"query_ref", "items", "confirmed"}
    assert seen[1]["query_ref"] == hashlib.sha256(seen[0]["query"]).digest()
    assert len(verified) == 1
    assert fed["hub"].node.metrics.value("query_refs_total", {"outcome": "kept"}) == 1


async def test_a_forgotten_query_is_sent_whole_and_still_answered_same(fed, monkeypatch):  # type: ignore[no-untyped-def]
    seen = _spy(fed, monkeypatch, forget=True)
    results = await _match(fed)
    assert [r.peer for r in results] == ["hub"]
    assert [sorted(b) for b in seen] == [
        ["items", "query"],
        ["confirmed", "items", "query_ref"],
        ["confirmed", "items", "query"],  # the same round, whole: its tokens still count
    ]
    answered = fed["hub"].node.metrics.value("threshold_answers_total")
    assert answered == 1 + len(seen[2]["items"])  # (the holder counts 'same' answers too)


async def test_an_older_holder_is_asked_the_older_way_and_the_match_is_found(fed, monkeypatch):  # type: ignore[no-untyped-def]
    seen = _spy(fed, monkeypatch, older=True)
    platform = fed["platform"].node
    sent_before = platform.client.bytes_with("hub")[0]
    results = await _match(fed)
    assert [r.peer for r in results] == ["hub"]
    assert [sorted(b) for b in seen] == [
        ["items", "query"],
        ["confirmed", "items", "query_ref"],  # refused: bad-body
        ["items", "query"],  # whole, no tokens, every remaining candidate
    ]
    assert seen[2]["items"] == seen[1]["items"] and seen[2]["query"] == seen[0]["query"]
    sent = platform.client.bytes_with("hub")[0] - sent_before
    assert sent > 2 * th.ENCRYPTED_QUERY_BYTES  # the query travelled whole twice
    fallbacks = platform.metrics.value(
        "threshold_query_fallbacks_total", {"peer": "hub", "code": "bad-body"}
    )
    assert fallbacks == 1
    # the next job asks this holder the older way from the start: everything at once
    seen.clear()
    assert [r.peer for r in await _match(fed)] == ["hub"]
    assert len(seen) == 1 and sorted(seen[0]) == ["items", "query"]


# --- bad references ----------------------------------------------------------------------------


def _raw(fed, sender: str, body: dict[str, Any]) -> bytes:  # type: ignore[no-untyped-def]
    """A signed envelope without the sender-side schema check (to carry a malformed body)."""
    key: signing.SigningKey = fed[sender].node.keys.identity
    ts, nonce = fed.clock.now() * 1000, os.urandom(16)
    signed = canonical.encode([1, "threshold.query", sender, ts, nonce, body])
    sig = key.sign(envelope.ENVELOPE_DOMAIN, signed)
    return canonical.encode([1, "threshold.query", sender, ts, nonce, body, sig])


async def _post(fed, data: bytes) -> tuple[int, str | None]:  # type: ignore[no-untyped-def]
    hub = fed["hub"]
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            hub.endpoint + FEDERATION_PATH, data=data, headers={"Content-Type": CONTENT_TYPE}
        ) as resp,
    ):
        raw = await resp.read()
    env = envelope.open_envelope(
        raw, now_ms=fed.clock.now() * 1000, sender_key=lambda _: hub.node.keys.identity.public_key
    )
    return resp.status, env.body.get("code")


async def _state(fed) -> tuple[Any, ...]:  # type: ignore[no-untyped-def]
    hub = fed["hub"].node
    return (
        await hub.db.fetch_all("SELECT * FROM budget_usage ORDER BY peer_id, window_kind"),
        hub.responder.queries.bytes_kept(),
        len(hub.responder.queries),
        hub.metrics.value("threshold_answers_total"),
    )


async def test_bad_references_are_refused_and_change_nothing(fed) -> None:
    hub = fed["hub"].node
    member = hub.roster.member("hub")
    item = os.urandom(24)
    wire = th.encrypt_query(th.QuerierKey.generate(), fed.held, os.urandom(16)).to_bytes()
    digest = hashlib.sha256(wire).digest()
    # "other" sends the query whole: kept for "other" only
    await fed["other"].node.client.call(member, "threshold.query", {"query": wire, "items": [item]})
    assert hub.responder.queries.get("other", digest, fed.clock.now()) is not None
    before = await _state(fed)
    platform = fed["platform"].node
    for ref in (os.urandom(32), digest):  # names nothing; another peer's query
        with pytest.raises(PeerError) as info:
            await platform.client.call(
                member, "threshold.query", {"query_ref": ref, "items": [item]}
            )
        assert info.value.code == "unknown-query" and info.value.refused
    malformed = (
        {"query_ref": digest[:31], "items": [item]},
        {"query_ref": digest, "query": wire, "items": [item]},
        {"items": [item]},
    )
    for body in malformed:
        assert await _post(fed, _raw(fed, "platform", body)) == (400, "bad-body")
    assert await _state(fed) == before
    # expired: the owner's own reference after the TTL
    fed.clock.advance(hub.responder.queries.ttl_s)
    with pytest.raises(PeerError) as info:
        await fed["other"].node.client.call(
            member, "threshold.query", {"query_ref": digest, "items": [item]}
        )
    assert info.value.code == "unknown-query"
    after = await _state(fed)
    assert after[0] == before[0] and after[3] == before[3] and after[2] == 0  # dropped when read
