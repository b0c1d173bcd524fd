"""Worker processes for a holder's OPRF work: its index build and its peers' evaluation requests.

Both are scalar multiplications and nothing else, bound by the cores rather than by one
interpreter; in worker processes they neither hold the event loop's interpreter lock nor queue
behind each other on one core. The pool is spawned on first use (spawn, not fork: the node's
process has threads, the database driver's, that a forked child would inherit mid-operation),
kept for the life of the process, and replaced if a worker dies.
"""

from __future__ import annotations

import asyncio
import atexit
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

T = TypeVar("T")

_pool: ProcessPoolExecutor | None = None


def _shutdown() -> None:
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=False, cancel_futures=True)
        _pool = None


def pool() -> ProcessPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ProcessPoolExecutor(
            max(1, os.cpu_count() or 1), mp_context=multiprocessing.get_context("spawn")
        )
        atexit.register(_shutdown)
    return _pool


def submit(fn: Callable[..., T], *args: Any) -> Future[T]:
    """``fn(*args)`` in a worker; a broken pool (a worker killed, out of memory) is replaced
    once rather than failing every later call."""
    try:
        return pool().submit(fn, *args)
    except BrokenProcessPool:
        _shutdown()
        return pool().submit(fn, *args)


async def run(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a worker, awaited from the event loop."""
    return await asyncio.wrap_future(submit(fn, *args))
