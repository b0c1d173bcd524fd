"""Shared fixtures.

``db`` is a migrated, empty database on each backend: SQLite in a temporary file, and
PostgreSQL in a fresh schema of the server named by ``BLINDMATCH_TEST_PG_DSN`` (default
``postgresql://postgres@127.0.0.1:5432/test``), dropped afterwards. The PostgreSQL cases skip,
saying why, only when no server answers.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator

import pytest

from blindmatch.node.clock import FixedClock
from blindmatch.node.storage import Database, open_database

PG_DSN = os.environ.get("BLINDMATCH_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
START_TIME = 1_700_000_000


async def _postgres_or_skip() -> None:
    try:
        import asyncpg
    except ImportError:
        pytest.skip("asyncpg is not installed (pip install 'blindmatch[postgres]')")
    try:
        conn = await asyncpg.connect(PG_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        pytest.skip(f"no PostgreSQL server at {PG_DSN}: {exc}")
    await conn.close()


async def _drop_schema(schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def _fresh_schema_url() -> tuple[str, str]:
    schema = f"bm_test_{secrets.token_hex(6)}"
    separator = "&" if "?" in PG_DSN else "?"
    return schema, f"{PG_DSN}{separator}schema={schema}"


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A database URL on a fresh, empty PostgreSQL schema (dropped after the test)."""
    await _postgres_or_skip()
    schema, url = _fresh_schema_url()
    yield url
    await _drop_schema(schema)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db_url(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[str]:
    """A URL for an empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'node.db'}"
        return
    await _postgres_or_skip()
    schema, url = _fresh_schema_url()
    yield url
    await _drop_schema(schema)


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
