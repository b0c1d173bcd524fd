"""The node's verifiable log: storage on both backends, proofs, restart, tampering, the HTTP API
on a real loopback server, monitoring peers (forks, rollbacks, gossip), the live audit, the
event hooks and the transparency report."""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from blindmatch.crypto import signing
from blindmatch.node.cli import audit as cmd_audit
from blindmatch.node.cli import report as cmd_report
from blindmatch.node.cli.main import main as cli_main
from blindmatch.node.clock import FixedClock
from blindmatch.node.storage import Database, FeedLog, open_database
from blindmatch.node.storage.migrations import TRANSPARENCY_SCHEMA
from blindmatch.node.storage.migrations import ensure_transparency_tables as ensure_schema
from blindmatch.node.storage.translog import TranslogStore
from blindmatch.node.translog import report
from blindmatch.node.translog.hooks import (
    TrafficCounts,
    feed_digest,
    index_publication_entry,
    log_appeal,
    log_decision,
    log_feedback,
    log_index_publication,
    log_match,
    match_id_for,
)
from blindmatch.node.translog.http import build_log_routes
from blindmatch.node.translog.log import LogIntegrityError, TransparencyLog
from blindmatch.node.translog.monitor import FederationLogWatch, LogClient, LogMonitor
from blindmatch.protocol import canonical
from blindmatch.protocol import transparency as tl
from blindmatch.protocol.roster import Member

START = 1_800_000_000
KEY = signing.SigningKey(bytes(range(32)))
OTHER_KEY = signing.SigningKey(bytes(range(1, 33)))


def rid(rng: random.Random) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(16))


