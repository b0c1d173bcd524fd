"""The console as an aiohttp application: its routes, the guard in front of them, its static
files."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from blindmatch.node.console import admin, cases
from blindmatch.node.console.app import CONSOLE, MAX_FORM_BYTES, STATIC_DIR, Console, _guard, routes

if TYPE_CHECKING:
    from blindmatch.node.node import Node


def build_console(node: Node) -> web.Application:
    """The console as an application to mount at ``/console/``."""
    app = web.Application(middlewares=[_guard], client_max_size=MAX_FORM_BYTES)
    app[CONSOLE] = Console(node)
    app.add_routes(routes)
    app.add_routes(cases.routes)
    app.add_routes(admin.routes)
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
