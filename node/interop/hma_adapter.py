"""An HMA-shaped front for a blindmatch node: HMA deployments look uploads up through it and
send their opinions back as blindmatch decisions.

HMA 2.0 ("OpenMediaMatch") answers lookups from its own banks at ``GET /m/lookup?signal_type=
pdq&signal=<hex>`` (a JSON list of bank names) and ``POST /m/lookup`` (a multipart upload whose
field name is the content type, ``photo``; answer ``{"pdq": [bank names]}``). This adapter
serves the same two requests, answered by the federation through the platform's own node (its
local API, with the node's bearer token), so an HMA deployment -- or anything written against
HMA's matching API -- can use blindmatch without learning a new API:

- each peer that holds a match appears as one "bank", ``BLINDMATCH_<HOLDER>`` (HMA bank names
  are ``[A-Z0-9_]+``); no match is ``[]``;
- a lookup that has not finished within ``wait`` seconds is ``503``, never a partial ``[]``
  (HMA answers ``503`` while its index is not ready, and callers retry);
- every lookup names its content for the node's review cases: ``hma:<hmac>``, an HMAC of the
  signal under a key kept in the node's home (``hma-adapter.key``), so the case is found again
  from the signal alone and the reference says nothing about the hash.

Opinions come back at ``POST /blindmatch/opinion`` with a JSON body shaped like
python-threatexchange's ``SignalOpinion`` -- ``{"signal_type": "pdq", "signal": "<hex>",
"category": "POSITIVE_CLASS" | "NEGATIVE_CLASS" | "INVESTIGATION_SEED" | "DISPUTED", "tags":
[...]}`` -- and decide every open case of that content: ``POSITIVE_CLASS`` actions it (the
holder gets a *confirm*), ``NEGATIVE_CLASS`` dismisses it (a *dispute*), ``INVESTIGATION_SEED``
and ``DISPUTED`` escalate it to a person. ``node/interop/te_exchange.py`` is the
python-threatexchange ``SignalExchangeAPI`` that HMA calls ``report_opinion`` on to send them.

The adapter listens on loopback only: like HMA's own matcher it is meant for the platform's
internal network, and it holds the node's API token.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
from pathlib import Path
from typing import Any

from aiohttp import web

from blindmatch.node.api.client import ApiClientError, BlindmatchClient
from blindmatch.protocol import signal_types

KEY_FILE = "hma-adapter.key"
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
BANK_PREFIX = "BLINDMATCH_"
# python-threatexchange SignalOpinionCategory names -> a blindmatch decision
OPINION_OUTCOMES = {
    "POSITIVE_CLASS": "actioned",
    "NEGATIVE_CLASS": "dismissed",
    "INVESTIGATION_SEED": "escalated",
    "DISPUTED": "escalated",
}
_PDQ_HEX = re.compile(r"[0-9a-fA-F]{64}")
_TAG = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
OPEN_STATES = ("queued", "quarantined", "escalated")  # cases waiting for a person


def adapter_key(home: Path) -> bytes:
    """The HMAC key naming lookups' content (created on first use, owner-only)."""
    path = home / KEY_FILE
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(os.urandom(32))
    key = path.read_bytes()
    if len(key) != 32:
        raise ValueError(f"{path}: expected a 32-byte key")
    return key


def content_ref(key: bytes, signal_type: str, signal_hex: str) -> str:
    """The case reference of a looked-up signal: ``hma:`` + 32 hex of an HMAC of it."""
    mac = hmac.new(key, f"{signal_type}\0{signal_hex.lower()}".encode(), hashlib.sha256)
    return "hma:" + mac.hexdigest()[:32]


def bank_name(holder: str) -> str:
    return BANK_PREFIX + holder.upper().replace("-", "_")


def _error(status: int, message: str) -> web.Response:
    # HMA's api_error_handler answers {"message": ...} with the status
    return web.json_response({"message": message}, status=status)