def random_entry(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(["match", "decision", "feedback", "appeal", "query-counts"])
    if kind == "match":
        return {
            "kind": "match",
            "match_id": rid(rng),
            "peer": rng.choice(["hub", "plat-b"]),
            "role": "querier",
            "item_ref": rid(rng),
            "signal_type": "pdq",
            "band": rng.choice([8, 16, 31]),
        }
    if kind == "decision":
        return {
            "kind": "decision",
            "decision_id": rid(rng),
            "match_id": rid(rng),
            "outcome": rng.choice(["actioned", "dismissed", "escalated"]),
            "decided_by": "reviewer",
        }
    if kind == "feedback":
        return {
            "kind": "feedback",
            "feedback_id": rid(rng),
            "peer": "hub",
            "direction": rng.choice(["sent", "received"]),
            "item_ref": rid(rng),
            "opinion": rng.choice(["confirm", "dispute", "withdraw"]),
        }
    if kind == "appeal":
        return {
            "kind": "appeal",
            "appeal_id": rid(rng),
            "decision_id": rid(rng),
            "status": "opened",
        }
    return {
        "kind": "query-counts",
        "peer": "hub",
        "direction": "sent",
        "window_start_ms": START * 1000,
        "window_ms": 3_600_000,
        "queries": rng.randrange(100),
        "candidates": rng.randrange(1000),
    }


async def fill(log: TransparencyLog, n: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    for _ in range(n):
        await log.append(random_entry(rng))


@pytest.fixture
def fclock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
async def tlog(db: Database, fclock: FixedClock) -> TransparencyLog:
    log = TransparencyLog(TranslogStore(db), "node-a", KEY, fclock)
    await log.load()
    return log


async def sqlite_db(path: Path) -> Database:
    return await open_database(f"sqlite:///{path}", migrate_now=START)


class Server:
    """The log API of one TransparencyLog on a real loopback socket."""

    def __init__(self, log: TransparencyLog) -> None:
        self.log = log
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> Server:
        app = web.Application()
        app.add_routes(build_log_routes(self.log))
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def served(tmp_path: Path, fclock: FixedClock) -> AsyncIterator[Server]:
    db = await sqlite_db(tmp_path / "a.db")
    log = TransparencyLog(TranslogStore(db), "node-a", KEY, fclock)
    await fill(log, 21)
    await log.sign_head()
    server = await Server(log).start()
    server.db = db  # type: ignore[attr-defined]  # for a test that tampers with the stored log
    yield server
    await server.stop()
    await db.close()


def member(node_id: str, key: signing.SigningKey, endpoint: str) -> Member:
    return Member(node_id, key.public_key, None, endpoint, ("platform",), {})


# --- storage, proofs, restart (both backends) -----------------------------------------------


async def test_append_sign_and_every_proof_verifies(tlog: TransparencyLog) -> None:
    rng = random.Random(5)
    heads = [await tlog.sign_head()]
    assert heads[0].tree_size == 0 and heads[0].root_hash == tl.EMPTY_ROOT
    for batch in (1, 2, 5, 9, 16):
        for _ in range(batch):
            await tlog.append(random_entry(rng))
        heads.append(await tlog.sign_head())
    n = heads[-1].tree_size
    assert n == 33 and await tlog.size() == 33
    stored = await tlog.all_entries()
    assert [e.index for e in stored] == list(range(n))
    assert tl.MerkleTree.from_entries([e.entry for e in stored]).root() == heads[-1].root_hash
    for head in heads:
        tl.verify_tree_head(head.to_bytes(), KEY.public_key)
        for e in stored[: head.tree_size]:
            path = await tlog.inclusion_proof(e.index, head.tree_size)
            tl.verify_inclusion(
                tl.leaf_hash(e.entry), e.index, head.tree_size, path, head.root_hash
            )
        for later in heads:
            if later.tree_size > head.tree_size:
                proof = await tlog.consistency_proof(head.tree_size, later.tree_size)
                tl.check_heads_consistent(head, later, proof)
    assert [h.tree_size for h in await tlog.heads()] == [0, 1, 3, 8, 17, 33]
    assert (await tlog.head_at(8)) == heads[3]
    audit = await tlog.verify_stored()
    assert audit.tree_size == 33 and sum(audit.kinds.values()) == 33
    with pytest.raises(tl.RangeError):
        await tlog.inclusion_proof(33, 33)
    with pytest.raises(tl.RangeError):
        await tlog.consistency_proof(3, 34)


async def test_refuses_anything_outside_the_entry_schemas(tlog: TransparencyLog) -> None:
    good = {
        "kind": "appeal",
        "appeal_id": os.urandom(16),
        "decision_id": os.urandom(16),
        "status": "opened",
    }
    bad = [
        {**good, "hash": os.urandom(32)},  # a hash: never
        {**good, "appeal_id": os.urandom(32)},  # 32 bytes where 16 go
        {**good, "kind": "pdq-hash"},
        {**good, "status": "maybe"},
        {"kind": "match", "match_id": os.urandom(16)},  # fields missing
        "not a map",
    ]
    for entry in bad:
        with pytest.raises(tl.EntryError):
            await tlog.append(entry)
    assert await tlog.size() == 0
    assert await tlog.append(good) == 0
    assert tl.decode_entry((await tlog.entries(0, 1))[0].entry)["time_ms"] == START * 1000


async def test_restart_reloads_the_same_tree_and_time_never_goes_back(
    db: Database, tlog: TransparencyLog, fclock: FixedClock
) -> None:
    await fill(tlog, 13)
    head = await tlog.sign_head()
    again = TransparencyLog(TranslogStore(db), "node-a", KEY, fclock)
    await again.load()
    assert await again.size() == 13 and await again.root() == head.root_hash
    assert await again.latest_head() == head
    fclock.set(START - 3600)  # the wall clock stepped back
    later = await again.sign_head()
    assert later.root_hash == head.root_hash and later.timestamp_ms >= head.timestamp_ms
    tl.TreeHeadMonitor("node-a", KEY.public_key, [head]).observe(later)


async def test_appends_are_serialised_and_a_rolled_back_append_leaves_nothing(
    db: Database, tlog: TransparencyLog
) -> None:
    rng = random.Random(9)
    entries = [random_entry(rng) for _ in range(40)]
    seqs = await asyncio.gather(*(tlog.append(e) for e in entries))
    assert sorted(seqs) == list(range(40))
    await tlog.sign_head()  # the cache now holds 40 leaves

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        async with db.transaction():
            await tlog.append(entries[0])
            assert await tlog.size() in (40, 41)  # may see its own uncommitted row
            raise Abort
    assert await tlog.size() == 40
    head = await tlog.sign_head()
    assert head.tree_size == 40
    await tlog.verify_stored()


async def test_tampering_with_a_stored_entry_is_detected_naming_the_index(
    db: Database, tlog: TransparencyLog, fclock: FixedClock, tmp_path: Path
) -> None:
    await fill(tlog, 12)
    early = await tlog.sign_head()
    await fill(tlog, 8, seed=2)
    await tlog.sign_head()
    forged = tl.encode_entry(
        {
            "kind": "appeal",
            "appeal_id": bytes(16),
            "decision_id": bytes(16),
            "status": "decision-upheld",
            "time_ms": START * 1000,
        }
    )
    await db.execute("UPDATE log_entries SET entry = ? WHERE seq = ?", forged, 14)
    with pytest.raises(tl.TamperedEntryError) as caught:
        await tlog.verify_stored()
    assert caught.value.index == 14

    # The exported log and the offline audit name it too.
    (tmp_path / "log.jsonl").write_text("\n".join(await tlog.export_jsonl()) + "\n")
    head = await tlog.latest_head()
    assert head is not None
    (tmp_path / "sth.hex").write_text(head.to_bytes().hex())
    out = io.StringIO()
    status = cmd_audit.verify(
        tmp_path / "log.jsonl", tmp_path / "sth.hex", KEY.public_key.hex(), [], out
    )
    assert status == 1 and "FAIL [tampered-entry] entry 14" in out.getvalue()

    # Altering the stored leaf hash as well: the node refuses to sign over the altered history.
    await db.execute("UPDATE log_entries SET leaf_hash = ? WHERE seq = ?", tl.leaf_hash(forged), 14)
    restarted = TransparencyLog(TranslogStore(db), "node-a", KEY, fclock)
    with pytest.raises(LogIntegrityError, match="no longer hash to the signed head"):
        await restarted.load()
    # ... and an auditor holding the earlier head narrows it down to entries after it.
    (tmp_path / "log.jsonl").write_text("\n".join(await tlog.export_jsonl()) + "\n")
    (tmp_path / "early.hex").write_text(early.to_bytes().hex())
    out = io.StringIO()
    lines = [json.loads(x)["entry"] for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    (tmp_path / "plain.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    status = cmd_audit.verify(
        tmp_path / "plain.jsonl",
        tmp_path / "sth.hex",
        KEY.public_key.hex(),
        [tmp_path / "early.hex"],
        out,
    )
    assert status == 1 and "root-mismatch" in out.getvalue() and "12..19" in out.getvalue()


async def test_schema_is_idempotent_and_the_migration_matches(tmp_path: Path) -> None:
    db = await sqlite_db(tmp_path / "m.db")
    try:
        await ensure_schema(db)
        await ensure_schema(db)
        assert TRANSPARENCY_SCHEMA.version == 4
        async with db.transaction():  # the migration's statements run on existing tables
            for s in TRANSPARENCY_SCHEMA.statements:
                await db.execute(db.dialect.render(s))
    finally:
        await db.close()


# --- HTTP API ---------------------------------------------------------------------------------


async def test_http_endpoints_serve_heads_proofs_and_entries(served: Server) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(served.url + "/log/v1/sth") as r:
            assert r.status == 200
            body = await r.json()
        head = tl.verify_tree_head(bytes.fromhex(body["sth"]), KEY.public_key)
        assert body["tree_size"] == head.tree_size == 21
        assert body["root_hash"] == head.root_hash.hex() and body["log_id"] == "node-a"
        async with s.get(served.url + "/log/v1/sth/21") as r:
            assert (await r.json())["sth"] == body["sth"]
        async with s.get(served.url + "/log/v1/sth/5") as r:
            assert r.status == 404 and (await r.json())["error"] == "no-tree-head"
        async with s.get(served.url + "/log/v1/entries", params={"start": "3", "end": "7"}) as r:
            page = await r.json()
        assert [e["index"] for e in page["entries"]] == [3, 4, 5, 6]
        async with s.get(
            served.url + "/log/v1/proof/inclusion", params={"index": "4", "size": "21"}
        ) as r:
            proof = await r.json()
        tl.verify_inclusion(
            tl.leaf_hash(bytes.fromhex(page["entries"][1]["entry"])),
            4,
            21,
            [bytes.fromhex(h) for h in proof["path"]],
            head.root_hash,
        )
        bad = [
            ("/log/v1/proof/inclusion", {"index": "x", "size": "21"}, 400, "bad-request"),
            ("/log/v1/proof/inclusion", {"index": "-1", "size": "21"}, 400, "bad-request"),
            ("/log/v1/proof/inclusion", {"size": "21"}, 400, "bad-request"),
            ("/log/v1/proof/inclusion", {"index": "21", "size": "21"}, 400, "bad-request"),
            ("/log/v1/proof/inclusion", {"index": "1", "size": "99"}, 404, "out-of-range"),
            ("/log/v1/proof/consistency", {"first": "9", "second": "3"}, 400, "bad-request"),
            ("/log/v1/proof/consistency", {"first": "3", "second": "1" * 30}, 400, "bad-request"),
            ("/log/v1/proof/consistency", {"first": "3", "second": "22"}, 404, "out-of-range"),
            ("/log/v1/entries", {"start": "9", "end": "3"}, 400, "bad-request"),
            ("/log/v1/entries", {"start": "50"}, 404, "out-of-range"),
            ("/log/v1/sth/abc", {}, 400, "bad-request"),
        ]
        for path, params, status, code in bad:
            async with s.get(served.url + path, params=params) as r:
                assert r.status == status, (path, params)
                assert (await r.json())["error"] == code
    async with LogClient(served.url) as client:
        proof = await client.consistency(7, 21)
        assert len(await client.entries(0, 21)) == 21
    tl.verify_consistency(7, 21, await served.log.root(7), head.root_hash, proof)


async def test_no_head_yet_is_a_clear_404(tmp_path: Path, fclock: FixedClock) -> None:
    db = await sqlite_db(tmp_path / "e.db")
    server = await Server(TransparencyLog(TranslogStore(db), "node-e", KEY, fclock)).start()
    try:
        async with aiohttp.ClientSession() as s, s.get(server.url + "/log/v1/sth") as r:
            assert r.status == 404 and (await r.json())["error"] == "no-tree-head"
    finally:
        await server.stop()
        await db.close()


# --- live audit -------------------------------------------------------------------------------


async def test_audit_of_a_live_node_ok_previous_head_and_tampering(
    served: Server, tmp_path: Path
) -> None:
    previous = await served.log.latest_head()
    assert previous is not None
    await fill(served.log, 10, seed=3)
    await served.log.sign_head()
    out = io.StringIO()
    status, _head = await cmd_audit.audit_url(
        served.url, KEY.public_key, [previous.to_bytes()], out=out
    )
    assert status == 0, out.getvalue()
    assert "OK log node-a" in out.getvalue() and "31 entries" in out.getvalue()
    assert "extends 1 previous head(s) (sizes 21)" in out.getvalue()

    # A head signed by someone else's key is refused.
    out = io.StringIO()
    status, _ = await cmd_audit.audit_url(served.url, OTHER_KEY.public_key, [], out=out)
    assert status == 1 and "bad-tree-head-signature" in out.getvalue()

    forged = tl.encode_entry(
        {
            "kind": "appeal",
            "appeal_id": bytes(16),
            "decision_id": bytes(16),
            "status": "decision-overturned",
            "time_ms": 1,
        }
    )
    await served.db.execute("UPDATE log_entries SET entry = ? WHERE seq = 6", forged)
    out = io.StringIO()
    status, _ = await cmd_audit.audit_url(served.url, KEY.public_key, [], out=out)
    assert status == 1 and "FAIL [tampered-entry] entry 6" in out.getvalue()


async def test_audit_of_a_live_node_detects_a_fork_against_a_previous_head(
    served: Server, tmp_path: Path, fclock: FixedClock
) -> None:
    # The same node (same key) signed another history of the same size for someone else.
    db = await sqlite_db(tmp_path / "fork.db")
    fork = TransparencyLog(TranslogStore(db), "node-a", KEY, fclock)
    await fill(fork, 21, seed=77)
    other = await fork.sign_head()
    out = io.StringIO()
    status, _ = await cmd_audit.audit_url(served.url, KEY.public_key, [other.to_bytes()], out=out)
    assert status == 1 and "FAIL [fork]" in out.getvalue()
    evidence = json.loads(out.getvalue().split("evidence: ", 1)[1])
    assert {evidence["first"], evidence["second"]} == {
        other.to_bytes().hex(),
        (await served.log.latest_head()).to_bytes().hex(),
    }
    # A previous head larger than what the node now serves: a rollback.
    await fill(fork, 5, seed=78)
    bigger = await fork.sign_head()
    out = io.StringIO()
    status, _ = await cmd_audit.audit_url(served.url, KEY.public_key, [bigger.to_bytes()], out=out)
    assert status == 1 and "FAIL [rollback]" in out.getvalue()
    await db.close()


# --- monitoring peers ---------------------------------------------------------------------------


async def test_monitor_follows_a_growing_log_and_remembers_across_restarts(
    served: Server, tmp_path: Path, fclock: FixedClock
) -> None:
    db = await sqlite_db(tmp_path / "b.db")
    peer = member("node-a", KEY, served.url)
    mon = LogMonitor(TranslogStore(db), peer, fclock)
    assert (await mon.check()).tree_size == 21
    fclock.advance(60)
    await fill(served.log, 6, seed=4)
    await served.log.sign_head()
    assert (await mon.check()).tree_size == 27
    await mon.client.close()
    again = LogMonitor(TranslogStore(db), peer, fclock)
    await again.load()
    assert again.latest is not None and again.latest.tree_size == 27
    assert await again.incidents() == []
    await again.client.close()
    await db.close()


async def test_monitor_reports_forks_and_rollbacks_with_both_heads(
    served: Server, tmp_path: Path, fclock: FixedClock
) -> None:
    db = await sqlite_db(tmp_path / "b.db")
    mon = LogMonitor(TranslogStore(db), member("node-a", KEY, served.url), fclock)
    seen = await mon.check()
    # The node shows another history of the same size (same key): a fork.
    fork_db = await sqlite_db(tmp_path / "fork.db")
    fork_log = TransparencyLog(TranslogStore(fork_db), "node-a", KEY, fclock)
    await fill(fork_log, 21, seed=99)
    fork_server = await Server(fork_log).start()
    await fork_log.sign_head()
    mon.client.base_url = fork_server.url
    with pytest.raises(tl.ForkError) as caught:
        await mon.check()
    heads = {caught.value.first.to_bytes(), caught.value.second.to_bytes()}
    assert seen.to_bytes() in heads and len(heads) == 2
    # A larger tree that does not extend what we saw: a fork too (no consistency proof).
    await fill(fork_log, 9, seed=100)
    await fork_log.sign_head()
    with pytest.raises(tl.ForkError, match="not shown to extend"):
        await mon.check()
    # Back to the real log, which has not grown since: it presents its head again (fine);
    # then a node that serves a smaller head than before: rollback.
    mon.client.base_url = served.url
    assert (await mon.check()).tree_size == 21
    small_db = await sqlite_db(tmp_path / "small.db")
    small = TransparencyLog(TranslogStore(small_db), "node-a", KEY, fclock)
    await fill(small, 4)  # same first entries as the real log: a consistent prefix
    small_server = await Server(small).start()
    await small.sign_head()
    mon.client.base_url = small_server.url
    with pytest.raises(tl.RollbackError) as rolled:
        await mon.check()
    assert rolled.value.previous.tree_size == 21 and rolled.value.presented.tree_size == 4
    # A head signed by another key.
    impostor_db = await sqlite_db(tmp_path / "imp.db")
    impostor = TransparencyLog(TranslogStore(impostor_db), "node-a", OTHER_KEY, fclock)
    await fill(impostor, 30)
    await impostor.sign_head()
    imp_server = await Server(impostor).start()
    mon.client.base_url = imp_server.url
    with pytest.raises(tl.TreeHeadSignatureError):
        await mon.check()
    incidents = await mon.incidents()
    assert [i["code"] for i in incidents] == ["fork", "fork", "rollback", "bad-tree-head-signature"]
    assert incidents[0]["evidence"]["first"] != incidents[0]["evidence"]["second"]
    assert incidents[2]["evidence"]["previous"] == seen.to_bytes().hex()
    # Nothing refused was remembered: the latest head is still the real one.
    assert mon.latest == seen
    for s in (fork_server, small_server, imp_server):
        await s.stop()
    await mon.client.close()
    for d in (db, fork_db, small_db, impostor_db):
        await d.close()


async def test_gossip_catches_a_log_showing_different_histories_to_different_peers(
    served: Server, tmp_path: Path, fclock: FixedClock
) -> None:
    # node-a shows node-c a forked history (same size, other root), node-b the real one.
    fork_db = await sqlite_db(tmp_path / "fork.db")
    fork_log = TransparencyLog(TranslogStore(fork_db), "node-a", KEY, fclock)
    await fill(fork_log, 21, seed=55)
    await fork_log.sign_head()
    fork_server = await Server(fork_log).start()
    c_db = await sqlite_db(tmp_path / "c.db")
    c_key = signing.SigningKey(bytes(range(2, 34)))
    c_log = TransparencyLog(TranslogStore(c_db), "node-c", c_key, fclock)
    await c_log.sign_head()
    c_server = await Server(c_log).start()
    c_watch = LogMonitor(TranslogStore(c_db), member("node-a", KEY, fork_server.url), fclock)
    await c_watch.check()  # node-c accepted the forked head and now witnesses it
    await c_watch.client.close()

    b_db = await sqlite_db(tmp_path / "b.db")
    watch = FederationLogWatch(
        TranslogStore(b_db),
        [member("node-a", KEY, served.url), member("node-c", c_key, c_server.url)],
        fclock,
    )
    result = await watch.check_all()
    assert result["node-c"] == "ok size 0" or result["node-c"].startswith("ok")
    assert result["node-a"].startswith("fork:") and "gossip via node-c" in result["node-a"]
    incidents = await watch.monitors["node-a"].incidents()
    assert incidents and incidents[-1]["code"] == "fork"
    await watch.close()
    for s in (fork_server, c_server):
        await s.stop()
    for d in (fork_db, c_db, b_db):
        await d.close()


# --- hooks --------------------------------------------------------------------------------------


async def test_hooks_build_exact_entries_and_counts_flush_per_window(
    tmp_path: Path, fclock: FixedClock
) -> None:
    db = await sqlite_db(tmp_path / "h.db")
    log = TransparencyLog(TranslogStore(db), "node-a", KEY, fclock)
    feeds = FeedLog(db)
    payload = canonical.encode(
        {"scheme": "pdq-lsh-1", "key_id": bytes(8), "entries": os.urandom(24 * 5)}
    )
    async with db.transaction():
        fe = await feeds.append("index", os.urandom(16), "index.add", payload, START)
        await log_index_publication(log, fe)
    entry = tl.decode_entry((await log.entries(0, 1))[0].entry)
    assert entry["entries_added"] == 5 and entry["seq_from"] == entry["seq_to"] == 1
    served_page = [{"seq": 1, "id": fe.entry_id, "kind": "index.add", "payload": payload}]
    import hashlib

    assert entry["digest"] == hashlib.sha256(canonical.encode(served_page)).digest()
    assert feed_digest([fe]) == entry["digest"]
    with pytest.raises(ValueError):
        index_publication_entry([])

    mid = match_id_for(b"j" * 16, "hub", b"i" * 16, 3)
    assert mid == match_id_for(b"j" * 16, "hub", b"i" * 16, 3) and len(mid) == 16
    assert mid != match_id_for(b"j" * 16, "hub", b"i" * 16, 4)
    await log_match(log, match_id=mid, peer="hub", item_ref=b"i" * 16, band=16)
    await log_decision(
        log,
        decision_id=b"d" * 16,
        match_id=mid,
        outcome="actioned",
        decided_by="policy",
        policy="very-close",
    )
    await log_appeal(log, appeal_id=b"a" * 16, decision_id=b"d" * 16, status="opened")
    await log_feedback(
        log,
        feedback_id=b"f" * 16,
        peer="hub",
        direction="sent",
        item_ref=b"i" * 16,
        opinion="confirm",
    )

    counts = TrafficCounts(TranslogStore(db))
    now = START * 1000
    await counts.record("hub", "evaluations", "received", 1, 64, now)
    await counts.record("hub", "evaluations", "received", 2, 100, now + 1000)
    await counts.record("hub", "queries", "sent", 1, 7, now)
    assert await counts.flush(log, now + 2000) == 0  # the window has not ended
    assert await counts.flush(log, now - now % 3_600_000 + 3_600_000) == 2
    assert await counts.flush(log, now + 10 * 3_600_000) == 0
    kinds = [tl.decode_entry(e.entry) for e in await log.all_entries()]
    evals = next(e for e in kinds if e["kind"] == "evaluation-counts")
    assert (evals["requests"], evals["evaluations"], evals["direction"]) == (3, 164, "received")
    assert [e["kind"] for e in kinds][:5] == [
        "index-publication",
        "match",
        "decision",
        "appeal",
        "feedback",
    ]
    await log.sign_head()
    await log.verify_stored()
    await db.close()


# --- the report -----------------------------------------------------------------------------------


async def synthetic_federation_log(db: Database, clock: FixedClock) -> TransparencyLog:
    """Six weeks of a platform's log: matches, decisions, appeals, feedback, counts."""
    log = TransparencyLog(TranslogStore(db), "platform-a", KEY, clock)
    rng = random.Random(2026)
    counts = TrafficCounts(TranslogStore(db))
    t0 = START
    for day in range(42):
        clock.set(t0 + day * 86400)
        for _ in range(rng.randrange(1, 6)):
            mid = rid(rng)
            await log_match(
                log,
                match_id=mid,
                peer=rng.choice(["hub", "platform-b"]),
                item_ref=rid(rng),
                band=rng.choice([8, 16, 31]),
            )
            auto = rng.random() < 0.5
            did = rid(rng)
            await log_decision(
                log,
                decision_id=did,
                match_id=mid,
                outcome=rng.choice(["actioned", "actioned", "dismissed", "escalated"]),
                decided_by="policy" if auto else "reviewer",
                policy="close-trusted" if auto else None,
            )
            if rng.random() < 0.3:
                await log_appeal(log, appeal_id=(aid := rid(rng)), decision_id=did, status="opened")
                await log_appeal(
                    log,
                    appeal_id=aid,
                    decision_id=did,
                    status=rng.choice(["decision-upheld", "decision-overturned"]),
                )
            await log_feedback(
                log,
                feedback_id=rid(rng),
                peer="hub",
                direction="sent",
                item_ref=rid(rng),
                opinion=rng.choice(["confirm", "dispute"]),
            )
        if rng.random() < 0.2:
            await log_feedback(
                log,
                feedback_id=rid(rng),
                peer="hub",
                direction="received",
                item_ref=rid(rng),
                opinion="withdraw",
            )
        await counts.record("hub", "evaluations", "sent", 3, 300, clock.now() * 1000)
        await counts.record("platform-b", "evaluations", "received", 2, 90, clock.now() * 1000)
        await counts.record("hub", "queries", "sent", 1, 12, clock.now() * 1000)
        await counts.flush(log, clock.now() * 1000)
        await log.append(
            {
                "kind": "index-publication",
                "feed": "index",
                "key_id": bytes(8),
                "seq_from": day + 1,
                "seq_to": day + 1,
                "digest": bytes(32),
                "entries_added": 24 * rng.randrange(1, 9),
                "entries_removed": 24 * (rng.random() < 0.1),
            }
        )
    await log.sign_head()
    return log


async def test_report_from_a_synthetic_log_counts_everything_and_draws_plots(
    tmp_path: Path, fclock: FixedClock
) -> None:
    db = await sqlite_db(tmp_path / "r.db")
    log = await synthetic_federation_log(db, fclock)
    stored = await log.all_entries()
    head = await log.latest_head()
    assert head is not None
    decoded = [tl.decode_entry(e.entry) for e in stored]
    built = report.build_report([e.entry for e in stored], head.to_bytes(), KEY.public_key)
    t = built.totals
    assert sum(t.matches.values()) == sum(1 for e in decoded if e["kind"] == "match")
    assert t.appeals["decision-overturned"] == sum(
        1 for e in decoded if e.get("status") == "decision-overturned"
    )
    closed = t.appeals["decision-upheld"] + t.appeals["decision-overturned"]
    assert t.overturn_rate == pytest.approx(t.appeals["decision-overturned"] / closed)
    assert len(built.periods) in (6, 7)  # 42 days in ISO weeks
    assert built.traffic[("hub", "sent")].evaluations == 300 * 41
    assert built.unlinked == {}  # every decision follows its match, every appeal its decision
    by = built.overturns_by_decider
    assert sum(v["decision-overturned"] for v in by.values()) == t.appeals["decision-overturned"]
    paths = report.write_report(built, tmp_path / "out")
    names = {p.name for p in paths}
    assert {
        "report.md",
        "report.json",
        "matches.png",
        "decisions.png",
        "appeals.png",
        "feedback.png",
        "index.png",
        "traffic.png",
    } <= names
    for p in paths:
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    md = (tmp_path / "out" / "report.md").read_text()
    assert head.root_hash.hex() in md and f"**{head.tree_size}**" in md and "verified" in md
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data["tree_head"]["sth"] == head.to_bytes().hex()
    # Rebuilding from the same log gives the same report (day periods too).
    again = report.build_report([e.entry for e in stored], head.to_bytes(), KEY.public_key)
    assert again.to_json() == built.to_json()
    assert (
        len(
            report.build_report(
                [e.entry for e in stored], head, KEY.public_key, period="day"
            ).periods
        )
        == 42
    )

    # From an export on the command line; a tampered export gets no report.
    (tmp_path / "log.jsonl").write_text("\n".join(await log.export_jsonl()) + "\n")
    (tmp_path / "sth.hex").write_text(head.to_bytes().hex())
    assert (
        cli_main(
            [
                "report",
                "--log",
                str(tmp_path / "log.jsonl"),
                "--sth",
                str(tmp_path / "sth.hex"),
                "--key",
                KEY.public_key.hex(),
                "--out",
                str(tmp_path / "cli"),
                "--period",
                "month",
            ]
        )
        == 0
    )
    assert (tmp_path / "cli" / "appeals.png").exists()
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    victim = json.loads(lines[10])
    victim["entry"] = tl.encode_entry(
        {
            "kind": "appeal",
            "appeal_id": bytes(16),
            "decision_id": bytes(16),
            "status": "opened",
            "time_ms": 5,
        }
    ).hex()
    lines[10] = json.dumps(victim)
    (tmp_path / "log.jsonl").write_text("\n".join(lines) + "\n")
    out = io.StringIO()
    entries, stored_hashes = cmd_audit.read_export(tmp_path / "log.jsonl")
    status = cmd_report.make_report(
        entries, stored_hashes, head.to_bytes(), KEY.public_key, tmp_path / "bad", out=out
    )
    assert status == 1 and "tampered-entry" in out.getvalue() and "entry 10" in out.getvalue()
    assert not (tmp_path / "bad").exists()
    await db.close()


# --- the command line against a live node (server in its own thread and loop) ---------------


@pytest.fixture
def live_node(tmp_path: Path) -> Iterator[tuple[str, TransparencyLog, asyncio.AbstractEventLoop]]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def setup() -> None:
        clock = FixedClock(START)
        db = await sqlite_db(tmp_path / "live.db")
        log = await synthetic_federation_log(db, clock)
        server = await Server(log).start()
        state.update(db=db, log=log, server=server)

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(setup())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(60)
    yield state["server"].url, state["log"], loop

    async def teardown() -> None:
        await state["server"].stop()
        await state["db"].close()

    asyncio.run_coroutine_threadsafe(teardown(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)


def test_cli_audit_and_report_against_a_live_node(
    live_node: tuple[str, TransparencyLog, asyncio.AbstractEventLoop],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, log, loop = live_node
    key = KEY.public_key.hex()
    saved = tmp_path / "seen.hex"
    assert cli_main(["audit", "verify", "--url", url, "--key", key, "--save-sth", str(saved)]) == 0
    assert "OK log platform-a" in capsys.readouterr().out
    asyncio.run_coroutine_threadsafe(fill(log, 3), loop).result(30)
    asyncio.run_coroutine_threadsafe(log.sign_head(), loop).result(30)
    assert (
        cli_main(["audit", "verify", "--url", url, "--key", key, "--previous-sth", str(saved)]) == 0
    )
    assert "extends 1 previous head(s)" in capsys.readouterr().out
    assert cli_main(["report", "--url", url, "--key", key, "--out", str(tmp_path / "rep")]) == 0
    assert "signature verified" in capsys.readouterr().out
    assert (tmp_path / "rep" / "report.md").exists() and (tmp_path / "rep" / "matches.png").exists()
    assert cli_main(["audit", "verify", "--url", "http://127.0.0.1:9", "--key", key]) == 2
    assert cli_main(["audit", "verify", "--url", url, "--key", key, "--sth", "x"]) == 2


async def test_demo_run_reports_both_logs_from_a_real_federation(tmp_path: Path) -> None:
    from blindmatch.node.devtools.translog_demo import run_demo

    out = io.StringIO()
    assert await run_demo(tmp_path / "demo", days=3, out=out) == 0, out.getvalue()
    platform = json.loads((tmp_path / "demo" / "platform-a" / "report.json").read_text())
    hub = json.loads((tmp_path / "demo" / "hub" / "report.json").read_text())
    assert platform["totals"]["matches"] > 0
    assert platform["totals"]["matches"] == sum(platform["totals"]["decisions"].values())
    assert hub["totals"]["index_publications"] > 0 and hub["totals"]["matches"] == 0
    sent = sum(platform["totals"]["feedback_sent"].values())
    assert sent == sum(hub["totals"]["feedback_received"].values()) > 0
    assert (tmp_path / "demo" / "platform-a" / "matches.png").exists()
    assert (tmp_path / "demo" / "hub" / "index.png").exists()
    assert not (tmp_path / "demo" / "hub" / "matches.png").exists()  # no empty charts
    # The files written next to the report rebuild it offline.
    target = tmp_path / "demo" / "platform-a"
    assert (
        cli_main(
            ["report", "--log", str(target / "log.jsonl"), "--sth", str(target / "sth.hex"),
             "--key", (target / "key.hex").read_text().strip(), "--out", str(tmp_path / "again"),
             "--no-plots"]
        )
        == 0
    )  # fmt: skip
    again = json.loads((tmp_path / "again" / "report.json").read_text())
    assert again == platform


async def test_report_flags_decisions_and_appeals_that_name_unknown_ids(
    tmp_path: Path, fclock: FixedClock
) -> None:
    db = await sqlite_db(tmp_path / "u.db")
    log = TransparencyLog(TranslogStore(db), "platform-a", KEY, fclock)
    mid, did = b"m" * 16, b"d" * 16
    await log_match(log, match_id=mid, peer="hub", item_ref=b"i" * 16, band=8)
    await log_decision(log, decision_id=did, match_id=mid, outcome="actioned", decided_by="policy")
    await log_appeal(log, appeal_id=b"a" * 16, decision_id=did, status="opened")
    await log_decision(
        log, decision_id=b"e" * 16, match_id=b"x" * 16, outcome="dismissed", decided_by="reviewer"
    )
    await log_appeal(log, appeal_id=b"b" * 16, decision_id=b"y" * 16, status="decision-upheld")
    head = await log.sign_head()
    built = report.build_report([e.entry for e in await log.all_entries()], head, KEY.public_key)
    assert built.unlinked == {"decision-without-match": 1, "appeal-without-decision": 1}
    assert "appeal-without-decision | 1" in report.render_markdown(built)
    await db.close()


def test_export_from_the_database_locates_a_tampered_entry(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"

    async def build() -> None:
        db = await open_database(url, migrate_now=START)
        log = TransparencyLog(TranslogStore(db), "node-x", KEY, FixedClock(START))
        await fill(log, 9)
        await log.sign_head()
        await fill(log, 7, seed=8)
        await log.sign_head()
        forged = tl.encode_entry(
            {"kind": "appeal", "appeal_id": bytes(16), "decision_id": bytes(16),
             "status": "opened", "time_ms": 3}
        )  # fmt: skip
        await db.execute("UPDATE log_entries SET entry = ? WHERE seq = 11", forged)
        await db.close()

    asyncio.run(build())
    out = tmp_path / "export"
    assert cli_main(["audit", "export", "--database", url, "--node-id", "node-x",
                     "--out", str(out)]) == 0  # fmt: skip
    assert (out / "sth-9.hex").exists()
    report_out = io.StringIO()
    status = cmd_audit.verify(
        out / "log.jsonl", out / "sth.hex", KEY.public_key.hex(), [out / "sth-9.hex"], report_out
    )
    assert status == 1 and "FAIL [tampered-entry] entry 11" in report_out.getvalue()


async def test_real_nodes_serve_their_logs_to_auditors_and_monitors(tmp_path: Path) -> None:
    from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec
    from blindmatch.protocol.matching import QueryHash

    clock = FixedClock(START)
    fed = await LocalFederation(tmp_path, clock=clock, background=False).start(
        [NodeSpec("hub", ("hub",)), NodeSpec("platform-a", holds_index=False)]
    )
    try:
        hub, plat = fed["hub"], fed["platform-a"]
        await hub.banks.create_bank("ncii", provenance="survivor-submitted", shared=True)
        protected = [os.urandom(32) for _ in range(5)]
        for h in protected:
            await hub.banks.add_item("ncii", "pdq", h)
        await hub.node.publisher.reconcile()
        job = await plat.node.querier.submit([QueryHash(protected[0])])
        while await plat.node.delivery.process_due():
            pass
        assert (await plat.node.querier.job_status(job)).results
        await hub.node.sync.sign_log_head()
        await plat.node.sync.sign_log_head()

        # An auditor checks each node at its federation endpoint.
        for node in (hub, plat):
            out = io.StringIO()
            key = node.node.keys.identity.public_key
            status, _ = await cmd_audit.audit_url(node.endpoint, key, [], out=out)
            assert status == 0, out.getvalue()
        # The platform watches the hub's log; the hub grows; the platform follows it.
        watch = FederationLogWatch(TranslogStore(plat.node.db), plat.node.peers(), clock)
        first = await watch.check_all()
        assert first["hub"].startswith("ok size")
        await hub.banks.add_item("ncii", "pdq", os.urandom(32))
        await hub.node.publisher.reconcile()
        clock.advance(60)
        await hub.node.sync.sign_log_head()
        second = await watch.check_all()
        assert second["hub"].startswith("ok size") and second["hub"] != first["hub"]
        await watch.close()
        kinds = [tl.decode_entry(e.entry)["kind"] for e in await plat.node.translog.all_entries()]
        assert "match" in kinds and "roster" in kinds
    finally:
        await fed.stop()
