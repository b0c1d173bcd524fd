"""The production backend: PostgreSQL through an asyncpg connection pool.

A transaction pins one pooled connection to the task that opened it (through a context
variable), so every statement the task issues inside ``async with db.transaction():`` runs on
that connection; nested blocks become savepoints. Outside a transaction each statement borrows
a connection for itself. Several node workers may share one database: writers that must not
interleave (feed appends, migrations) take transaction-scoped advisory locks; work that spans
several transactions (an index publication) takes a session-level one (:meth:`exclusive`); and
each process's presence and leadership are session-level locks on a connection of their own
(:meth:`lock_session`, used by :mod:`.processes`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from blindmatch.node.storage.database import (
    POSTGRESQL,
    Database,
    IntegrityError,
    LockSession,
    Row,
    StorageError,
    _local_exclusive,
    lock_key,
    redact_url,
)

try:
    import asyncpg
except ImportError:  # pragma: no cover - exercised only where the extra is not installed
    asyncpg = None

POOL_MAX_SIZE = 10
EXCLUSIVE_POLL_S = 0.05  # how often a waiter for an exclusive() lock tries again
# A ? outside single-quoted literals is a placeholder (the SQL here has no other ?s).
_PLACEHOLDER_OR_LITERAL = re.compile(r"'(?:[^']|'')*'|\?")
_COMMAND_COUNT = re.compile(r"(\d+)$")


def to_numbered_placeholders(sql: str) -> str:
    """Rewrite SQLite-style ``?`` placeholders to PostgreSQL's ``$1, $2, ...``."""
    counter = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal counter
        if match.group(0) != "?":
            return match.group(0)
        counter += 1
        return f"${counter}"

    return _PLACEHOLDER_OR_LITERAL.sub(replace, sql)


