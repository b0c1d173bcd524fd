"""The console's reviewer accounts and their sessions (the console's store).

Passwords arrive here already hashed and session tokens as their SHA-256: this store never
sees a secret in the clear.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from blindmatch.node.storage.database import Database, Row


class ReviewerStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def transaction(self) -> AbstractAsyncContextManager[None]:
        return self._db.transaction()

    async def insert(self, reviewer_id: str, role: str, password_hash: str, now: int) -> bool:
        """Add an enabled account; False if the ID is taken."""
        added = await self._db.execute(
            "INSERT INTO reviewers (reviewer_id, role, password_hash, disabled, created_at)"
            " VALUES (?, ?, ?, 0, ?) ON CONFLICT DO NOTHING",
            reviewer_id, role, password_hash, now,
        )  # fmt: skip
        return bool(added)

    async def set_password_hash(self, reviewer_id: str, password_hash: str) -> bool:
        changed = await self._db.execute(
            "UPDATE reviewers SET password_hash = ? WHERE reviewer_id = ?",
            password_hash, reviewer_id,
        )  # fmt: skip
        return bool(changed)

    async def upgrade_hash(self, reviewer_id: str, old: str, new: str) -> None:
        """Replace a stored hash only if it is still ``old`` (a concurrent change wins)."""
        await self._db.execute(
            "UPDATE reviewers SET password_hash = ? WHERE reviewer_id = ? AND password_hash = ?",
            new, reviewer_id, old,
        )  # fmt: skip

    async def set_disabled(self, reviewer_id: str, disabled: bool) -> bool:
        changed = await self._db.execute(
            "UPDATE reviewers SET disabled = ? WHERE reviewer_id = ?",
            1 if disabled else 0, reviewer_id,
        )  # fmt: skip
        return bool(changed)

    async def get(self, reviewer_id: str) -> Row | None:
        """``reviewer_id, role, disabled, created_at`` of one account."""
        return await self._db.fetch_one(
            "SELECT reviewer_id, role, disabled, created_at FROM reviewers WHERE reviewer_id = ?",
            reviewer_id,
        )

    async def all(self) -> list[Row]:
        return await self._db.fetch_all(
            "SELECT reviewer_id, role, disabled, created_at FROM reviewers ORDER BY reviewer_id"
        )

    async def credentials(self, reviewer_id: str) -> Row | None:
        """The account with its ``password_hash``, for a sign-in."""
        return await self._db.fetch_one(
            "SELECT reviewer_id, role, password_hash, disabled, created_at FROM reviewers"
            " WHERE reviewer_id = ?",
            reviewer_id,
        )

    async def enabled_role(self, reviewer_id: str) -> str | None:
        role = await self._db.fetch_value(
            "SELECT role FROM reviewers WHERE reviewer_id = ? AND disabled = 0", reviewer_id
        )
        return None if role is None else str(role)

    async def delete_sessions(self, reviewer_id: str) -> None:
        await self._db.execute("DELETE FROM reviewer_sessions WHERE reviewer_id = ?", reviewer_id)

    async def add_session(
        self, token_hash: bytes, reviewer_id: str, csrf: str, expires_at: int, now: int
    ) -> None:
        """Store a new session, dropping every expired one on the way."""
        async with self._db.transaction():
            await self._db.execute("DELETE FROM reviewer_sessions WHERE expires_at <= ?", now)
            await self._db.execute(
                "INSERT INTO reviewer_sessions (token_hash, reviewer_id, csrf_token, expires_at)"
                " VALUES (?, ?, ?, ?)",
                token_hash, reviewer_id, csrf, expires_at,
            )  # fmt: skip

    async def session(self, token_hash: bytes) -> Row | None:
        """``reviewer_id, csrf_token, expires_at, role`` of a session of an enabled account."""
        return await self._db.fetch_one(
            "SELECT s.reviewer_id, s.csrf_token, s.expires_at, r.role FROM reviewer_sessions s"
            " JOIN reviewers r ON r.reviewer_id = s.reviewer_id"
            " WHERE s.token_hash = ? AND r.disabled = 0",
            token_hash,
        )

    async def end_session(self, token_hash: bytes) -> None:
        await self._db.execute("DELETE FROM reviewer_sessions WHERE token_hash = ?", token_hash)
