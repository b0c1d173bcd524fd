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

import hmac
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web
from markupsafe import Markup

from blindmatch.node.console.accounts import (
    ROLES,
    SESSION_SECONDS,
    Accounts,
    LoginLimiter,
    Session,
)
from blindmatch.node.storage.console import ConsoleStore
from blindmatch.node.storage.reviewers import ReviewerStore

if TYPE_CHECKING:
    from blindmatch.node.node import Node

COOKIE = "bm_console"
LOGIN_COOKIE = "bm_login"
REVEAL_SECONDS = 600  # how long one reveal lets its reviewer fetch the original
MAX_FORM_BYTES = 64 * 1024
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


# --- the console ------------------------------------------------------------------------------


class Console:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.accounts = Accounts(ReviewerStore(node.db), node.now)
        self.store = ConsoleStore(node.db)
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


def _field(request: web.Request, name: str, limit: int = 500) -> str:
    value = request[FORM].get(name, "")
    if not isinstance(value, str):
        return ""
    return value.strip()[:limit]


# --- media ------------------------------------------------------------------------------------


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
