"""What a platform told this node about an upload, by its content reference: the upload's
context (JSON text, table ``upload_context``) and its media kept for reviewers (``case_media``).
The store of the cases service's upload context."""

from __future__ import annotations

from blindmatch.node.storage.database import Database


class UploadStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def save_context(
        self, content_ref: str, uploader_ref: str | None, context_json: str, now: int
    ) -> None:
        await self._db.execute(
            "INSERT INTO upload_context (content_ref, uploader_ref, context, created_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (content_ref) DO UPDATE SET"
            " uploader_ref = excluded.uploader_ref, context = excluded.context",
            content_ref, uploader_ref, context_json, now,
        )  # fmt: skip

    async def context(self, content_ref: str) -> str | None:
        row = await self._db.fetch_one(
            "SELECT context FROM upload_context WHERE content_ref = ?", content_ref
        )
        return None if row is None else str(row["context"])

    async def actioned_elsewhere(self, uploader_ref: str, content_ref: str) -> int:
        """Other contents of the same uploader reference whose case was actioned."""
        n = await self._db.fetch_value(
            "SELECT COUNT(DISTINCT c.content_ref) FROM cases c JOIN upload_context u"
            " ON u.content_ref = c.content_ref WHERE u.uploader_ref = ? AND c.content_ref <> ?"
            " AND c.state = 'actioned'",
            uploader_ref, content_ref,
        )  # fmt: skip
        return int(n or 0)

    async def put_media(self, content_ref: str, media: bytes, content_type: str, now: int) -> None:
        """Keep an upload's media for reviewers, replacing an earlier submission's."""
        await self._db.execute(
            "INSERT INTO case_media (content_ref, media, content_type, stored_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (content_ref) DO UPDATE SET"
            " media = excluded.media, stored_at = excluded.stored_at",
            content_ref, media, content_type, now,
        )  # fmt: skip
