"""The public port survives slow, idle and numerous clients (on loopback, with short limits):
each is closed by the server, counted, and an honest request is answered beside them. The
client loops are bounded and stop by themselves."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec
from blindmatch.node.federation.http import build_app
from blindmatch.node.federation.port_guard import GuardedSockSite, PortGuard, PortLimits

LIMITS = PortLimits(
    header_timeout=1.0, body_timeout=1.0, idle_timeout=1.0, max_per_source=6, check_every=0.1
)
CLOSED_WITHIN = 15.0  # generous: the server closes after about a second


@pytest.fixture
async def port(tmp_path: Path):
    fed = await LocalFederation(tmp_path, background=False).start([NodeSpec("hub", ("hub",))])
    node = fed["hub"].node
    runner = web.AppRunner(build_app(node), access_log=None, keepalive_timeout=LIMITS.idle_timeout)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    guard = PortGuard(LIMITS, node.metrics, "federation")
    await GuardedSockSite(runner, sock, guard).start()
    yield sock.getsockname()[1], node, guard
    await runner.cleanup()
    sock.close()
    await fed.stop()


async def _closed_by_server(reader: asyncio.StreamReader) -> bool:
    try:
        async with asyncio.timeout(CLOSED_WITHIN):
            while await reader.read(4096):
                pass
        return True
    except TimeoutError:
        return False
    except ConnectionError:
        return True


async def _healthy(port: int) -> bool:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/healthz") as r:
        return r.status == 200 and (await r.json())["ok"]


async def test_slow_headers_slow_bodies_and_idle_connections_are_closed(port) -> None:
    number, node, guard = port
    conns = [await asyncio.open_connection("127.0.0.1", number) for _ in range(4)]
    (r_idle, _), (r_head, w_head), (r_body, w_body), (r_chunk, w_chunk) = conns
    w_head.write(b"POST /fed/v1/message HTTP/1.1\r\nHost: x\r\n")
    w_body.write(b"POST /fed/v1/message HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nab")
    w_chunk.write(
        b"POST /fed/v1/message HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab"
    )

    async def trickle(writer: asyncio.StreamWriter, piece: bytes) -> None:
        for _ in range(60):  # a byte every 0.2 s: at most 12 s, then it stops by itself
            try:
                writer.write(piece)
                await writer.drain()
            except ConnectionError:
                return
            await asyncio.sleep(0.2)

    trickles = [
        asyncio.create_task(trickle(w_head, b"X")),
        asyncio.create_task(trickle(w_body, b"c")),
        asyncio.create_task(trickle(w_chunk, b"d")),
    ]
    # An honest request is answered while the slow ones are held.
    assert await _healthy(number)
    closed = await asyncio.gather(
        *(_closed_by_server(r) for r in (r_idle, r_head, r_body, r_chunk))
    )
    for t in trickles:
        t.cancel()
    for _, w in conns:
        w.close()
    assert closed == [True, True, True, True]
    why = {
        w: node.metrics.value("port_connections_closed_total", {"port": "federation", "why": w})
        for w in ("idle", "slow-headers", "slow-body")
    }
    # The bodies are the guard's alone to close; the silent and slow-header connections are
    # closed by the guard or, first, by aiohttp itself (either way, they are gone).
    assert why["slow-body"] == 2
    assert await _healthy(number)
    assert guard.total <= 1  # only the last honest connection may still be open


@pytest.mark.parametrize(
    ("send", "why"),
    [(b"", "idle"), (b"GET / HTTP/1.1\r\nHost: x\r\n", "slow-headers")],
)
async def test_the_guard_closes_silent_and_slow_header_connections(send: bytes, why: str) -> None:
    from blindmatch.node.metrics import Metrics

    app = web.Application()
    app.router.add_get("/", lambda request: web.Response(text="ok"))
    runner = web.AppRunner(app, keepalive_timeout=60)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    metrics = Metrics()
    await GuardedSockSite(runner, sock, PortGuard(LIMITS, metrics, "p")).start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
        writer.write(send)

        async def trickle() -> None:
            for _ in range(60):  # bounded: it stops by itself
                if send:
                    writer.write(b"X")
                await asyncio.sleep(0.2)

        dripping = asyncio.create_task(trickle())
        assert await _closed_by_server(reader)
        dripping.cancel()
        writer.close()
        assert metrics.value("port_connections_closed_total", {"port": "p", "why": why}) == 1
    finally:
        await runner.cleanup()
        sock.close()


async def test_connections_beyond_the_per_source_limit_are_refused(port) -> None:
    number, node, guard = port
    held = [
        await asyncio.open_connection("127.0.0.1", number) for _ in range(LIMITS.max_per_source)
    ]
    await asyncio.sleep(0.1)
    extra_reader, extra_writer = await asyncio.open_connection("127.0.0.1", number)
    # Refused at once (closed before any byte), while the held ones are still open.
    assert await _closed_by_server(extra_reader)
    assert (
        node.metrics.value(
            "port_connections_closed_total", {"port": "federation", "why": "too-many"}
        )
        >= 1
    )
    extra_writer.close()
    for _, w in held:
        w.close()
    # Once they are gone, this source is served again.
    for _ in range(100):
        if guard.by_source.get("127.0.0.1", 0) == 0:
            break
        await asyncio.sleep(0.05)
    assert await _healthy(number)


async def test_the_node_logs_json_lines_only(tmp_path: Path, capfd) -> None:
    """Every logger (aiohttp's and asyncio's too) writes one JSON object per line."""
    import json
    import logging

    from blindmatch.node.runtime import configure_logging

    configure_logging("info")
    try:
        logging.getLogger("aiohttp.server").error(
            "Error handling request", exc_info=ValueError("x")
        )
        logging.getLogger("asyncio").error("socket.accept() out of system resource")
        logging.getLogger("blindmatch.node").info("hello\nworld")
        err = capfd.readouterr().err
        lines = [json.loads(line) for line in err.splitlines()]
        assert [r["logger"] for r in lines] == ["aiohttp.server", "asyncio", "blindmatch.node"]
        assert lines[0]["exc"] == "ValueError"
    finally:
        logging.getLogger().handlers[:] = []
