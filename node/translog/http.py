"""HTTP endpoints of the verifiable log, for peers and auditors: public, read-only, no auth.

The log holds no secrets (specs/transparency.md 3.4), so anyone may fetch it:

- ``GET /log/v1/sth``: the newest signed tree head (404 ``no-tree-head`` before the first);
- ``GET /log/v1/sth/{size}``: the head signed for that size (404 if none was);
- ``GET /log/v1/proof/inclusion?index=I&size=N``: ``{"index", "tree_size", "leaf_hash",
  "path": [hex]}``;
- ``GET /log/v1/proof/consistency?first=M&second=N``: ``{"first", "second", "path": [hex]}``;
- ``GET /log/v1/entries?start=S&end=E``: ``{"start", "entries": [{"index", "entry",
  "leaf_hash"}]}``, at most 1000 per page (``end`` defaults to ``start + 1000``);
- ``GET /log/v1/witnessed``: ``{"heads": [...]}``, the latest head this node accepted of each
  peer's log (gossip: a monitor compares them with what the peer showed it).

A head is JSON with hex fields plus ``sth``, the hex of its canonical bytes (what a verifier
checks: the other fields are for reading). Errors are ``{"error": code, "message": ...}`` with
400 (``bad-request``: a parameter missing or not a non-negative integer) or 404
(``out-of-range``, ``no-tree-head``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from blindmatch.node.errors import BlindmatchError
from blindmatch.node.translog.log import MAX_PAGE, TransparencyLog, head_to_json
from blindmatch.node.translog.monitor import witnessed_heads
from blindmatch.protocol import transparency as tl

PREFIX = "/log/v1"
_MAX_INT = tl.MAX_TREE_SIZE


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


class BadParam(BlindmatchError):
    """A query parameter the log's API cannot read."""

    code = "bad-request"


def _int_param(value: str | None, name: str, *, required: bool = True) -> int | None:
    if value is None or value == "":
        if required:
            raise BadParam(f"the query parameter {name!r} is required")
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 19:
        raise BadParam(f"{name} must be a non-negative integer, got {value[:40]!r}")
    number = int(value)
    if number > _MAX_INT:
        raise BadParam(f"{name} must be at most 2^63-1")
    return number


def _query(request: web.Request, name: str, *, required: bool = True) -> int | None:
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise BadParam(f"the query parameter {name!r} is given more than once")
    return _int_param(values[0] if values else None, name, required=required)


def _hexes(hashes: list[bytes]) -> list[str]:
    return [h.hex() for h in hashes]


def build_log_routes(log: TransparencyLog) -> web.RouteTableDef:
    """The routes above, over ``log``; mount with ``app.add_routes(build_log_routes(log))``."""
    routes = web.RouteTableDef()

    def handler(fn):
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                body: Any = await fn(request)
            except BadParam as exc:
                return _error(exc.http_status, exc.code, exc.detail)
            except tl.RangeError as exc:
                return _error(404, exc.code, exc.detail)
            if isinstance(body, web.StreamResponse):
                return body
            response = web.json_response(body)
            response.headers["Cache-Control"] = "no-store"
            response.headers["Access-Control-Allow-Origin"] = "*"
            return response

        return wrapped

    @routes.get(PREFIX + "/sth")
    @handler
    async def latest(request: web.Request) -> Any:
        head = await log.latest_head()
        if head is None:
            return _error(404, "no-tree-head", "this log has not signed a tree head yet")
        return head_to_json(head)

    @routes.get(PREFIX + "/sth/{size}")
    @handler
    async def at_size(request: web.Request) -> Any:
        size = _int_param(request.match_info["size"], "size")
        assert size is not None
        head = await log.head_at(size)
        if head is None:
            return _error(404, "no-tree-head", f"no tree head was signed for size {size}")
        return head_to_json(head)

    @routes.get(PREFIX + "/proof/inclusion")
    @handler
    async def inclusion(request: web.Request) -> Any:
        index = _query(request, "index")
        size = _query(request, "size")
        assert index is not None and size is not None
        if index >= size:
            raise BadParam(f"index ({index}) must be below size ({size})")
        path = await log.inclusion_proof(index, size)
        page = await log.entries(index, index + 1)
        return {
            "index": index,
            "tree_size": size,
            "leaf_hash": page[0].leaf_hash.hex() if page else None,
            "path": _hexes(path),
        }

    @routes.get(PREFIX + "/proof/consistency")
    @handler
    async def consistency(request: web.Request) -> Any:
        first = _query(request, "first")
        second = _query(request, "second")
        assert first is not None and second is not None
        if first > second:
            raise BadParam(f"first ({first}) must not exceed second ({second})")
        path = await log.consistency_proof(first, second)
        return {"first": first, "second": second, "path": _hexes(path)}

    @routes.get(PREFIX + "/entries")
    @handler
    async def entries(request: web.Request) -> Any:
        start = _query(request, "start", required=False) or 0
        end = _query(request, "end", required=False)
        if end is None:
            end = start + MAX_PAGE
        if end < start:
            raise BadParam(f"end ({end}) must not be below start ({start})")
        size = await log.size()
        if start > size:
            raise tl.RangeError(f"no entry {start}: the log has {size}")
        page = await log.entries(start, min(end, start + MAX_PAGE))
        return {"start": start, "tree_size": size, "entries": [e.to_json() for e in page]}

    @routes.get(PREFIX + "/witnessed")
    @handler
    async def witnessed(request: web.Request) -> Any:
        return {"heads": [head_to_json(h) for h in await witnessed_heads(log.store)]}

    return routes
