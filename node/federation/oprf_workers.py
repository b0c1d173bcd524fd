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


def _die_with_parent(parent: int) -> None:
    """In each worker: end when the node's process ends, even by SIGKILL (a worker of a
    killed node was orphaned and ran on forever). Linux kills it through PR_SET_PDEATHSIG;
    a watch thread covers other systems and the moment before the call took effect."""
    import ctypes
    import signal
    import threading
    import time

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    if os.getppid() != parent:
        os._exit(0)
    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def pool() -> ProcessPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ProcessPoolExecutor(
            max(1, os.cpu_count() or 1),
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_die_with_parent,
            initargs=(os.getpid(),),
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
