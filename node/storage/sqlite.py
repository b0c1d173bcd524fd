"""The embedded backend: one SQLite file through aiosqlite.

One connection serves the process and an asyncio lock makes it the single writer: a
transaction holds the lock from ``BEGIN IMMEDIATE`` to ``COMMIT``, and a statement outside a
transaction takes it for just that statement. WAL journaling lets other processes (a CLI run
next to a running node) read while the node writes; ``synchronous=FULL`` makes a commit durable
before it returns, so a killed node loses nothing it reported as done.
"""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from blindmatch.node.storage.database import SQLITE, Database, IntegrityError, Row, StorageError

BUSY_TIMEOUT_MS = 10_000


class SQLiteDatabase(Database):
    dialect = SQLITE

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self._conn = conn
        self._path = path
        self._write_lock = asyncio.Lock()
        # Savepoint depth of the transaction the current task is in (0: none).
        self._depth: contextvars.ContextVar[int] = contextvars.ContextVar(
            f"sqlite_tx_depth_{id(self)}", default=0
        )
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
        db = cls(conn, path)
        try:
            await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await conn.execute("PRAGMA foreign_keys = ON")
            if path != ":memory:":
                await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as exc:
            await conn.close()
            raise StorageError(f"cannot configure SQLite database {path!r}: {exc}") from exc
        return db

    @property
    def path(self) -> str:
        return self._path

    async def _run(self, sql: str, params: tuple[Any, ...], fetch: bool) -> tuple[int, list[Row]]:
        try:
            async with self._conn.execute(sql, params) as cursor:
                rows = [dict(r) for r in await cursor.fetchall()] if fetch else []
                return cursor.rowcount, rows
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc

    async def _statement(self, sql: str, params: tuple[Any, ...], fetch: bool):
        if self._closed:
            raise StorageError("database is closed")
        if self._depth.get() > 0:
            return await self._run(sql, params, fetch)
        async with self._write_lock:
            return await self._run(sql, params, fetch)

    async def execute(self, sql: str, *params: Any) -> int:
        count, _ = await self._statement(sql, params, fetch=False)
        return max(count, 0)

    async def fetch_all(self, sql: str, *params: Any) -> list[Row]:
        # RETURNING statements are fetched too, so a write that reports rows goes through here.
        _, rows = await self._statement(sql, params, fetch=True)
        return rows

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        depth = self._depth.get()
        if depth == 0:
            async with self._write_lock:
                await self._conn.execute("BEGIN IMMEDIATE")
                token = self._depth.set(1)
                try:
                    yield
                except BaseException:
                    await self._conn.execute("ROLLBACK")
                    raise
                else:
                    try:
                        await self._conn.execute("COMMIT")
                    except BaseException:
                        if self._conn.in_transaction:
                            await self._conn.execute("ROLLBACK")
                        raise
                finally:
                    self._depth.reset(token)
        else:
            savepoint = f"sp_{depth}"
            await self._conn.execute(f"SAVEPOINT {savepoint}")
            token = self._depth.set(depth + 1)
            try:
                yield
            except BaseException:
                await self._conn.execute(f"ROLLBACK TO SAVEPOINT {savepoint}")
                await self._conn.execute(f"RELEASE SAVEPOINT {savepoint}")
                raise
            else:
                await self._conn.execute(f"RELEASE SAVEPOINT {savepoint}")
            finally:
                self._depth.reset(token)

    async def lock(self, name: str) -> None:
        if self._depth.get() == 0:
            raise StorageError("lock() must be called inside transaction()")
        # BEGIN IMMEDIATE already made this connection the only writer.

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._conn.close()