class HmaAdapter:
    def __init__(self, node: BlindmatchClient, key: bytes, wait: float = 30.0) -> None:
        self.node, self.key, self.wait = node, key, wait

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_UPLOAD_BYTES + 64 * 1024)
        app.router.add_get("/m/lookup", self.lookup_get)
        app.router.add_post("/m/lookup", self.lookup_post)
        app.router.add_post("/blindmatch/opinion", self.opinion)
        app.router.add_get("/status", self.status)
        return app

    async def status(self, request: web.Request) -> web.Response:
        status = await self.node.status()
        return web.json_response({"node": status["node"], "federation": status["federation"]})

    def _banks(self, job: dict[str, Any]) -> list[str]:
        return sorted({bank_name(m["peer"]) for m in job["matches"]})

    async def lookup_get(self, request: web.Request) -> web.Response:
        signal_type = request.query.get("signal_type")
        signal = request.query.get("signal")
        if signal_type is None or signal is None:
            return _error(400, "signal_type and signal are required")
        if signal_type != signal_types.PDQ.name:
            return _error(400, f"SignalType {signal_type!r} is not matched through blindmatch")
        if not _PDQ_HEX.fullmatch(signal):
            return _error(400, "invalid signal type: pdq signals are 64 hex characters")
        ref = content_ref(self.key, "pdq", signal)
        try:
            job = await self.node.match_hashes([signal.lower()], wait=self.wait, content_ref=ref)
        except ApiClientError as exc:
            return _error(exc.status if exc.status < 500 else 502, exc.message)
        if not job["complete"]:
            return _error(503, "blindmatch lookup not complete yet; retry")
        return web.json_response(self._banks(job))

    async def lookup_post(self, request: web.Request) -> web.Response:
        if not request.content_type.startswith("multipart/"):
            return _error(400, "Missing multipart/form-data file upload")
        reader = await request.multipart()
        media: bytes | None = None
        while (part := await reader.next()) is not None:
            if media is not None:
                return _error(400, "Only one file allowed per request")
            if getattr(part, "name", None) != "photo":
                return _error(400, "only 'photo' uploads are matched through blindmatch")
            media = await part.read(decode=False)  # type: ignore[union-attr]
            if len(media) > MAX_UPLOAD_BYTES:
                return _error(413, "upload too large")
        if not media:
            return _error(400, "Missing multipart/form-data file upload")
        from blindmatch.node.media.hashing import MediaError, hash_image_bytes

        try:
            pdq = (await asyncio.to_thread(hash_image_bytes, media)).pdq
        except MediaError as exc:
            return _error(400, str(exc))
        ref = content_ref(self.key, "pdq", pdq.hash32.hex())
        try:
            job = await self.node.match_media(media, wait=self.wait, content_ref=ref)
        except ApiClientError as exc:
            return _error(exc.status if exc.status < 500 else 502, exc.message)
        if not job["complete"]:
            return _error(503, "blindmatch lookup not complete yet; retry")
        return web.json_response({"pdq": self._banks(job)})

    async def opinion(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "expected a JSON object")
        if not isinstance(body, dict) or set(body) - {"signal_type", "signal", "category", "tags"}:
            return _error(400, "expected {signal_type, signal, category, tags}")
        if body.get("signal_type") != signal_types.PDQ.name:
            return _error(400, "only pdq opinions apply to blindmatch lookups")
        signal, category, tags = body.get("signal"), body.get("category"), body.get("tags", [])
        if not isinstance(signal, str) or not _PDQ_HEX.fullmatch(signal):
            return _error(400, "signal: 64 hex characters")
        if category not in OPINION_OUTCOMES:
            return _error(400, f"category: one of {', '.join(OPINION_OUTCOMES)}")
        if (
            not isinstance(tags, list)
            or len(tags) > 16
            or not all(isinstance(t, str) and _TAG.fullmatch(t) for t in tags)
        ):
            return _error(400, "tags: up to 16 short labels")
        outcome = OPINION_OUTCOMES[category]
        reason = f"HMA opinion {category}" + (f" ({' '.join(sorted(tags))})" if tags else "")
        ref = content_ref(self.key, "pdq", signal)
        decided = []
        try:
            for case in await self.node.cases_for_content(ref):
                if case["state"] in OPEN_STATES and case["state"] != outcome:
                    decided.append(await self.node.decide(case["case"], outcome, reason, by="hma"))
        except ApiClientError as exc:
            return _error(exc.status if exc.status < 500 else 502, exc.message)
        cases = [{"case": c["case"], "state": c["state"]} for c in decided]
        return web.json_response({"outcome": outcome, "cases": cases})


async def serve(
    node: BlindmatchClient, key: bytes, host: str, port: int, wait: float = 30.0
) -> web.AppRunner:
    from blindmatch.node.config import ConfigError, is_loopback_host

    if not is_loopback_host(host):
        raise ConfigError(f"the HMA adapter listens on loopback only, not {host}")
    runner = web.AppRunner(HmaAdapter(node, key, wait).app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
