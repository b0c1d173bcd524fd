"""Shared fixtures.

``db`` is a migrated, empty database on each backend: SQLite in a temporary file, and
PostgreSQL in a fresh schema of the server named by ``BLINDMATCH_TEST_PG_DSN`` (default
``postgresql://postgres@127.0.0.1:5432/test``); the session's schemas are dropped at its end.
The PostgreSQL cases skip, saying why, only when no server answers.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from blindmatch.node.clock import FixedClock
from blindmatch.node.storage import Database, open_database

PG_DSN = os.environ.get("BLINDMATCH_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
START_TIME = 1_700_000_000


# Whether a server answered, checked once per session; None until first asked.
_pg_unavailable: list[str | None] = []
# Every schema this session creates is named bm_test_<session start>_<random>_<random>. Dropping
# them is slow work for the server (about a tenth of a second each), so it is not done inside the
# timed run: at the end of the session a detached process drops this session's schemas, and any
# left by sessions that started more than STALE_AFTER seconds ago (killed runs). Sessions running
# at the same time are never touched.
_SESSION_START = int(time.time())
_SESSION_PREFIX = f"bm_test_{_SESSION_START}_{secrets.token_hex(3)}_"
STALE_AFTER = 3600

_CLEANUP_SCRIPT = """
import asyncio, re, sys
import asyncpg

async def main(dsn, prefix, cutoff):
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'bm_test_%'")
        doomed = []
        for row in rows:
            name = row["nspname"]
            started = re.match(r"^bm_test_([0-9]{10})_", name)
            if name.startswith(prefix) or (started and int(started.group(1)) < cutoff):
                doomed.append('"' + name + '"')
        for start in range(0, len(doomed), 8):  # a few per statement, within the lock table
            await conn.execute("DROP SCHEMA IF EXISTS " + ", ".join(doomed[start:start + 8])
                               + " CASCADE")
    finally:
        await conn.close()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def _postgres_or_skip() -> None:
    if not _pg_unavailable:
        try:
            import asyncpg
        except ImportError:
            _pg_unavailable.append("asyncpg is not installed (pip install 'blindmatch[postgres]')")
        else:
            try:
                conn = await asyncpg.connect(PG_DSN, timeout=5)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                _pg_unavailable.append(f"no PostgreSQL server at {PG_DSN}: {exc}")
            else:
                await conn.close()
                _pg_unavailable.append(None)
    if _pg_unavailable[0] is not None:
        pytest.skip(_pg_unavailable[0])


@pytest.fixture(scope="session", autouse=True)
def _postgres_cleanup() -> Iterator[None]:
    """Drop this session's schemas (each test had its own fresh one) once the session ends."""
    yield
    if _pg_unavailable and _pg_unavailable[0] is None:
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _CLEANUP_SCRIPT,
                PG_DSN,
                _SESSION_PREFIX,
                str(_SESSION_START - STALE_AFTER),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )


def _fresh_schema_url() -> str:
    schema = f"{_SESSION_PREFIX}{secrets.token_hex(6)}"
    separator = "&" if "?" in PG_DSN else "?"
    return f"{PG_DSN}{separator}schema={schema}"


@pytest.fixture
async def pg_url() -> str:
    """A database URL on a fresh, empty PostgreSQL schema of its own."""
    await _postgres_or_skip()
    return _fresh_schema_url()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A URL for an empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'node.db'}"
    await _postgres_or_skip()
    return _fresh_schema_url()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START_TIME)


@pytest.fixture
async def db(db_url: str, clock: FixedClock) -> AsyncIterator[Database]:
    """A migrated, empty database on each backend."""
    database = await open_database(db_url, migrate_now=clock.now())
    try:
        yield database
    finally:
        await database.close()


# --- the survivor page's browser tests (tests/test_survivor_page.py, test_survivor_tiles.py) --


@pytest.fixture(scope="module")
def running(tmp_path_factory):  # type: ignore[no-untyped-def]
    """A hub serving the survivor page, one per test module."""
    from survivor_harness import SurvivorHub

    hub = SurvivorHub(tmp_path_factory.mktemp("survivor-fed")).start()
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def driver(running):  # type: ignore[no-untyped-def]
    from survivor_harness import browser_missing, start_browser, temp_profile

    if browser_missing():
        pytest.skip(browser_missing())
    with temp_profile() as profile:
        d = start_browser(profile)
        try:
            yield d
        finally:
            d.quit()


@pytest.fixture
def page(driver, running):  # type: ignore[no-untyped-def]
    """The survivor page, loaded and ready, with the load's own requests dropped."""
    from survivor_harness import network_requests, wait_for

    driver.get(running.url)
    wait_for(driver, "return document.body.getAttribute('data-ready') === '1'")
    network_requests(driver)
    return driver


@pytest.fixture
async def hub(tmp_path):  # type: ignore[no-untyped-def]
    """A hub and a platform on loopback (the survivor endpoints' tests)."""
    from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec

    fed = await LocalFederation(tmp_path, background=False).start(
        [NodeSpec("hub", ("hub",)), NodeSpec("platform", holds_index=False)]
    )
    yield fed
    await fed.stop()


@pytest.fixture
async def client(hub):  # type: ignore[no-untyped-def]
    """An HTTP client of the hub's survivor endpoints."""
    from aiohttp.test_utils import TestClient, TestServer

    from blindmatch.node.survivor.routes import build_survivor_app

    app = build_survivor_app(hub["hub"].node, hub["hub"].banks)
    async with TestClient(TestServer(app)) as c:
        yield c
