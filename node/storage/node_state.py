"""Small named values the node keeps between runs (its id, settings, markers)."""

from __future__ import annotations

from blindmatch.node.storage.database import Database
from blindmatch.node.storage.validation import MAX_PAYLOAD_BYTES, check_bytes, check_int, check_text


class NodeState:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, key: str) -> bytes | None:
        check_text("key", key)
        value = await self._db.fetch_value("SELECT value FROM node_state WHERE key = ?", key)
        return None if value is None else bytes(value)

    async def set(self, key: str, value: bytes, now: int) -> None:
        check_text("key", key)
        value = check_bytes("value", value, MAX_PAYLOAD_BYTES, min_len=0)
        check_int("now", now)
        await self._db.execute(
            "INSERT INTO node_state (key, value, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
            " updated_at = excluded.updated_at",
            key,
            value,
            now,
        )

    async def delete(self, key: str) -> bool:
        check_text("key", key)
        return await self._db.execute("DELETE FROM node_state WHERE key = ?", key) == 1

    async def keys(self, prefix: str = "") -> list[str]:
        if not isinstance(prefix, str):
            raise TypeError("prefix must be a string")
        rows = await self._db.fetch_all("SELECT key FROM node_state ORDER BY key")
        return [r["key"] for r in rows if r["key"].startswith(prefix)]
