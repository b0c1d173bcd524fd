"""The VOPRF keys' durable evaluation counts and retirement deadlines (``voprf_key_usage``):
the key ring's store (spec 8.2, 8.4)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from blindmatch.node.storage.database import Database


class KeyUsageStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def transaction(self) -> AbstractAsyncContextManager[None]:
        return self._db.transaction()

    @asynccontextmanager
    async def locked(self) -> AsyncIterator[None]:
        """A transaction the node's processes take in turns (a count is read, checked and
        written in one)."""
        async with self._db.transaction():
            await self._db.lock("voprf_key_usage")
            yield

    async def add_key(self, key_id: bytes, now: int) -> None:
        """Start a key's count at 0 (nothing if it has one)."""
        await self._db.execute(
            "INSERT INTO voprf_key_usage (key_id, evaluations, created_at) VALUES (?, 0, ?)"
            " ON CONFLICT DO NOTHING",
            key_id, now,
        )  # fmt: skip

    async def evaluations(self, key_id: bytes) -> int:
        v = await self._db.fetch_value(
            "SELECT evaluations FROM voprf_key_usage WHERE key_id = ?", key_id
        )
        return int(v or 0)

    async def set_evaluations(self, key_id: bytes, total: int) -> None:
        await self._db.execute(
            "UPDATE voprf_key_usage SET evaluations = ? WHERE key_id = ?", total, key_id
        )

    async def uncount(self, key_id: bytes, n: int) -> None:
        """Give back ``n`` evaluations a refused request had counted (never below 0)."""
        await self._db.execute(
            "UPDATE voprf_key_usage SET evaluations = evaluations - ? WHERE key_id = ?"
            " AND evaluations >= ?",
            n, key_id, n,
        )  # fmt: skip

    async def set_retire_at(self, key_id: bytes, now: int, retire_at: int) -> None:
        await self._db.execute(
            "INSERT INTO voprf_key_usage (key_id, evaluations, created_at, retire_at)"
            " VALUES (?, 0, ?, ?) ON CONFLICT (key_id) DO UPDATE SET retire_at = ?",
            key_id, now, retire_at, retire_at,
        )  # fmt: skip

    async def retire_at(self, key_id: bytes) -> int | None:
        v = await self._db.fetch_value(
            "SELECT retire_at FROM voprf_key_usage WHERE key_id = ?", key_id
        )
        return None if v is None else int(v)
