"""Shared fixtures.

``db`` is a migrated, empty database on each backend: SQLite in a temporary file, and
PostgreSQL in a fresh schema of the server named by ``BLINDMATCH_TEST_PG_DSN`` (default
``postgresql://postgres@127.0.0.1:5432/test``); the session's schemas are dropped at its end.
The PostgreSQL cases skip, saying why, only when no server answers.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator

import pytest

from blindmatch.node.clock import FixedClock
from blindmatch.node.storage import Database, open_database

PG_DSN = os.environ.get("BLINDMATCH_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
START_TIME = 1_700_000_000


# Whether a server answered, checked once per session; None until first asked.
_pg_unavailable: list[str | None] = []
# Every schema this session creates carries this prefix and is dropped at the end of the session
# (dropping per test doubled the PostgreSQL tests' run time). Other sessions running at the same
# time use other prefixes, so they are never touched.
_SESSION_PREFIX = f"bm_test_{secrets.token_hex(4)}_"


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


async def _drop_session_schemas() -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_DSN)
    try:
        schemas = await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)", _SESSION_PREFIX
        )
        for row in schemas:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{row["nspname"]}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture(scope="session", autouse=True)
def _postgres_cleanup() -> Iterator[None]:
    """Drop the schemas this session created (each test got its own fresh one)."""
    yield
    if _pg_unavailable and _pg_unavailable[0] is None:
        asyncio.run(_drop_session_schemas())


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
