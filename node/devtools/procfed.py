"""A federation of real ``blindmatch run`` processes on this machine, set up as an operator
would (``init``, ``roster keygen``, ``roster sign``), that a fault suite or a load bench can
kill with SIGKILL and start again. Unlike :mod:`localfed` nothing runs in the caller's
process: a kill here is the kernel's, with no ``finally`` and no clean shutdown.

Each node's stdout and stderr go to ``HOME/run.log`` (appended across restarts), so a failure
can be read afterwards. PostgreSQL nodes get a schema each (``?schema=``) that
:meth:`ProcessFederation.drop_schemas` removes.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from blindmatch.node.storage.engines import drop_postgres_schemas

BM = [sys.executable, "-m", "blindmatch"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(*args: str | Path) -> str:
    """A set-up command (``init``, ``roster ...``), run in this process: the same code an
    operator's command runs, without paying for a Python start each time."""
    from blindmatch.node.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    if code != 0:
        raise RuntimeError(f"blindmatch {' '.join(map(str, args[:2]))}: {err.getvalue().strip()}")
    return out.getvalue()


@dataclass
class ProcNode:
    name: str
    home: Path
    fed_port: int
    api_port: int
    database: str
    token: str = ""
    proc: asyncio.subprocess.Process | None = None
    starts: int = 0
    kills: int = 0

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.fed_port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def log_path(self) -> Path:
        return self.home / "run.log"

    def signing_key(self) -> bytes:
        """The node's Ed25519 public key (its log's key), from the member.json it made."""
        member = json.loads((self.home / "member.json").read_text())
        return bytes.fromhex(member["signing_key"])

    def rss_kb(self) -> int:
        """Resident set size of the node's process now (0 when it is not running)."""
        if self.proc is None or self.proc.returncode is not None:
            return 0
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def peak_rss_kb(self) -> int:
        """The kernel's high-water mark of the process's resident set (VmHWM)."""
        if self.proc is None or self.proc.returncode is not None:
            return 0
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0


