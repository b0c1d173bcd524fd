"""The survivor's page and its two JSON endpoints, served by a hub node.

``GET /survivor/`` serves a static page that hashes photos *in the browser* (PDQ in
``static/pdq.js``, bit for bit as :mod:`blindmatch.node.media.hashing` computes it) and sends only
the hashes. The endpoints are public by design (a survivor has no account):

``POST /survivor/v1/submit``
    ``{"hashes": [{"signal_type": "pdq", "hash": "<64 hex>", "quality": 0..100}, ...],
    "category": "<one of CATEGORIES>", "consent": true}`` -> ``201 {"receipt": [{"item":
    "<32 hex>"}, ...], "secret": "<64 hex>"}``. The hashes go to the hub's shared bank
    ``survivor-submissions`` (created on first use, provenance ``survivor-submitted``), each
    carrying the SHA-256 of one fresh random secret per submission; the secret is returned once
    and never stored.

    With category ``protected-source`` (an ordinary photo the person wants to protect from
    being edited into a fake, ``specs/derivatives.md``) each entry also carries the photo's
    index tiles of ``pdq-tiles-1``, computed on the device: ``"tiles": [{"cell": "g4c0r0",
    "frame": 0..2, "hash": "<64 hex>", "quality": 30..100}, ...]`` (at most 123, one per cell
    and frame, gated tiles left out); at most ``MAX_PROTECTED_ITEMS`` photos and
    ``MAX_PROTECTED_BODY_BYTES`` of JSON. Each photo becomes one protected source, with its
    tiles, in the shared bank ``survivor-sources`` (provenance ``protected-source``); its
    receipt reference withdraws the source and its tiles together. ``tiles`` is refused with
    any other category.
``POST /survivor/v1/withdraw``
    ``{"items": ["<32 hex>", ...], "secret": "<hex>"}`` -> ``200 {"results": [{"item": ...,
    "withdrawn": bool}], "withdrawn": n}``. A refusal looks the same whether the item does not
    exist or the secret is wrong, so nobody learns which references exist.

Privacy: a hash that the bank already holds (someone submitted the same photo) or that was
withdrawn earlier gets a receipt entry shaped like any other (a fresh random reference that
names nothing), so the response never reveals what the hub holds. Nor does its timing: a
submission does the same steps whether its hashes are new or held (one bank write attempt per
hash, then a background publication request: the index is built after the answer, not before
it), and the answer is held back to the next multiple of ``SUBMIT_QUANTUM_S`` after the
request began, so what is left of the difference (a row written or not) is not visible.
Nothing here logs hashes or sets cookies.

Rate limits (429 ``rate-limited`` with ``Retry-After``, the message says which): a token
bucket per client address, one per source network (IPv4 /24, IPv6 /48: many addresses of one
source share it), and, for a withdrawal, one per receipt reference (attempts at one receipt from
any number of addresses).

Mount with :func:`build_survivor_routes` on an existing app (e.g. the federation-facing one),
or serve :func:`build_survivor_app` on its own public port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, Protocol

from aiohttp import web

from blindmatch.node.banks.service import (
    BankExistsError,
    BankNotFoundError,
    BankService,
    ItemWithdrawnError,
    WithdrawalRefusedError,
)
from blindmatch.node.banks.validation import BankValidationError
from blindmatch.node.config import NodeConfig
from blindmatch.node.survivor.limits import RateLimiter, SurvivorLimits, source_network
from blindmatch.node.survivor.requests import (
    CATEGORIES,
    MAX_BODY_BYTES,
    MAX_ITEMS,
    MAX_PROTECTED_BODY_BYTES,
    MAX_PROTECTED_ITEMS,
    MAX_TILES,
    PROTECTED_CATEGORY,
    Submitted,
    SubmittedTile,
    SurvivorError,
    parse_submission,
    parse_tiles,
    parse_withdrawal,
)

# What the page's users import from here (the parsers and limits live in their own modules).
__all__ = [
    "CATEGORIES",
    "MAX_BODY_BYTES",
    "MAX_ITEMS",
    "MAX_PROTECTED_BODY_BYTES",
    "MAX_PROTECTED_ITEMS",
    "MAX_TILES",
    "PROTECTED_BANK",
    "PROTECTED_CATEGORY",
    "RateLimiter",
    "Submitted",
    "SubmittedTile",
    "SurvivorError",
    "SurvivorLimits",
    "SurvivorService",
    "build_survivor_app",
    "build_survivor_routes",
    "parse_submission",
    "parse_tiles",
    "parse_withdrawal",
    "source_network",
]

log = logging.getLogger("blindmatch.node")


class Publisher(Protocol):
    async def reconcile(self) -> dict[str, int]: ...


class Node(Protocol):
    """What the survivor's page needs of the hub it runs on."""

    cfg: NodeConfig

    @property
    def publisher(self) -> Publisher: ...


