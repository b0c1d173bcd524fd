"""A node killed (SIGKILL) mid-transaction leaves nothing half-written, and a node killed after
a commit keeps what it committed: checked with a real child process on both backends."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap

from blindmatch.node.banks.service import BankService
from blindmatch.node.clock import FixedClock
from blindmatch.node.storage import FeedLog, open_database

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from blindmatch.node.banks.service import BankService
    from blindmatch.node.clock import FixedClock
    from blindmatch.node.storage import open_database

    async def main(url):
        db = await open_database(url)
        banks = BankService(db, FixedClock())
        await banks.add_item("b", "pdq", "1" * 64)  # committed before the kill
        async with db.transaction():
            for n in range(2, 50):
                await banks.add_item("b", "pdq", f"{n:064x}")
            print("in-transaction", flush=True)
            await asyncio.sleep(60)  # killed here

    asyncio.run(main(sys.argv[1]))
    """
)


async def test_kill_mid_transaction_loses_nothing_committed(db_url: str) -> None:
    clock = FixedClock()
    db = await open_database(db_url, migrate_now=clock.now())
    try:
        await BankService(db, clock).create_bank("b", provenance="generator", shared=True)
    finally:
        await db.close()

    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, db_url, stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    line = await asyncio.wait_for(child.stdout.readline(), timeout=30)
    assert line.strip() == b"in-transaction"
    os.kill(child.pid, signal.SIGKILL)
    await child.wait()

    db = await open_database(db_url, migrate_now=clock.now())
    try:
        banks = BankService(db, clock)
        items = await banks.list_items("b", include_inactive=True)
        assert [i.hash.hex() for i in items] == ["1" * 64]
        entries = await FeedLog(db).read("bank-items")
        assert [e.kind for e in entries] == ["item-added"]
        # The database is healthy and writable after the crash.
        await banks.add_item("b", "pdq", "2" * 64)
        if db.dialect.name == "sqlite":
            assert await db.fetch_value("PRAGMA integrity_check") == "ok"
    finally:
        await db.close()
