"""A peer's message that meets a locked database gets a signed refusal to retry, not an unsigned
500: found by ``./dev bench load`` (a ``blindmatch bank import`` of 100k hashes beside the
running hub held SQLite's write lock past the busy timeout; the nonce write of a peer's
request failed before any handler and the platform read aiohttp's plain 500 as a bad
envelope from the hub)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec
from blindmatch.node.federation.http import STORAGE_UNAVAILABLE
from blindmatch.node.federation.peer_client import PeerError
from blindmatch.node.storage import sqlite as sqlite_backend


async def test_a_locked_database_gives_a_signed_retryable_refusal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite's own busy wait, shortened so the test does not wait 10 s for it.
    monkeypatch.setattr(sqlite_backend, "BUSY_TIMEOUT_MS", 200)
    fed = await LocalFederation(tmp_path, background=False).start(
        [NodeSpec("hub", ("hub",)), NodeSpec("platform", holds_index=False)]
    )
    pull = {"feed": "index", "after": 0, "limit": 10}
    try:
        platform = fed["platform"].node
        hub = platform.roster.member("hub")
        assert hub is not None
        # Another process's writer (a bank import) holds the hub's write lock.
        other = sqlite3.connect(tmp_path / "hub" / "node.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(PeerError) as refused:
                await platform.client.call(hub, "feed.pull", pull)
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert refused.value.code == "internal"
        assert STORAGE_UNAVAILABLE in refused.value.detail
        assert refused.value.retry_after_ms == 5_000
        # Once the lock is gone the same request is answered.
        reply = await platform.client.call(hub, "feed.pull", pull)
        assert reply.type == "feed.page"
    finally:
        await fed.stop()
