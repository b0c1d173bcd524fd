"""A node past one process: hub and platform, each 3 real ``blindmatch run`` processes of one
node identity on one PostgreSQL database, behind a loopback round-robin balancer (the roster
endpoint), under concurrent bank imports and match jobs, with each node's leader killed
mid-run.

What must hold (README: Running several processes): every near copy matched (also those
published after the kill, which only a new platform leader pulls), no unrelated picture
matched, no duplicate item, publication or case, every outbox message delivered and each
webhook once (a message the killed process may have been sending excepted: at least once,
idempotent by key), every process's replica at the shared cursor, both logs verifying against
their newest signed head, and a surviving process leading each node.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientError, web

from blindmatch.crypto import signing
from blindmatch.node import keys as keyfiles
from blindmatch.node.api.client import ApiClientError, BlindmatchClient
from blindmatch.node.storage import open_database
from blindmatch.node.storage.translog import TranslogStore
from blindmatch.node.translog.log import read_stored_log
from blindmatch.protocol import canonical, index
from blindmatch.protocol import roster as roster_mod
from blindmatch.protocol import transparency as tl

PROCESSES = 3
NEAR_BITS = 4  # a near copy: this many bits flipped (band 8)
# Every near copy costs the hub a private threshold test (bit proofs): CI-sized by default,
# BLINDMATCH_SCALE_OUT=N for N times the load.
SCALE = int(os.environ.get("BLINDMATCH_SCALE_OUT", "1"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Balancer:
    """Round robin over a node's processes, per connection, skipping one that refuses."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.turn = 0
        self.server: asyncio.Server | None = None
        self.port = 0
        self.open: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}  # connection handlers

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.open[task] = writer
        try:
            await self._relay(reader, writer)
        finally:
            self.open.pop(task, None)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = None
        for _ in range(len(self.ports)):
            port = self.ports[self.turn % len(self.ports)]
            self.turn += 1
            with contextlib.suppress(OSError):
                upstream = await asyncio.open_connection("127.0.0.1", port)
                break
        if upstream is None:
            writer.close()
            return

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while chunk := await src.read(65536):
                    dst.write(chunk)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, upstream[1]), pump(upstream[0], writer))

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in self.open.values():
            writer.close()
        await asyncio.gather(*self.open, return_exceptions=True)


class ScaledNode:
    """One node identity: a home (keys, token), a database, PROCESSES configs and processes."""

    def __init__(self, root: Path, node_id: str, database: str) -> None:
        self.node_id = node_id
        self.home = root / node_id
        self.home.mkdir()
        self.database = database
        self.keys = keyfiles.create(self.home / "keys")
        self.ports = [(_free_port(), _free_port()) for _ in range(PROCESSES)]
        self.balancer = Balancer([p for p, _ in self.ports])
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * PROCESSES
        self.turn = 0

    def write_configs(self, roster: Path, governance: bytes, extra: str = "") -> None:
        for i, (port, api) in enumerate(self.ports):
            (self.home / f"config-{i}.toml").write_text(
                f'node_id = "{self.node_id}"\nhome = "."\n'
                f'listen = "127.0.0.1:{port}"\napi_listen = "127.0.0.1:{api}"\n'
                f'database = "{self.database}"\nroster = "{roster}"\n'
                f'governance_keys = ["{governance.hex()}"]\ngovernance_threshold = 1\n'
                f"sync_interval_s = 0.3\nmatch_workers = 4\n{extra}"
            )

    def start(self) -> None:
        for i in range(PROCESSES):
            with open(self.home / f"run-{i}.log", "wb") as log:
                self.procs[i] = subprocess.Popen(
                    [sys.executable, "-m", "blindmatch", "run", "--config",
                     str(self.home / f"config-{i}.toml")],
                    stdout=subprocess.DEVNULL, stderr=log,
                )  # fmt: skip

    def alive(self) -> list[int]:
        return [i for i, p in enumerate(self.procs) if p is not None and p.poll() is None]

    def kill(self, i: int) -> None:
        proc = self.procs[i]
        assert proc is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop(self) -> list[str]:
        """Stop every process; returns what each wrote to its log."""
        for p in self.procs:
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            if p is None:
                continue
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return [
            (self.home / f"run-{i}.log").read_text(errors="replace")
            for i in range(PROCESSES)
            if (self.home / f"run-{i}.log").exists()
        ]

    def client(self, i: int) -> BlindmatchClient:
        token = (self.home / "api.token").read_text().strip()
        return BlindmatchClient(f"http://127.0.0.1:{self.ports[i][1]}", token)

    async def call(self, fn: Callable[[BlindmatchClient], Awaitable[Any]]) -> Any:
        """Round robin over the live processes; a process that is gone is skipped."""
        for _ in range(4 * PROCESSES):
            alive = self.alive()
            i = alive[self.turn % len(alive)]
            self.turn += 1
            try:
                async with self.client(i) as bm:
                    return await fn(bm)
            except (ClientError, OSError):
                await asyncio.sleep(0.1)
        raise AssertionError(f"no process of {self.node_id} answered")

    async def statuses(self) -> list[dict[str, Any]]:
        out = []
        for i in self.alive():
            async with self.client(i) as bm:
                out.append(await bm.status())
        return out


