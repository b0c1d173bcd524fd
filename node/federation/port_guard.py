"""The public port's defences against slow, idle and numerous clients.

aiohttp bounds request sizes but not time: a client that sends its headers a byte a minute,
or opens thousands of connections and sends nothing, holds a socket each until the process
runs out of file descriptors (EMFILE) and honest peers time out. :class:`PortGuard` sits in
front of aiohttp's per-connection protocol and

* refuses a connection at once (closed, counted) beyond ``max_per_source`` from one address
  or ``max_total`` in all;
* closes a connection whose request headers take longer than ``header_timeout`` from their
  first byte, whose body takes longer than ``body_timeout`` after its headers, or that sends
  nothing for ``idle_timeout`` after connecting (between requests, aiohttp's keep-alive
  timeout, set to the same, closes it).

It reads only enough of each request to know where its headers and body end (the blank line,
Content-Length or the last chunk); aiohttp still parses and limits everything itself.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from blindmatch.node.metrics import Metrics

log = logging.getLogger("blindmatch.port")

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d{1,12})[ \t]*\r\n", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[^\r\n]*chunked", re.IGNORECASE)
MAX_HEADER_BYTES = 64 * 1024  # beyond this aiohttp refuses the request anyway


@dataclass(frozen=True)
class PortLimits:
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    idle_timeout: float = 30.0
    max_per_source: int = 64
    max_total: int = 2048
    check_every: float = 0.5


class PortGuard:
    """Connection counts and limits shared by every connection of one listening port."""

    def __init__(self, limits: PortLimits, metrics: Metrics, port: str) -> None:
        self.limits = limits
        self.metrics = metrics
        self.port = port
        self.by_source: collections.Counter[str] = collections.Counter()
        self.total = 0

    def protocol(self, inner: asyncio.BaseProtocol) -> GuardedConnection:
        return GuardedConnection(self, inner)

    def refused(self, why: str) -> None:
        self.metrics.inc("port_connections_closed_total", labels={"port": self.port, "why": why})


class GuardedConnection(asyncio.Protocol):
    def __init__(self, guard: PortGuard, inner: Any) -> None:
        self._guard = guard
        self._inner = inner
        self._transport: asyncio.Transport | None = None
        self._source = ""
        self._admitted = False
        self._timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        # "idle" (between requests), "headers", "body" (a known length), "chunked", "handling"
        self._phase = "idle"
        self._since = self._last = self._loop.time()
        self._head = bytearray()
        self._body_left = 0

    # --- the connection ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._source = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        g, limits = self._guard, self._guard.limits
        if g.total >= limits.max_total or g.by_source[self._source] >= limits.max_per_source:
            g.refused("too-many")
            transport.abort()
            return
        self._admitted = True
        g.total += 1
        g.by_source[self._source] += 1
        self._inner.connection_made(transport)
        self._schedule()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if not self._admitted:
            return
        g = self._guard
        g.total -= 1
        g.by_source[self._source] -= 1
        if g.by_source[self._source] <= 0:
            del g.by_source[self._source]
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return
        self._last = self._loop.time()
        self._track(data)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._admitted else None

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    # --- where the request is --------------------------------------------------------------

    def _track(self, data: bytes) -> None:
        while data:
            if self._phase in ("idle", "handling"):
                self._phase, self._since = "headers", self._last
                self._head.clear()
            if self._phase == "headers":
                self._head += data
                end = self._head.find(b"\r\n\r\n")
                if end < 0:
                    if len(self._head) > MAX_HEADER_BYTES:
                        self._head = self._head[-4:]  # aiohttp refuses it; keep looking
                    return
                head, data = bytes(self._head[: end + 4]), bytes(self._head[end + 4 :])
                self._head.clear()
                self._since = self._last
                if _CHUNKED.search(head):
                    self._phase = "chunked"
                else:
                    m = _CONTENT_LENGTH.search(head)
                    self._body_left = int(m.group(1)) if m else 0
                    self._phase = "body" if self._body_left else "handling"
                continue
            if self._phase == "body":
                used = min(len(data), self._body_left)
                self._body_left -= used
                data = data[used:]
                if not self._body_left:
                    self._phase, self._since = "handling", self._last
                continue
            if self._phase == "chunked":
                self._head = (self._head + data)[-5:]
                if bytes(self._head).endswith(b"0\r\n\r\n"):
                    self._phase, self._since = "handling", self._last
                    self._head.clear()
                return

    def _schedule(self) -> None:
        self._timer = self._loop.call_later(self._guard.limits.check_every, self._check)

    def _check(self) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        now, limits = self._loop.time(), self._guard.limits
        why = None
        if self._phase == "headers" and now - self._since > limits.header_timeout:
            why = "slow-headers"
        elif self._phase in ("body", "chunked") and now - self._since > limits.body_timeout:
            why = "slow-body"
        elif self._phase == "idle" and now - self._last > limits.idle_timeout:
            why = "idle"  # connected and silent (after a response, aiohttp's keep-alive ends it)
        if why is None:
            self._schedule()
            return
        self._guard.refused(why)
        self._transport.abort()


class GuardedTCPSite(web.TCPSite):
    """aiohttp's TCP site, each connection behind a :class:`PortGuard`."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, guard: PortGuard,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(runner, host, port, **kwargs)
        self._guard = guard

    async def start(self) -> None:
        self._runner._reg_site(self)
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            lambda: self._guard.protocol(server()),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )


class GuardedSockSite(web.SockSite):
    """aiohttp's site on a socket given to it, each connection behind a :class:`PortGuard`."""

    def __init__(self, runner: web.BaseRunner, sock: Any, guard: PortGuard, **kwargs: Any):
        super().__init__(runner, sock, **kwargs)
        self._guard = guard

    async def start(self) -> None:
        self._runner._reg_site(self)
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            lambda: self._guard.protocol(server()),
            sock=self._sock,
            ssl=self._ssl_context,
            backlog=self._backlog,
        )
