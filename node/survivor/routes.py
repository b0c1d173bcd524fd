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
names nothing), so the response never reveals what the hub holds. Nothing here logs hashes or
sets cookies. Every client address has a token bucket.

Mount with :func:`build_survivor_routes` on an existing app (e.g. the federation-facing one),
or serve :func:`build_survivor_app` on its own public port.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
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
from blindmatch.node.banks.validation import PDQ_QUALITY_THRESHOLD, BankValidationError
from blindmatch.node.config import NodeConfig
from blindmatch.node.errors import BlindmatchError
from blindmatch.protocol import signal_types
from blindmatch.protocol.derivative import PDQ_TILES_1, Cell, DerivativeError


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
PROTECTED_CATEGORY = "protected-source"
# The categories a survivor may choose (wire name -> what the page says).
CATEGORIES: dict[str, str] = {
    "ncii": "A real intimate photo of me, shared or at risk of being shared without my consent",
    "ncii-synthetic": "A fake or edited intimate image of me (for example made with AI)",
    PROTECTED_CATEGORY: (
        "An ordinary photo of me that I want to protect from being edited into a fake"
    ),
}
MAX_ITEMS = 100
MAX_BODY_BYTES = 64 * 1024  # 100 hashes are ~10 KB of JSON
# Protected sources: the derivative signal whose tiles a photo carries, and the caps.
TILE_SCHEME = PDQ_TILES_1
MAX_TILES = len(TILE_SCHEME.index_tiles(1024, 1024))  # 41 cells x 3 frames = 123
MAX_PROTECTED_ITEMS = 20
# 20 photos x 123 tiles x ~95 bytes of JSON is ~235 KB; twice that leaves room for whitespace.
MAX_PROTECTED_BODY_BYTES = 512 * 1024
_TILE_FIELDS = frozenset({"cell", "frame", "hash", "quality"})
_TILE_CELLS = frozenset(TILE_SCHEME.cells)
SECRET_BYTES = 32
MIN_SECRET_HEX, MAX_SECRET_HEX = 32, 512
SOURCE = "survivor-page"

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
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX = re.compile(r"(?:[0-9a-f]{2})+")


class SurvivorError(BlindmatchError):
    """A request the page refuses: ``SurvivorError(sentence, code=...)``."""


@dataclass
class RateLimiter:
    """A token bucket per client address, in memory: ``burst`` requests, then one every
    ``per_seconds``. At most ``max_clients`` addresses are remembered (least recent dropped)."""

    burst: float = 10.0
    per_seconds: float = 6.0
    max_clients: int = 10_000
    clock: Any = time.monotonic
    _buckets: OrderedDict[str, tuple[float, float]] = field(default_factory=OrderedDict)

    def take(self, client: str) -> float:
        """0 when allowed; otherwise the seconds to wait."""
        now = self.clock()
        tokens, last = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) / self.per_seconds)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) * self.per_seconds
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait


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