async def _until(what: str, check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


def _near(h: bytes, rng: secrets.SystemRandom) -> str:
    value = int.from_bytes(h, "big")
    for bit in rng.sample(range(256), NEAR_BITS):
        value ^= 1 << bit
    return value.to_bytes(32, "big").hex()


@pytest.mark.postgres
async def test_three_processes_per_node_miss_nothing_and_duplicate_nothing(
    tmp_path: Path, pg_url: str
) -> None:
    rng = secrets.SystemRandom()
    governance = signing.SigningKey.generate()
    hub = ScaledNode(tmp_path, "hub", pg_url + "h")
    platform = ScaledNode(tmp_path, "platform", pg_url + "p")
    hooks: Counter[str] = Counter()

    async def webhook(request: web.Request) -> web.Response:
        hooks[json.loads(await request.read())["idempotency_key"]] += 1
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hook", webhook)
    hook_runner = web.AppRunner(app, access_log=None)
    await hook_runner.setup()
    hook_port = _free_port()
    await web.TCPSite(hook_runner, "127.0.0.1", hook_port).start()
    for node in (hub, platform):
        await node.balancer.start()
    now_ms = int(time.time() * 1000)
    members = [
        {
            "id": n.node_id,
            "signing_key": n.keys.identity.public_key.hex(),
            "voprf_key": n.keys.voprf.pk.hex() if n is hub else None,
            "endpoint": f"http://127.0.0.1:{n.balancer.port}",
            "roles": ["hub"] if n is hub else ["platform"],
        }
        for n in (hub, platform)
    ]
    document = roster_mod.sign_roster(
        {"federation": "scale", "serial": 1, "issued_ms": now_ms - 60_000,
         "expires_ms": now_ms + 86_400_000, "members": members},
        [governance],
    )  # fmt: skip
    roster = tmp_path / "roster.json"
    roster.write_text(json.dumps(document))
    hub.write_configs(roster, governance.public_key)
    # Close copies from the hub are blocked without a person: each one a webhook.
    (platform.home / "policy.toml").write_text(
        '[auto_action]\nmax_band = 8\nprovenance = ["survivor-submitted"]\n'
        'trusted_sources = ["hub"]\nmin_confirmations = 0\nmax_disputes = 0\n'
    )
    (platform.home / "webhook.secret").write_text(secrets.token_hex(16))
    platform.write_configs(
        roster,
        governance.public_key,
        f'policy = "policy.toml"\nwebhook_url = "http://127.0.0.1:{hook_port}/hook"\n'
        'webhook_secret_file = "webhook.secret"\n',
    )
    hub.start()
    platform.start()
    try:
        await _run(hub, platform, rng, hooks)
    finally:
        logs = hub.stop() + platform.stop()
        for node in (hub, platform):
            await node.balancer.close()
        await hook_runner.cleanup()
    for log in logs:  # no process lost a race it should not have run (IntegrityError, ...)
        assert '"level": "error"' not in log, log[-3000:]


async def _run(
    hub: ScaledNode, platform: ScaledNode, rng: secrets.SystemRandom, hooks: Counter[str]
) -> None:
    async def up(node: ScaledNode) -> bool:
        try:
            return len(await node.statuses()) == PROCESSES
        except (ClientError, OSError, FileNotFoundError):
            return False

    await _until("every process to serve", lambda: _both(up(hub), up(platform)), 180)
    await hub.call(lambda bm: bm.create_bank("ncii", "survivor-submitted", shared=True))

    def batch(n: int) -> list[bytes]:
        return [os.urandom(32) for _ in range(n)]

    async def imports(batches: list[list[bytes]]) -> None:
        await asyncio.gather(
            *(
                hub.call(lambda bm, b=b: bm.add_hashes("ncii", [h.hex() for h in b]))
                for b in batches
            )
        )

    last: list[Any] = []

    async def replicated() -> bool:
        """Every live platform process's replica holds the hub's whole index feed."""
        head = (await hub.call(lambda bm: bm.status()))["index_feed_head"]
        statuses = await platform.statuses()
        last[:] = [head, statuses]
        return head > 0 and all(s["peers"][0]["replica_position"] >= head for s in statuses)

    async def match(h: str, tag: str) -> dict[str, Any]:
        ref = f"{tag}-{secrets.token_hex(4)}"
        return await platform.call(lambda bm: bm.match_hashes([h], content_ref=ref))

    first = [batch(2 * SCALE) for _ in range(4)]
    await imports(first)
    try:
        await _until("the platform to replicate the first imports", replicated, 60)
    except AssertionError:
        raise AssertionError(last) from None

    # Concurrent load: near copies and unrelated pictures matched on the platform while the
    # hub imports more; each node's leader is killed in the middle.
    held = [h for b in first for h in b]
    jobs: dict[str, str] = {}  # job -> "near:<hash hex>" or "unrelated"

    async def submit_near(hashes: list[bytes]) -> None:
        for h in hashes:
            job = await match(_near(h, rng), "near")
            jobs[job["job"]] = f"near:{h.hex()}"

    async def submit_unrelated(n: int) -> None:
        for _ in range(n):
            job = await match(os.urandom(32).hex(), "other")
            jobs[job["job"]] = "unrelated"

    async def kill_leaders() -> None:
        # Mid-run: half the jobs submitted, their parts running in every process.
        while len(jobs) < (len(held) + 3 * SCALE) // 2:
            await asyncio.sleep(0.05)
        for node in (platform, hub):
            leaders = [i for i in node.alive() if await _is_leader(node, i)]
            assert len(leaders) == 1, f"{node.node_id}: {len(leaders)} leaders"
            node.kill(leaders[0])

    second = [batch(1 * SCALE) for _ in range(3)]
    await asyncio.gather(
        *(submit_near(held[i::4]) for i in range(4)),
        submit_unrelated(3 * SCALE),
        imports(second),
        kill_leaders(),
    )
    # A new leader pulls what the hub published meanwhile; its copies must match too.
    await _until("a new platform leader to replicate the rest", replicated, 120)
    await submit_near([h for b in second for h in b])

    done: dict[str, dict[str, Any]] = {}

    async def ended() -> bool:
        for job in sorted(set(jobs) - set(done)):
            status = await platform.call(lambda bm, job=job: bm.job(job))
            if not status["complete"]:
                return False
            done[job] = status
        return True

    try:
        # Generous: on an overloaded machine a hub's answer can outlast the querier's read
        # timeout, and the part is retried with backoff.
        await _until("every match job to end", ended, 240)
    except AssertionError:
        pending = [await platform.call(lambda bm, j=j: bm.job(j)) for j in set(jobs) - set(done)]
        raise AssertionError(f"{len(pending)} jobs not ended: {pending[:3]}") from None

    hub_db = await open_database(hub.database)
    platform_db = await open_database(platform.database)
    try:
        items = {
            bytes(r["item_ref"]).hex(): bytes(r["hash"]).hex()
            for r in await hub_db.fetch_all("SELECT item_ref, hash FROM bank_items")
        }
        banked = {h.hex() for b in first + second for h in b}
        assert sorted(items.values()) == sorted(banked)  # each import once, nothing twice
        published = await hub_db.fetch_value("SELECT COUNT(*) FROM index_publications")
        assert published == len(banked)
        # Each item's entries in the index feed once (no backlog evaluated and published by
        # two processes): the feed's index.add entries are exactly the publications'.
        adds = await hub_db.fetch_all(
            "SELECT payload FROM feed_entries WHERE feed = 'index' AND kind = 'index.add'"
        )
        fed = sorted(
            e
            for a in adds
            for e in index.split_entries(canonical.decode(bytes(a["payload"]))["entries"])
        )
        rows = await hub_db.fetch_all("SELECT entries FROM index_publications")
        assert fed == sorted(e for r in rows for e in index.split_entries(bytes(r["entries"])))

        for job, status in done.items():
            kind = jobs[job]
            got = {items.get(m["item"]) for m in status["matches"]}
            if kind == "unrelated":
                assert not got, f"an unrelated picture matched {got}"
            else:
                assert kind.removeprefix("near:") in got, f"missed a near copy: {status}"
        near = [j for j, k in jobs.items() if k != "unrelated"]
        assert len(near) == len(banked)

        cases = await platform_db.fetch_all("SELECT content_ref, state FROM cases")
        assert len(cases) == len({c["content_ref"] for c in cases}) == len(banked)
        assert {c["state"] for c in cases} == {"actioned"}
        outbox = await platform_db.fetch_all("SELECT kind, state, attempts, payload FROM outbox")
        assert {o["state"] for o in outbox} == {"delivered"}, Counter(o["state"] for o in outbox)
        webhooks = [o for o in outbox if o["kind"] == "webhook"]
        assert len(webhooks) == len(banked)
        for o in webhooks:
            key = json.loads(bytes(o["payload"]))["idempotency_key"]
            # Once; more only if a process died while it was sending (at least once).
            assert hooks[key] == 1 or (hooks[key] > 1 and o["attempts"] > 1), (key, hooks[key])
        assert len(hooks) == len(banked)

        # Every live process follows the shared cursor (and knows the hub's feed head from the
        # leader's pulls); a surviving process leads each node.
        for status in await platform.statuses():
            assert status["peers"][0]["synced_at"] is not None
            assert status["peers"][0]["feed_lag"] == 0
        for node in (hub, platform):
            assert len(node.alive()) == PROCESSES - 1
            assert sum([await _is_leader(node, i) for i in node.alive()]) == 1
        for node, db in ((hub, hub_db), (platform, platform_db)):
            await _until(f"{node.node_id}'s log head", lambda db=db: _head_covers_log(db), 30)
            lines, heads = await read_stored_log(TranslogStore(db), node.node_id)
            report = tl.audit_log(
                [bytes.fromhex(json.loads(line)["entry"]) for line in lines],
                heads[-1],
                node.keys.identity.public_key,
                earlier_heads=heads[:-1],
            )
            assert report.tree_size == len(lines)
    finally:
        await hub_db.close()
        await platform_db.close()


async def _both(a: Awaitable[bool], b: Awaitable[bool]) -> bool:
    return all(await asyncio.gather(a, b))


async def _is_leader(node: ScaledNode, i: int) -> bool:
    with contextlib.suppress(ClientError, OSError, ApiClientError):
        async with node.client(i) as bm:
            return bool((await bm.status())["process"]["leader"])
    return False


async def _head_covers_log(db: Any) -> bool:
    size = await db.fetch_value("SELECT COUNT(*) FROM log_entries")
    head = await db.fetch_value("SELECT MAX(tree_size) FROM log_tree_heads")
    return head is not None and int(head) == int(size)


# --- the parts, on each backend -------------------------------------------------------------


async def test_a_dead_process_loses_its_leadership_and_its_leases(db_url: str) -> None:
    """Two processes of one node (two opened databases): one leads; while it lives its claims
    are its own; once it is gone the other leads and takes its claims back at once."""
    from blindmatch.node.storage import Outbox
    from blindmatch.node.storage.processes import ProcessGroup

    first_db = await open_database(db_url, migrate_now=1000)
    second_db = first_db if db_url.startswith("sqlite") else await open_database(db_url)
    first, second = ProcessGroup(first_db), ProcessGroup(second_db)
    try:
        await first.start()
        await second.start()
        assert (first.is_leader, second.is_leader) == (True, False)
        mine = Outbox(first_db, owner=first.instance)
        theirs = Outbox(second_db, owner=second.instance)
        await mine.enqueue(b"m1", "hub", "match", b"job", 1000)
        assert [m.message_id for m in await mine.claim_due(1000)] == [b"m1"]
        assert await theirs.claim_due(1001) == []  # leased
        assert await theirs.lease_owners(1001) == [first.instance]
        assert await second.dead([first.instance, second.instance]) == []
        assert not await second.refresh()

        await first.close()  # as a killed process's connection ends
        assert await second.dead([first.instance]) == [first.instance]
        assert await theirs.release_leases(first.instance, 1001) == 1
        again = await theirs.claim_due(1001)
        assert [(m.message_id, m.attempts) for m in again] == [(b"m1", 2)]
        assert await second.refresh()
    finally:
        await first.close()
        await second.close()
        await first_db.close()
        if second_db is not first_db:
            await second_db.close()


async def test_exclusive_work_runs_one_at_a_time_across_processes(db_url: str) -> None:
    first = await open_database(db_url, migrate_now=1000)
    second = first if db_url.startswith("sqlite") else await open_database(db_url)
    inside: list[int] = []
    overlaps = 0

    async def work(db: Any, n: int) -> None:
        nonlocal overlaps
        async with db.exclusive("publish"):
            inside.append(n)
            overlaps += len(inside) > 1
            await asyncio.sleep(0.05)
            inside.remove(n)

    try:
        await asyncio.gather(*(work(first if n % 2 else second, n) for n in range(6)))
        assert overlaps == 0
    finally:
        await first.close()
        if second is not first:
            await second.close()


def test_a_second_node_process_on_a_sqlite_file_is_refused(tmp_path: Path) -> None:
    from blindmatch.node.runtime import SingleProcessError, claim_sqlite

    url = f"sqlite:///{tmp_path / 'node.db'}"
    held = claim_sqlite(url)
    assert held is not None
    try:
        with pytest.raises(SingleProcessError, match=r"one process.*PostgreSQL"):
            claim_sqlite(url)  # another open of the lock file, as another process's
    finally:
        held.close()
    claim_sqlite(url).close()  # free again once the first has stopped
    assert claim_sqlite("sqlite:///:memory:") is None