@dataclass
class ProcessFederation:
    """A hub (holds a bank and publishes its index) and platforms (match, hold nothing)."""

    home: Path
    database: str = "sqlite"  # or a PostgreSQL DSN: each node gets a schema of its own
    sync_interval_s: float = 0.5
    match_workers: int = 4
    schema_prefix: str = "bm_procfed"
    nodes: dict[str, ProcNode] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)

    def _db_url(self, name: str) -> str:
        if self.database == "sqlite":
            return ""
        sep = "&" if "?" in self.database else "?"
        return f"{self.database}{sep}schema={self.schema_prefix}_{name.replace('-', '_')}"

    def setup(self, platforms: tuple[str, ...] = ("platform",)) -> ProcessFederation:
        """``init`` each node, sign a roster listing them, and tune the config for a bench:
        a short sync interval so a test waits seconds, not minutes, for a publication."""
        self.home.mkdir(parents=True, exist_ok=True)
        gov = self.home / "gov.key"
        gov_pub = _run("roster", "keygen", "--out", gov).strip()
        roster = self.home / "roster.json"
        specs = [("hub", "hub")] + [(p, "platform") for p in platforms]
        for name, role in specs:
            node = ProcNode(name, self.home / name, free_port(), free_port(), self._db_url(name))
            args: list[str | Path] = [
                "init", "--home", node.home, "--node-id", name, "--role", role,
                "--listen", f"127.0.0.1:{node.fed_port}",
                "--api", f"127.0.0.1:{node.api_port}",
                "--roster", roster, "--governance-key", gov_pub,
                "--index-batch-days", "0",  # a bench publishes at once
            ]  # fmt: skip
            if node.database:
                args += ["--database", node.database]
            if role != "hub":
                args.append("--no-index")
            _run(*args)
            cfg = node.home / "config.toml"
            text = cfg.read_text().replace("sync_interval_s = 5.0", "")
            cfg.write_text(
                text
                + f"sync_interval_s = {self.sync_interval_s}\n"
                + f"match_workers = {self.match_workers}\n"
            )
            node.token = (node.home / "api.token").read_text().strip()
            self.nodes[name] = node
        members: list[str | Path] = []
        for name in self.nodes:
            members += ["--member", self.nodes[name].home / "member.json"]
        _run("roster", "sign", "--federation", "procfed", "--serial", "1", *members,
             "--key", gov, "--out", roster)  # fmt: skip
        return self

    def __getitem__(self, name: str) -> ProcNode:
        return self.nodes[name]

    async def start(self, name: str, timeout: float = 120.0) -> float:
        """Start the node's process and wait until its API answers; returns the seconds."""
        node = self.nodes[name]
        assert node.proc is None or node.proc.returncode is not None, f"{name} is running"
        t0 = time.monotonic()
        for attempt in range(60):
            with node.log_path.open("ab") as log:
                node.proc = await asyncio.create_subprocess_exec(
                    *BM, "run", "--config", str(node.home / "config.toml"),
                    stdout=log, stderr=log, env={**os.environ, **self.extra_env},
                )  # fmt: skip
            node.starts += 1
            try:
                await self.wait_healthy(name, timeout)
                return time.monotonic() - t0
            except RuntimeError:
                # The node's ports were free when it was set up; on a busy machine another
                # process's outgoing connection may hold one as its ephemeral port for a
                # while. That is this harness's choice of ports, not a fault of the node.
                if attempt == 59 or "address already in use" not in self.tail(name, 2):
                    raise
                await asyncio.sleep(1.0)
        raise AssertionError("unreachable")

    async def wait_healthy(self, name: str, timeout: float = 120.0) -> None:
        node = self.nodes[name]
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while True:
                if node.proc is not None and node.proc.returncode is not None:
                    raise RuntimeError(f"{name} exited ({node.proc.returncode}): {self.tail(name)}")
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    timeout_ = aiohttp.ClientTimeout(total=2)
                    async with http.get(f"{node.api_url}/healthz", timeout=timeout_) as r:
                        if r.status == 200:
                            return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not come up: {self.tail(name)}")
                await asyncio.sleep(0.1)

    async def kill(self, name: str) -> None:
        """SIGKILL: the process gets no chance to flush, commit or clean up."""
        node = self.nodes[name]
        if node.proc is None or node.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(node.proc.pid, signal.SIGKILL)
        await node.proc.wait()
        node.kills += 1

    async def stop(self, name: str) -> int | None:
        node = self.nodes[name]
        if node.proc is None or node.proc.returncode is not None:
            return None if node.proc is None else node.proc.returncode
        node.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(node.proc.wait(), 30)
        except TimeoutError:
            await self.kill(name)
            return None

    async def stop_all(self) -> None:
        for name in self.nodes:
            await self.stop(name)

    def log_problems(self, name: str) -> Counter[str]:
        """Tracebacks and error lines in the node's log so far, by kind (no content)."""
        found: Counter[str] = Counter()
        try:
            text = self.nodes[name].log_path.read_text(errors="replace")
        except OSError:
            return found
        for line in text.splitlines():
            if line.startswith("{"):
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    found["non-JSON line"] += 1
                    continue
                if rec.get("level") in ("error", "critical"):
                    exc = f" ({rec['exc']})" if rec.get("exc") else ""
                    found[f"{rec['level']}: {str(rec.get('msg', ''))[:80]}{exc}"] += 1
            elif line.startswith("Traceback"):
                found["traceback"] += 1
        return found

    def tail(self, name: str, lines: int = 15) -> str:
        try:
            text = self.nodes[name].log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def drop_schemas(self) -> None:
        if self.database == "sqlite":
            return
        schemas = [f"{self.schema_prefix}_{name.replace('-', '_')}" for name in self.nodes]
        await drop_postgres_schemas(self.database.split("?")[0], schemas)

    async def api(
        self,
        http: aiohttp.ClientSession,
        name: str,
        method: str,
        path: str,
        body: Any = None,
        timeout: float = 120.0,
    ) -> tuple[int, Any]:
        """One API call to a node: (HTTP status, JSON body)."""
        node = self.nodes[name]
        async with http.request(
            method,
            node.api_url + path,
            json=body,
            headers=node.headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as r:
            try:
                data = await r.json(content_type=None)
            except (json.JSONDecodeError, UnicodeDecodeError):
                data = None
            return r.status, data
