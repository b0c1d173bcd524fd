"""A federation of real nodes on this machine: real keys, a governance-signed roster, SQLite or
PostgreSQL stores, and aiohttp servers on loopback sockets. Used by the demo, the integration
tests and the benchmarks; nothing in it is a stand-in for a production part."""

from __future__ import annotations

import asyncio
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from blindmatch.crypto import signing
from blindmatch.node import keys as keyfiles
from blindmatch.node.api.http import build_api
from blindmatch.node.banks.service import BankService
from blindmatch.node.clock import Clock, SystemClock
from blindmatch.node.config import NodeConfig
from blindmatch.node.federation.http import build_app
from blindmatch.node.node import Node
from blindmatch.node.storage import open_database
from blindmatch.protocol import roster as roster_mod


@dataclass
class NodeSpec:
    node_id: str
    roles: tuple[str, ...] = ("platform",)
    holds_index: bool = True
    budget: dict[str, int] | None = None
    database: str = ""  # default: SQLite under the node's home
    capabilities: tuple[str, ...] = ()  # uploader-read / uploader-publish / uploader-keeper
    uploader_key: bool = False  # answers stage 1 of uploader signals for its pictures
    keeper: bool = False  # the federation's uploader-signal keeper (stage 2, the feed)
    voprf_key_cap: int | None = None  # default: the spec's cap (8.2)
    index_batch_s: int = 0  # batched, padded publication (8.6): off in a dev federation
    index_batch_padding: int = 0
    index_tile_batch_s: int | None = None  # None: as index_batch_s


