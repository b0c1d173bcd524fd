"""The reviewer console: server-rendered pages over the node's decision service.

Mount it under ``/console/`` of an aiohttp application (``parent.add_subapp("/console/",
build_console(node))``) or serve :func:`console_root_app` on its own listener.

Security model (see the package docstring): every route is denied unless it names the roles
allowed on it; a request without a live session is sent to the login page (GET) or refused with
401; a role not named gets 403; every POST carries the session's CSRF token in a hidden field,
checked in constant time before anything is read or changed. The uploaded media is sent only
blurred and in grayscale (blurred on the server, so the original pixels never reach the browser)
until a reviewer explicitly reveals it; the reveal is a POST recorded in the case's history, and
lets that reviewer fetch the original for a few minutes. No page shows a hash: items are named
by their (shortened) random references.

Pages are Jinja2 templates (``templates/``) rendered with autoescaping: handlers pass plain
values, never HTML, so text from a case, a peer, a policy or a form cannot become markup.
"""

from __future__ import annotations

import asyncio
import datetime
import hmac
import io
import json
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import jinja2
from aiohttp import web
from markupsafe import Markup

from blindmatch.node.cases.decisions import OUTCOMES, Case, DecisionError
from blindmatch.node.console.accounts import (
    ROLES,
    SESSION_SECONDS,
    AccountError,
    Accounts,
    LoginLimiter,
    Session,
)

if TYPE_CHECKING:
    from blindmatch.node.node import Node

COOKIE = "bm_console"
LOGIN_COOKIE = "bm_login"
REVEAL_SECONDS = 600  # how long one reveal lets its reviewer fetch the original
MAX_PIXELS = 60_000_000
MAX_FORM_BYTES = 64 * 1024
BLUR_FRACTION = 0.12  # Gaussian radius as a fraction of the picture's short side
STATIC_DIR = Path(__file__).with_name("static")

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
    "style-src 'self'; script-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}

REVIEW = ("reviewer", "admin")
READ = ("reviewer", "admin", "auditor")
ADMIN = ("admin",)
PUBLIC_ROUTES = frozenset({"login", "login_post", "static"})


def _request_key(name: str, kind: type) -> Any:
    make = getattr(web, "RequestKey", None)  # aiohttp >= 3.12; plain strings before
    return make(name, kind) if make is not None else name


