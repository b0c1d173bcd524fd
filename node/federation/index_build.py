"""The CPU-heavy half of publishing an index: evaluating the node's OPRF on bucket keys.

Each item's index keys are evaluated under the node's VOPRF key and packed into index entries
(``protocol.index``). A backlog (a bank import, a first start) runs in worker processes, one
per core, so the build is bound by scalar multiplications rather than by one interpreter; a
handful of items (the steady state: a survivor's submission, a withdrawal) runs in a thread,
where starting processes would cost more than the work.
"""

from __future__ import annotations

import asyncio
import atexit
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from blindmatch.crypto import oprf
from blindmatch.protocol import index
from blindmatch.protocol.roster import voprf_key_id

# Below this many keys a batch is evaluated in a thread: a worker pool's start-up (spawned
# interpreters importing the crypto core) costs about as much as a few thousand evaluations.
POOL_MIN_KEYS = 20_000
CHUNK_ITEMS = 250

_pool: ProcessPoolExecutor | None = None


def evaluate_items(
    sk: bytes, pk: bytes, items: Sequence[tuple[bytes, Sequence[bytes]]]
) -> list[bytes]:
    """Packed index entries of each ``(item_ref, index_keys)``, in order (runs in a worker),
    each entry with a fresh table reference (spec 8.5)."""
    key = oprf.ServerKey(sk=sk, pk=pk)
    key_id = voprf_key_id(pk)
    return [index.pack_entries(index.item_entries(key, key_id, ref, keys)) for ref, keys in items]


def _shutdown() -> None:
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=False, cancel_futures=True)
        _pool = None


def _worker_pool() -> ProcessPoolExecutor:
    global _pool
    if _pool is None:
        # spawn, not fork: the node's process has threads (the database driver's) that a
        # forked child would inherit mid-operation.
        _pool = ProcessPoolExecutor(
            max(1, os.cpu_count() or 1), mp_context=multiprocessing.get_context("spawn")
        )
        atexit.register(_shutdown)
    return _pool


def start_entries(
    key: oprf.ServerKey, items: Sequence[tuple[bytes, Sequence[bytes]]]
) -> list[asyncio.Future[list[bytes]]]:
    """Start evaluating every item now; one future per chunk of items, in order, each giving
    the chunk's packed entries (so a caller can write early chunks while later ones run).
    Must be called from the event loop."""
    if not items:
        return []
    if sum(len(keys) for _, keys in items) < POOL_MIN_KEYS:
        return [asyncio.ensure_future(asyncio.to_thread(evaluate_items, key.sk, key.pk, items))]
    chunks = [items[s : s + CHUNK_ITEMS] for s in range(0, len(items), CHUNK_ITEMS)]
    try:
        pool = _worker_pool()
        futures = [pool.submit(evaluate_items, key.sk, key.pk, c) for c in chunks]
    except BrokenProcessPool:
        # A worker died (killed, out of memory): start a fresh pool rather than fail forever.
        _shutdown()
        pool = _worker_pool()
        futures = [pool.submit(evaluate_items, key.sk, key.pk, c) for c in chunks]
    return [asyncio.wrap_future(f) for f in futures]


async def build_entries(
    key: oprf.ServerKey, items: Sequence[tuple[bytes, Sequence[bytes]]]
) -> list[bytes]:
    """Packed entries per item, off the event loop (worker processes for a backlog)."""
    parts = await asyncio.gather(*start_entries(key, items))
    return [packed for part in parts for packed in part]
