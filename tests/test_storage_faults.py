"""Storage faults a person can read: a node refuses to start on an empty database where its
home says it ran on one with history (unless told to start over); a corrupt or unreachable
database is one line and a non-zero exit at the CLI; at the API, 503 storage-unavailable."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from blindmatch.node.config import NodeConfig
from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec
from blindmatch.node.runtime import HistoryError, check_history, record_history
from blindmatch.node.storage import open_database


async def test_an_empty_database_where_the_home_records_history_is_refused(tmp_path: Path) -> None:
    cfg = NodeConfig(node_id="hub", home=tmp_path, database=f"sqlite:///{tmp_path / 'a.db'}")
    first = await open_database(cfg.database_url, migrate_now=1)
    try:
        database_id = await check_history(cfg, first, 1, fresh=False)
        record_history(cfg, database_id, 42, 1)
        assert await check_history(cfg, first, 2, fresh=False) == database_id  # same one: fine
    finally:
        await first.close()
    (tmp_path / "a.db").unlink()  # the database file is deleted; the home remains
    empty = await open_database(cfg.database_url, migrate_now=3)
    try:
        with pytest.raises(HistoryError) as info:
            await check_history(cfg, empty, 3, fresh=False)
        message = str(info.value)
        assert "is empty" in message and "42 entries" in message
        assert "--fresh-database" in message
        # Told to start over, it does, and records the new database.
        fresh_id = await check_history(cfg, empty, 4, fresh=True)
        assert fresh_id != database_id
    finally:
        await empty.close()


@pytest.mark.parametrize("what", ["corrupt", "unreachable"])
def test_the_cli_reports_a_bad_database_in_one_line(tmp_path: Path, what: str) -> None:
    if what == "corrupt":
        path = tmp_path / "node.db"
        path.write_bytes(b"this is not an SQLite database " * 100)
        url = f"sqlite:///{path}"
    else:
        url = "sqlite:////proc/no-such-dir/node.db"
    run = subprocess.run(
        [sys.executable, "-m", "blindmatch", "bank", "create", "b", "--db", url,
         "--provenance", "survivor-submitted"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr


async def test_the_api_answers_503_when_the_database_fails(tmp_path: Path) -> None:
    fed = await LocalFederation(tmp_path, background=False).start(
        [NodeSpec("platform", holds_index=False)]
    )
    local = fed["platform"]
    try:

        async def full(job_ref):  # type: ignore[no-untyped-def]
            raise sqlite3.OperationalError("database or disk is full")

        local.node.querier.job_status = full
        headers = {"Authorization": f"Bearer {local.api_token}"}
        async with (
            aiohttp.ClientSession(headers=headers) as s,
            s.get(f"{local.api_url}/api/v1/match/{'ab' * 16}") as resp,
        ):
            assert resp.status == 503
            assert (await resp.json())["error"] == "storage-unavailable"
    finally:
        await fed.stop()
