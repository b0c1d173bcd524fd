"""The console's log, reports and reviewer-account pages."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING
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
    _csrf_field,
    _field,
    _page,
    _url,
    roles,
)
from blindmatch.node.console.text import _STATES, case_label, e, event_text, short, when

routes = web.RouteTableDef()

if TYPE_CHECKING:
    from blindmatch.node.node import Node


@routes.get("/log", name="log")
@roles(*READ)
async def log_page(request: web.Request) -> web.Response:
    node = request.app[CONSOLE].node
    rows = await node.db.fetch_all(
        "SELECT e.case_ref, e.at, e.actor, e.event, e.detail FROM case_events e"
        " ORDER BY e.id DESC LIMIT 300"
    )
    items = []
    for r in rows:
        ref = bytes(r["case_ref"])
        try:
            detail = json.loads(r["detail"])
        except ValueError:
            detail = {}
        items.append(
            f"<tr><td>{e(when(int(r['at'])))}</td>"
            f'<td><a href="{e(_url(request, "/cases/" + ref.hex()))}">{e(case_label(ref))}</a>'
            f"</td><td>{event_text(r['event'], r['actor'], detail)}</td></tr>"
        )
    table = (
        "<table><caption>Newest first; every decision, reveal, appeal and feedback on a case."
        '</caption><thead><tr><th scope="col">When</th><th scope="col">Case</th>'
        f'<th scope="col">What happened</th></tr></thead><tbody>{"".join(items)}</tbody></table>'
        if items
        else '<p class="empty">No case events yet.</p>'
    )
    main = (
        "<h1>Decision log</h1><section aria-labelledby='cases-h'>"
        f"<h2 id='cases-h'>Case history</h2>{table}</section>"
    )
    main += await _translog_section(request, node)
    return _page(request, "Decision log", main)


async def _translog_section(request: web.Request, node: Node) -> str:
    """Decision entries of the node's verifiable log, when the node keeps one."""
    translog = getattr(node, "translog", None)
    if translog is None:
        return ""
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
                f"<tr><td>{stored.index}</td><td>{e(when(stored.created_at))}</td>"
                f"<td>{e(entry.get('outcome', ''))}</td><td>{e(entry.get('decided_by', ''))}</td>"
                f"<td>{e(short(did) if isinstance(did, bytes) else '')}</td></tr>"
            )
    except Exception:
        return (
            "<section><h2>Verifiable log</h2><p class='error'>The verifiable log could not be "
            "read.</p></section>"
        )
    table = (
        "<table><caption>Decision entries in this node's verifiable log (newest first); "
        "check them with <code>blindmatch audit verify</code>.</caption><thead><tr>"
        '<th scope="col">Entry</th><th scope="col">When</th><th scope="col">Outcome</th>'
        '<th scope="col">Decided by</th><th scope="col">Decision</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
        if rows
        else '<p class="empty">No decision entries in the verifiable log yet.</p>'
    )
    return (
        '<section aria-labelledby="translog-h"><h2 id="translog-h">Verifiable log</h2>'
        f"{table}</section>"
    )


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

    def table(caption: str, head: str, rows: Iterable[tuple[str, int]]) -> str:
        body = "".join(f"<tr><td>{e(k)}</td><td>{n}</td></tr>" for k, n in rows)
        return (
            f"<table><caption>{e(caption)}</caption><thead><tr><th scope='col'>{e(head)}</th>"
            f"<th scope='col'>Count</th></tr></thead><tbody>{body}</tbody></table>"
        )

    main = (
        "<h1>Reports</h1><h2>Cases by state</h2>"
        + table("All cases on this node.", "State",
                ((_STATES.get(r["state"]) or str(r["state"]), int(r["n"])) for r in states))
        + "<h2>Reviewer activity</h2>"
        + table("Decisions, appeals, re-review requests and reveals.", "Event",
                ((r["event"], int(r["n"])) for r in events))
    )  # fmt: skip
    return _page(request, "Reports", main)


@routes.get("/admin/reviewers", name="reviewers")
@roles(*ADMIN)
async def reviewers_page(request: web.Request) -> web.Response:
    return await _render_reviewers(request)


async def _render_reviewers(
    request: web.Request, error: str = "", message: str = "", status: int = 200
) -> web.Response:
    console = request.app[CONSOLE]
    session: Session = request[SESSION]
    accounts = await console.accounts.list()
    rows = []
    for a in accounts:
        action = ""
        if a.reviewer_id != session.reviewer_id:
            verb = "enable" if a.disabled else "disable"
            target = _url(request, f"/admin/reviewers/{quote(a.reviewer_id, safe='')}/{verb}")
            action = (
                f'<form method="post" class="inline" action="{e(target)}">'
                f'{_csrf_field(session)}<button type="submit"'
                f"{' class=danger' if verb == 'disable' else ''}>{verb.title()} "
                f'<span class="skip">{e(a.reviewer_id)}</span></button></form>'
            )
        rows.append(
            f"<tr><th scope='row'>{e(a.reviewer_id)}</th><td>{e(a.role)}</td>"
            f"<td>{'disabled' if a.disabled else 'active'}</td><td>{e(when(a.created_at))}</td>"
            f"<td>{action}</td></tr>"
        )
    options = "".join(f'<option value="{r}">{r}</option>' for r in ROLES)
    alert = ""
    if error:
        alert = f'<p class="error" role="alert" data-focus>{e(error)}</p>'
    elif message:
        alert = f'<p class="message" role="status" data-focus>{e(message)}</p>'
    main = (
        f"<h1>Reviewers</h1>{alert}<table><caption>Accounts that can sign in to this console."
        '</caption><thead><tr><th scope="col">Reviewer</th><th scope="col">Role</th>'
        '<th scope="col">Status</th><th scope="col">Created</th><th scope="col">Action</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        '<h2 id="add-h">Add a reviewer</h2>'
        f'<form method="post" action="{e(_url(request, "/admin/reviewers"))}"'
        ' aria-labelledby="add-h">'
        f"{_csrf_field(session)}"
        '<label for="new-id">Reviewer ID</label><input type="text" id="new-id" name="reviewer_id"'
        ' required maxlength="64" autocomplete="off">'
        f'<label for="new-role">Role</label><select id="new-role" name="role">{options}</select>'
        '<label for="new-pw">Password (at least 10 characters)</label>'
        '<input type="password" id="new-pw" name="password" required minlength="10"'
        ' autocomplete="new-password">'
        '<p><button type="submit" class="primary">Add reviewer</button></p></form>'
        "<p class='muted'>Roles: <strong>reviewer</strong> decides cases and appeals; "
        "<strong>admin</strong> also manages accounts; <strong>auditor</strong> reads the log "
        "and reports only.</p>"
    )
    return _page(request, "Reviewers", main, status=status)


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