PREFIX = "/survivor"
DEFAULT_BANK = "survivor-submissions"
PROTECTED_BANK = "survivor-sources"
SECRET_BYTES = 32
SOURCE = "survivor-page"
# A submission is answered at the next multiple of this after it began, held or new alike
# (its work, a bank write per hash, takes a few ms; publication runs after the answer).
SUBMIT_QUANTUM_S = 0.25

CSP = (
    "default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}
STATIC_FILES: dict[str, str] = {
    "index.html": "text/html",
    "style.css": "text/css",
    "pdq.js": "text/javascript",
    "signals.js": "text/javascript",
    "tiles.js": "text/javascript",
    "page.js": "text/javascript",
}


def _static(name: str) -> bytes:
    return resources.files("blindmatch.node.survivor").joinpath("static", name).read_bytes()


def _json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    response = web.json_response(body, status=status, headers=headers)
    response.headers.update(SECURITY_HEADERS)
    response.headers["Cache-Control"] = "no-store"
    return response


def _error(exc: SurvivorError, headers: dict[str, str] | None = None) -> web.Response:
    if exc.retry_after_ms is not None:  # a rate limit says when to come back
        headers = {
            **(headers or {}),
            "Retry-After": str(max(1, math.ceil(exc.retry_after_ms / 1000))),
        }
    return _json_response(exc.to_json(), exc.http_status, headers)


def _too_large(limit: int) -> SurvivorError:
    return SurvivorError(f"the request is larger than {limit} bytes", code="too-large")


async def _read_json(request: web.Request, limit: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The request's JSON object; refused (413) beyond ``limit`` bytes, and beyond
    ``MAX_BODY_BYTES`` unless its category is protected-source (whose tiles need more)."""
    ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise SurvivorError("send the request as application/json", code="unsupported-media-type")
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    # StreamReader.read(n) returns what has arrived (up to n), so read until the end.
    raw = bytearray()
    while len(raw) <= limit:
        chunk = await request.content.read(limit + 1 - len(raw))
        if not chunk:
            break
        raw += chunk
    if len(raw) > limit:
        raise _too_large(limit)
    try:
        body = json.loads(bytes(raw).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SurvivorError("the request is not valid JSON", code="bad-json") from None
    if not isinstance(body, dict):
        raise SurvivorError("the request must be a JSON object", code="bad-request")
    if len(raw) > MAX_BODY_BYTES and body.get("category") != PROTECTED_CATEGORY:
        raise _too_large(MAX_BODY_BYTES)
    return body


class SurvivorService:
    """What the endpoints do, without HTTP (also usable from tests and the CLI)."""

    def __init__(
        self,
        node: Node,
        banks: BankService,
        bank_name: str = DEFAULT_BANK,
        protected_bank: str = PROTECTED_BANK,
        *,
        quantum_s: float = SUBMIT_QUANTUM_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.node, self.banks, self.bank_name = node, banks, bank_name
        self.protected_bank = protected_bank
        self.quantum_s, self._clock, self._sleep = quantum_s, clock, sleep
        self._publish: asyncio.Task[None] | None = None
        self._publish_again = False

    async def ensure_bank(self, protected: bool = False) -> str:
        """The bank a submission goes to, created on first use."""
        if protected:
            name, provenance = self.protected_bank, "protected-source"
            description = "Ordinary photos people protect from being edited into fakes"
            categories = [PROTECTED_CATEGORY]
        else:
            name, provenance = self.bank_name, "survivor-submitted"
            description = "Hashes people submitted for their own photos (survivor page)"
            categories = sorted(set(CATEGORIES) - {PROTECTED_CATEGORY})
        try:
            await self.banks.get_bank(name)
        except BankNotFoundError:
            with contextlib.suppress(BankExistsError):  # created concurrently: fine
                await self.banks.create_bank(
                    name,
                    provenance=provenance,
                    description=description,
                    categories=categories,
                    shared=True,
                )
        return name

    async def _add(self, bank: str, entry: Submitted, category: str, secret: bytes) -> Any:
        if category != PROTECTED_CATEGORY:
            return await self.banks.add_item(
                bank,
                "pdq",
                entry.hash,
                quality=entry.quality,
                categories=[category],
                source=SOURCE,
                withdrawal_secret=secret,
            )
        from blindmatch.node.banks.validation import SourceTile

        return await self.banks.add_protected_source(
            bank,
            entry.hash,
            quality=entry.quality,
            tiles=[SourceTile(t.cell, t.frame, t.hash, t.quality) for t in entry.tiles],
            categories=[category],
            source=SOURCE,
            withdrawal_secret=secret,
        )

    async def submit(self, hashes: list[Submitted], category: str) -> dict[str, Any]:
        """Store the hashes and answer, in the same steps and the same time (to the quantum)
        whether the hub held them or not: one write attempt per hash, one request to publish
        (in the background), then the answer at the next quantum after the start."""
        started = self._clock()
        bank = await self.ensure_bank(category == PROTECTED_CATEGORY)
        secret = secrets.token_bytes(SECRET_BYTES)
        receipt: list[dict[str, str]] = []
        async with self.banks.db.transaction():
            for entry in hashes:
                # Both refs are drawn on every path, so held and new do the same work here too.
                fresh = secrets.token_bytes(16)
                try:
                    result = await self._add(bank, entry, category, secret)
                    ref = result.item.item_ref if result.created else fresh
                except ItemWithdrawnError:
                    # Withdrawn earlier: stays withdrawn (never silently re-added). The receipt
                    # entry names nothing, exactly like a duplicate's.
                    ref = fresh
                receipt.append({"item": ref.hex()})
        self.publish_soon()
        await self._answer_at_quantum(started)
        return {"receipt": receipt, "secret": secret.hex()}

    def publish_soon(self) -> None:
        """Publish the bank's new items after the answer, not before it: building an item's
        index entries (OPRF evaluations) is the slow part, and only new items have any."""
        self._publish_again = True
        if self._publish is None or self._publish.done():
            self._publish = asyncio.get_running_loop().create_task(self._publish_loop())

    async def _publish_loop(self) -> None:
        while self._publish_again:  # submissions during a run are published by one more run
            self._publish_again = False
            try:
                await self.node.publisher.reconcile()
            except Exception:  # logged without content; the node's sync loop retries it
                log.exception("publishing survivor submissions failed")

    async def published(self) -> None:
        """Wait until every submission so far is published (tests, shutdown)."""
        while self._publish is not None and not self._publish.done():
            await asyncio.shield(self._publish)

    async def _answer_at_quantum(self, started: float) -> None:
        elapsed = self._clock() - started
        deadline = max(1, math.ceil(elapsed / self.quantum_s)) * self.quantum_s
        await self._sleep(deadline - elapsed)

    async def withdraw(self, refs: list[bytes], secret: bytes) -> dict[str, Any]:
        results = []
        withdrawn: list[bytes] = []
        for ref in refs:
            try:
                await self.banks.withdraw_with_secret(ref, secret, reason="withdrawn by survivor")
                withdrawn.append(ref)
                results.append({"item": ref.hex(), "withdrawn": True})
            except WithdrawalRefusedError:
                results.append({"item": ref.hex(), "withdrawn": False})
        decisions = getattr(self.node, "decisions", None)
        if decisions is not None:
            # The feedback machinery: a signed withdraw record every node replicates, closing
            # cases that matched the item anywhere.
            for ref in withdrawn:
                await decisions.withdraw_item(ref)
        if withdrawn:
            await self.node.publisher.reconcile()
        return {"results": results, "withdrawn": len(withdrawn)}


def render_index(cfg: Any) -> bytes:
    """The page with the hub's name, contact and privacy link filled in (Jinja2, autoescaped:
    the values come from the operator's config but are escaped all the same)."""
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = env.from_string(_static("index.html").decode("utf-8"))
    return template.render(
        hub_name=getattr(cfg, "hub_name", None) or cfg.node_id,
        hub_contact=getattr(cfg, "hub_contact", None),
        privacy_url=getattr(cfg, "privacy_url", None),
    ).encode("utf-8")


def build_survivor_routes(
    node: Node,
    banks: BankService,
    *,
    bank_name: str = DEFAULT_BANK,
    limiter: RateLimiter | None = None,
    limits: SurvivorLimits | None = None,
    trust_forwarded_for: bool = False,
    service: SurvivorService | None = None,
) -> web.RouteTableDef:
    """The page at ``/survivor/`` and its endpoints, as routes to add to any aiohttp app
    (``app.add_routes(build_survivor_routes(node, banks))``). Headers are set per response, so
    no middleware is needed. With ``trust_forwarded_for`` the rate limits key on the first
    ``X-Forwarded-For`` address (only behind a proxy that sets it). ``limiter`` replaces the
    per-address bucket of ``limits``."""
    service = service if service is not None else SurvivorService(node, banks, bank_name)
    limits = limits if limits is not None else SurvivorLimits()
    if limiter is not None:
        limits.address = limiter
    assets = {name: _static(name) for name in STATIC_FILES}
    assets["index.html"] = render_index(node.cfg)
    routes = web.RouteTableDef()

    def client_of(request: web.Request) -> str:
        if trust_forwarded_for:
            forwarded = request.headers.get("X-Forwarded-For", "")
            if forwarded:
                return forwarded.split(",")[0].strip()[:64]
        return request.remote or "unknown"

    def asset(name: str) -> web.Response:
        response = web.Response(body=assets[name], content_type=STATIC_FILES[name])
        if STATIC_FILES[name] == "text/html" or STATIC_FILES[name].startswith("text/"):
            response.charset = "utf-8"
        response.headers.update(SECURITY_HEADERS)
        response.headers["Cache-Control"] = "no-cache"
        return response

    @routes.get(PREFIX)
    async def root(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(PREFIX + "/")

    @routes.get(PREFIX + "/")
    async def index(request: web.Request) -> web.Response:
        return asset("index.html")

    @routes.get(PREFIX + "/{name}")
    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC_FILES:
            raise web.HTTPNotFound()
        return asset(name)

    async def guarded(
        request: web.Request,
        action: Callable[[dict[str, Any]], Awaitable[web.Response]],
        limit: int = MAX_BODY_BYTES,
    ) -> web.Response:
        refused = limits.by_client(client_of(request))
        if refused is not None:
            return _error(refused)
        try:
            return await action(await _read_json(request, limit))
        except SurvivorError as exc:
            return _error(exc)
        except BankValidationError as exc:
            return _error(SurvivorError(str(exc), code="bad-request"))

    @routes.post(PREFIX + "/v1/submit")
    async def submit(request: web.Request) -> web.Response:
        async def action(body: dict[str, Any]) -> web.Response:
            hashes, category = parse_submission(body)
            return _json_response(await service.submit(hashes, category), 201)

        return await guarded(request, action, MAX_PROTECTED_BODY_BYTES)

    @routes.post(PREFIX + "/v1/withdraw")
    async def withdraw(request: web.Request) -> web.Response:
        async def action(body: dict[str, Any]) -> web.Response:
            refs, secret = parse_withdrawal(body)
            refused = limits.by_receipt(refs)
            if refused is not None:
                raise refused
            return _json_response(await service.withdraw(refs, secret))

        return await guarded(request, action)

    return routes


SERVICE = web.AppKey("survivor-service", SurvivorService)


def build_survivor_app(node: Node, banks: BankService, **options: Any) -> web.Application:
    """A stand-alone app serving only the survivor page (for a separate public port)."""
    app = web.Application(client_max_size=MAX_PROTECTED_BODY_BYTES)
    service = options.pop("service", None) or SurvivorService(
        node, banks, options.get("bank_name", DEFAULT_BANK)
    )
    app[SERVICE] = service
    app.add_routes(build_survivor_routes(node, banks, service=service, **options))

    async def publish_before_closing(app: web.Application) -> None:
        await service.published()

    app.on_cleanup.append(publish_before_closing)
    return app