def _only_keys(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise SurvivorError(f"unknown field(s): {', '.join(unknown[:5])}", code="bad-request")


@dataclass(frozen=True)
class SubmittedTile:
    """One tile of a protected photo, as validated (``SourceTile`` of the bank API)."""

    cell: str
    frame: int
    hash: bytes
    quality: int


@dataclass(frozen=True)
class Submitted:
    """One submitted photo: its whole-picture PDQ hash and quality, and (protected-source
    only) its index tiles."""

    hash: bytes
    quality: int
    tiles: tuple[SubmittedTile, ...] = ()


def _quality(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and 0 <= value <= 100


def parse_tiles(tiles: Any, where: str) -> tuple[SubmittedTile, ...]:
    """Validate the ``tiles`` of one protected photo (``where`` names it in errors)."""
    if not isinstance(tiles, list):
        raise SurvivorError(f"{where}.tiles must be a list", code="bad-tiles")
    if len(tiles) > MAX_TILES:
        raise SurvivorError(
            f"{where}.tiles has {len(tiles)} entries; a photo has at most {MAX_TILES}"
            f" ({TILE_SCHEME.name}: {len(TILE_SCHEME.cells)} cells x"
            f" {len(TILE_SCHEME.index_frames)} frames)",
            code="too-many-tiles",
        )
    out: list[SubmittedTile] = []
    seen: set[tuple[str, int]] = set()
    frames = len(TILE_SCHEME.index_frames)
    for n, tile in enumerate(tiles):
        at = f"{where}.tiles[{n}]"
        if not isinstance(tile, dict):
            raise SurvivorError(f"{at} must be an object", code="bad-tile")
        if set(tile) != _TILE_FIELDS:
            raise SurvivorError(
                f"{at} must have exactly the fields cell, frame, hash, quality", code="bad-tile"
            )
        label = tile["cell"]
        try:
            cell = Cell.parse(label)
        except DerivativeError:
            cell = None
        # Only the canonical label (Cell.parse also reads leading zeros, e.g. "g4c01r0").
        if cell is None or cell not in _TILE_CELLS or cell.label != label:
            raise SurvivorError(
                f"{at}.cell must be a cell of {TILE_SCHEME.name} (g4c0r0 .. g5c4r4)",
                code="bad-tile-cell",
            )
        frame = tile["frame"]
        if isinstance(frame, bool) or not isinstance(frame, int) or not 0 <= frame < frames:
            raise SurvivorError(f"{at}.frame must be 0..{frames - 1}", code="bad-tile-frame")
        value = tile["hash"]
        if not isinstance(value, str) or not _HEX64.fullmatch(value):
            raise SurvivorError(f"{at}.hash must be 64 hex characters", code="bad-tile-hash")
        quality = tile["quality"]
        if not _quality(quality):
            raise SurvivorError(f"{at}.quality must be 0..100", code="bad-tile-quality")
        if not TILE_SCHEME.gate(quality):
            raise SurvivorError(
                f"{at} is too plain to be used (quality {quality} < {TILE_SCHEME.min_quality});"
                " leave such tiles out",
                code="low-quality-tile",
            )
        key = (cell.label, frame)
        if key in seen:
            raise SurvivorError(
                f"{at} repeats cell {cell.label} of frame {frame}", code="duplicate-tile"
            )
        seen.add(key)
        out.append(SubmittedTile(cell.label, frame, bytes.fromhex(value), quality))
    return tuple(out)


def parse_submission(body: dict[str, Any]) -> tuple[list[Submitted], str]:
    """Validate a submit request: ([Submitted], category). Duplicate hashes are merged (the
    first one's tiles are kept)."""
    _only_keys(body, {"hashes", "category", "consent"})
    if body.get("consent") is not True:
        raise SurvivorError(
            "consent must be true: nothing is kept without it", code="consent-required"
        )
    category = body.get("category")
    if not isinstance(category, str) or category not in CATEGORIES:
        raise SurvivorError(
            f"category must be one of: {', '.join(sorted(CATEGORIES))}", code="bad-category"
        )
    protected = category == PROTECTED_CATEGORY
    hashes = body.get("hashes")
    if not isinstance(hashes, list) or not hashes:
        raise SurvivorError("hashes must be a non-empty list", code="bad-hashes")
    if len(hashes) > MAX_ITEMS:
        raise SurvivorError(f"at most {MAX_ITEMS} hashes in one submission", code="too-many")
    if protected and len(hashes) > MAX_PROTECTED_ITEMS:
        raise SurvivorError(
            f"at most {MAX_PROTECTED_ITEMS} photos to protect in one submission",
            code="too-many",
        )
    allowed = {"signal_type", "hash", "quality"} | ({"tiles"} if protected else set())
    seen: dict[bytes, Submitted] = {}
    for n, entry in enumerate(hashes):
        if not isinstance(entry, dict):
            raise SurvivorError(f"hashes[{n}] must be an object", code="bad-hashes")
        if "tiles" in entry and not protected:
            raise SurvivorError(
                f"hashes[{n}].tiles is only accepted with category {PROTECTED_CATEGORY}",
                code="tiles-not-allowed",
            )
        extra = set(entry) - allowed
        if extra:
            raise SurvivorError(f"hashes[{n}] has unknown fields", code="bad-hashes")
        if entry.get("signal_type") != signal_types.PDQ.name:
            raise SurvivorError(f"hashes[{n}].signal_type must be 'pdq'", code="bad-signal")
        value = entry.get("hash")
        if not isinstance(value, str) or not _HEX64.fullmatch(value):
            raise SurvivorError(f"hashes[{n}].hash must be 64 hex characters", code="bad-hash")
        quality = entry.get("quality")
        if not _quality(quality) or not isinstance(quality, int):
            raise SurvivorError(f"hashes[{n}].quality must be 0..100", code="bad-quality")
        if quality < PDQ_QUALITY_THRESHOLD:
            raise SurvivorError(
                f"hashes[{n}] comes from a picture too plain to fingerprint reliably"
                f" (quality {quality} < {PDQ_QUALITY_THRESHOLD})",
                code="low-quality",
                status_hint=400,  # this surface has always answered 400 here
            )
        if protected and "tiles" not in entry:
            raise SurvivorError(
                f"hashes[{n}].tiles is required with category {PROTECTED_CATEGORY}"
                " (an empty list when no part of the photo is detailed enough)",
                code="tiles-required",
            )
        tiles = parse_tiles(entry["tiles"], f"hashes[{n}]") if protected else ()
        seen.setdefault(bytes.fromhex(value), Submitted(bytes.fromhex(value), quality, tiles))
    return list(seen.values()), category


def parse_withdrawal(body: dict[str, Any]) -> tuple[list[bytes], bytes]:
    _only_keys(body, {"items", "secret"})
    items = body.get("items")
    if not isinstance(items, list) or not items:
        raise SurvivorError("items must be a non-empty list", code="bad-items")
    if len(items) > MAX_ITEMS:
        raise SurvivorError(f"at most {MAX_ITEMS} items in one withdrawal", code="too-many")
    refs: list[bytes] = []
    for n, ref in enumerate(items):
        if not isinstance(ref, str) or not _HEX32.fullmatch(ref):
            raise SurvivorError(
                f"items[{n}] must be 32 lower-case hex characters", code="bad-items"
            )
        if bytes.fromhex(ref) not in refs:
            refs.append(bytes.fromhex(ref))
    secret = body.get("secret")
    if (
        not isinstance(secret, str)
        or not MIN_SECRET_HEX <= len(secret) <= MAX_SECRET_HEX
        or not _HEX.fullmatch(secret)
    ):
        raise SurvivorError(
            "secret must be the lower-case hex code from your receipt", code="bad-secret"
        )
    return refs, bytes.fromhex(secret)


class SurvivorService:
    """What the endpoints do, without HTTP (also usable from tests and the CLI)."""

    def __init__(
        self,
        node: Node,
        banks: BankService,
        bank_name: str = DEFAULT_BANK,
        protected_bank: str = PROTECTED_BANK,
    ) -> None:
        self.node, self.banks, self.bank_name = node, banks, bank_name
        self.protected_bank = protected_bank

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
        bank = await self.ensure_bank(category == PROTECTED_CATEGORY)
        secret = secrets.token_bytes(SECRET_BYTES)
        receipt: list[dict[str, str]] = []
        async with self.banks.db.transaction():
            for entry in hashes:
                try:
                    result = await self._add(bank, entry, category, secret)
                    ref = result.item.item_ref if result.created else secrets.token_bytes(16)
                except ItemWithdrawnError:
                    # Withdrawn earlier: stays withdrawn (never silently re-added). The receipt
                    # entry names nothing, exactly like a duplicate's.
                    ref = secrets.token_bytes(16)
                receipt.append({"item": ref.hex()})
        await self.node.publisher.reconcile()
        return {"receipt": receipt, "secret": secret.hex()}

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
    trust_forwarded_for: bool = False,
) -> web.RouteTableDef:
    """The page at ``/survivor/`` and its endpoints, as routes to add to any aiohttp app
    (``app.add_routes(build_survivor_routes(node, banks))``). Headers are set per response, so
    no middleware is needed. With ``trust_forwarded_for`` the rate limit keys on the first
    ``X-Forwarded-For`` address (only behind a proxy that sets it)."""
    service = SurvivorService(node, banks, bank_name)
    limiter = limiter if limiter is not None else RateLimiter()
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
        wait = limiter.take(client_of(request))
        if wait > 0:
            return _error(
                SurvivorError("too many requests; please wait a minute", code="rate-limited"),
                {"Retry-After": str(max(1, int(wait + 0.999)))},
            )
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
            return _json_response(await service.withdraw(refs, secret))

        return await guarded(request, action)

    return routes


def build_survivor_app(node: Node, banks: BankService, **options: Any) -> web.Application:
    """A stand-alone app serving only the survivor page (for a separate public port)."""
    app = web.Application(client_max_size=MAX_PROTECTED_BODY_BYTES)
    app.add_routes(build_survivor_routes(node, banks, **options))
    return app
