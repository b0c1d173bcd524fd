"""The CPU-heavy half of publishing an index: evaluating the node's OPRF on bucket keys.

Each item's index keys are evaluated under the node's VOPRF key and packed into index entries
(``protocol.index``). A backlog (a bank import, a first start) runs in worker processes, one
per core, so the build is bound by scalar multiplications rather than by one interpreter; a
handful of items (the steady state: a survivor's submission, a withdrawal) runs in a thread,
where starting processes would cost more than the work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from blindmatch.crypto import oprf
from blindmatch.node.federation import oprf_workers
from blindmatch.protocol import index
from blindmatch.protocol.roster import voprf_key_id

# Below this many keys a batch is evaluated in a thread: a worker pool's start-up (spawned
# interpreters importing the crypto core) costs about as much as a few thousand evaluations.
POOL_MIN_KEYS = 20_000
CHUNK_ITEMS = 250


def evaluate_items(
    key: oprf.ServerKey, items: Sequence[tuple[bytes, Sequence[bytes]]]
) -> list[bytes]:
    """Packed index entries of each ``(item_ref, index_keys)``, in order (runs in a worker),
    each entry with a fresh table reference (spec 8.5). ``key`` travels whole, seed included,
    so a worker uses the same OPRF backend."""
    key_id = voprf_key_id(key.pk)
    return [index.pack_entries(index.item_entries(key, key_id, ref, keys)) for ref, keys in items]


def start_entries(
    key: oprf.ServerKey, items: Sequence[tuple[bytes, Sequence[bytes]]]
) -> list[asyncio.Future[list[bytes]]]:
    """Start evaluating every item now; one future per chunk of items, in order, each giving
    the chunk's packed entries (so a caller can write early chunks while later ones run).
    Must be called from the event loop."""
    if not items:
        return []
    if sum(len(keys) for _, keys in items) < POOL_MIN_KEYS:
        return [asyncio.ensure_future(asyncio.to_thread(evaluate_items, key, items))]
    chunks = [items[s : s + CHUNK_ITEMS] for s in range(0, len(items), CHUNK_ITEMS)]
    return [asyncio.wrap_future(oprf_workers.submit(evaluate_items, key, c)) for c in chunks]


async def build_entries(
    key: oprf.ServerKey, items: Sequence[tuple[bytes, Sequence[bytes]]]
) -> list[bytes]:
    """Packed entries per item, off the event loop (worker processes for a backlog)."""
    parts = await asyncio.gather(*start_entries(key, items))
    return [packed for part in parts for packed in part]
