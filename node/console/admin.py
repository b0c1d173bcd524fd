"""The console's log, reports and reviewer-account pages."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from blindmatch.node.console.accounts import (
    ROLES,
    AccountError,
    Session,
)
from blindmatch.node.console.app import (
    ADMIN,
    CONSOLE,
    FORM,
    READ,
    SESSION,
    _field,
    _render,
    _url,
    roles,
)
from blindmatch.node.console.text import _STATES, case_label, event_text, short, when

routes = web.RouteTableDef()

if TYPE_CHECKING:
    from blindmatch.node.node import Node


@routes.get("/log", name="log")
@roles(*READ)
async def log_page(request: web.Request) -> web.Response:
    node = request.app[CONSOLE].node
    rows = await request.app[CONSOLE].store.recent_events(300)
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
    store = request.app[CONSOLE].store
    states, events = await store.cases_by_state(), await store.reviewer_activity()

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