SESSION: Any = _request_key("session", Session)
FORM: Any = _request_key("form", object)
LOGIN_NEXT: Any = _request_key("login_next", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def roles(*allowed: str) -> Callable[[Handler], Handler]:
    """Name the roles a route allows; a route without this is refused to everyone."""

    def mark(handler: Handler) -> Handler:
        handler.console_roles = frozenset(allowed)  # type: ignore[attr-defined]
        return handler

    return mark


# --- plain language ---------------------------------------------------------------------------

_VARIANTS = {
    "identity": "as uploaded",
    "flip_h": "mirrored left to right",
    "flip_v": "upside down",
    "rotate180": "rotated 180°",
    "flip_plus1": "transposed",
    "flip_h+transpose": "rotated 90°",
    "flip_v+transpose": "rotated 90°",
    "identity+transpose": "transposed",
    "rotate180+transpose": "transposed and rotated",
}

_STATES = {
    "queued": "Waiting for review",
    "quarantined": "Quarantined (matched unusually often)",
    "escalated": "Escalated",
    "actioned": "Actioned",
    "dismissed": "Dismissed",
    "closed": "Closed",
}

_OPINIONS = {
    "none": "No feedback yet",
    "confirmed": "Confirmed by other services",
    "disputed": "Disputed (a service found it wrong, or an appeal was upheld)",
    "withdrawn": "Withdrawn by the holder",
}


def short(ref: bytes | str, n: int = 8) -> str:
    text = ref.hex() if isinstance(ref, bytes) else ref
    return text[:n] + "…"


def case_label(case_ref: bytes) -> str:
    return f"Case {case_ref.hex()[:8]}"


_PREFIXES = {
    "trimmed": "with its border removed",
    "content": "the picture inside the upload (a caption or background cut away)",
    "framed": "the picture inside a frame in the upload",
}


def variant_text(variant: str) -> str:
    """How the upload had to be turned or cut to match, in words (never a raw variant name)."""
    import re

    cell = re.fullmatch(r"g([1-9][0-9]?)c([0-9]{1,2})r([0-9]{1,2})", variant)
    if cell:
        grid, col, row = (int(x) for x in cell.groups())
        return f"one part of the picture (row {row + 1}, column {col + 1} of a {grid}×{grid} grid)"
    head, _, rest = variant.partition("/")
    if head == "uncrop" and rest.isdigit():
        return f"with about {rest}% cropped off its edges"
    if head in _PREFIXES and rest:
        inner = variant_text(rest)
        return _PREFIXES[head] if inner == "as uploaded" else f"{_PREFIXES[head]}, {inner}"
    return _VARIANTS.get(variant, variant.replace("_", " ").replace("+", " and "))


_MATCHED = {
    "survivor-submitted": "a picture a survivor reported to {holder}",
    "moderator-confirmed": "a picture {holder}'s moderators confirmed as abuse",
    "peer-sourced": "a picture {holder} received from another service",
    "protected-source": "a photo a person asked {holder} to protect",
    "generator": "a picture an AI generator ({holder}) says it made",
}


def matched_text(case: Case) -> str:
    """What the upload matched, in plain words: never 'the protected picture', which the
    reviewer does not see."""
    provenance = str(case.release.get("provenance") or "")
    what = _MATCHED.get(provenance, "a picture held by {holder}").format(holder=case.holder)
    kind = (case.release.get("derivative") or {}).get("kind")
    if kind == "derivative":
        return f"an edited version of {what}"
    return what


def band_text(band: int) -> str:
    if band <= 8:
        closeness = "very close"
    elif band <= 16:
        closeness = "close"
    else:
        closeness = "similar"
    return f"{closeness}: differs in at most {band} of 256 bits"


def when(ts: int) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso(ts: int) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat()


def age(seconds: int) -> str:
    seconds = max(0, seconds)
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds // 60} min"
    if seconds < 172_800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86_400} days"


def event_text(event: str, actor: str, detail: dict[str, Any]) -> str:
    """A case event in words (plain text: the templates escape it)."""
    kind, _, arg = event.partition(":")
    who = str(actor)
    reason = detail.get("reason") if isinstance(detail, dict) else None
    because = f" — “{reason}”" if reason else ""
    if kind == "opened":
        return f"Opened by the policy, {_STATES.get(arg, arg).lower()}{because}"
    if kind == "decided":
        return f"Decision: {arg} by {who}{because}"
    if kind == "media" and arg == "revealed":
        return f"Original image revealed to {who}"
    if kind == "appeal":
        text = {"opened": "Appeal opened by the uploader", "upheld": "Appeal upheld",
                "denied": "Appeal denied"}.get(arg, f"Appeal {arg}")  # fmt: skip
        return f"{text}{'' if arg == 'opened' else ' by ' + who}{because}"
    if kind == "re-review":
        return f"Re-review requested: {arg} reported by {who}"
    if kind == "closed":
        return f"Closed ({arg}) by {who}"
    return f"{event} by {who}{because}"


# --- the console ------------------------------------------------------------------------------


class Console:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.accounts = Accounts(node.db, node.now)
        self.limiter = LoginLimiter(node.now)
        # Every page is a Jinja2 template with autoescaping on: a value from a case, a peer or
        # a form is text, never markup, unless a template says otherwise (none does).
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("blindmatch.node.console", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
        )


CONSOLE = web.AppKey("console", Console)


def _prefix(request: web.Request) -> str:
    """Where the console is mounted ('/console' normally, '' when served at the root)."""
    return str(request.app.router["queue"].url_for()).rstrip("/")


