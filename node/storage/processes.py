"""Several processes of one node on one database: which of them are alive, and which leads.

On PostgreSQL any number of ``blindmatch run`` processes of one node identity may share the
node's database, each serving the federation and the API. Each process holds, on a connection
of its own (a :class:`~.database.LockSession`):

- its **presence** lock, named by a random instance id. The server drops it the moment the
  connection ends (a killed process's too), so another process can tell a dead process's
  outbox leases from a live one's and hand them out again at once instead of after the lease;
- the **leader** lock, held by at most one process. The leader alone runs the node's periodic
  work: publishing the index, pulling peers' feeds, signing log heads, watching peers' logs,
  releasing dead processes' leases. When it dies another process takes the lock on its next
  round.

Leadership saves duplicated work; it is not what keeps the data right. Everything the leader
does is also safe when two processes do it at once (a leader that lost its connection and has
not noticed yet): publication runs under :meth:`~.database.Database.exclusive`, pulled pages are
stored idempotently, log appends and heads under the log's lock.

On SQLite a node is one process (``runtime`` refuses a second ``blindmatch run`` on the file),
which is then always the leader.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from blindmatch.node.storage.database import Database, LockSession, StorageError

LEADER_LOCK = "blindmatch:leader"


def presence_lock(instance: str) -> str:
    return f"blindmatch:process:{instance}"


class ProcessGroup:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.instance = os.urandom(8).hex()  # names this process's leases
        self.is_leader = False
        self._session: LockSession | None = None

    async def start(self) -> None:
        await self._connect()
        await self.refresh()

    async def _connect(self) -> None:
        self._session = session = await self.db.lock_session()
        if not await session.try_lock(presence_lock(self.instance)):
            raise StorageError("another process holds this process's instance id")

    async def refresh(self) -> bool:
        """Check the session and take the leader lock if it is free; returns whether this
        process leads now. A session that went away (the database restarted, the connection
        broke) took the locks with it: a new one is opened, leading only if the lock is free."""
        session = self._session
        if session is None or not await session.alive():
            self.is_leader = False
            if session is not None:
                await session.close()
            self._session = None
            try:
                await self._connect()
            except StorageError:
                return False
            session = self._session
        assert session is not None
        if not self.is_leader:
            self.is_leader = await session.try_lock(LEADER_LOCK)
        return self.is_leader

    async def dead(self, instances: Iterable[str]) -> list[str]:
        """The instances among these whose process is gone (its presence lock is free)."""
        session = self._session
        if session is None:
            return []
        gone = []
        for instance in sorted(set(instances) - {self.instance}):
            name = presence_lock(instance)
            if await session.try_lock(name):
                await session.unlock(name)
                gone.append(instance)
        return gone

    async def close(self) -> None:
        self.is_leader = False
        if self._session is not None:
            await self._session.close()
            self._session = None
