"""The node's verifiable log: entries and signed tree heads in the node's database.

The pure parts (entry schemas, the Merkle tree, proofs, signing, auditing) are
:mod:`blindmatch.protocol.transparency`; this module stores them. Leaf ``i`` is the row
``log_entries.seq = i``. Appends are serialised by the ``translog`` lock inside a database
transaction and take ``MAX(seq) + 1``, so several workers over one PostgreSQL database append
to one log without gaps, and an append made inside a caller's transaction commits (or rolls
back) together with the caller's own writes.

The in-memory :class:`~blindmatch.protocol.transparency.MerkleTree` is a cache of the stored
leaf hashes: before it signs or proves anything it catches up with the rows committed since
(by any worker), and rebuilds itself if its last leaf is no longer what is stored. At start it
checks that the stored tree still hashes to the newest head this node signed; a node never
signs a head over a history that changed under it (:class:`LogIntegrityError`).

Nothing here accepts a hash or an image: every entry must be exactly one of the schemas of
specs/transparency.md section 3 (:func:`~blindmatch.protocol.transparency.encode_entry`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from blindmatch.crypto import signing
from blindmatch.node.clock import Clock
from blindmatch.node.storage.database import Row
from blindmatch.node.storage.translog import TranslogStore
from blindmatch.protocol import transparency as tl

LOCK_NAME = "translog"
MAX_PAGE = 1000  # entries per read
DEFAULT_HEAD_MAX_AGE_MS = 3_600_000  # sign at least hourly (specs/transparency.md 6)


class LogIntegrityError(tl.LogError):
    """The stored log no longer matches a head this node signed: it will not sign over it."""

    code = "tampered-entry"


@dataclass(frozen=True)
class StoredEntry:
    index: int
    entry: bytes
    leaf_hash: bytes
    created_at: int

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "entry": self.entry.hex(), "leaf_hash": self.leaf_hash.hex()}


def _head(row: Row) -> tl.SignedTreeHead:
    return tl.SignedTreeHead(
        log_id=row["log_id"],
        tree_size=int(row["tree_size"]),
        root_hash=bytes(row["root"]),
        timestamp_ms=int(row["timestamp_ms"]),
        signature=bytes(row["signature"]),
    )


def head_to_json(head: tl.SignedTreeHead) -> dict[str, Any]:
    """The JSON form served to peers and auditors: hex fields plus the canonical bytes."""
    return {
        "log_id": head.log_id,
        "tree_size": head.tree_size,
        "root_hash": head.root_hash.hex(),
        "timestamp_ms": head.timestamp_ms,
        "signature": head.signature.hex(),
        "sth": head.to_bytes().hex(),
    }


class TransparencyLog:
    """One node's append-only log (see the module docstring)."""

    def __init__(
        self, store: TranslogStore, node_id: str, signing_key: signing.SigningKey, clock: Clock
    ) -> None:
        self.store = store
        self.node_id = node_id
        self.signing_key = signing_key
        self.public_key = signing_key.public_key
        self.clock = clock
        self._tree = tl.MerkleTree()
        self._ready = False
        self._mutex = asyncio.Lock()  # one catch-up or signing at a time in this process

    # --- loading ----------------------------------------------------------------------------

    async def load(self) -> None:
        """Create the tables if needed, load the tree from the stored leaf hashes, and check
        that it still hashes to the newest stored head (else :class:`LogIntegrityError`)."""
        await self.store.ensure()
        async with self._mutex:
            self._tree = tl.MerkleTree()
            await self._catch_up()
            latest = await self._latest_head_row()
            if latest is not None:
                self._check_against(latest)
            self._ready = True

    async def _ensure_ready(self) -> None:
        if not self._ready:
            await self.load()

    def _check_against(self, head: tl.SignedTreeHead) -> None:
        size = len(self._tree)
        if head.tree_size > size:
            raise LogIntegrityError(
                f"the log signed a head of size {head.tree_size} but only {size} entries are "
                "stored (entries were removed)"
            )
        if self._tree.root(head.tree_size) != head.root_hash:
            raise LogIntegrityError(
                f"the stored entries no longer hash to the signed head of size "
                f"{head.tree_size}: the stored log was altered (run `blindmatch audit verify` "
                "on its export to locate the entry)"
            )

    async def _catch_up(self) -> None:
        """Append to the cached tree the leaves committed since it was last read."""
        while True:
            size = len(self._tree)
            rows = await self.store.leaf_hashes(max(size - 1, 0), MAX_PAGE * 10)
            if size > 0:
                # The first row must be our last leaf; if it is gone or differs (a caller's
                # transaction rolled back after we read its rows), start over.
                if (
                    not rows
                    or int(rows[0]["seq"]) != size - 1
                    or bytes(rows[0]["leaf_hash"]) != self._tree.leaf_hash_at(size - 1)
                ):
                    self._tree = tl.MerkleTree()
                    continue
                rows = rows[1:]
            if not rows:
                return
            for r in rows:
                seq = int(r["seq"])
                if seq != len(self._tree):
                    raise LogIntegrityError(
                        f"the stored log has a gap: entry {len(self._tree)} is missing"
                    )
                self._tree.append_leaf_hash(bytes(r["leaf_hash"]))

    async def _synced_tree(self) -> tl.MerkleTree:
        await self._ensure_ready()
        async with self._mutex:
            await self._catch_up()
        return self._tree

    # --- appending ----------------------------------------------------------------------------

    def now_ms(self) -> int:
        return int(self.clock.now()) * 1000

    async def append(self, entry: Mapping[str, Any]) -> int:
        """Append one entry; returns its index. ``time_ms`` defaults to now.

        The entry must be exactly one schema of specs/transparency.md section 3, else
        :class:`~blindmatch.protocol.transparency.EntryError` and nothing is stored. Safe to
        call inside the caller's transaction: the entry then commits with the caller's writes.
        """
        if not isinstance(entry, Mapping):
            raise tl.EntryError("an entry is a map")
        value = dict(entry)
        value.setdefault("time_ms", self.now_ms())
        data = tl.encode_entry(value)
        lh = tl.leaf_hash(data)
        await self._ensure_ready()
        async with self.store.locked(LOCK_NAME):
            return await self.store.insert_entry(data, lh, self.clock.now())

    # --- tree heads ---------------------------------------------------------------------------

    def _row_head(self, row: Row | None) -> tl.SignedTreeHead | None:
        if row is None:
            return None
        return _head({**row, "log_id": self.node_id})

    async def _latest_head_row(self) -> tl.SignedTreeHead | None:
        return self._row_head(await self.store.latest_head())

    async def sign_head(self) -> tl.SignedTreeHead:
        """Sign a head for the current size, store it and return it.

        Timestamps never go backwards (a head is never older than the previous one), and a
        head is never signed over a tree that does not extend the previous signed head. Do not
        call this inside a transaction of your own.
        """
        await self._ensure_ready()
        async with self._mutex, self.store.locked(LOCK_NAME):
            await self._catch_up()
            previous = await self._latest_head_row()
            if previous is not None:
                self._check_against(previous)
            size = len(self._tree)
            timestamp = self.now_ms()
            if previous is not None:
                timestamp = max(timestamp, previous.timestamp_ms)
            head = tl.sign_tree_head(
                self.signing_key, self.node_id, size, self._tree.root(), timestamp
            )
            await self.store.put_head(
                size, head.root_hash, head.timestamp_ms, head.signature, self.clock.now()
            )
        return head

    async def sign_if_due(
        self, max_age_ms: int = DEFAULT_HEAD_MAX_AGE_MS
    ) -> tl.SignedTreeHead | None:
        """Sign a new head if entries were appended since the last one, or it is older than
        ``max_age_ms`` (so peers see the log is live); else return None."""
        await self._ensure_ready()
        latest = await self.latest_head()
        size = await self.store.size()
        if (
            latest is None
            or size != latest.tree_size
            or self.now_ms() - latest.timestamp_ms >= max_age_ms
        ):
            return await self.sign_head()
        return None

    async def run_signer(
        self, interval_s: float = 5.0, max_age_ms: int = DEFAULT_HEAD_MAX_AGE_MS
    ) -> None:
        """Background task: sign heads as entries arrive (every ``interval_s``) and hourly."""
        import logging

        log = logging.getLogger("blindmatch.translog")
        while True:
            try:
                await self.sign_if_due(max_age_ms)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("signing a tree head failed")
            await asyncio.sleep(interval_s)

    async def latest_head(self) -> tl.SignedTreeHead | None:
        """The newest head this node signed (None before the first)."""
        await self._ensure_ready()
        return await self._latest_head_row()

    async def head_at(self, tree_size: int) -> tl.SignedTreeHead | None:
        """The head this node signed for ``tree_size`` (the newest, if re-signed), or None."""
        await self._ensure_ready()
        return self._row_head(await self.store.head_at(tree_size))

    async def heads(self) -> list[tl.SignedTreeHead]:
        """Every stored head, by size."""
        await self._ensure_ready()
        rows = await self.store.heads()
        return [h for r in rows if (h := self._row_head(r)) is not None]

    # --- proofs and reading -------------------------------------------------------------------

    async def size(self) -> int:
        return len(await self._synced_tree())

    async def root(self, size: int | None = None) -> bytes:
        return (await self._synced_tree()).root(size)

    async def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 inclusion proof of entry ``index`` in the tree of ``size`` (raises
        :class:`~blindmatch.protocol.transparency.RangeError` for an index or size the log
        lacks)."""
        return (await self._synced_tree()).inclusion_proof(index, size)

    async def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """RFC 9162 consistency proof from the tree of ``first`` to the tree of ``second``."""
        return (await self._synced_tree()).consistency_proof(first, second)

    async def entries(self, start: int = 0, end: int | None = None) -> list[StoredEntry]:
        """Stored entries ``start .. end-1`` (at most :data:`MAX_PAGE`), as stored."""
        await self._ensure_ready()
        if end is None:
            end = start + MAX_PAGE
        end = min(end, start + MAX_PAGE)
        rows = await self.store.entries(start, end)
        return [
            StoredEntry(
                int(r["seq"]), bytes(r["entry"]), bytes(r["leaf_hash"]), int(r["created_at"])
            )
            for r in rows
        ]

    async def all_entries(self) -> list[StoredEntry]:
        out: list[StoredEntry] = []
        while True:
            page = await self.entries(len(out), len(out) + MAX_PAGE)
            out.extend(page)
            if len(page) < MAX_PAGE:
                return out

    async def export_jsonl(self) -> list[str]:
        """The export of specs/transparency.md 8.1: one ``{"entry", "leaf_hash"}`` line each."""
        return [
            json.dumps({"entry": e.entry.hex(), "leaf_hash": e.leaf_hash.hex()}, sort_keys=True)
            for e in await self.all_entries()
        ]

    async def verify_stored(self) -> tl.AuditReport:
        """Audit the stored log against the newest signed head (and every earlier one), as an
        outside auditor would (specs/transparency.md 8.2); raises a LogError naming what
        changed. Signs a first head if there is none yet."""
        head = await self.latest_head() or await self.sign_head()
        stored = await self.all_entries()
        earlier = [h for h in await self.heads() if h.tree_size < head.tree_size]
        return tl.audit_log(
            [e.entry for e in stored],
            head,
            self.public_key,
            leaf_hashes=[e.leaf_hash for e in stored],
            earlier_heads=earlier,
        )


async def read_stored_log(
    store: TranslogStore, node_id: str
) -> tuple[list[str], list[tl.SignedTreeHead]]:
    """The export lines and every stored head of a node's log, read straight from its
    database (no signing key needed: for an operator or auditor with database access, e.g.
    when the node refuses to start because its stored log changed)."""
    await store.ensure()
    lines: list[str] = []
    while True:
        rows = await store.entries(len(lines), len(lines) + MAX_PAGE)
        for r in rows:
            if int(r["seq"]) != len(lines):
                raise LogIntegrityError(f"the stored log has a gap: entry {len(lines)} is missing")
            lines.append(
                json.dumps(
                    {"entry": bytes(r["entry"]).hex(), "leaf_hash": bytes(r["leaf_hash"]).hex()},
                    sort_keys=True,
                )
            )
        if len(rows) < MAX_PAGE:
            break
    heads = [_head({**r, "log_id": node_id}) for r in await store.heads()]
    return lines, heads
