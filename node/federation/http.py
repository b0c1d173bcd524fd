"""The federation endpoint: every peer message arrives as one signed envelope.

``POST /fed/v1/message`` takes an envelope and answers with a signed envelope: the reply type
for the request, or a signed ``error``. The body is read up to the size limit and no further;
the envelope is opened strictly (spec 6.3) against the roster; the (sender, nonce) pair is
remembered so a replay is refused; then the node's handler runs. A refused message changes no
state beyond its nonce being used up.
"""

from __future__ import annotations

import contextvars
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from blindmatch.node.federation.peer_client import (
    CONTENT_TYPE,
    FEDERATION_PATH,
    REPLY_TYPES,
    read_limited,
)
from blindmatch.protocol import envelope
from blindmatch.protocol.messages import ERROR_CODES

if TYPE_CHECKING:
    from blindmatch.node.banks.service import BankService
    from blindmatch.node.node import Node

log = logging.getLogger("blindmatch.federation")

MAX_REQUEST_BYTES = 1024 * 1024  # the largest request, a threshold query, is ~49 KB
REQUEST_TYPES = ("oprf.evaluate", "threshold.query", "feed.pull", "feedback.submit")
STATUS = {
    "bad-envelope": 400,
    "bad-body": 400,
    "bad-proof": 400,
    "unknown-sender": 403,
    "not-allowed": 403,
    "bad-signature": 401,
    "stale-timestamp": 401,
    "replayed": 409,
    "budget-exhausted": 429,
    "unknown-item": 404,
    "unknown-case": 404,
    "conflict": 409,
    "internal": 500,
}
NONCE_RETENTION_S = 2 * envelope.DEFAULT_MAX_SKEW_MS // 1000
# Requests whose handler charges a budget: their nonce is recorded in the charge's transaction
# (one commit per request instead of two), still before any crypto runs.
CHARGED_TYPES = ("oprf.evaluate", "threshold.query")


@dataclass
class Admission:
    """The nonce of the request being handled, not yet recorded."""

    sender: str
    nonce: bytes
    expires_at: int
    recorded: bool = False


_ADMISSION: contextvars.ContextVar[Admission | None] = contextvars.ContextVar(
    "blindmatch_admission", default=None
)


def pending_admission(sender: str) -> Admission | None:
    """The current request's unrecorded nonce if it came from ``sender`` (None when a handler
    is called directly, outside a request)."""
    adm = _ADMISSION.get()
    if adm is None or adm.recorded or adm.sender != sender:
        return None
    return adm


def build_app(node: Node, survivor_banks: BankService | None = None) -> web.Application:
    """The federation endpoint; with ``survivor_banks`` (a hub) also the survivor's page at
    ``/survivor/``, public like the federation endpoint."""
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    if survivor_banks is not None:
        from blindmatch.node.survivor.routes import build_survivor_routes

        app.add_routes(build_survivor_routes(node, survivor_banks))

    async def message(request: web.Request) -> web.Response:
        return await handle(node, request)

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "node": node.node_id})

    from blindmatch.node.translog.http import build_log_routes

    app.add_routes(build_log_routes(node.translog))  # public, read-only: holds no secrets
    app.router.add_post(FEDERATION_PATH, message)
    app.router.add_get("/healthz", health)
    return app


def _clip(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8 at a character boundary (a refusal may
    quote what the sender sent, and the error schema limits bytes, not characters)."""
    return text.encode()[:max_bytes].decode(errors="ignore")


def _error(node: Node, code: str, message: str, in_reply_to: bytes | None, retry: int | None):
    if code not in ERROR_CODES:
        code, message = "internal", f"refused ({_clip(code, 64)}): {message}"
    body: dict[str, Any] = {"code": code, "message": _clip(message, 500)}
    if in_reply_to is not None:
        body["in_reply_to"] = in_reply_to
    if retry is not None:
        body["retry_after_ms"] = retry
    data, _ = node.client.seal("error", body)
    node.metrics.inc("requests_refused_total", labels={"code": code})
    return web.Response(status=STATUS.get(code, 400), body=data, content_type=CONTENT_TYPE)


async def handle(node: Node, request: web.Request) -> web.Response:
    from blindmatch.node.node import NodeError

    data = await read_limited(request.content, MAX_REQUEST_BYTES)
    if len(data) > MAX_REQUEST_BYTES:
        return _error(node, "bad-envelope", "request larger than 1 MiB", None, None)
    try:
        env = envelope.open_envelope(
            data,
            now_ms=int(node.now() * 1000),
            sender_key=node.roster.signing_key,
            max_bytes=MAX_REQUEST_BYTES,
            expected_types=REQUEST_TYPES,
        )
    except envelope.EnvelopeError as exc:
        log.info("refused a message: %s", exc.code)
        return _error(node, exc.code, exc.detail, None, None)
    peer = node.roster.member(env.sender)
    assert peer is not None  # open_envelope found its key
    if env.sender == node.node_id:
        return _error(node, "not-allowed", "a node does not talk to itself", env.nonce, None)
    adm = Admission(env.sender, env.nonce, node.now() + NONCE_RETENTION_S)
    if env.type not in CHARGED_TYPES and not await _record(node, adm):
        return _error(node, "replayed", "this message was already received", env.nonce, None)
    handlers = {
        "oprf.evaluate": node.handle_evaluate,
        "threshold.query": node.handle_threshold,
        "feed.pull": node.handle_feed_pull,
        "feedback.submit": node.handle_feedback_submit,
    }
    token = _ADMISSION.set(adm)
    try:
        body = await handlers[env.type](peer, env.body)
    except NodeError as exc:
        # A request refused before its charge still uses up its nonce, and a replay of it is
        # answered as a replay, as if the nonce had been checked first.
        if not await _record(node, adm):
            return _error(node, "replayed", "this message was already received", env.nonce, None)
        return _error(node, exc.code, exc.detail, env.nonce, exc.retry_after_ms)
    except Exception:
        log.exception("handler for %s failed", env.type)
        await _record(node, adm)
        return _error(node, "internal", "the node failed to handle this message", env.nonce, None)
    finally:
        _ADMISSION.reset(token)
    if not await _record(node, adm):
        return _error(node, "replayed", "this message was already received", env.nonce, None)
    reply_type = REPLY_TYPES[env.type]
    reply, _ = node.client.seal(reply_type, {**body, "re": env.nonce})
    node.metrics.inc("requests_answered_total", labels={"type": env.type})
    return web.Response(body=reply, content_type=CONTENT_TYPE)


async def _record(node: Node, adm: Admission) -> bool:
    """Record the request's nonce unless its handler already did; False for a replay."""
    if adm.recorded:
        return True
    fresh = await node.nonces.remember(adm.sender, adm.nonce, adm.expires_at, node.now())
    adm.recorded = True
    return fresh
