"""Choosing and opening a storage engine from the one URL that names it."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit, urlunsplit

from blindmatch.node.storage.database import Database, StorageError
from blindmatch.node.storage.migrations import MIGRATIONS

DEFAULT_DB_URL = "sqlite:///./var/node.db"


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed ``sqlite:///path``, ``sqlite:///:memory:`` or ``postgresql://...`` URL."""

    backend: str  # "sqlite" | "postgresql"
    sqlite_path: str | None = None
    postgres_dsn: str | None = None
    postgres_schema: str | None = None


def parse_database_url(url: str) -> DatabaseURL:
    """Parse the one setting that chooses the backend.

    - ``sqlite:///relative/or/absolute/path.db`` (``sqlite:////abs/path.db`` also works),
      ``sqlite:///:memory:`` for a throwaway in-memory database;
    - ``postgresql://user@host:port/dbname`` (or ``postgres://``), with an optional
      ``?schema=NAME`` that puts every table in that schema (created if missing).
    """
    if not isinstance(url, str) or not url:
        raise StorageError("database URL must be a non-empty string")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        if parts.netloc:
            raise StorageError(
                f"SQLite URL must look like sqlite:///path/to/node.db, got host {parts.netloc!r}"
            )
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        if not path:
            raise StorageError("SQLite URL has no path: use sqlite:///path/to/node.db")
        return DatabaseURL("sqlite", sqlite_path=path)
    if scheme in ("postgresql", "postgres"):
        query = parse_qs(parts.query, keep_blank_values=True)
        schema_values = query.pop("schema", [])
        schema = schema_values[-1] if schema_values else None
        if schema is not None and not _is_identifier(schema):
            raise StorageError(f"schema must be a plain identifier ([a-z_][a-z0-9_]*): {schema!r}")
        rest = "&".join(f"{k}={v}" for k, vs in query.items() for v in vs)
        dsn = urlunsplit(("postgresql", parts.netloc, parts.path, rest, parts.fragment))
        return DatabaseURL("postgresql", postgres_dsn=dsn, postgres_schema=schema)
    raise StorageError(
        f"unsupported database URL scheme {parts.scheme!r}: use sqlite:///PATH or postgresql://..."
    )


def _is_identifier(name: str) -> bool:
    return (
        0 < len(name) <= 63
        and (name[0].isascii() and (name[0].isalpha() or name[0] == "_"))
        and all(c.isascii() and (c.isalnum() or c == "_") for c in name)
        and name == name.lower()
    )


async def open_database(url: str, *, migrate_now: int | None = None) -> Database:
    """Open the database the URL names; with ``migrate_now`` also bring its schema up to date."""
    parsed = parse_database_url(url)
    db: Database
    if parsed.backend == "sqlite":
        from blindmatch.node.storage.sqlite import SQLiteDatabase

        assert parsed.sqlite_path is not None
        db = await SQLiteDatabase.open(parsed.sqlite_path)
    else:
        from blindmatch.node.storage.postgres import PostgresDatabase

        assert parsed.postgres_dsn is not None
        db = await PostgresDatabase.open(parsed.postgres_dsn, schema=parsed.postgres_schema)
    db.migrations = MIGRATIONS
    if migrate_now is not None:
        try:
            await db.migrate(migrate_now)
        except BaseException:
            await db.close()
            raise
    return db


async def drop_postgres_schemas(dsn: str, schemas: list[str]) -> None:
    """Drop whole PostgreSQL schemas and everything in them (a throwaway federation's)."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        for schema in schemas:
            quoted = schema.replace('"', '""')
            await conn.execute(f'DROP SCHEMA IF EXISTS "{quoted}" CASCADE')
    finally:
        await conn.close()
