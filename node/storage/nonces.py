"""Replay protection: each (sender, nonce) is accepted once while it can still be valid.

``remember`` is a single insert on the primary key, so two deliveries of the same message
racing each other cannot both be accepted, on either engine.
"""

from __future__ import annotations

from blindmatch.node.storage.database import Database
from blindmatch.node.storage.validation import MAX_ID_BYTES, check_bytes, check_int, check_text


class NonceStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def remember(self, sender_id: str, nonce: bytes, expires_at: int, now: int) -> bool:
        """True the first time (sender, nonce) is seen; False for a replay.

        A row whose expiry has passed no longer counts (the envelope timestamp window rejects
        such old messages anyway); it is reused instead of waiting for ``prune``.
        """
        check_text("sender_id", sender_id)
        nonce = check_bytes("nonce", nonce, MAX_ID_BYTES)
        check_int("expires_at", expires_at)
        check_int("now", now)
        changed = await self._db.execute(
            "INSERT INTO seen_nonces (sender_id, nonce, expires_at) VALUES (?, ?, ?)"
            " ON CONFLICT (sender_id, nonce) DO UPDATE SET expires_at = excluded.expires_at"
            " WHERE seen_nonces.expires_at <= ?",
            sender_id,
            nonce,
            expires_at,
            now,
        )
        return changed == 1

    async def forget(self, sender_id: str, nonce: bytes) -> None:
        """Give back a nonce a refusal must not use up (admission's decision says which)."""
        check_text("sender_id", sender_id)
        nonce = check_bytes("nonce", nonce, MAX_ID_BYTES)
        await self._db.execute(
            "DELETE FROM seen_nonces WHERE sender_id = ? AND nonce = ?", sender_id, nonce
        )

    async def prune(self, now: int) -> int:
        """Forget nonces that have expired; return how many."""
        check_int("now", now)
        return await self._db.execute("DELETE FROM seen_nonces WHERE expires_at <= ?", now)
