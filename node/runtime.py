"""Starting a node from its configuration: keys, roster, store, servers; and stopping it."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import secrets
import signal
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from aiohttp import web

from blindmatch.node import keys as keyfiles
from blindmatch.node.api.http import build_api
from blindmatch.node.banks.service import BankService
from blindmatch.node.cases import policy as policy_mod
from blindmatch.node.clock import SystemClock
from blindmatch.node.config import NodeConfig, is_loopback_host
from blindmatch.node.errors import BlindmatchError
from blindmatch.node.federation.http import build_app
from blindmatch.node.federation.port_guard import GuardedTCPSite, PortGuard, PortLimits
from blindmatch.node.federation.roster_watch import RosterWatch, load_roster
from blindmatch.node.node import Node
from blindmatch.node.storage import Database, NodeState, open_database, parse_database_url
from blindmatch.node.storage.translog import TranslogStore
from blindmatch.node.translog.monitor import FederationLogWatch

TOKEN_FILE = "api.token"


class ListenError(BlindmatchError, OSError):
    """A listener could not be opened (the port is taken, the address is not ours)."""

    code = "cannot-listen"


def api_token(home: Path) -> str:
    path = home / TOKEN_FILE
    if not path.exists():
        # Written whole under another name, then linked into place (which fails if it is
        # there): the node's processes sharing a home all read one complete token.
        tmp = home / f"{TOKEN_FILE}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return path.read_text().strip()


@dataclass
class RunningNode:
    node: Node
    banks: BankService
    runners: list[web.AppRunner]
    log_watch: FederationLogWatch | None = None
    log_watch_task: asyncio.Task[None] | None = None
    roster_watch: RosterWatch | None = None
    roster_watch_task: asyncio.Task[None] | None = None
    database_id: bytes = b""
    run_lock: IO[str] | None = None  # SQLite: held while this process runs the node

    async def stop(self) -> None:
        if self.roster_watch_task is not None:
            self.roster_watch_task.cancel()
        if self.log_watch_task is not None:
            self.log_watch_task.cancel()
        if self.log_watch is not None:
            await self.log_watch.close()
        for r in self.runners:
            await r.cleanup()
        if self.database_id:
            with contextlib.suppress(Exception):  # stopping goes on whatever the home allows
                size = await self.node.translog.size()
                record_history(self.node.cfg, self.database_id, size, self.node.now())
        await self.node.stop()
        if self.run_lock is not None:
            self.run_lock.close()


def _ssl_context(cfg: NodeConfig) -> ssl.SSLContext | None:
    if cfg.tls_cert is None or cfg.tls_key is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key)
    return ctx


class HistoryError(BlindmatchError, ValueError):
    """The database is not the one this node's home says it has been running on."""

    code = "storage"


HISTORY_FILE = "history.json"


async def check_history(cfg: NodeConfig, db: Database, now: int, fresh: bool) -> bytes:
    """Refuse to run on an empty (or another) database where this node's home records that it
    ran on one with history: a deleted or misconfigured database file was a silent fresh start
    (its jobs, cases and verifiable log gone). ``fresh`` is the operator saying to start over.
    Returns the database's id, kept in the home's history file once the node runs."""
    state = NodeState(db)
    held = await state.get("database_id")
    marker_path = cfg.home / HISTORY_FILE
    try:
        marker = json.loads(marker_path.read_text())
    except FileNotFoundError:
        marker = None
    except (OSError, ValueError) as exc:
        raise HistoryError(f"{marker_path}: unreadable ({exc.__class__.__name__})") from None
    if isinstance(marker, dict) and not fresh:
        had = str(marker.get("database_id", ""))
        if had and (held is None or held.hex() != had):
            what = "is empty" if held is None else "is another node database"
            raise HistoryError(
                f"the database ({cfg.database_url.split('?')[0]}) {what}, but this node ran"
                f" on database {had[:12]} whose verifiable log held"
                f" {int(marker.get('log_size', 0))} entries: restore that database (or point"
                " 'database' at it), or run with --fresh-database to start over"
            )
    if held is None:
        async with db.transaction():
            # The node's processes may start on an empty database together: one id for all.
            await db.lock("database_id")
            held = await state.get("database_id")
            if held is None:
                held = os.urandom(16)
                await state.set("database_id", held, now)
    return held


def record_history(cfg: NodeConfig, database_id: bytes, log_size: int, now: int) -> None:
    path = cfg.home / HISTORY_FILE
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # the node's processes may share the home
    tmp.write_text(
        json.dumps({"database_id": database_id.hex(), "log_size": log_size, "at": now}) + "\n"
    )
    os.replace(tmp, path)


class SingleProcessError(BlindmatchError, RuntimeError):
    """A second node process on a SQLite database."""

    code = "storage"


