"""The console's case pages: the queue, a case with its picture, reveal, decide, appeal."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from aiohttp import web

from blindmatch.node.cases.decisions import OUTCOMES, Case, DecisionError
from blindmatch.node.console.accounts import (
    Session,
)
from blindmatch.node.console.app import (
    CONSOLE,
    READ,
    REVEAL_SECONDS,
    REVIEW,
    SESSION,
    _csrf_field,
    _field,
    _page,
    _url,
    roles,
)
from blindmatch.node.console.media import MediaUnavailable, render_media
from blindmatch.node.console.text import (
    _OPINIONS,
    _STATES,
    age,
    band_text,
    case_label,
    e,
    event_text,
    iso,
    matched_text,
    short,
    variant_text,
    when,
)

routes = web.RouteTableDef()

if TYPE_CHECKING:
    from blindmatch.node.node import Node


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


async def _revealed(node: Node, case_ref: bytes, reviewer_id: str) -> bool:
    last = await node.db.fetch_value(
        "SELECT MAX(at) FROM case_events WHERE case_ref = ? AND actor = ? AND event = ?",
        case_ref, reviewer_id, "media:revealed",
    )  # fmt: skip
    return last is not None and int(last) >= node.now() - REVEAL_SECONDS


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
            badges.append('<span class="badge bad">Re-review requested</span>')
        if c.appeal == "open":
            badges.append('<span class="badge warn">Appeal open</span>')
        rows.append(
            "<tr>"
            f'<th scope="row"><a href="{e(_url(request, "/cases/" + c.case_ref.hex()))}">'
            f"{e(case_label(c.case_ref))}</a></th>"
            f'<td data-label="State">{e(_STATES.get(c.state, c.state))} {"".join(badges)}</td>'
            f'<td data-label="Priority">{c.priority}</td>'
            f'<td data-label="Match">{e(matched_text(c))}<br><span class=muted>'
            f"{e(band_text(c.band))}; {e(variant_text(c.variant))}</span></td>"
            f'<td data-label="Holder">{e(c.holder)} <span class=muted>'
            f"({'this node' if c.source == 'local' else 'peer'}), item {e(short(c.item_ref))}"
            "</span></td>"
            f'<td data-label="Opinion">{e(_OPINIONS.get(opinion.label, opinion.label))}</td>'
            f'<td data-label="Waiting">{e(age(now - c.created_at))}</td>'
            "</tr>"
        )
    if rows:
        table = (
            '<table class="queue"><caption>Cases waiting for a person: re-reviews and appeals'
            " first, then by priority. Open a case to see the image (blurred) and decide."
            "</caption><thead><tr>"
            '<th scope="col">Case</th><th scope="col">State</th><th scope="col">Priority</th>'
            '<th scope="col">Match</th><th scope="col">Holder</th>'
            '<th scope="col">Opinion</th><th scope="col">Waiting</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
    else:
        table = '<p class="empty">Nothing is waiting for review.</p>'
    return _page(request, "Review queue", f"<h1>Review queue ({len(cases)})</h1>{table}")


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
    parts = [f"<h1>{e(case_label(case.case_ref))}</h1>"]
    done = request.query.get("done", "")
    messages = {"decided": "Decision saved.", "appeal": "Appeal decision saved.",
                "revealed": "The original image is shown below."}  # fmt: skip
    if error:
        parts.append(f'<p class="error" role="alert" data-focus>{e(error)}</p>')
    elif done in messages:
        parts.append(f'<p class="message" role="status" data-focus>{e(messages[done])}</p>')
    badges = []
    if case.needs_rereview:
        badges.append('<span class="badge bad">Re-review requested</span>')
    if case.appeal:
        badges.append(f'<span class="badge warn">Appeal {e(case.appeal)}</span>')

    # The media: blurred by default, the original only after a recorded reveal.
    if not can_review:
        media = '<p class="muted">Auditors do not see the uploaded media.</p>'
    elif not has_media:
        media = '<p class="empty">The platform did not store the upload for review.</p>'
    else:
        revealed = request.query.get("view") == "original" and await _revealed(
            node, case.case_ref, session.reviewer_id
        )
        view = "original" if revealed else "blurred"
        src = _url(request, f"/cases/{ref}/media", view=view)
        if revealed:
            media = (
                f'<figure><img id="case-media" src="{e(src)}" data-view="original"'
                ' alt="The uploaded picture, original (revealed)">'
                "<figcaption>Original picture, revealed to you (recorded in the history). "
                f'<a href="{e(_url(request, "/cases/" + ref))}">Blur it again</a></figcaption>'
                "</figure>"
            )
        else:
            media = (
                f'<figure><img id="case-media" src="{e(src)}" data-view="blurred"'
                ' alt="The uploaded picture, blurred and in grayscale">'
                "<figcaption>Blurred and grayscale. Reveal the original only if you need it "
                "to decide; the reveal is recorded.</figcaption></figure>"
                f'<form method="post" action="{e(_url(request, f"/cases/{ref}/reveal"))}">'
                f'{_csrf_field(session)}<p><button type="submit" id="reveal">Reveal the '
                "original picture</button></p></form>"
            )
    cats = case.release.get("categories") or []
    facts = (
        '<dl class="facts">'
        f"<dt>State</dt><dd>{e(_STATES.get(case.state, case.state))} {''.join(badges)}</dd>"
        f"<dt>Priority</dt><dd>{case.priority}</dd>"
        f"<dt>Platform content</dt><dd>{e(case.content_ref)}</dd>"
        f"<dt>It matched</dt><dd>{e(matched_text(case))}</dd>"
        f"<dt>Matched at</dt><dd>{e(case.holder)} "
        f"({'this node’s own bank' if case.source == 'local' else 'a peer in the federation'})"
        f"</dd><dt>Item</dt><dd>{e(short(case.item_ref))} <span class=muted>(a reference; "
        "the console never shows hashes)</span></dd>"
        f"<dt>Provenance</dt><dd>{e(case.release.get('provenance') or 'unknown')}</dd>"
        f"<dt>Categories</dt><dd>{e(', '.join(map(str, cats)) or 'none given')}</dd>"
        f"<dt>Distance band</dt><dd>{e(band_text(case.band))}</dd>"
        f"<dt>How it matched</dt><dd>{e(variant_text(case.variant))}</dd>"
        f"<dt>Aggregate opinion</dt><dd>{e(_OPINIONS.get(opinion.label, opinion.label))} "
        f"<span class=muted>({opinion.confirmations} confirmed, {opinion.disputes} disputed, "
        f"{opinion.appeals_upheld} appeals upheld)</span></dd>"
        f"<dt>Opened</dt><dd>{e(when(case.created_at))}</dd>"
    )
    if case.decided_by:
        facts += f"<dt>Decided by</dt><dd>{e(case.decided_by)}</dd>"
    if case.reason:
        label = "Reason" if case.decided_by else "Why it needs a person"
        facts += f"<dt>{label}</dt><dd>{e(case.reason)}</dd>"
    facts += "</dl>"
    parts.append(
        '<div class="grid"><section aria-labelledby="media-h" id="media"><h2 id="media-h">'
        f'Uploaded media</h2>{media}</section><section aria-labelledby="match-h">'
        f'<h2 id="match-h">The match</h2>{facts}</section></div>'
    )

    if can_review and case.state != "closed":
        what = matched_text(case)
        choices = {
            "actioned": f"Action it: the upload shows {what} (the platform removes it and"
            f" {case.holder} hears it was confirmed)",
            "dismissed": f"Dismiss it: the upload does not show {what} ({case.holder} hears"
            " it was disputed)",
            "escalated": "Escalate it: a senior reviewer should decide",
        }
        radios = "".join(
            f'<label class="choice"><input type="radio" name="outcome" value="{k}" id="o-{k}"'
            f" required> {e(v)}</label>"
            for k, v in choices.items()
        )
        parts.append(
            '<section aria-labelledby="decide-h"><h2 id="decide-h">Decide</h2>'
            f'<form method="post" action="{e(_url(request, f"/cases/{ref}/decide"))}">'
            f"{_csrf_field(session)}<fieldset><legend>Decision</legend>{radios}</fieldset>"
            '<label for="reason">Reason (kept in the history; at most 500 characters)</label>'
            '<textarea id="reason" name="reason" maxlength="500" required></textarea>'
            '<p><button type="submit" class="primary" id="decide">Save decision</button></p>'
            "</form></section>"
        )
    if can_review and case.appeal == "open":
        parts.append(
            '<section aria-labelledby="appeal-h"><h2 id="appeal-h">Appeal</h2>'
            "<p>The uploader appealed the action. Upholding it dismisses the case, restores "
            "the content and tells the holder.</p>"
            f'<form method="post" action="{e(_url(request, f"/cases/{ref}/appeal"))}">'
            f"{_csrf_field(session)}<fieldset><legend>Appeal decision</legend>"
            '<label class="choice"><input type="radio" name="appeal" value="uphold" required> '
            "Uphold the appeal (the action was wrong)</label>"
            '<label class="choice"><input type="radio" name="appeal" value="deny"> '
            "Deny the appeal (the action stands)</label></fieldset>"
            '<label for="appeal-reason">Reason</label>'
            '<textarea id="appeal-reason" name="reason" maxlength="500" required></textarea>'
            '<p><button type="submit" class="primary" id="appeal-submit">Save appeal decision'
            "</button></p></form></section>"
        )
    items = "".join(
        f'<li><time datetime="{e(iso(h["at"]))}">{e(when(h["at"]))}</time>: '
        f"{event_text(h['event'], h['actor'], h['detail'])}</li>"
        for h in history
    )
    parts.append(
        '<section aria-labelledby="history-h"><h2 id="history-h">History</h2>'
        f'<ol class="history" id="history">{items}</ol></section>'
    )
    return _page(request, case_label(case.case_ref), "".join(parts), status=status)


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
