"""Talking to peers: signed envelopes over HTTP(S), verified replies, byte accounting."""

from __future__ import annotations

import os
import ssl
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from blindmatch.crypto.signing import SigningKey
from blindmatch.node.clock import Clock
from blindmatch.node.config import ConfigError, require_tls_unless_loopback
from blindmatch.node.errors import BlindmatchError
from blindmatch.node.http_limits import read_limited
from blindmatch.node.metrics import Metrics
from blindmatch.protocol import envelope, uploaders
from blindmatch.protocol.roster import Member

FEDERATION_PATH = "/fed/v1/message"
CONTENT_TYPE = "application/vnd.blindmatch.envelope"
REPLY_TYPES = {
    "oprf.evaluate": "oprf.evaluated",
    "threshold.query": "threshold.answer",
    "feed.pull": "feed.page",
    "feedback.submit": "feedback.accepted",
    **uploaders.REPLY_TYPES,
}
MAX_REPLY_BYTES = 16 * 1024 * 1024


class PeerError(BlindmatchError):
    """The peer did not give a valid answer; ``code`` says why (its own error code if it sent
    a signed refusal)."""

    _code_in_str = True
    refused = False  # the peer's own signed refusal (``code`` is the one it sent)


class PeerClient:
    def __init__(
        self,
        node_id: str,
        identity: SigningKey,
        clock: Clock,
        metrics: Metrics,
        tls_ca: Path | None = None,
    ) -> None:
        self.node_id = node_id
        self.tls_ca = tls_ca  # peers' certificates are checked against it (else the system's)
        self.identity = identity
        self.clock = clock
        self.metrics = metrics
        self.session: aiohttp.ClientSession | None = None
        self.sent: Counter[str] = Counter()
        self.received: Counter[str] = Counter()
        self.sent_by_type: Counter[str] = Counter()

    async def start(self) -> None:
        if self.session is None:
            # Peers' certificates are checked against the configured CA bundle (tls_ca), else
            # the system's; the envelope signatures authenticate peers on top of that.
            ca = self.tls_ca
            context = ssl.create_default_context(cafile=str(ca) if ca else None)
            self.session = aiohttp.ClientSession(
                # A peer that stops sending for 15 s, or takes a minute in all, has failed
                # this call (the match task's own deadline bounds the calls together).
                timeout=aiohttp.ClientTimeout(total=60, connect=5, sock_read=15),
                connector=aiohttp.TCPConnector(ssl=context),
            )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def http_session(self) -> aiohttp.ClientSession:
        """The node's outgoing HTTP session (also used for the platform's webhooks)."""
        await self.start()
        assert self.session is not None
        return self.session

    def _failed(self, peer: Member, code: str) -> None:
        # The code is the peer's error code (a fixed vocabulary, validated by the envelope).
        labels = {"peer": peer.node_id, "code": code[:40]}
        self.metrics.inc("peer_request_failures_total", labels=labels)

    def bytes_with(self, peer_id: str) -> tuple[int, int]:
        return self.sent[peer_id], self.received[peer_id]

    def seal(self, message_type: str, body: dict[str, Any]) -> tuple[bytes, bytes]:
        nonce = os.urandom(envelope.NONCE_BYTES)
        data = envelope.seal(
            self.identity,
            self.node_id,
            message_type,
            body,
            int(self.clock.now() * 1000),
            nonce,
        )
        return data, nonce

    async def call(
        self, peer: Member, message_type: str, body: dict[str, Any]
    ) -> envelope.Envelope:
        try:
            require_tls_unless_loopback(peer.endpoint, f"endpoint of {peer.node_id}")
        except ConfigError as exc:
            raise PeerError(str(exc), code="not-allowed") from exc
        await self.start()
        assert self.session is not None
        data, nonce = self.seal(message_type, body)
        url = peer.endpoint.rstrip("/") + FEDERATION_PATH
        started = time.perf_counter()
        try:
            # Never follow a redirect: the envelope would go where the peer points, around the
            # HTTPS-except-loopback rule the roster endpoint was checked against.
            async with self.session.post(
                url, data=data, headers={"Content-Type": CONTENT_TYPE}, allow_redirects=False
            ) as resp:
                if 300 <= resp.status < 400:
                    self._failed(peer, "not-allowed")
                    raise PeerError(
                        f"{peer.node_id} answered with a redirect (not followed)",
                        code="not-allowed",
                    )
                reply = await read_limited(resp.content, MAX_REPLY_BYTES)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._failed(peer, "unreachable")
            raise PeerError(
                f"{peer.node_id}: {exc.__class__.__name__}", code="unreachable"
            ) from exc
        self.metrics.observe(
            "peer_request_seconds",
            time.perf_counter() - started,
            {"peer": peer.node_id, "type": message_type},
        )
        self.sent[peer.node_id] += len(data)
        self.received[peer.node_id] += len(reply)
        self.sent_by_type[message_type] += len(data)
        self.metrics.inc("peer_bytes_sent_total", len(data), labels={"peer": peer.node_id})
        self.metrics.inc("peer_bytes_received_total", len(reply), labels={"peer": peer.node_id})
        if len(reply) > MAX_REPLY_BYTES:
            self._failed(peer, "bad-envelope")
            raise PeerError(f"{peer.node_id}: reply too large", code="bad-envelope")
        try:
            env = envelope.open_envelope(
                reply,
                now_ms=int(self.clock.now() * 1000),
                sender_key=lambda s: peer.signing_key if s == peer.node_id else None,
                max_bytes=MAX_REPLY_BYTES,
                expected_types=(REPLY_TYPES[message_type], "error"),
            )
        except envelope.EnvelopeError as exc:
            self._failed(peer, exc.code)
            raise PeerError(f"reply from {peer.node_id}: {exc.detail}", code=exc.code) from exc
        if env.type == "error":
            if env.body.get("in_reply_to") not in (None, nonce):
                self._failed(peer, "bad-body")
                raise PeerError("refusal for another request", code="bad-body")
            self._failed(peer, str(env.body["code"]))
            refusal = PeerError(
                env.body["message"],
                code=env.body["code"],
                retry_after_ms=env.body.get("retry_after_ms"),
            )
            refusal.refused = True
            raise refusal
        if env.body.get("re") != nonce:
            self._failed(peer, "bad-body")
            raise PeerError(f"reply from {peer.node_id} answers another request", code="bad-body")
        self.metrics.inc(
            "peer_call_seconds_total", time.perf_counter() - started, labels={"type": message_type}
        )
        return env