@dataclass
class LocalNode:
    spec: NodeSpec
    cfg: NodeConfig
    node: Node
    banks: BankService
    runner: web.AppRunner
    sock: socket.socket
    api_runner: web.AppRunner | None = None
    api_url: str = ""
    api_token: str = ""

    @property
    def endpoint(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://{host}:{port}"


class RecordingRelay:
    """A TCP relay in front of a node that keeps every byte passing in either direction, so a
    test can inspect exactly what crossed the wire between nodes (HTTP headers included)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.captured = bytearray()
        self.server: asyncio.base_events.Server | None = None

    async def start(self, sock: socket.socket) -> None:
        self.server = await asyncio.start_server(self._serve, sock=sock)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while chunk := await src.read(65536):
                    self.captured += chunk
                    dst.write(chunk)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def _listening_socket(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A restarted node rebinds its address (its roster endpoint) at once.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    return sock


@dataclass
class LocalFederation:
    home: Path
    clock: Clock = field(default_factory=SystemClock)
    governance: list[signing.SigningKey] = field(default_factory=list)
    nodes: dict[str, LocalNode] = field(default_factory=dict)
    roster: roster_mod.Roster | None = None
    sync_interval_s: float = 0.5
    background: bool = True
    record_wire: bool = False  # put a RecordingRelay in front of every node
    relays: dict[str, RecordingRelay] = field(default_factory=dict)

    def wire_bytes(self) -> bytes:
        return b"".join(bytes(r.captured) for r in self.relays.values())

    async def start(self, specs: list[NodeSpec]) -> LocalFederation:
        self.governance = [signing.SigningKey.generate() for _ in range(3)]
        socks = {}
        members = []
        keysets = {}
        for spec in specs:
            node_home = self.home / spec.node_id
            node_home.mkdir(parents=True, exist_ok=True)
            keysets[spec.node_id] = keyfiles.create(
                node_home / "keys", uploader=spec.uploader_key, keeper=spec.keeper
            )
            sock = _listening_socket()
            socks[spec.node_id] = sock
            host, port = sock.getsockname()[:2]
            if self.record_wire:
                relay = RecordingRelay((host, port))
                relay_sock = _listening_socket()
                await relay.start(relay_sock)
                self.relays[spec.node_id] = relay
                host, port = relay_sock.getsockname()[:2]
            member: dict[str, Any] = {
                "id": spec.node_id,
                "signing_key": keysets[spec.node_id].identity.public_key.hex(),
                "voprf_key": keysets[spec.node_id].voprf.pk.hex() if spec.holds_index else None,
                "endpoint": f"http://{host}:{port}",
                "roles": list(spec.roles),
            }
            if spec.budget:
                member["budget"] = spec.budget
            ks = keysets[spec.node_id]
            if spec.capabilities:
                member["capabilities"] = list(spec.capabilities)
            if ks.uploader is not None:
                member["uploader_key"] = ks.uploader.pk.hex()
            if ks.keeper is not None:
                member["keeper_key"] = ks.keeper.pk.hex()
            members.append(member)
        now_ms = self.clock.now() * 1000
        body = {
            "federation": "local",
            "serial": 1,
            "issued_ms": now_ms - 60_000,
            "expires_ms": now_ms + 30 * 86_400_000,
            "members": members,
        }
        document = roster_mod.sign_roster(body, self.governance[:2])
        self.roster = roster_mod.verify_roster(
            document, [k.public_key for k in self.governance], 2, now_ms
        )
        for spec in specs:
            await self._open(spec, keysets[spec.node_id], socks[spec.node_id])
        return self

    async def _open(
        self, spec: NodeSpec, keys: keyfiles.NodeKeys, sock: socket.socket
    ) -> LocalNode:
        assert self.roster is not None
        cfg = NodeConfig(
            node_id=spec.node_id,
            home=self.home / spec.node_id,
            database=spec.database,
            governance_keys=[k.public_key for k in self.governance],
            governance_threshold=2,
            sync_interval_s=self.sync_interval_s,
        )
        if spec.voprf_key_cap is not None:
            cfg.voprf_key_cap = spec.voprf_key_cap
        cfg.index_batch_s, cfg.index_batch_padding = spec.index_batch_s, spec.index_batch_padding
        cfg.index_tile_batch_s = (
            spec.index_batch_s if spec.index_tile_batch_s is None else spec.index_tile_batch_s
        )
        db = await open_database(cfg.database_url, migrate_now=self.clock.now())
        node = Node(cfg, keys, db, self.roster, clock=self.clock)
        banks = BankService(db, self.clock, feed=None)  # the node publishes its own index feed
        hub = "hub" in spec.roles
        runner = web.AppRunner(build_app(node, banks if hub else None), access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        await node.start(background=self.background)
        token = secrets.token_urlsafe(24)
        api_runner = web.AppRunner(build_api(node, banks, token), access_log=None)
        await api_runner.setup()
        api_sock = _listening_socket()
        await web.SockSite(api_runner, api_sock).start()
        host, port = api_sock.getsockname()[:2]
        local = LocalNode(
            spec, cfg, node, banks, runner, sock, api_runner, f"http://{host}:{port}", token
        )
        self.nodes[spec.node_id] = local
        return local

    def __getitem__(self, node_id: str) -> LocalNode:
        return self.nodes[node_id]

    async def stop_node(self, node_id: str) -> tuple[NodeSpec, keyfiles.NodeKeys, tuple[str, int]]:
        """Stop a node as a crash would leave it (its store stays); returns what restarts it."""
        local = self.nodes.pop(node_id)
        address = local.sock.getsockname()[:2]
        await local.runner.cleanup()
        if local.api_runner is not None:
            await local.api_runner.cleanup()
        local.sock.close()  # SockSite leaves a socket it was given open
        await local.node.stop()
        return local.spec, local.node.keys, address

    async def restart_node(
        self, node_id: str, stopped: tuple[NodeSpec, keyfiles.NodeKeys, tuple[str, int]]
    ) -> LocalNode:
        spec, keys, (_, port) = stopped
        return await self._open(spec, keys, _listening_socket(port))

    async def stop(self) -> None:
        for node_id in list(self.nodes):
            await self.stop_node(node_id)
        for relay in self.relays.values():
            await relay.close()