class PostgresDatabase(Database):
    dialect = POSTGRESQL

    def __init__(self, pool: Any, schema: str | None, dsn: str = "") -> None:
        self._pool = pool
        self._schema = schema
        self._dsn = dsn
        # (task, connection) of the transaction the current context is in. A task created
        # inside a transaction inherits the value; the task check gives it its own connection
        # instead of sharing (or outliving) its parent's.
        self._tx: contextvars.ContextVar[tuple[Any, Any]] = contextvars.ContextVar(
            f"pg_tx_{id(self)}", default=(None, None)
        )
        self._sql_cache: dict[str, str] = {}
        self._closed = False
        self._exclusive: PostgresLockSession | None = None  # holds exclusive() locks
        self._session_mutex = asyncio.Lock()

    @classmethod
    async def open(cls, dsn: str, *, schema: str | None = None) -> PostgresDatabase:
        if asyncpg is None:
            raise StorageError(
                "PostgreSQL support needs asyncpg: pip install 'blindmatch[postgres]'"
            )
        try:
            if schema is not None:
                # Create the schema first, on its own connection, so the pool's search_path
                # names something that exists.
                conn = await asyncpg.connect(dsn)
                try:
                    # Several processes starting at once would race on the catalog ("duplicate
                    # key value violates unique constraint"): one at a time.
                    async with conn.transaction():
                        await conn.execute(
                            "SELECT pg_advisory_xact_lock($1)", lock_key(f"schema:{schema}")
                        )
                        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                finally:
                    await conn.close()
            settings = {"search_path": schema} if schema is not None else None
            pool = await asyncpg.create_pool(
                dsn, min_size=1, max_size=POOL_MAX_SIZE, server_settings=settings
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StorageError(f"cannot connect to PostgreSQL at {redact_url(dsn)}: {exc}") from exc
        return cls(pool, schema, dsn)

    @property
    def schema(self) -> str | None:
        return self._schema

    def _sql(self, sql: str) -> str:
        converted = self._sql_cache.get(sql)
        if converted is None:
            converted = to_numbered_placeholders(sql)
            self._sql_cache[sql] = converted
        return converted

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        if self._closed:
            raise StorageError("database is closed")
        conn = self._tx_connection()
        if conn is not None:
            yield conn
        else:
            async with self._pool.acquire() as pooled:
                yield pooled

    async def execute(self, sql: str, *params: Any) -> int:
        async with self._connection() as conn:
            try:
                status = await conn.execute(self._sql(sql), *params)
            except asyncpg.IntegrityConstraintViolationError as exc:
                raise IntegrityError(str(exc)) from exc
        match = _COMMAND_COUNT.search(status or "")
        return int(match.group(1)) if match else 0

    async def execute_statements(self, statements: Sequence[str]) -> None:
        # One round trip: without parameters asyncpg sends a multi-statement simple query.
        async with self._connection() as conn:
            try:
                await conn.execute(";\n".join(statements))
            except asyncpg.IntegrityConstraintViolationError as exc:
                raise IntegrityError(str(exc)) from exc

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self.transaction():
            conn = self._tx_connection()
            try:
                await conn.executemany(self._sql(sql), [tuple(r) for r in rows])
            except asyncpg.IntegrityConstraintViolationError as exc:
                raise IntegrityError(str(exc)) from exc

    async def fetch_all(self, sql: str, *params: Any) -> list[Row]:
        async with self._connection() as conn:
            try:
                records = await conn.fetch(self._sql(sql), *params)
            except asyncpg.IntegrityConstraintViolationError as exc:
                raise IntegrityError(str(exc)) from exc
        return [dict(r) for r in records]

    @asynccontextmanager
    async def transaction(self, durable: bool = True) -> AsyncIterator[None]:
        current = self._tx_connection()
        if current is not None:
            async with current.transaction():  # asyncpg makes a nested one a savepoint
                yield
            return
        if self._closed:
            raise StorageError("database is closed")
        async with self._pool.acquire() as conn:
            token = self._tx.set((asyncio.current_task(), conn))
            try:
                async with conn.transaction():
                    if not durable:
                        # Asynchronous commit: the WAL writer flushes it within a few hundred
                        # ms; a server crash may lose it, never consistency.
                        await conn.execute("SET LOCAL synchronous_commit TO OFF")
                    yield
            finally:
                self._tx.reset(token)

    def _tx_connection(self) -> Any:
        owner, conn = self._tx.get()
        return conn if owner is asyncio.current_task() else None

    async def lock(self, name: str) -> None:
        conn = self._tx_connection()
        if conn is None:
            raise StorageError("lock() must be called inside transaction()")
        await conn.execute("SELECT pg_advisory_xact_lock($1)", self._lock_key(name))

    @asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[None]:
        """One holder per name in this process (an asyncio lock), then among the node's
        processes: a session-level advisory lock on this database's own lock connection,
        taken by polling ``pg_try_advisory_lock``. Waiting holds no pooled connection (a
        holder's work needs the pool: waiters holding it could starve the holder)."""
        if self._closed:
            raise StorageError("database is closed")
        key = self._lock_key(name)
        async with _local_exclusive(self, name):
            session = await self._exclusive_session()
            while not await session.try_key(key):
                await asyncio.sleep(EXCLUSIVE_POLL_S)
            try:
                yield
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.shield(session.unlock_key(key))

    async def _exclusive_session(self) -> PostgresLockSession:
        async with self._session_mutex:
            if self._exclusive is None or self._exclusive.closed:
                session = await self.lock_session()
                assert isinstance(session, PostgresLockSession)
                self._exclusive = session
            return self._exclusive

    async def lock_session(self) -> LockSession:
        settings = {"search_path": self._schema} if self._schema is not None else None
        try:
            conn = await asyncpg.connect(self._dsn, server_settings=settings)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StorageError(
                f"cannot connect to PostgreSQL at {redact_url(self._dsn)}: {exc}"
            ) from exc
        return PostgresLockSession(conn, self._lock_key)

    def _lock_key(self, name: str) -> int:
        # Advisory locks are per database, not per schema: nodes in two schemas of one
        # database must not share a leader lock (or wait on each other's).
        return lock_key(name if self._schema is None else f"{self._schema}:{name}")

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._exclusive is not None:
                await self._exclusive.close()
            await self._pool.close()


class PostgresLockSession(LockSession):
    """Session-level advisory locks on one connection outside the pool: the server releases
    them the moment the connection ends, a killed process's included."""

    def __init__(self, conn: Any, key: Callable[[str], int]) -> None:
        self._conn = conn
        self._key = key
        self._mutex = asyncio.Lock()  # one statement at a time on the connection

    @property
    def closed(self) -> bool:
        return bool(self._conn.is_closed())

    async def try_lock(self, name: str) -> bool:
        return await self.try_key(self._key(name))

    async def unlock(self, name: str) -> None:
        await self.unlock_key(self._key(name))

    async def try_key(self, key: int) -> bool:
        async with self._mutex:
            return bool(await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", key))

    async def unlock_key(self, key: int) -> None:
        async with self._mutex:
            await self._conn.fetchval("SELECT pg_advisory_unlock($1)", key)

    async def alive(self) -> bool:
        if self._conn.is_closed():
            return False
        try:
            async with self._mutex:
                await asyncio.wait_for(self._conn.fetchval("SELECT 1"), 10)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False
        return True

    async def close(self) -> None:
        if not self._conn.is_closed():
            try:
                await asyncio.wait_for(self._conn.close(), 5)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                self._conn.terminate()