def _url(request: web.Request, path: str = "/", **query: str) -> str:
    out = _prefix(request) + path
    if query:
        out += "?" + urlencode(query)
    return out


def _render(
    request: web.Request,
    template: str,
    title: str,
    status: int = 200,
    session: Session | None = None,
    **context: Any,
) -> web.Response:
    console = request.app[CONSOLE]
    session = session or request.get(SESSION)
    links = []
    if session is not None:
        if session.role in REVIEW:
            links.append(("/", "Queue"))
        links += [("/log", "Decision log"), ("/reports", "Reports")]
        if session.role == "admin":
            links.append(("/admin/reviewers", "Reviewers"))
    body = console.templates.get_template(template).render(
        title=title,
        static=_url(request, "/static"),
        node=console.node.node_id,
        session=session,
        nav_links=links,
        url=lambda path, **query: _url(request, path, **query),
        csrf=lambda: _csrf_field(session) if session is not None else "",
        **context,
    )
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def _csrf_field(session: Session) -> Markup:
    return Markup('<input type="hidden" name="csrf" value="{}">').format(session.csrf_token)


def _error_page(request: web.Request, status: int, title: str, text: str) -> web.Response:
    return _render(request, "error.html", title, status=status, text=text)


def _harden(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    return response


def _session_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    response.set_cookie(
        COOKIE, token, path=_prefix(request) or "/", max_age=SESSION_SECONDS, httponly=True,
        samesite="Strict", secure=request.secure,
    )  # fmt: skip


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await _authorise(request, handler)
    except web.HTTPException as exc:
        if exc.status in (301, 302, 303, 307, 308):
            response = web.Response(status=exc.status, headers={"Location": exc.location})  # type: ignore[attr-defined]
        elif exc.status == 401:
            response = _error_page(request, 401, "Please sign in", "Sign in to use the console.")
        elif exc.status == 403:
            response = _error_page(
                request, 403, "Not allowed", exc.text or "Your role does not allow this."
            )
        elif exc.status == 404:
            response = _error_page(request, 404, "Not found", "There is nothing here.")
        else:
            response = _error_page(request, exc.status, exc.reason, exc.reason)
    return _harden(request, response)


async def _authorise(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = request.match_info.route
    name = route.resource.name if route.resource is not None else None
    if name in PUBLIC_ROUTES:
        return await handler(request)
    console = request.app[CONSOLE]
    session = await console.accounts.session(request.cookies.get(COOKIE))
    if session is None:
        if request.method in ("GET", "HEAD"):
            target = request.path_qs if request.path.startswith(_prefix(request) + "/") else ""
            query = {"next": target} if target and target != _url(request, "/") else {}
            raise web.HTTPSeeOther(_url(request, "/login", **query))
        raise web.HTTPUnauthorized()
    request[SESSION] = session
    allowed = getattr(request.match_info.handler, "console_roles", None)
    if allowed is None:
        if request.match_info.http_exception is not None:
            raise request.match_info.http_exception
        raise web.HTTPForbidden(text="This page is not available.")
    if session.role not in allowed:
        raise web.HTTPForbidden(text=f"The {session.role} role does not allow this.")
    if request.method not in ("GET", "HEAD"):
        if request.content_length is None:
            raise web.HTTPLengthRequired()
        if request.content_length > MAX_FORM_BYTES:
            raise web.HTTPRequestEntityTooLarge(MAX_FORM_BYTES, request.content_length)
        form = await request.post()
        given = form.get("csrf")
        if not isinstance(given, str) or not hmac.compare_digest(
            given.encode(), session.csrf_token.encode()
        ):
            raise web.HTTPForbidden(
                text="The form's security token is missing or out of date. Reload and retry."
            )
        request[FORM] = form
    return await handler(request)


def _case_ref(request: web.Request) -> bytes:
    ref = request.match_info["case"]
    if len(ref) != 32 or any(c not in "0123456789abcdef" for c in ref):
        raise web.HTTPNotFound()
    return bytes.fromhex(ref)


async def _load_case(request: web.Request) -> Case:
    try:
        return await request.app[CONSOLE].node.decisions.case(_case_ref(request))
    except DecisionError as exc:
        raise web.HTTPNotFound() from exc


def _field(request: web.Request, name: str, limit: int = 500) -> str:
    value = request[FORM].get(name, "")
    if not isinstance(value, str):
        return ""
    return value.strip()[:limit]


async def _revealed(node: Node, case_ref: bytes, reviewer_id: str) -> bool:
    last = await node.db.fetch_value(
        "SELECT MAX(at) FROM case_events WHERE case_ref = ? AND actor = ? AND event = ?",
        case_ref, reviewer_id, "media:revealed",
    )  # fmt: skip
    return last is not None and int(last) >= node.now() - REVEAL_SECONDS


# --- media ------------------------------------------------------------------------------------


class MediaUnavailable(Exception):
    pass


def render_media(data: bytes, blurred: bool) -> bytes:
    """The upload as a JPEG: blurred and grayscale, or the original pixels (re-encoded, so no
    metadata such as location travels, and at most 1600 pixels on the long side)."""
    from PIL import Image, ImageFilter, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_PIXELS:
                raise MediaUnavailable("the picture is too large to show")
            im.draft("RGB", (1600, 1600))
            pic = ImageOps.exif_transpose(im)
            pic.thumbnail((1600, 1600))
            if blurred:
                pic = pic.convert("L")
                pic.thumbnail((640, 640))
                radius = max(3.0, BLUR_FRACTION * min(pic.size))
                pic = pic.filter(ImageFilter.GaussianBlur(radius))
                quality = 70
            else:
                pic = pic.convert("RGB")
                quality = 90
            out = io.BytesIO()
            pic.save(out, "JPEG", quality=quality)
            return out.getvalue()
    except MediaUnavailable:
        raise
    except Exception as exc:  # a crafted file reaches more than OSError/ValueError in Pillow
        raise MediaUnavailable("the stored media is not a picture the console can show") from exc


# --- routes -----------------------------------------------------------------------------------


routes = web.RouteTableDef()


@routes.get("/login", name="login")
async def login_page(request: web.Request) -> web.Response:
    return _login_form(request, status=200)


def _login_form(
    request: web.Request, status: int, error: str = "", reviewer_id: str = ""
) -> web.Response:
    nonce = secrets.token_urlsafe(24)
    nxt = request.query.get("next", "") if request.method == "GET" else ""
    if request.method == "POST":
        nxt = str(request.get(LOGIN_NEXT, ""))
    response = _render(
        request, "login.html", "Sign in", status=status, error=error, nonce=nonce, next=nxt,
        reviewer_id=reviewer_id,
    )  # fmt: skip
    response.set_cookie(
        LOGIN_COOKIE, nonce, path=(_prefix(request) or "") + "/login", max_age=3600,
        httponly=True, samesite="Strict", secure=request.secure,
    )  # fmt: skip
    return response


def _safe_next(request: web.Request, nxt: str) -> str | None:
    prefix = _prefix(request) + "/"
    if (
        nxt.startswith(prefix)
        and not nxt.startswith("//")
        and "\\" not in nxt
        and all(32 < ord(c) < 127 for c in nxt)
        and not nxt.startswith(prefix + "login")
    ):
        return nxt
    return None


@routes.post("/login", name="login_post")
async def login(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    if request.content_length is None:
        raise web.HTTPLengthRequired()
    if request.content_length > MAX_FORM_BYTES:
        raise web.HTTPRequestEntityTooLarge(MAX_FORM_BYTES, request.content_length)
    form = await request.post()
    given = form.get("login_csrf")
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    nxt = form.get("next")
    request[LOGIN_NEXT] = nxt if isinstance(nxt, str) else ""
    if not (
        isinstance(given, str) and cookie and hmac.compare_digest(given.encode(), cookie.encode())
    ):
        return _login_form(request, 403, "The sign-in form expired. Please try again.")
    reviewer_id = form.get("reviewer_id")
    password = form.get("password")
    if not isinstance(reviewer_id, str) or not isinstance(password, str):
        return _login_form(request, 400, "Enter your reviewer ID and password.")
    reviewer_id = reviewer_id.strip()[:64]
    source = request.remote or "unknown"
    wait = console.limiter.retry_after(source, reviewer_id)
    if wait:
        response = _login_form(
            request, 429,
            f"Too many failed attempts from here. Try again in {wait // 60 + 1} min.",
            reviewer_id,
        )  # fmt: skip
        response.headers["Retry-After"] = str(wait)
        return response
    reviewer = await console.accounts.authenticate(reviewer_id, password)
    if reviewer is None:
        console.limiter.failed(source, reviewer_id)
        return _login_form(request, 401, "The reviewer ID or password is wrong.", reviewer_id)
    console.limiter.succeeded(source, reviewer_id)
    previous = await console.accounts.session(request.cookies.get(COOKIE))
    if previous is not None:  # a new sign-in in this browser ends the session it replaces
        await console.accounts.end_session(previous)
    token, session = await console.accounts.start_session(reviewer.reviewer_id)
    home = _url(request, "/" if session.role in REVIEW else "/log")
    target = _safe_next(request, request[LOGIN_NEXT]) or home
    out = web.Response(status=303, headers={"Location": target})
    _session_cookie(request, out, token)
    out.del_cookie(LOGIN_COOKIE, path=(_prefix(request) or "") + "/login")
    return out


@routes.post("/logout", name="logout")
@roles(*ROLES)
async def logout(request: web.Request) -> web.StreamResponse:
    await request.app[CONSOLE].accounts.end_session(request[SESSION])
    out = web.Response(status=303, headers={"Location": _url(request, "/login")})
    out.del_cookie(COOKIE, path=_prefix(request) or "/")
    return out


@routes.get("/", name="queue")
@roles(*REVIEW)
async def queue(request: web.Request) -> web.Response:
    node = request.app[CONSOLE].node
    cases = await node.decisions.queue(limit=200)
    now = node.now()
    rows = []
    for c in cases:
        opinion = await node.decisions.opinion(c.holder, c.item_ref)
        badges = []
        if c.needs_rereview:
            badges.append(("bad", "Re-review requested"))
        if c.appeal == "open":
            badges.append(("warn", "Appeal open"))
        rows.append(
            {
                "ref": c.case_ref.hex(),
                "label": case_label(c.case_ref),
                "state": _STATES.get(c.state, c.state),
                "badges": badges,
                "priority": c.priority,
                "matched": matched_text(c),
                "band": band_text(c.band),
                "variant": variant_text(c.variant),
                "holder": c.holder,
                "where": "this node" if c.source == "local" else "peer",
                "item": short(c.item_ref),
                "opinion": _OPINIONS.get(opinion.label, opinion.label),
                "waiting": age(now - c.created_at),
            }
        )
    return _render(request, "queue.html", "Review queue", rows=rows)


@routes.get("/cases/{case}", name="case")
@roles(*READ)
async def case_page(request: web.Request) -> web.Response:
    return await _render_case(request)


async def _render_case(request: web.Request, error: str = "", status: int = 200) -> web.Response:
    console = request.app[CONSOLE]
    node = console.node
    session: Session = request[SESSION]
    case = await _load_case(request)
    ref = case.case_ref.hex()
    can_review = session.role in REVIEW
    opinion = await node.decisions.opinion(case.holder, case.item_ref)
    history = await node.decisions.history(case.case_ref)
    has_media = bool(
        await node.db.fetch_value(
            "SELECT COUNT(*) FROM case_media WHERE content_ref = ?", case.content_ref
        )
    )
    done = request.query.get("done", "")
    messages = {"decided": "Decision saved.", "appeal": "Appeal decision saved.",
                "revealed": "The original image is shown below."}  # fmt: skip
    badges = []
    if case.needs_rereview:
        badges.append(("bad", "Re-review requested"))
    if case.appeal:
        badges.append(("warn", f"Appeal {case.appeal}"))
    # The media: blurred by default, the original only after a recorded reveal.
    revealed = (
        can_review
        and request.query.get("view") == "original"
        and await _revealed(node, case.case_ref, session.reviewer_id)
    )
    view = "original" if revealed else "blurred"
    cats = case.release.get("categories") or []
    where = "this node’s own bank" if case.source == "local" else "a peer in the federation"
    facts: list[tuple[str, Any, str]] = [
        ("State", _STATES.get(case.state, case.state), ""),
        ("Priority", case.priority, ""),
        ("Platform content", case.content_ref, ""),
        ("It matched", matched_text(case), ""),
        ("Matched at", f"{case.holder} ({where})", ""),
        ("Item", short(case.item_ref), "(a reference; the console never shows hashes)"),
        ("Provenance", case.release.get("provenance") or "unknown", ""),
        ("Categories", ", ".join(map(str, cats)) or "none given", ""),
        ("Distance band", band_text(case.band), ""),
        ("How it matched", variant_text(case.variant), ""),
        ("Aggregate opinion", _OPINIONS.get(opinion.label, opinion.label),
         f"({opinion.confirmations} confirmed, {opinion.disputes} disputed,"
         f" {opinion.appeals_upheld} appeals upheld)"),
        ("Opened", when(case.created_at), ""),
    ]  # fmt: skip
    if case.decided_by:
        facts.append(("Decided by", case.decided_by, ""))
    if case.reason:
        facts.append(("Reason" if case.decided_by else "Why it needs a person", case.reason, ""))
    choices: list[tuple[str, str]] = []
    if can_review and case.state != "closed":
        what = matched_text(case)
        choices = [
            ("actioned", f"Action it: the upload shows {what} (the platform removes it and"
                         f" {case.holder} hears it was confirmed)"),
            ("dismissed", f"Dismiss it: the upload does not show {what} ({case.holder} hears"
                          " it was disputed)"),
            ("escalated", "Escalate it: a senior reviewer should decide"),
        ]  # fmt: skip
    return _render(
        request, "case.html", case_label(case.case_ref), status=status,
        error=error, message="" if error else messages.get(done, ""), ref=ref,
        can_review=can_review, has_media=has_media, revealed=revealed,
        media_src=_url(request, f"/cases/{ref}/media", view=view), facts=facts, badges=badges,
        choices=choices, appeal_open=can_review and case.appeal == "open",
        history=[
            {"iso": iso(h["at"]), "when": when(h["at"]),
             "text": event_text(h["event"], h["actor"], h["detail"])}
            for h in history
        ],
    )  # fmt: skip


@routes.get("/cases/{case}/media", name="media")
@roles(*REVIEW)
async def media(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    node = console.node
    session: Session = request[SESSION]
    case = await _load_case(request)
    view = request.query.get("view", "blurred")
    if view not in ("blurred", "original"):
        raise web.HTTPNotFound()
    if view == "original" and not await _revealed(node, case.case_ref, session.reviewer_id):
        raise web.HTTPForbidden(text="Reveal the picture on the case page first.")
    row = await node.db.fetch_one(
        "SELECT media FROM case_media WHERE content_ref = ?", case.content_ref
    )
    if row is None:
        raise web.HTTPNotFound()
    try:
        body = await asyncio.to_thread(render_media, bytes(row["media"]), view == "blurred")
    except MediaUnavailable as exc:
        raise web.HTTPNotFound() from exc
    ref8 = case.case_ref.hex()[:8]
    return web.Response(
        body=body, content_type="image/jpeg",
        headers={"Content-Disposition": f'inline; filename="case-{ref8}-{view}.jpg"'},
    )  # fmt: skip


@routes.post("/cases/{case}/reveal", name="reveal")
@roles(*REVIEW)
async def reveal(request: web.Request) -> web.StreamResponse:
    node = request.app[CONSOLE].node
    session: Session = request[SESSION]
    case = await _load_case(request)
    await node.db.execute(
        "INSERT INTO case_events (case_ref, at, actor, event, detail) VALUES (?, ?, ?, ?, ?)",
        case.case_ref, node.now(), session.reviewer_id, "media:revealed", json.dumps({}),
    )  # fmt: skip
    target = _url(request, f"/cases/{case.case_ref.hex()}", view="original", done="revealed")
    raise web.HTTPSeeOther(target + "#media")


@routes.post("/cases/{case}/decide", name="decide")
@roles(*REVIEW)
async def decide(request: web.Request) -> web.StreamResponse:
    node = request.app[CONSOLE].node
    session: Session = request[SESSION]
    case = await _load_case(request)
    outcome = _field(request, "outcome", 20)
    reason = _field(request, "reason")
    if outcome not in OUTCOMES:
        return await _render_case(request, "Choose a decision.", 400)
    if not reason:
        return await _render_case(request, "Give a reason for the decision.", 400)
    try:
        await node.decisions.decide(case.case_ref, outcome, session.reviewer_id, reason)
    except DecisionError as exc:
        return await _render_case(request, exc.detail, 409 if exc.code == "conflict" else 400)
    raise web.HTTPSeeOther(_url(request, f"/cases/{case.case_ref.hex()}", done="decided"))


@routes.post("/cases/{case}/appeal", name="appeal")
@roles(*REVIEW)
async def appeal(request: web.Request) -> web.StreamResponse:
    node = request.app[CONSOLE].node
    session: Session = request[SESSION]
    case = await _load_case(request)
    choice = _field(request, "appeal", 10)
    reason = _field(request, "reason")
    if choice not in ("uphold", "deny"):
        return await _render_case(request, "Choose to uphold or deny the appeal.", 400)
    if not reason:
        return await _render_case(request, "Give a reason for the appeal decision.", 400)
    try:
        await node.decisions.decide_appeal(
            case.case_ref, choice == "uphold", session.reviewer_id, reason
        )
    except DecisionError as exc:
        return await _render_case(request, exc.detail, 409 if exc.code == "conflict" else 400)
    raise web.HTTPSeeOther(_url(request, f"/cases/{case.case_ref.hex()}", done="appeal"))


@routes.get("/log", name="log")
@roles(*READ)
async def log_page(request: web.Request) -> web.Response:
    node = request.app[CONSOLE].node
    rows = await node.db.fetch_all(
        "SELECT e.case_ref, e.at, e.actor, e.event, e.detail FROM case_events e"
        " ORDER BY e.id DESC LIMIT 300"
    )
    events = []
    for r in rows:
        ref = bytes(r["case_ref"])
        try:
            detail = json.loads(r["detail"])
        except ValueError:
            detail = {}
        events.append(
            {
                "when": when(int(r["at"])),
                "ref": ref.hex(),
                "label": case_label(ref),
                "text": event_text(r["event"], r["actor"], detail),
            }
        )
    return _render(
        request, "log.html", "Decision log", events=events,
        translog=await _translog_rows(node),
    )  # fmt: skip


async def _translog_rows(node: Node) -> list[dict[str, Any]] | str | None:
    """Decision entries of the node's verifiable log (None: it keeps none; "error")."""
    translog = getattr(node, "translog", None)
    if translog is None:
        return None
    try:
        from blindmatch.protocol import transparency as tl

        size = await translog.size()
        entries = await translog.entries(max(0, size - 1000), size)
        rows = []
        for stored in reversed(entries):
            try:
                entry = tl.decode_entry(stored.entry)
            except Exception:
                continue
            if entry.get("kind") != "decision":
                continue
            did = entry.get("decision_id", b"")
            rows.append(
                {
                    "index": stored.index,
                    "when": when(stored.created_at),
                    "outcome": entry.get("outcome", ""),
                    "decided_by": entry.get("decided_by", ""),
                    "decision": short(did) if isinstance(did, bytes) else "",
                }
            )
    except Exception:
        return "error"
    return rows


@routes.get("/reports", name="reports")
@roles(*READ)
async def reports(request: web.Request) -> web.Response:
    node = request.app[CONSOLE].node
    states = await node.db.fetch_all(
        "SELECT state, COUNT(*) AS n FROM cases GROUP BY state ORDER BY state"
    )
    events = await node.db.fetch_all(
        "SELECT event, COUNT(*) AS n FROM case_events WHERE event LIKE 'decided:%'"
        " OR event LIKE 'appeal:%' OR event LIKE 're-review:%' OR event = 'media:revealed'"
        " GROUP BY event ORDER BY event"
    )

    tables = [
        ("Cases by state", "All cases on this node.", "State",
         [(_STATES.get(r["state"], r["state"]), int(r["n"])) for r in states]),
        ("Reviewer activity", "Decisions, appeals, re-review requests and reveals.", "Event",
         [(r["event"], int(r["n"])) for r in events]),
    ]  # fmt: skip
    return _render(request, "reports.html", "Reports", tables=tables)


@routes.get("/admin/reviewers", name="reviewers")
@roles(*ADMIN)
async def reviewers_page(request: web.Request) -> web.Response:
    return await _render_reviewers(request)


async def _render_reviewers(
    request: web.Request, error: str = "", message: str = "", status: int = 200
) -> web.Response:
    console = request.app[CONSOLE]
    session: Session = request[SESSION]
    accounts = []
    for a in await console.accounts.list():
        verb = ""
        if a.reviewer_id != session.reviewer_id:
            verb = "enable" if a.disabled else "disable"
        accounts.append(
            {
                "id": a.reviewer_id,
                "role": a.role,
                "status": "disabled" if a.disabled else "active",
                "created": when(a.created_at),
                "verb": verb,
                "target": _url(request, f"/admin/reviewers/{quote(a.reviewer_id, safe='')}/{verb}"),
            }
        )
    return _render(
        request, "reviewers.html", "Reviewers", status=status, error=error, message=message,
        accounts=accounts, roles=ROLES,
    )  # fmt: skip


@routes.post("/admin/reviewers", name="reviewers_add")
@roles(*ADMIN)
async def reviewers_add(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    try:
        await console.accounts.create(
            _field(request, "reviewer_id", 64),
            _field(request, "role", 16),
            str(request[FORM].get("password", ""))[:1024],
        )
    except AccountError as exc:
        return await _render_reviewers(request, error=exc.message, status=400)
    return await _render_reviewers(request, message="Reviewer added.")


@routes.post("/admin/reviewers/{reviewer}/{verb}", name="reviewers_toggle")
@roles(*ADMIN)
async def reviewers_toggle(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    who = request.match_info["reviewer"]
    verb = request.match_info["verb"]
    if verb not in ("disable", "enable"):
        raise web.HTTPNotFound()
    if who == request[SESSION].reviewer_id:
        return await _render_reviewers(request, error="You cannot disable yourself.", status=400)
    try:
        await console.accounts.set_disabled(who, verb == "disable")
    except AccountError as exc:
        return await _render_reviewers(request, error=exc.message, status=404)
    return await _render_reviewers(request, message=f"{who}: {verb}d.")


def build_console(node: Node) -> web.Application:
    """The console as an application to mount at ``/console/``."""
    app = web.Application(middlewares=[_guard], client_max_size=MAX_FORM_BYTES)
    app[CONSOLE] = Console(node)
    app.add_routes(routes)
    app.router.add_static("/static", STATIC_DIR, name="static")
    return app


def console_root_app(node: Node) -> web.Application:
    """A stand-alone application serving the console at ``/console/`` (and ``/`` -> there)."""
    root = web.Application()

    async def home(request: web.Request) -> web.Response:
        raise web.HTTPFound("/console/")

    root.router.add_get("/", home)
    root.router.add_get("/console", home)
    root.add_subapp("/console/", build_console(node))
    return root
