"""The embedded backend: one SQLite file through aiosqlite.

One connection is the process's single writer, guarded by an asyncio lock: a transaction
holds the lock from ``BEGIN IMMEDIATE`` to ``COMMIT``, and a statement outside a transaction
takes it for just that statement. A second, read-only connection serves plain ``SELECT``s issued
outside a transaction, so matching reads are not held up behind a long import; WAL journaling
lets it (and other processes, such as a CLI run next to a node) read the last committed state
while the writer works. ``synchronous=FULL`` makes a commit durable before it returns, so a
killed node loses nothing it reported as done, even on power loss; ``transaction(durable=False)``
commits at ``synchronous=NORMAL`` (no fsync; safe against a killed process, and WAL keeps the file
consistent whatever happens). An in-memory database has only the writer.
"""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from blindmatch.node.storage.database import SQLITE, Database, IntegrityError, Row, StorageError

BUSY_TIMEOUT_MS = 10_000


class SQLiteDatabase(Database):
    dialect = SQLITE

    def __init__(
        self, conn: aiosqlite.Connection, path: str, reader: aiosqlite.Connection | None = None
    ) -> None:
        self._conn = conn
        self._reader = reader
        self._path = path
        self._write_lock = asyncio.Lock()
        # (task, savepoint depth) of the transaction the current context is in. A task created
        # inside a transaction inherits the value; the task check keeps it from joining the
        # transaction it was spawned in.
        self._tx: contextvars.ContextVar[tuple[asyncio.Task[Any] | None, int]] = (
            contextvars.ContextVar(f"sqlite_tx_{id(self)}", default=(None, 0))
        )
        self._tx_owner: asyncio.Task[Any] | None = None  # the task holding the write lock
        self._synchronous = "FULL"  # the writer's mode now ("" while a switch is under way)
        self._closed = False

    @classmethod
    async def open(cls, path: str) -> SQLiteDatabase:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            # isolation_level=None: the sqlite3 module issues no implicit BEGIN/COMMIT; this
            # class decides where transactions start and end.
            conn = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open SQLite database {path!r}: {exc}") from exc
        conn.row_factory = sqlite3.Row
        reader = None
        try:
            await _exec(conn, f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await _exec(conn, "PRAGMA foreign_keys = ON")
            await _exec(conn, "PRAGMA synchronous = FULL")
            if path != ":memory:":
                await _ensure_wal(conn)
                reader = await aiosqlite.connect(path, isolation_level=None)
                reader.row_factory = sqlite3.Row
                await _exec(reader, f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                await _exec(reader, "PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            await conn.close()
            if reader is not None:
                await reader.close()
            raise StorageError(f"cannot configure SQLite database {path!r}: {exc}") from exc
        return cls(conn, path, reader)

    @property
    def path(self) -> str:
        return self._path

    async def _run(
        self,
        sql: str,
        params: tuple[Any, ...],
        fetch: bool,
        conn: aiosqlite.Connection | None = None,
    ) -> tuple[int, list[Row]]:
        try:
            async with (conn or self._conn).execute(sql, params) as cursor:
                rows = [dict(r) for r in await cursor.fetchall()] if fetch else []
                return cursor.rowcount, rows
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc

    async def _read(self, sql: str, params: tuple[Any, ...]) -> tuple[int, list[Row]]:
        """A plain SELECT on the reader, executed and fetched in one call on its thread.

        SQLite keeps a read transaction (a snapshot) open from a statement's first step until
        it is done. Executed and fetched as two calls, concurrent reads interleave on the one
        reader connection, so there is nearly always a statement open under load and every
        read sees the snapshot of the oldest one: a job committed a moment ago was not found
        (404 for 12-51 of 200 concurrent submissions). One call runs each statement to its
        end before the next begins, so every read starts from the last commit.
        """
        assert self._reader is not None
        rows = await self._reader.execute_fetchall(sql, params)
        return -1, [dict(r) for r in rows]

    async def _statement(self, sql: str, params: tuple[Any, ...], fetch: bool):
        if self._closed:
            raise StorageError("database is closed")
        if self._depth() > 0:
            return await self._run(sql, params, fetch)
        if self._reader is not None and fetch and _is_plain_select(sql):
            return await self._read(sql, params)
        self._refuse_spawned_writer()
        async with self._write_lock:
            await self._durable()
            return await self._run(sql, params, fetch)

    def _depth(self) -> int:
        owner, depth = self._tx.get()
        return depth if owner is asyncio.current_task() else 0

    def _refuse_spawned_writer(self) -> None:
        # A task spawned inside a transaction that is still open would wait for the write lock
        # its parent holds; if the parent awaits it, that is a silent deadlock. Fail loudly.
        owner, _ = self._tx.get()
        if owner is not None and owner is self._tx_owner and owner is not asyncio.current_task():
            raise StorageError(
                "a task started inside a transaction cannot write while that transaction is open"
            )

    async def execute(self, sql: str, *params: Any) -> int:
        count, _ = await self._statement(sql, params, fetch=False)
        return max(count, 0)

    async def fetch_all(self, sql: str, *params: Any) -> list[Row]:
        # RETURNING statements are fetched too, so a write that reports rows goes through here.
        _, rows = await self._statement(sql, params, fetch=True)
        return rows

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self.transaction():
            try:
                await self._conn.executemany(sql, [tuple(r) for r in rows])
            except sqlite3.IntegrityError as exc:
                raise IntegrityError(str(exc)) from exc

    @asynccontextmanager
    async def transaction(self, durable: bool = True) -> AsyncIterator[None]:
        depth = self._depth()
        task = asyncio.current_task()
        if depth == 0:
            self._refuse_spawned_writer()
            async with self._write_lock:
                await self._begin(durable)
                self._tx_owner = task
                token = self._tx.set((task, 1))
                try:
                    yield
                except BaseException:
                    await _exec(self._conn, "ROLLBACK")
                    raise
                else:
                    try:
                        await _exec(self._conn, "COMMIT")
                    except BaseException:
                        if self._conn.in_transaction:
                            await _exec(self._conn, "ROLLBACK")
                        raise
                finally:
                    self._tx_owner = None
                    self._tx.reset(token)
        else:
            savepoint = f"sp_{depth}"
            await _exec(self._conn, f"SAVEPOINT {savepoint}")
            token = self._tx.set((task, depth + 1))
            try:
                yield
            except BaseException:
                await _exec(self._conn, f"ROLLBACK TO SAVEPOINT {savepoint}")
                await _exec(self._conn, f"RELEASE SAVEPOINT {savepoint}")
                raise
            else:
                await _exec(self._conn, f"RELEASE SAVEPOINT {savepoint}")
            finally:
                self._tx.reset(token)

    async def _begin(self, durable: bool) -> None:
        # WAL with synchronous=NORMAL skips the commit's fsync; the next FULL commit (or a
        # checkpoint) syncs the WAL, and with it every earlier commit. The connection's mode is
        # switched only when the next writer needs the other one, in the same round trip as its
        # BEGIN, so a run of peer requests pays no extra statement.
        mode = "FULL" if durable or self._reader is None else "NORMAL"
        if mode == self._synchronous:
            await _exec(self._conn, "BEGIN IMMEDIATE")
            return
        self._synchronous = ""  # unknown until the script has run
        await self._conn.executescript(f"PRAGMA synchronous = {mode}; BEGIN IMMEDIATE")
        self._synchronous = mode

    async def _durable(self) -> None:
        """Before a statement outside any transaction: it commits on its own, durably."""
        if self._synchronous != "FULL":
            self._synchronous = ""
            await _exec(self._conn, "PRAGMA synchronous = FULL")
            self._synchronous = "FULL"

    async def lock(self, name: str) -> None:
        if self._depth() == 0:
            raise StorageError("lock() must be called inside transaction()")
        # BEGIN IMMEDIATE already made this connection the only writer.

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._reader is not None:
                await self._reader.close()
            await self._conn.close()


async def _ensure_wal(conn: aiosqlite.Connection) -> None:
    """Switch the file to WAL (a persistent property of the file, so usually already set).

    The switch needs a moment with no other writer, and SQLite does not wait for it through
    busy_timeout, so retry briefly while another process or connection is mid-transaction.
    """
    async with conn.execute("PRAGMA journal_mode") as cursor:
        row = await cursor.fetchone()
    if row is not None and str(row[0]).lower() == "wal":
        return
    for attempt in range(100):
        try:
            await _exec(conn, "PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 99:
                raise
            await asyncio.sleep(0.05)


async def _exec(conn: aiosqlite.Connection, sql: str) -> None:
    """Run a control statement and close its cursor at once: a cursor left open on a
    row-returning PRAGMA keeps a read lock that makes other connections fail as busy."""
    async with conn.execute(sql) as cursor:
        await cursor.fetchall()


def _is_plain_select(sql: str) -> bool:
    # RETURNING makes any statement a write; PRAGMAs may write too. Only these go to the reader.
    head = sql.lstrip()[:6].upper()
    return head == "SELECT" and "RETURNING" not in sql.upper()
