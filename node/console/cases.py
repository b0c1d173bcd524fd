"""The console's case pages: the queue, a case with its picture, reveal, decide, appeal."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

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
    Console,
    _field,
    _render,
    _url,
    roles,
)
from blindmatch.node.console.context_view import context_rows
from blindmatch.node.console.media import MediaUnavailable, render_media
from blindmatch.node.console.text import (
    _OPINIONS,
    _STATES,
    age,
    band_text,
    case_label,
    event_text,
    iso,
    match_text,
    matched_text,
    short,
    variant_text,
    when,
)

routes = web.RouteTableDef()

if TYPE_CHECKING:
    pass


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


async def _revealed(console: Console, case_ref: bytes, reviewer_id: str) -> bool:
    last = await console.store.last_reveal(case_ref, reviewer_id)
    return last is not None and last >= console.node.now() - REVEAL_SECONDS


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
    has_media = await console.store.has_media(case.content_ref)
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
        and await _revealed(console, case.case_ref, session.reviewer_id)
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
        ("How it matched", match_text(case.variant, case.release), ""),
        ("Aggregate opinion", _OPINIONS.get(opinion.label, opinion.label),
         f"({opinion.confirmations} confirmed, {opinion.disputes} disputed,"
         f" {opinion.appeals_upheld} appeals upheld)"),
        ("Opened", when(case.created_at), ""),
    ]  # fmt: skip
    if case.decided_by:
        facts.append(("Decided by", case.decided_by, ""))
    if case.reason:
        facts.append(("Reason" if case.decided_by else "Why it needs a person", case.reason, ""))
    facts += context_rows(case)
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
    session: Session = request[SESSION]
    case = await _load_case(request)
    view = request.query.get("view", "blurred")
    if view not in ("blurred", "original"):
        raise web.HTTPNotFound()
    if view == "original" and not await _revealed(console, case.case_ref, session.reviewer_id):
        raise web.HTTPForbidden(text="Reveal the picture on the case page first.")
    media = await console.store.media(case.content_ref)
    if media is None:
        raise web.HTTPNotFound()
    try:
        body = await asyncio.to_thread(render_media, media, view == "blurred")
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
    await request.app[CONSOLE].store.add_reveal(case.case_ref, session.reviewer_id, node.now())
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
