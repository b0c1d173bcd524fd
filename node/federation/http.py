"""The federation endpoint: every peer message arrives as one signed envelope.

``POST /fed/v1/message`` takes an envelope and answers with a signed envelope: the reply type
for the request, or a signed ``error``. The body is read up to the size limit and no further;
the envelope is opened strictly (spec 6.3) against the roster; the (sender, nonce) pair is
remembered so a replay is refused; then the node's handler runs. A refused message changes no
state beyond its nonce being used up.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from blindmatch.node.errors import HTTP_STATUS, BlindmatchError, NodeError, from_protocol
from blindmatch.node.federation import uploader_signals
from blindmatch.node.federation.admission import CHARGED_TYPES
from blindmatch.node.federation.peer_client import (
    CONTENT_TYPE,
    FEDERATION_PATH,
    REPLY_TYPES,
)
from blindmatch.node.http_limits import read_limited
from blindmatch.node.storage.database import StorageError
from blindmatch.protocol import envelope
from blindmatch.protocol.messages import ERROR_CODES

if TYPE_CHECKING:
    from blindmatch.node.banks.service import BankService
    from blindmatch.node.config import NodeConfig
    from blindmatch.node.federation.admission import Admission
    from blindmatch.node.federation.peer_client import PeerClient
    from blindmatch.node.federation.publisher import IndexPublisher
    from blindmatch.node.federation.responder import PeerResponder
    from blindmatch.node.metrics import Metrics
    from blindmatch.node.translog.log import TransparencyLog
    from blindmatch.protocol.roster import Roster

log = logging.getLogger("blindmatch.federation")
STORAGE_UNAVAILABLE = "the node's database is unavailable; retry later"

MAX_REQUEST_BYTES = 1024 * 1024  # the largest request, a threshold query, is ~49 KB
REQUEST_TYPES = (
    "oprf.evaluate", "threshold.query", "feed.pull", "feedback.submit",
    *uploader_signals.REQUEST_TYPES,
)  # fmt: skip


class Node(Protocol):
    """What the endpoint needs of the node it serves."""

    node_id: str
    cfg: NodeConfig
    roster: Roster
    client: PeerClient
    metrics: Metrics
    admission: Admission
    responder: PeerResponder
    uploaders: uploader_signals.UploaderSignals
    translog: TransparencyLog

    publisher: IndexPublisher

    def now(self) -> int: ...


def build_app(node: Node, survivor_banks: BankService | None = None) -> web.Application:
    """The federation endpoint; with ``survivor_banks`` (a hub) also the survivor's page at
    ``/survivor/``, public like the federation endpoint."""
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    if survivor_banks is not None:
        from blindmatch.node.survivor.routes import SurvivorService, build_survivor_routes

        survivor = SurvivorService(node, survivor_banks)
        app.add_routes(build_survivor_routes(node, survivor_banks, service=survivor))

        async def publish_before_closing(app: web.Application) -> None:
            await survivor.published()  # submissions answered are published before the node stops

        app.on_cleanup.append(publish_before_closing)

    async def message(request: web.Request) -> web.Response:
        try:
            return await handle(node, request)
        except ConnectionError:
            raise  # the sender went away: nobody to answer
        except (StorageError, sqlite3.Error, OSError) as exc:
            # The nonce is written before any handler runs: a database locked by another writer
            # (a bank import beside the node) past its busy timeout, a lost PostgreSQL
            # connection or a full disk escaped here as an unsigned 500 the sender read as a
            # bad envelope. A signed refusal it retries later instead, and one log line.
            log.error("storage unavailable: %s", exc.__class__.__name__)
            unavailable = NodeError(
                STORAGE_UNAVAILABLE, code="internal", status_hint=503, retry_after_ms=5_000
            )
            return _error(node, unavailable, None)

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


def _error(node: Node, err: BlindmatchError, in_reply_to: bytes | None) -> web.Response:
    """A signed ``error`` envelope with the refusal's code, and its status; a code outside the
    protocol's vocabulary goes out as ``internal``, naming it in the sentence."""
    code, message, status = err.code, err.detail, err.http_status
    if code not in ERROR_CODES:
        code, message = "internal", f"refused ({_clip(code, 64)}): {message}"
        status = HTTP_STATUS["internal"]
    body: dict[str, Any] = {"code": code, "message": _clip(message, 500)}
    if in_reply_to is not None:
        body["in_reply_to"] = in_reply_to
    if err.retry_after_ms is not None:
        body["retry_after_ms"] = err.retry_after_ms
    data, _ = node.client.seal("error", body)
    node.metrics.inc("requests_refused_total", labels={"code": code})
    return web.Response(status=status, body=data, content_type=CONTENT_TYPE)


REPLAYED = "this message was already received"


async def handle(node: Node, request: web.Request) -> web.Response:
    data = await read_limited(request.content, MAX_REQUEST_BYTES)
    if len(data) > MAX_REQUEST_BYTES:
        return _error(node, NodeError("request larger than 1 MiB", code="bad-envelope"), None)
    opened_ms = int(node.now() * 1000)
    try:
        env = envelope.open_envelope(
            data,
            now_ms=opened_ms,
            sender_key=node.roster.signing_key,
            max_bytes=MAX_REQUEST_BYTES,
            expected_types=REQUEST_TYPES,
        )
    except envelope.EnvelopeError as exc:
        log.info("refused a message: %s", exc.code)
        return _error(node, from_protocol(exc), None)
    peer = node.roster.member(env.sender)
    assert peer is not None  # open_envelope found its key
    admission, responder = node.admission, node.responder
    pending = admission.pending(env.sender, env.nonce, env.timestamp_ms, opened_ms)
    if env.type not in CHARGED_TYPES:
        try:
            await admission.admit(pending)  # a charged request is admitted by its charge
        except NodeError as exc:
            return _error(node, exc, env.nonce)
    handlers = {
        "oprf.evaluate": responder.evaluate,
        "threshold.query": responder.threshold,
        "feed.pull": responder.feed_pull,
        "feedback.submit": responder.feedback_submit,
        "uploader.evaluate": node.uploaders.answer_evaluate,
        "uploader.tag": node.uploaders.answer_tag,
        "uploader.publish": node.uploaders.accept_publish,
        "uploader.withdraw": node.uploaders.accept_withdraw,
    }
    try:
        body = await handlers[env.type](peer, env.body, pending)
    except NodeError as exc:
        # A request refused before its charge still uses up its nonce, and a replay of it is
        # answered as a replay, as if the nonce had been checked first.
        if not await admission.record(pending):
            return _error(node, NodeError(REPLAYED, code="replayed"), env.nonce)
        return _error(node, exc, env.nonce)
    except Exception:
        log.exception("handler for %s failed", env.type)
        await admission.record(pending)
        failed = NodeError("the node failed to handle this message", code="internal")
        return _error(node, failed, env.nonce)
    if not await admission.record(pending):
        return _error(node, NodeError(REPLAYED, code="replayed"), env.nonce)
    reply_type = REPLY_TYPES[env.type]
    reply, _ = node.client.seal(reply_type, {**body, "re": env.nonce})
    node.metrics.inc("requests_answered_total", labels={"type": env.type})
    return web.Response(body=reply, content_type=CONTENT_TYPE)