def claim_sqlite(url: str) -> IO[str] | None:
    """A SQLite node is one process: hold an exclusive lock on ``<database>.run-lock`` for as
    long as this one runs, and refuse to start when another holds it. (Its in-memory replicas,
    caches and locks are one process's; PostgreSQL serves several, see storage/processes.py.)
    Returns the held lock file (None for PostgreSQL or an in-memory database)."""
    parsed = parse_database_url(url)
    if parsed.backend != "sqlite" or parsed.sqlite_path in (None, ":memory:"):
        return None
    path = Path(f"{parsed.sqlite_path}.run-lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - held open while the node runs
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip()[:20] or "unknown"
        handle.close()
        raise SingleProcessError(
            f"another node process (pid {holder}) is running on the SQLite database"
            f" {parsed.sqlite_path}: a SQLite node runs as one process; to run several, use"
            " PostgreSQL (README: Running several processes)"
        ) from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


async def start(cfg: NodeConfig, fresh_database: bool = False) -> RunningNode:
    clock = SystemClock()
    roster = load_roster(cfg, int(time.time() * 1000))
    node_keys = keyfiles.load(cfg.keys_dir)
    run_lock = claim_sqlite(cfg.database_url)
    try:
        db = await open_database(cfg.database_url, migrate_now=clock.now())
    except BaseException:
        if run_lock is not None:
            run_lock.close()
        raise
    try:
        database_id = await check_history(cfg, db, clock.now(), fresh_database)
    except BaseException:
        await db.close()
        if run_lock is not None:
            run_lock.close()
        raise
    node = Node(cfg, node_keys, db, roster, clock=clock)
    if cfg.policy_path is not None:
        node.decisions.policy = policy_mod.load(cfg.policy_path)
    if cfg.webhook_url is not None and cfg.webhook_secret_path is not None:
        node.decisions.webhook_url = cfg.webhook_url
        node.decisions.webhook_secret = cfg.webhook_secret_path.read_bytes().strip()
    # Publish what the banks hold before serving, so a peer's first pull sees all of it.
    await node.publisher.reconcile()
    await node.start(background=True)
    banks = BankService(db, clock, feed=None)  # the node publishes its own index feed
    tls = _ssl_context(cfg)
    runners: list[web.AppRunner] = []
    survivor = banks if "hub" in node.me.roles else None
    try:
        # The API on loopback stays plain HTTP (the CLI talks to it there); TLS elsewhere.
        api_tls = None if is_loopback_host(cfg.api_host) else tls
        limits = PortLimits()
        for app, host, port, site_tls, public in (
            (build_app(node, survivor), cfg.listen_host, cfg.listen_port, tls, True),
            (
                build_api(node, banks, api_token(cfg.home)),
                cfg.api_host,
                cfg.api_port,
                api_tls,
                False,
            ),
        ):
            # The public port closes idle keep-alive connections as soon as its guard closes
            # silent new ones; the local API keeps aiohttp's defaults.
            runner = (
                web.AppRunner(app, access_log=None, keepalive_timeout=limits.idle_timeout)
                if public
                else web.AppRunner(app, access_log=None)
            )
            await runner.setup()
            runners.append(runner)
            try:
                if public:
                    guard = PortGuard(limits, node.metrics, "federation")
                    await GuardedTCPSite(runner, host, port, guard, ssl_context=site_tls).start()
                else:
                    await web.TCPSite(runner, host, port, ssl_context=site_tls).start()
            except OSError as exc:
                raise ListenError(
                    f"cannot listen on {host}:{port}: {exc.strerror or exc}"
                    + (" (another process has it: another node, or this one still running?)"
                       if exc.errno == errno.EADDRINUSE else "")
                ) from exc  # fmt: skip
    except BaseException:
        for r in runners:
            await r.cleanup()
        await node.stop()
        if run_lock is not None:
            run_lock.close()
        raise
    # Watch every peer's verifiable log: forks, rollbacks and bad signatures become incidents.
    watch = FederationLogWatch(TranslogStore(db), node.peers(), clock)
    task = asyncio.create_task(
        watch.run(300, when=lambda: node.processes.is_leader), name=f"{cfg.node_id}-log-watch"
    )
    rosters = RosterWatch(cfg, node)
    roster_task = asyncio.create_task(rosters.run(), name=f"{cfg.node_id}-roster-watch")
    record_history(cfg, database_id, await node.translog.size(), clock.now())
    return RunningNode(
        node, banks, runners, watch, task, rosters, roster_task, database_id, run_lock
    )


async def run_forever(cfg: NodeConfig, fresh_database: bool = False) -> None:
    running = await start(cfg, fresh_database)
    log = logging.getLogger("blindmatch.node")
    log.info(
        "node %s serving federation on %s:%d and API on %s:%d",
        cfg.node_id, cfg.listen_host, cfg.listen_port, cfg.api_host, cfg.api_port,
    )  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")
    await running.stop()


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line. Messages are written by this code base, which never puts a
    hash, bucket key, image or key into one."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = record.exc_info[0].__name__ if record.exc_info[0] else None
        return json.dumps(out)


def configure_logging(level: str = "info", json_lines: bool = True) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonLogFormatter()
        if json_lines
        else logging.Formatter("%(levelname)s %(name)s: %(message)s")
    )
    # Every logger writes JSON lines, aiohttp's and asyncio's too (a refused or broken
    # connection under load used to print multi-line tracebacks to stderr); a record's
    # exception is named, never dumped.
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    ours = logging.getLogger("blindmatch")
    ours.handlers[:] = []
    ours.propagate = True
    ours.setLevel(level.upper())
