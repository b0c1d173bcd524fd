"""The platform's local HTTP API: submit media or hashes, read verdicts, manage banks.

Served on the node's API address (loopback by default), separate from the federation port.
Every route but ``/healthz``, ``/metrics`` and the OpenAPI document needs
``Authorization: Bearer <token>`` (the token file is written by ``blindmatch init``). Inputs are
validated before anything is stored; errors are JSON ``{"error": code, "message": ...}`` with a
4xx status. Responses never contain a raw hash of a *held* item, only its opaque reference.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import sqlite3
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from blindmatch.node import signals
from blindmatch.node.api.client import UPLOAD_HEADER
from blindmatch.node.banks.service import BankError, BankService
from blindmatch.node.banks.validation import BankValidationError, holds_frame_list
from blindmatch.node.cases import derivatives as derivative_cases
from blindmatch.node.cases.context import ContextError, ContextStore, UploadContext
from blindmatch.node.cases.context import parse as parse_context
from blindmatch.node.cases.decisions import DecisionError
from blindmatch.node.errors import BlindmatchError, NodeError
from blindmatch.node.federation.roster_watch import roster_warnings
from blindmatch.node.media import hashing
from blindmatch.node.media import tiles as tile_hashing
from blindmatch.node.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from blindmatch.node.storage.database import StorageError
from blindmatch.node.storage.incidents import PeerIncidents
from blindmatch.node.storage.uploads import UploadStore
from blindmatch.protocol import signal_types
from blindmatch.protocol.matching import QueryHash
from blindmatch.protocol.signals import HashFormatError, check_float_vector

if TYPE_CHECKING:
    from blindmatch.node.federation.querier import JobStatus
    from blindmatch.node.node import Node
    from blindmatch.protocol.roster import Roster

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

log = logging.getLogger("blindmatch.api")

MAX_MEDIA_BYTES = 50 * 1024 * 1024
MAX_JSON_BYTES = 4 * 1024 * 1024
MAX_HASHES_PER_REQUEST = 64
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_HEX32 = re.compile(r"[0-9a-f]{32}")
# A content reference is named in URL paths, so it may not start with a dot ("." and ".." are
# path segments no client sends as given).
_CONTENT_REF = re.compile(r"[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,127}")
_CONTENT_REF_RULE = "content_ref: 1..128 of [A-Za-z0-9._:-], not starting with '.'"
_DECIDER = re.compile(r"[a-z0-9_.-]{1,32}")


def case_json(case: Any) -> dict[str, Any]:
    """A case as the platform and the console see it: references, never hashes."""
    return {
        "case": case.case_ref.hex(),
        "content_ref": case.content_ref,
        "source": case.source,
        "holder": case.holder,
        "item": case.item_ref.hex(),
        "band": case.band,
        "variant": case.variant,
        "release": case.release,
        # "copy" / "derivative" for a match against a protected source photo, else null
        "kind": (case.release.get("derivative") or {}).get("kind"),
        "state": case.state,
        "priority": case.priority,
        "decided_by": case.decided_by,
        "reason": case.reason,
        "appeal": case.appeal,
        "needs_rereview": case.needs_rereview,
        # The platform's context as sent (identifier kinds only, never digests) and what the
        # node computed: recidivism here, known elsewhere for this picture, what moved priority.
        "context": case.context,
        "signals": case.signals,
    }


class ApiError(BlindmatchError):
    """A request the API refuses: ``ApiError(sentence, code=...)``, answered with the code's
    status."""


# The errors the API answers as refusals (anything else is a fault: 500).
REFUSALS = (ApiError, BankValidationError, hashing.MediaError, BankError, NodeError, DecisionError)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


async def _json(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise ApiError(f"JSON body over {MAX_JSON_BYTES} bytes", code="too-large")
    raw = await request.content.read(MAX_JSON_BYTES + 1)
    while len(raw) <= MAX_JSON_BYTES and (chunk := await request.content.read(65536)):
        raw += chunk
    if len(raw) > MAX_JSON_BYTES:
        raise ApiError(f"JSON body over {MAX_JSON_BYTES} bytes", code="too-large")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(f"body is not valid JSON: {exc}", code="bad-json") from exc


def _parse_hash_queries(body: Any) -> list[QueryHash]:
    if not isinstance(body, dict) or not isinstance(body.get("hashes"), list):
        raise ApiError('expected {"hashes": [{"hash": "<64 hex>"}, ...]}', code="bad-request")
    items = body["hashes"]
    if not 1 <= len(items) <= MAX_HASHES_PER_REQUEST:
        raise ApiError(f"1..{MAX_HASHES_PER_REQUEST} hashes per request", code="bad-request")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or set(item) - {
            "hash",
            "signal_type",
            "float_vector",
            "variant",
        }:
            raise ApiError(
                f"hashes[{i}]: fields hash, signal_type, float_vector, variant", code="bad-request"
            )
        if item.get("signal_type", signal_types.PDQ.name) != signal_types.PDQ.name:
            raise ApiError(f"hashes[{i}]: only pdq is matched across peers", code="unsupported")
        h = item.get("hash")
        if not isinstance(h, str) or not _HEX64.fullmatch(h):
            raise ApiError(f"hashes[{i}].hash: 64 hex characters", code="bad-hash")
        fv = item.get("float_vector")
        if fv is not None:
            try:
                if not isinstance(fv, list):
                    raise HashFormatError("a list of 256 numbers")
                check_float_vector(fv)
            except HashFormatError as exc:
                raise ApiError(
                    f"hashes[{i}].float_vector: 256 finite float32 ({exc})", code="bad-request"
                ) from None
        variant = item.get("variant", "original")
        if not isinstance(variant, str) or len(variant) > 64:
            raise ApiError(f"hashes[{i}].variant: a short string", code="bad-request")
        out.append(QueryHash(bytes.fromhex(h), fv, variant))
    return out


def _path_ref(request: web.Request, key: str, what: str) -> bytes:
    """A 16-byte reference from the URL path, as 32 lower-case hex characters."""
    ref = request.match_info[key]
    if not _HEX32.fullmatch(ref):
        raise ApiError(f"{what}: 32 lower-case hex characters", code="bad-request")
    return bytes.fromhex(ref)


async def _reason(request: web.Request) -> Any:
    """The optional ``reason`` of a JSON body (checked by whoever uses it)."""
    body = await _json(request) if request.can_read_body else {}
    return body.get("reason", "") if isinstance(body, dict) else ""


def _status_json(status: JobStatus, queries: list[QueryHash], roster: Roster) -> dict[str, Any]:
    """A job as the platform sees it. Tile confirmations are not matches by themselves: they
    are judged under the rule (specs/derivatives.md 6) into one match per protected source,
    with its ``kind`` (copy or derivative) and evidence; ``tiles_confirmed`` counts them."""
    judged = derivative_cases.review_matches(
        queries,
        [
            derivative_cases.PeerMatch(r.peer, r.item_ref, r.variant, r.band, r.release)
            for r in status.results
        ],
        roster.has_role,
    )
    return {
        "job": status.job_ref.hex(),
        "complete": status.complete,
        # running, complete, dead-lettered (a peer's part failed for good) or cancelled
        "state": status.state,
        "reason": status.reason,
        "peers_total": status.peers_total,
        "peers_done": status.peers_done,
        "matches": [
            {
                "peer": m.holder,
                "item": m.item_ref.hex(),
                "band": m.band,
                "variant": m.variant,
                **m.release,
                "kind": m.kind,
            }
            for m in judged
        ],
        "tiles_confirmed": sum(
            signal_types.for_variant(r.variant) is signal_types.PDQ_TILES for r in status.results
        ),
        "peers": [
            {
                "peer": t["peer_id"],
                "state": t["state"],
                "probes": t["probes"],
                "candidates": t["candidates"],
                "bytes_sent": t["bytes_sent"],
                "bytes_received": t["bytes_received"],
                "last_error": t["last_error"],
                # the position of the peer's index feed its part ran against
                "replica_cursor": t.get("replica_cursor"),
            }
            for t in status.tasks
        ],
    }


def build_api(
    node: Node, banks: BankService, token: str, *, console: bool = True
) -> web.Application:
    """The platform API; with ``console`` the reviewer console is mounted at ``/console/``
    (it has its own accounts, sessions and CSRF protection, not the API token)."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/console"):
            return await handler(request)
        if request.path not in ("/healthz", "/metrics", "/api/v1/openapi.json"):
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return _error(401, "unauthorized", "missing or wrong bearer token")
        try:
            return await handler(request)
        except REFUSALS as exc:
            return _error(exc.http_status, exc.code, exc.detail)
        except (StorageError, sqlite3.Error, OSError) as exc:
            # Disk full, a read-only or vanished file, a lost PostgreSQL connection: the
            # caller can retry later; the operator reads one line in the log.
            log.error("storage unavailable: %s: %s", exc.__class__.__name__, str(exc)[:200])
            return _error(503, "storage-unavailable", "the node's database is unavailable")
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            # aiohttp's own refusals (no such route, method not allowed, body too large) in
            # the API's error shape; a 405 keeps its Allow header.
            response = _error(exc.status, exc.reason.lower().replace(" ", "-"), exc.reason)
            if "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
            return response

    app = web.Application(middlewares=[guard], client_max_size=MAX_MEDIA_BYTES)
    routes = web.RouteTableDef()

    @routes.get("/healthz", allow_head=False)
    async def health(request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "node": node.node_id})

    @routes.get("/metrics", allow_head=False)
    async def metrics(request: web.Request) -> web.Response:
        from blindmatch.node.ops_metrics import refresh

        await refresh(node)
        return web.Response(
            body=node.metrics.exposition(), headers={"Content-Type": METRICS_CONTENT_TYPE}
        )

    @routes.get("/api/v1/openapi.json", allow_head=False)
    async def openapi(request: web.Request) -> web.Response:
        from blindmatch.node.api.openapi import OPENAPI

        return web.json_response(OPENAPI)

    @routes.get("/api/v1/status", allow_head=False)
    async def status(request: web.Request) -> web.Response:
        peers = []
        for m in node.peers():
            replica = node.replication.peer_replicas.get(m.node_id)
            cursor = await node.replicas.cursor(m.node_id, "index")
            pulled = node.replication.feed_heads.get((m.node_id, "index"))
            peers.append(
                {
                    "peer": m.node_id,
                    "roles": list(m.roles),
                    "holds_index": m.voprf_key is not None,
                    "replica_entries": (await asyncio.to_thread(replica.size))[0] if replica else 0,
                    "replica_cursor": cursor,
                    "replica_position": replica.cursor if replica else 0,
                    # the peer's index head at our last complete pull, and when (null: never)
                    "synced_at": pulled[1] if pulled else None,
                    "feed_lag": max(0, pulled[0] - cursor) if pulled else None,
                    # what this node refused of the peer's feeds and logs (no content)
                    "incidents": len(await PeerIncidents(node.db).list(m.node_id)),
                }
            )
        return web.json_response(
            {
                "node": node.node_id,
                "federation": node.roster.federation,
                "roster_serial": node.roster.serial,
                "roster_expires_at": node.roster.expires_ms // 1000,
                "warnings": roster_warnings(node.roster, node.now()),
                "index_feed_head": await node.feeds.head("index"),
                "outbox_pending": await node.outbox.count("pending"),
                "outbox_dead": await node.outbox.count("dead"),
                "process": {
                    "instance": node.processes.instance,
                    "leader": node.processes.is_leader,
                },
                # match jobs by state; dead-lettered ones need an operator (retry or leave)
                "jobs": await node.jobs.counts(),
                "peers": peers,
            }
        )

    async def _job_json(status: JobStatus) -> dict[str, Any]:
        return _status_json(status, await node.querier.job_queries(status.job_ref), node.roster)

    def _content_ref(request: web.Request) -> str | None:
        ref = request.query.get("content_ref")
        if ref is not None and not _CONTENT_REF.fullmatch(ref):
            raise ApiError(_CONTENT_REF_RULE, code="bad-request")
        return ref

    def _wait(request: web.Request) -> float | None:
        wait = request.query.get("wait")
        if wait is None:
            return None
        try:
            seconds = float(wait)
        except ValueError:
            seconds = -1.0
        if not 0.0 <= seconds <= 120.0:  # NaN fails too
            raise ApiError("wait: a number of seconds from 0 to 120", code="bad-request")
        return seconds

    def _upload(request: web.Request, uploader: Any, context: Any) -> UploadContext | None:
        """The upload's uploader and context, validated; they need a content_ref (they are
        stored with its cases) and never leave this node."""
        if uploader is None and context is None:
            return None
        if _content_ref(request) is None:
            raise ApiError("uploader and context need a content_ref", code="bad-request")
        try:
            return parse_context(uploader, context)
        except ContextError as exc:
            raise ApiError(str(exc), code="bad-request") from exc

    async def _submit(
        request: web.Request,
        queries: list[QueryHash],
        source: str,
        upload: UploadContext | None = None,
    ) -> web.Response:
        seconds = _wait(request)  # every parameter is checked before the job exists
        content_ref = _content_ref(request)
        if upload is not None and content_ref is not None:
            await ContextStore(UploadStore(node.db)).save(content_ref, upload, node.now())
        job = await node.querier.submit(queries, source=source, content_ref=content_ref)
        if seconds is not None:
            st = await node.querier.wait_for_job(job, timeout=seconds)
        else:
            st = await node.querier.job_status(job)
        return web.json_response(await _job_json(st), status=200 if st.ended else 202)

    @routes.post("/api/v1/match/hashes")
    async def match_hashes(request: web.Request) -> web.Response:
        body = await _json(request)
        queries = _parse_hash_queries(body)
        if set(body) - {"hashes", "uploader", "context"}:
            raise ApiError("fields: hashes, uploader, context", code="bad-request")
        upload = _upload(request, body.get("uploader"), body.get("context"))
        return await _submit(request, queries, "api:hashes", upload)

    @routes.post("/api/v1/match/media")
    async def match_media(request: web.Request) -> web.Response:
        _wait(request)  # refuse bad parameters before any work
        _content_ref(request)
        upload = None
        header = request.headers.get(UPLOAD_HEADER)
        if header is not None:
            try:
                raw = json.loads(header) if len(header) <= 4096 else None
            except json.JSONDecodeError:
                raw = None
            if not isinstance(raw, dict) or set(raw) - {"uploader", "context"}:
                raise ApiError(f"{UPLOAD_HEADER}: JSON {{uploader, context}}", code="bad-request")
            upload = _upload(request, raw.get("uploader"), raw.get("context"))
        data = await request.content.read(MAX_MEDIA_BYTES + 1)
        while len(data) <= MAX_MEDIA_BYTES and (chunk := await request.content.read(1 << 20)):
            data += chunk
        if len(data) > MAX_MEDIA_BYTES:
            raise ApiError(f"media over {MAX_MEDIA_BYTES} bytes", code="too-large")
        adapter = signals.for_media(data)
        if adapter is not None:
            # Media another signal type hashes (a video: its distinct quality frames).
            queries = await asyncio.to_thread(adapter.media_queries, data)
        else:
            queries = await asyncio.to_thread(
                tile_hashing.picture_queries, data, tiles=node.cfg.derivative_search
            )
            if not any(signal_types.for_variant(q.variant) is signal_types.PDQ for q in queries):
                queries = []  # tiles alone never make a match job: the picture is too flat
            else:
                # Types that derive query hashes of their own from a picture (a learned code).
                for extra in signals.ADAPTERS:
                    queries += await asyncio.to_thread(extra.picture_queries, data, node.cfg)
        if not queries:
            raise ApiError("the picture is too flat to hash reliably", code="low-quality")
        content_ref = _content_ref(request)
        if content_ref is not None:
            # Kept for reviewers only (shown blurred), replaced if the platform resubmits.
            await UploadStore(node.db).put_media(
                content_ref, data, "application/octet-stream", node.now()
            )
        return await _submit(request, queries, "api:media", upload)

    @routes.get("/api/v1/content/{content_ref}/cases", allow_head=False)
    async def content_cases(request: web.Request) -> web.Response:
        ref = request.match_info["content_ref"]
        if not _CONTENT_REF.fullmatch(ref):
            raise ApiError(_CONTENT_REF_RULE, code="bad-request")
        cases = await node.decisions.cases_for_content(ref)
        return web.json_response({"cases": [case_json(c) for c in cases]})

    @routes.post("/api/v1/cases/{case}/appeal")
    async def appeal(request: web.Request) -> web.Response:
        ref = _path_ref(request, "case", "case")
        reason = await _reason(request)
        if not isinstance(reason, str) or len(reason) > 2000:
            raise ApiError("reason: a string of at most 2000 characters", code="bad-request")
        case = await node.decisions.open_appeal(ref, reason)
        return web.json_response(case_json(case))

    @routes.post("/api/v1/cases/{case}/decision")
    async def decide(request: web.Request) -> web.Response:
        """The platform's own review (or a tool's, such as HMA through the adapter) decides a
        case as a reviewer in the console would: feedback to the holder follows."""
        ref = _path_ref(request, "case", "case")
        body = await _json(request)
        if not isinstance(body, dict) or set(body) - {"outcome", "reason", "by"}:
            raise ApiError("expected an object: outcome, reason, by", code="bad-request")
        reason, by = body.get("reason", ""), body.get("by", "platform")
        if not isinstance(reason, str) or len(reason) > 500:
            raise ApiError("reason: a string of at most 500 characters", code="bad-request")
        if not isinstance(by, str) or not _DECIDER.fullmatch(by):
            raise ApiError("by: 1..32 of [a-z0-9_.-]", code="bad-request")
        case = await node.decisions.decide(ref, str(body.get("outcome")), f"api:{by}", reason)
        return web.json_response(case_json(case))

    @routes.get("/api/v1/match/{job:[0-9a-f]{32}}", allow_head=False)
    async def job(request: web.Request) -> web.Response:
        ref = _path_ref(request, "job", "job")
        return web.json_response(await _job_json(await node.querier.job_status(ref)))

    @routes.post("/api/v1/match/{job:[0-9a-f]{32}}/cancel")
    async def cancel_job(request: web.Request) -> web.Response:
        ref = _path_ref(request, "job", "job")
        reason = await _reason(request)
        if not isinstance(reason, str) or len(reason) > 500:
            raise ApiError("reason: a string of at most 500 characters", code="bad-request")
        try:
            await node.querier.cancel_job(ref, f"cancelled by the operator: {reason}".rstrip(": "))
        except NodeError as exc:
            if exc.code == "conflict":
                raise ApiError(exc.detail, code="conflict") from None
            raise
        return web.json_response(await _job_json(await node.querier.job_status(ref)))

    @routes.post("/api/v1/match/{job:[0-9a-f]{32}}/retry")
    async def retry_job(request: web.Request) -> web.Response:
        ref = _path_ref(request, "job", "job")
        try:
            await node.querier.retry_job(ref)
        except NodeError as exc:
            if exc.code == "conflict":
                raise ApiError(exc.detail, code="conflict") from None
            raise
        return web.json_response(await _job_json(await node.querier.job_status(ref)))

    @routes.get("/api/v1/banks", allow_head=False)
    async def list_banks(request: web.Request) -> web.Response:
        out = []
        for b in await banks.list_banks():
            out.append(
                {
                    "name": b.name,
                    "provenance": b.provenance,
                    "categories": list(b.categories),
                    "distance_threshold": b.distance_threshold,
                    "enabled": b.enabled,
                    "shared": b.shared,
                    "items": await banks.count_items(b.name),
                }
            )
        return web.json_response({"banks": out})

    @routes.post("/api/v1/banks")
    async def create_bank(request: web.Request) -> web.Response:
        body = await _json(request)
        if not isinstance(body, dict):
            raise ApiError("expected an object", code="bad-request")
        allowed = {
            "name",
            "provenance",
            "description",
            "categories",
            "distance_threshold",
            "shared",
            "enabled",
        }
        if set(body) - allowed:
            raise ApiError(f"unknown field(s): {sorted(set(body) - allowed)}", code="bad-request")
        if "name" not in body or "provenance" not in body:
            raise ApiError("name and provenance are required", code="bad-request")
        if body.get("provenance") == "generator" and not node.roster.has_role(
            node.node_id, "generator"
        ):
            raise ApiError(
                "only a node with the roster role 'generator' may hold a generator bank"
                " (peers would treat its matches as peer-sourced)",
                code="not-allowed",
                status_hint=400,  # this surface has always answered 400 here
            )
        bank = await banks.create_bank(body.pop("name"), **body)
        return web.json_response({"name": bank.name}, status=201)

    @routes.post("/api/v1/banks/{bank}/hashes")
    async def add_hashes(request: web.Request) -> web.Response:
        body = await _json(request)
        if not isinstance(body, dict) or not isinstance(body.get("hashes"), list):
            raise ApiError('expected {"hashes": ["<hex>", ...]}', code="bad-request")
        if len(body["hashes"]) > 10_000:
            raise ApiError("at most 10000 hashes per request; use import", code="bad-request")
        signal_type = body.get("signal_type", signal_types.PDQ.name)
        if isinstance(signal_type, str) and holds_frame_list(signal_type):
            # An item per entry, as its signal string (a video's frame list).
            if not all(isinstance(h, str) for h in body["hashes"]):
                raise ApiError(f"each {signal_type} entry is a signal string", code="bad-request")
            created = [
                (await banks.add_item(request.match_info["bank"], signal_type, h)).created
                for h in body["hashes"]
            ]
            await node.publisher.reconcile()
            return web.json_response(
                {"added": sum(created), "already_present": len(created) - sum(created)},
                status=201,
            )
        lines = [json.dumps({"signal_type": signal_type, "hash": h}) for h in body["hashes"]]
        report = await banks.import_items(request.match_info["bank"], lines, fmt="jsonl")
        await node.publisher.reconcile()
        return web.json_response(
            {"added": report.added, "already_present": report.already_present}, status=201
        )

    @routes.post("/api/v1/items/{ref}/withdraw")
    async def withdraw(request: web.Request) -> web.Response:
        ref = _path_ref(request, "ref", "item reference")
        item = await banks.withdraw(ref, reason=await _reason(request))
        await node.decisions.withdraw_item(item.item_ref)
        await node.publisher.reconcile()
        return web.json_response({"item": ref.hex(), "withdrawn_at": item.withdrawn_at})

    app.add_routes(routes)
    if console:
        from blindmatch.node.console.site import build_console

        async def console_home(request: web.Request) -> web.Response:
            raise web.HTTPFound("/console/")

        app.router.add_get("/console", console_home)
        app.add_subapp("/console/", build_console(node))
    return app
